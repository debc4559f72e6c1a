"""Builds report.md and results.json (beside this file) from the raw runs run.py recorded: per-file counts for
teeny and tinygrad, the missing names ranked by how many teeny failures they cause, and every teeny failure with
its cause."""
from __future__ import annotations
import collections, datetime, json, os, re
from verdicts import VERDICTS, INTERNALS, PYTORCH, OPEN  # (beside this file)

HERE = os.path.dirname(os.path.abspath(__file__))
# tinygrad modules with no teeny counterpart in the shim (tinygrad_compat_shim.MODULE_MAP lists the mapped ones)
MAPPED_MODULES = ("tinygrad.tensor.", "tinygrad.nn.optim.", "tinygrad.nn.state.", "tinygrad.nn.", "tinygrad.helpers.", "tinygrad.dtype.",
                  "tinygrad.engine.jit.", "tinygrad.device.")
CAUSES = ["missing name", "missing keyword argument", "tinygrad internals", "requires_grad default", "dtype rule",
          "numeric mismatch", "shape mismatch", "error behaviour", "teeny refuses the call", "device teeny lacks", "kernel count",
          "timeout", "other"]
MISSING_ATTR = [re.compile(r"'(\w+)' object has no attribute '(\w+)'"), re.compile(r"type object '(\w+)' has no attribute '(\w+)'"),
                re.compile(r"module '([\w.]+)'.* has no attribute '(\w+)'")]
NUMERIC = ("not equal to tolerance", "not almost equal", "arrays are not equal", "mismatched elements", "not close", "difference")


def read_jsonl(path: str) -> list[dict]:
  """The records of one raw run (none when the file is missing)."""
  if not os.path.exists(path): return []
  with open(path) as lines: return [json.loads(line) for line in lines if line.strip()]


def read_json(path: str, default):
  """A JSON file, or default when it is missing."""
  if not os.path.exists(path): return default
  with open(path) as source: return json.load(source)


def outcomes_of(records: list[dict], killed: bool) -> dict[str, dict]:
  """nodeid -> its outcome record: a failure or error in any phase wins over the call's pass; a test that started
  and never reported (the file's run was killed while it ran) is a timeout."""
  tests: dict[str, dict] = {}
  for record in records:
    if record["event"] == "start": tests.setdefault(record["nodeid"], {"outcome": "killed" if killed else "no report"})
    elif record["event"] == "collect": tests[record["nodeid"]] = record
    elif record["event"] == "test":
      previous = tests.get(record["nodeid"], {})
      if previous.get("outcome") not in ("failed", "error"): tests[record["nodeid"]] = record
  return {nodeid: {key: value for key, value in record.items() if key not in ("event", "nodeid")} for nodeid, record in tests.items()}


def stub_cause(name: str) -> tuple[str, str]:
  """The cause of a TinygradStubUsed: a tinygrad internal, or a name missing from a module the shim maps. The
  message is the missing name, then maybe how the test reached it: 'tinygrad.X (used as tinygrad.X.y)'."""
  name = name.split(" (used as ")[0]
  if name.startswith("Device["): return "missing name", "Device[dev]" + name[name.index("]") + 1:]
  if name.count(".") == 1 or name.startswith(MAPPED_MODULES): return "missing name", name.replace("tinygrad.", "", 1)
  return "tinygrad internals", ".".join(name.split(".")[:3])


def missing_attribute(owner: str, name: str) -> tuple[str, str]:
  """An AttributeError's cause: teeny's UOp and private names (a leading _) are tinygrad internals the tests reach
  into; the rest are missing public names."""
  if owner == "UOp" or name.startswith("_"): return "tinygrad internals", f"{owner}.{name}"
  return "missing name", f"{owner}.{name}"


