"""Loader speed on a legal but extreme file: safe_load of a header of 1.5 million empty tensors (it took
77 s; it must take seconds). Prints the seconds the load took, and beside it the `safetensors` package's own
numpy loader on the same file when that package is installed.

    python bench/bench_loaders.py [COUNT]
"""
import json, os, sys, tempfile, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout too
from teeny.nn.state import safe_load


def main(count: int = 1_500_000):
  header = {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(count)}
  head = json.dumps(header).encode()
  del header
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "empties.safetensors")
    with open(path, "wb") as f: f.write(len(head).to_bytes(8, "little") + head)
    start = time.perf_counter()
    tensors = safe_load(path)
    took = time.perf_counter() - start
    assert len(tensors) == count
    del tensors
    print(f"teeny safe_load of {count:,} empty tensors ({len(head) / 2**20:.0f} MiB header): {took:.1f} s")
    try: from safetensors.numpy import load_file
    except ImportError: return
    start = time.perf_counter()
    try: arrays = load_file(path)
    except Exception as e:  # it caps headers at 100 MB (1.5 M empties are 96 MiB = 101 MB)
      print(f"safetensors.numpy.load_file refuses the same file: {e} (try a COUNT of 1000000)")
      return
    theirs = time.perf_counter() - start
    assert len(arrays) == count
    print(f"safetensors.numpy.load_file of the same file: {theirs:.1f} s (teeny / safetensors: {took / theirs:.1f}x)")


if __name__ == "__main__": main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_500_000)
