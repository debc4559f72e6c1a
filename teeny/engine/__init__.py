"""The engine: everything that runs the pipeline for the tensors asked for. It realizes lazy tensors (tensors.py),
runs schedules (realize.py), turns kernel ASTs into loaded programs (runner.py), searches kernel optimizations by
timing them (search.py), captures and replays launches (jit.py), measures the device's ceilings (roofline.py)
and, with VALIDATE=1, checks every realize against the reference interpreter (validate.py).
It sits above schedule/, codegen/, renderer/ and runtime/, and below tensor.py, except jit.py: a TinyJit takes and
returns Tensors, so it imports tensor.py (and teeny/__init__.py exports it)."""