def classify(record: dict) -> tuple[str, str]:
  """(cause, name) of one teeny failure; name is the missing name or a short key, '' when there is none."""
  exc_type, message = record.get("exc_type", ""), record.get("exc_msg", "")
  if record.get("outcome") == "killed" or exc_type == "TestTimeout": return "timeout", ""
  if exc_type == "TinygradStubUsed": return stub_cause(message)
  if exc_type in ("ImportError", "ModuleNotFoundError") and "tinygrad" in message: return "tinygrad internals", message
  if exc_type == "AttributeError":
    for pattern in MISSING_ATTR:
      if found := pattern.search(message): return missing_attribute(found.group(1).replace("tinygrad.", ""), found.group(2))
  if exc_type == "TypeError" and (found := re.search(r"([\w.]+)\(\) got an unexpected keyword argument '(\w+)'", message)):
    return "missing keyword argument", f"{found.group(1)}({found.group(2)}=)"
  lowered = message.lower()
  if "no tensor with requires_grad=true" in lowered: return "requires_grad default", ""
  if exc_type == "UnknownDeviceError" or "'llvm' != 'cpu'" in lowered or "does not match expected cpu" in lowered:
    return "device teeny lacks", ""
  if exc_type == "KernelCountException" or "kernel count" in lowered: return "kernel count", ""
  if "dtype" in lowered: return "dtype rule", ""
  if any(word in lowered for word in NUMERIC) and exc_type in ("AssertionError", "Exception"): return "numeric mismatch", ""
  if "shape mismatch" in lowered: return "shape mismatch", ""
  if exc_type == "AssertionError" and ("not raised" in lowered or "does not match" in lowered): return "error behaviour", ""
  if exc_type in ("ValueError", "TypeError", "IndexError"): return "teeny refuses the call", exc_type
  return "other", exc_type


def gather(work: str, files: list[str]) -> dict:
  """Every pass's per-file meta and per-test outcomes."""
  passes = {}
  for impl in ("teeny", "tinygrad"):
    per_file = {}
    for test_file in files:
      base = os.path.join(work, "runs", impl, test_file.replace("/", "__"))
      meta = read_json(base + ".meta.json", None)
      if meta is None: continue
      per_file[test_file] = {"meta": meta, "tests": outcomes_of(read_jsonl(base + ".jsonl"), meta.get("killed", False))}
    passes[impl] = per_file
  return passes


def counts(entry: dict) -> dict:
  """collected / passed / failed / skipped / errors of one file's pass."""
  tally = collections.Counter(test["outcome"] for test in entry["tests"].values())
  return {"collected": entry["meta"]["collected"], "passed": tally["passed"] + tally["xpassed"],
          "failed": tally["failed"] + tally["killed"] + tally["no report"], "skipped": tally["skipped"] + tally["xfailed"],
          "errors": tally["error"] + tally["collect_error"], "killed": entry["meta"].get("killed", False),
          "seconds": entry["meta"].get("seconds")}


def cell(entry: dict | None) -> str:
  """One pass's table cells for a file."""
  if entry is None: return "not run | | | | "
  c = counts(entry)
  killed = f" (killed after {c['seconds']} s)" if c["killed"] else ""
  return f"{c['collected']}{killed} | {c['passed']} | {c['failed']} | {c['skipped']} | {c['errors']}"


def teeny_failures(passes: dict) -> list[tuple[str, dict, str, str]]:
  """(nodeid, record, cause, name) of every teeny test that failed or errored."""
  found = []
  for entry in passes.get("teeny", {}).values():
    for nodeid, record in entry["tests"].items():
      if record["outcome"] in ("failed", "error", "collect_error", "killed", "no report"):
        found.append((nodeid, record, *classify(record)))
  return found


