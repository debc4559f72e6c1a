"""A pytest plugin (`-p tgc_record`) that writes each test's outcome as one JSON line as soon as it is known, so a
file whose run is killed still leaves what it got through; and that fails a test running past a time limit.

TGC_RECORD: the .jsonl file to append to. TGC_TEST_TIMEOUT: seconds one test may run (0: no limit). A test over
its limit gets a TestTimeout raised in it (SIGALRM); one stuck in native code is left to the per-file timeout.
Each line: {"event": "start"|"test"|"collect", "nodeid", "outcome", "phase", "exc_type", "exc_msg", "where",
"duration"}.
"""
from __future__ import annotations
import json, os, signal, sys
import pytest


class TestTimeout(Exception):
  """A test ran past TGC_TEST_TIMEOUT seconds."""


def _write(record: dict):
  path = os.environ.get("TGC_RECORD")
  if not path: return
  with open(path, "a") as out:
    out.write(json.dumps(record) + "\n")


def _on_alarm(signum, frame):
  raise TestTimeout(f"test ran over {os.environ.get('TGC_TEST_TIMEOUT')} s")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
  """Arm the per-test alarm around the test's call phase."""
  shim = sys.modules.get("tinygrad_compat_shim")
  if shim is not None: shim.IN_TEST[0] = True  # a tinygrad stub used from here on fails the test
  try: return (yield from _call_with_alarm())
  finally:
    if shim is not None: shim.IN_TEST[0] = False


def _call_with_alarm():
  limit = int(os.environ.get("TGC_TEST_TIMEOUT", "0") or 0)
  if limit <= 0: return (yield)
  previous = signal.signal(signal.SIGALRM, _on_alarm)
  signal.alarm(limit)
  try: return (yield)
  finally:
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def pytest_runtest_logstart(nodeid, location):
  """Note the start, so a test that hangs until the file is killed can be named."""
  _write({"event": "start", "nodeid": nodeid})


def _first_line(text: str) -> str:
  """The first three non-blank lines of a message, joined by ' | ' (numpy's and tinygrad's assertion messages say
  what failed on their second and third lines)."""
  lines = [line.strip() for line in str(text).splitlines() if line.strip()]
  return " | ".join(lines[:3])[:400]


def _innermost_location(excinfo) -> str:
  """file:line of the innermost traceback entry (where the exception was raised)."""
  try:
    entry = excinfo.traceback[-1]
    return f"{os.path.basename(str(entry.path))}:{entry.lineno + 1}"
  except Exception:
    return ""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
  """Record every phase's non-passing outcome and the call phase's result, with the exception's type and message."""
  report = yield
  record = {"event": "test", "nodeid": item.nodeid, "phase": call.when, "duration": round(call.duration, 3)}
  if call.excinfo is not None and not report.skipped:
    record["exc_type"] = call.excinfo.typename
    record["exc_msg"] = _first_line(str(call.excinfo.value))
    record["where"] = _innermost_location(call.excinfo)
  if report.skipped:
    record["outcome"] = "xfailed" if hasattr(report, "wasxfail") else "skipped"
    longrepr = report.longrepr
    record["exc_msg"] = _first_line(longrepr[2] if isinstance(longrepr, tuple) else longrepr)
  elif report.failed: record["outcome"] = "failed" if call.when == "call" else "error"
  else: record["outcome"] = "xpassed" if hasattr(report, "wasxfail") else "passed"
  if call.when == "call" or record["outcome"] != "passed": _write(record)
  return report


def pytest_collectreport(report):
  """Record a file or class that failed to collect (an import error at its top, usually)."""
  if not report.failed: return
  text = str(report.longrepr)
  error_lines = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
  last = error_lines[-1] if error_lines else _first_line(text)
  exc_type, _, message = last.partition(": ")
  _write({"event": "collect", "nodeid": report.nodeid, "outcome": "collect_error", "exc_type": exc_type.strip(),
          "exc_msg": message.strip()[:300]})