def table_lines(passes: dict, files: list[str], strict: dict) -> list[str]:
  """The per-file counts table."""
  lines = ["| file | strict import | teeny collected | passed | failed | skipped | errors | tinygrad collected | passed | failed | skipped | errors |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  totals = {impl: collections.Counter() for impl in passes}
  for test_file in files:
    strict_entry = strict.get(test_file)
    strict_cell = "" if strict_entry is None else (f"ok ({strict_entry['collected']})" if not strict_entry["collect_error"]
                                                   else f"fails: {strict_entry['collect_error'][:70]}")
    lines.append(f"| {test_file} | {strict_cell} | {cell(passes['teeny'].get(test_file))} | {cell(passes['tinygrad'].get(test_file))} |")
    for impl in passes:
      if test_file in passes[impl]: totals[impl].update({k: v for k, v in counts(passes[impl][test_file]).items() if k not in ("killed", "seconds")})
  total_cells = [" | ".join(str(totals[impl][k]) for k in ("collected", "passed", "failed", "skipped", "errors")) for impl in ("teeny", "tinygrad")]
  lines.append(f"| **total** | | {total_cells[0]} | {total_cells[1]} |")
  return lines


def ranking_lines(failures: list) -> list[str]:
  """Missing names and keyword arguments, ranked by how many failing teeny tests they cause."""
  ranked = collections.Counter(name for _, _, cause, name in failures if cause in ("missing name", "missing keyword argument"))
  lines = ["| failing tests | missing name | example test |", "|---|---|---|"]
  examples = {}
  for nodeid, _, cause, name in failures: examples.setdefault(name, nodeid)
  for name, count in ranked.most_common(): lines.append(f"| {count} | `{name}` | {examples[name]} |")
  return lines


def tinygrad_failing(passes: dict) -> set[str]:
  """nodeids that fail or error on real tinygrad too."""
  bad = ("failed", "error", "collect_error", "killed", "no report")
  return {nodeid for entry in passes.get("tinygrad", {}).values() for nodeid, record in entry["tests"].items() if record["outcome"] in bad}


def tinygrad_lines(passes: dict) -> list[str]:
  """Every failure of the tinygrad pass, one line each (these tests say nothing about teeny)."""
  bad = ("failed", "error", "collect_error", "killed", "no report")
  lines = []
  for entry in passes.get("tinygrad", {}).values():
    for nodeid, record in sorted(entry["tests"].items()):
      if record["outcome"] in bad: lines.append(f"- `{nodeid}`: {record.get('exc_type', record['outcome'])}: {record.get('exc_msg', '')[:200]}")
  return lines or ["(none)"]


def group_lines(failures: list, also_on_tinygrad: set[str]) -> list[str]:
  """Every teeny failure, one line each, grouped by cause; [tinygrad fails too] marks those real tinygrad fails."""
  lines = []
  for cause in CAUSES:
    members = sorted((f for f in failures if f[2] == cause), key=lambda f: (f[3], f[0]))
    if not members: continue
    lines += ["", f"### {cause} ({len(members)})", ""]
    for nodeid, record, _, name in members:
      reason = f"{record.get('exc_type', record['outcome'])}: {record.get('exc_msg', '')}".strip()
      both = " [tinygrad fails too]" if nodeid in also_on_tinygrad else ""
      lines.append(f"- `{nodeid}`{f' [{name}]' if name else ''}{both}: {reason[:240]}")
  return lines


def verdict_lines(passes: dict, failures: list, also_on_tinygrad: set[str]) -> list[str]:
  """Issue 19's bar (teeny's passes plus the failures that are tinygrad internals or PyTorch's semantics, against
  tinygrad's passes), then every teeny failure under its verdict and reason (verdicts.py); 'unread' for a failure
  nobody has read yet."""
  tinygrad_passed = sum(counts(e)["passed"] for e in passes.get("tinygrad", {}).values())
  teeny_passed = sum(counts(e)["passed"] for e in passes.get("teeny", {}).values())
  by_reason: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
  for nodeid, record, _, _ in failures:
    verdict, reason = VERDICTS.get(nodeid, ("unread", f"{record.get('exc_type', record['outcome'])}: {record.get('exc_msg', '')[:160]}"))
    by_reason[(verdict, reason)].append(nodeid + (" [tinygrad fails too]" if nodeid in also_on_tinygrad else ""))
  tally = collections.Counter()
  for (verdict, _), ids in by_reason.items(): tally[verdict] += len(ids)
  excused = tally[INTERNALS] + tally[PYTORCH]
  lines = ["| | tests |", "|---|---|", f"| teeny passes | {teeny_passed} |", f"| fails: {INTERNALS} | {tally[INTERNALS]} |",
           f"| fails: {PYTORCH} (README documents each) | {tally[PYTORCH]} |", f"| fails: {OPEN} | {tally[OPEN]} |",
           f"| fails: unread | {tally['unread']} |",
           f"| **teeny passes + internals + PyTorch's semantics** | **{teeny_passed + excused}** |",
           f"| **tinygrad passes (its own CPU run)** | **{tinygrad_passed}** |"]
  for verdict in (OPEN, "unread", PYTORCH, INTERNALS):
    groups = sorted((reason, ids) for (v, reason), ids in by_reason.items() if v == verdict)
    if not groups: continue
    lines += ["", f"### {verdict} ({tally[verdict]})"]
    for reason, ids in groups:
      lines += ["", f"{reason}:"] + [f"- `{nodeid}`" for nodeid in sorted(ids)]
  return lines


def name_gap_lines(work: str) -> list[str]:
  """Public names tinygrad has and teeny lacks, most used in the test files first."""
  gap = read_json(os.path.join(work, "runs", "name_gap.json"), None)
  if gap is None: return ["(not computed: run.py computes it at the start of the teeny pass)"]
  ranked = sorted(gap.items(), key=lambda item: (-sum(item[1].values()), item[0]))
  lines = ["| name | uses in the test files | files |", "|---|---|---|"]
  for name, uses in ranked:
    where = ", ".join(f"{os.path.basename(f)} ({n})" for f, n in sorted(uses.items(), key=lambda u: -u[1]))
    lines.append(f"| `{name}` | {sum(uses.values())} | {where} |")
  return lines


def write(work: str, files: list[str]) -> None:
  """Write report.md and results.json beside this file."""
  passes, strict = gather(work, files), read_json(os.path.join(work, "runs", "strict_collect.json"), {})
  meta = read_json(os.path.join(work, "runs_meta.json"), {})
  failures = teeny_failures(passes)
  by_cause = collections.Counter(cause for _, _, cause, _ in failures)
  when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
  lines = ["# tinygrad's tests on teeny, by changing the import", "",
           f"Generated by tools/tinygrad_compat/run.py at {when}. teeny {meta.get('teeny_commit')} (shim mode "
           f"{meta.get('teeny_mode')}), tinygrad {meta.get('tinygrad_commit')} on its CPU device; per-test limit "
           f"{meta.get('test_timeout')} s; RUN_SLOW={int(bool(meta.get('run_slow')))}. README.md says what the modes and columns mean.", "",
           "## Per file", ""] + table_lines(passes, files, strict)
  lines += ["", "## teeny failures by cause", "", "| cause | failing tests |", "|---|---|"]
  lines += [f"| {cause} | {by_cause[cause]} |" for cause in CAUSES if by_cause[cause]]
  lines += ["", "## Missing names, ranked by failing tests they cause", ""] + ranking_lines(failures)
  lines += ["", "## Public names tinygrad has and teeny lacks (static)", "",
            "dir() of tinygrad's Tensor, dtypes, tinygrad, nn, nn.optim and nn.state against teeny's (through the shim), "
            "with how often the name appears in the test files (`.name` for Tensor and dtypes, the word elsewhere; "
            "a count can include a same-named local or torch call). This finds names no failure above shows, because "
            "their tests failed earlier on another name.", ""] + name_gap_lines(work)
  lines += ["", "## Against tinygrad: every failure read, with its verdict", "",
            "Issue 19's bar: teeny passes as many as tinygrad, counting the tests of tinygrad internals and of semantics "
            "README documents as deliberately PyTorch's (tools/tinygrad_compat/verdicts.py says why each test fails).", ""]
  lines += verdict_lines(passes, failures, tinygrad_failing(passes))
  lines += ["", "## Every teeny failure, by what its error says", ""] + group_lines(failures, tinygrad_failing(passes))
  lines += ["", "## Every tinygrad failure (its own CPU run)", ""] + tinygrad_lines(passes)
  with open(os.path.join(HERE, "report.md"), "w") as out: out.write("\n".join(lines) + "\n")
  results = {"meta": meta, "strict_collect": strict,
             "passes": {impl: {f: {"meta": e["meta"], "tests": e["tests"]} for f, e in per_file.items()} for impl, per_file in passes.items()}}
  for nodeid, record, cause, name in failures: record.update(cause=cause, name=name)
  with open(os.path.join(HERE, "results.json"), "w") as out: json.dump(results, out, indent=0, sort_keys=True)
