"""Mutation testing of the method and the data guarantees: run mutmut, print the score and the survivors.

    python scripts/mutation.py                       # every configured file (pyproject.toml [tool.mutmut])
    python scripts/mutation.py nag_model/guidance.py # one file (or several; mutmut name globs work too)
    python scripts/mutation.py --group method        # one group of files ([tool.foley.mutation_groups])
    python scripts/mutation.py --report              # the score of the last run, without running anything
    python scripts/mutation.py --fresh               # forget cached results (mutants/) and start over
    python scripts/mutation.py --with-s3             # also run the S3 tests (scripts/start-s3.sh's server)
    python scripts/mutation.py --survivors           # test again only the mutants that survived the last run

mutmut keeps its results in mutants/ and reruns only the mutants of functions that changed, so after an
edit of a method file a rerun is short. The run is niced, one torch thread per worker, two workers by
default (``--children``). A mutant runs only the tests paired with its file ([tool.foley.mutation_tests],
applied by tests/conftest.py) that reach the mutated function, fastest first. Survivors listed as equivalent in
docs/testing.md ("Equivalent mutants", one ``- `name`: why`` line each) are reported apart; the command exits 1
while any other mutant survives.
See docs/testing.md.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "testing.md"
_EQUIVALENT = re.compile(r"^- `([^`]+)`: (.+)$")
DETECTED = ("killed", "timeout", "caught by type check")  # statuses that count for the score
# mutmut records 255 ("timeout" in its table) when its worker could not run the tests at all (pytest refused the
# selection, e.g. a node id it cannot parse): no test ran, so it is no detection.
RUNNER_ERROR = "tests not run"


def _tool_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]


def configured_files() -> list[str]:
    """The files mutmut mutates (``only_mutate`` of ``[tool.mutmut]``)."""
    return _tool_config()["mutmut"]["only_mutate"]


def groups() -> dict[str, list[str]]:
    """``[tool.foley.mutation_groups]``: name -> files; every configured file is in exactly one group."""
    found = _tool_config()["foley"]["mutation_groups"]
    listed = [f for files in found.values() for f in files]
    if sorted(listed) != sorted(configured_files()):
        raise SystemExit(f"[tool.foley.mutation_groups] must list each file of only_mutate once; "
                         f"missing {sorted(set(configured_files()) - set(listed))}, "
                         f"extra or repeated {sorted(f for f in set(listed) if listed.count(f) > 1 or f not in configured_files())}")
    return found


def paired_tests() -> dict[str, list[str]]:
    """``[tool.foley.mutation_tests]``: file -> the tests paired with it (tests/conftest.py keeps only those for a
    mutant of the file). Every configured file has its tests, and mutmut's test selection is exactly their union."""
    tool = _tool_config()
    pairs = tool["foley"]["mutation_tests"]
    unpaired = sorted(set(configured_files()) - set(pairs))
    if unpaired:
        raise SystemExit(f"[tool.foley.mutation_tests] pairs no tests with {unpaired}")
    s3_files = tool["foley"]["mutation_s3"]["files"]
    if not set(s3_files) <= set(configured_files()):
        raise SystemExit(f"[tool.foley.mutation_s3] files must be files of only_mutate: {s3_files}")
    union = sorted({t for tests in pairs.values() for t in tests})
    if sorted(tool["mutmut"]["pytest_add_cli_args_test_selection"]) != union:
        raise SystemExit("[tool.mutmut] pytest_add_cli_args_test_selection must list exactly the test files of "
                         f"[tool.foley.mutation_tests]: {union}")
    return pairs


def equivalent_mutants() -> dict[str, str]:
    """Mutant names explained as equivalent in docs/testing.md, with the reason."""
    if not DOC.exists():
        return {}
    text = DOC.read_text().split("## Equivalent mutants", 1)
    if len(text) < 2:
        return {}
    section = text[1].split("\n## ", 1)[0]
    return {m.group(1): m.group(2) for line in section.splitlines() if (m := _EQUIVALENT.match(line.strip()))}


def mutant_pattern(arg: str) -> str:
    """A file path becomes the glob of its mutants' names (``nag_model/guidance.py`` -> ``nag_model.guidance.*``)."""
    if arg.endswith(".py"):
        return arg[:-3].replace("/", ".") + ".*"
    return arg


def results(files: list[str]) -> dict[str, dict[str, str]]:
    """{file: {mutant name: status}} from mutmut's result files (mutants/<file>.meta)."""
    from mutmut.stats import status_by_exit_code  # the tool's own mapping of exit codes to statuses

    out = {}
    for name in files:
        meta = ROOT / "mutants" / f"{name}.meta"
        if meta.exists():
            codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
            out[name] = {k: RUNNER_ERROR if v == 255 else status_by_exit_code[v] for k, v in codes.items()}
    return out


_COMPLETED = re.compile(r"Completed (\S+): exit=-?\d+ \(([\d.]+)s\)")


def worker_seconds() -> dict[str, float]:
    """Each mutant's wall time in its worker, from mutmut's log (``log_to_file``; the latest run of each mutant)."""
    log = ROOT / "mutants" / "mutmut-debug.log"
    if not log.exists():
        return {}
    with log.open(errors="replace") as f:
        return {m.group(1): float(m.group(2)) for line in f if (m := _COMPLETED.search(line))}


def diff(name: str) -> str:
    """The mutation, as ``mutmut show`` prints it, without the file header (mutmut's own function, in-process)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    os.chdir(ROOT)
    lines = get_diff_for_mutant(name).splitlines()
    return "\n".join(line for line in lines if line.startswith(("+", "-")) and not line.startswith(("+++", "---")))


def report(files: list[str], patterns: list[str] | None = None, show_diffs: bool = True) -> int:
    """Print the score and the survivors; 1 when a mutant survives that docs/testing.md does not explain."""
    by_file, explained = results(files), equivalent_mutants()
    if patterns:
        by_file = {f: {k: s for k, s in r.items() if any(fnmatch.fnmatch(k, p) for p in patterns)}
                   for f, r in by_file.items()}
    total = Counter()
    seconds = worker_seconds()
    print(f"\n{'file':<28} {'mutants':>8} {'detected':>9} {'survived':>9} {'no tests':>9} {'equivalent':>11} {'score':>7} "
          f"{'worker s':>9}")
    survivors: list[tuple[str, str]] = []
    for name, res in sorted(by_file.items()):
        counts = Counter(res.values())
        detected = sum(counts[s] for s in DETECTED)
        equivalent = sum(1 for k, s in res.items() if s not in DETECTED and s != "not checked" and k in explained)
        left = [(k, s) for k, s in sorted(res.items()) if s not in DETECTED and s != "not checked"]
        survivors += [(k, s) for k, s in left if k not in explained]
        n = len(res) - counts["not checked"]
        if not n:
            continue
        score = 100.0 * (detected + equivalent) / n if n else float("nan")
        spent = sum(seconds.get(k, 0.0) for k in res)
        print(f"{name:<28} {n:>8} {detected:>9} {counts['survived']:>9} {counts['no tests']:>9} {equivalent:>11} "
              f"{score:>6.1f}% {spent:>9.0f}")
        total["worker s"] += spent
        total.update({"mutants": n, "detected": detected, "equivalent": equivalent, "survived": counts["survived"],
                      "no tests": counts["no tests"], "other": len(left) - counts["survived"] - counts["no tests"]})
    n = total["mutants"]
    if not n:
        print("no results yet: run the mutation tests first")
        return 1
    raw = 100.0 * total["detected"] / n
    score = 100.0 * (total["detected"] + total["equivalent"]) / n
    print(f"\n{n} mutants: {total['detected']} detected, {total['survived']} survived, {total['no tests']} reached by "
          f"no test, {total['other']} other; {total['equivalent']} of the undetected explained as equivalent")
    print(f"mutation score: {raw:.1f}% detected; {score:.1f}% with the equivalent mutants")
    if seconds:
        print(f"the mutants' tests took {total['worker s']:.0f} s of worker time (mutants/mutmut-debug.log)")
    stale = sorted(k for k in explained if not any(k in r and r[k] not in DETECTED for r in by_file.values()))
    if stale and not patterns:
        print(f"\nlisted as equivalent in {DOC.relative_to(ROOT)} but not a survivor of this run (update the list): "
              + ", ".join(stale))
    if survivors:
        print(f"\n{len(survivors)} surviving mutant(s) not explained in {DOC.relative_to(ROOT)}:")
        for k, status in survivors:
            print(f"\n{k}  [{status}]")
            if show_diffs:
                print(diff(k))
    return 1 if survivors else 0


def s3_environment() -> dict[str, str]:
    """Start (or find) the test S3 server of scripts/start-s3.sh and return its settings (its s3.env)."""
    subprocess.run(["bash", str(ROOT / "scripts" / "start-s3.sh")], check=True, stdout=subprocess.DEVNULL)
    env_file = Path(os.environ.get("CEPH_DIR", "/tmp/foley-ceph")) / "s3.env"
    pairs = (line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip().strip("'\"") for k, v in pairs}


def run(patterns: list[str], children: int, fresh: bool, with_s3: bool) -> int:
    """``mutmut run`` in the repository root, niced, hermetic (own Prefect home, no telemetry).

    Without ``with_s3`` the S3 settings are removed, so the S3 tests are skipped whatever the shell holds
    (their mutants then count as survivors): the same run gives the same score."""
    if fresh:
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    s3 = s3_environment() if with_s3 else {}
    base = {k: v for k, v in os.environ.items() if with_s3 or k != "FOLEY_S3_ENDPOINT_URL"}
    env = {**base, **s3, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "FOLEY_TEST_THREADS": "1",
           "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_UI_ENABLED": "false",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
           "PREFECT_HOME": tempfile.mkdtemp(prefix="mutation-prefect-"),
           "FOLEY_TEST_ORDER": str(ROOT / "mutants" / "mutmut-stats.json"),  # fastest tests first (tests/conftest.py)
           "FOLEY_TEST_WARMUP": "1",  # slow first calls made once, before mutmut forks (tests/conftest.py)
           "FOLEY_MUTATION": "1"}  # S3 cases only for [tool.foley.mutation_s3] files (tests/conftest.py)
    env.pop("PYTHONPATH", None)  # the mutated copies in mutants/ must be the ones imported
    command = ["nice", "-n", "10", sys.executable, "-m", "mutmut", "run", "--max-children", str(children), *patterns]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="files of [tool.mutmut] only_mutate, or mutmut name globs")
    parser.add_argument("--group", action="append", default=[], help="a group of files of [tool.foley.mutation_groups] "
                        "(method, audio, storage, pipeline); repeatable")
    parser.add_argument("--children", type=int, default=2, help="parallel mutant workers (default 2)")
    parser.add_argument("--fresh", action="store_true", help="delete mutants/ first (no cached results)")
    parser.add_argument("--with-s3", action="store_true", help="start the test S3 server and run the S3 tests too")
    parser.add_argument("--survivors", action="store_true", help="test again the mutants that survived the last run")
    parser.add_argument("--report", action="store_true", help="only print the score of the last run")
    parser.add_argument("--no-diffs", action="store_true", help="list the survivors without their diffs")
    args = parser.parse_args(argv)
    files = configured_files()
    known = groups()
    paired_tests()
    for name in args.group:
        if name not in known:
            parser.error(f"unknown group {name!r}; the groups are {', '.join(known)}")
        args.targets += known[name]
    unknown = [t for t in args.targets if t.endswith(".py") and t not in files]
    if unknown:
        parser.error(f"not configured for mutation: {unknown}; the files are {files}")
    patterns = [mutant_pattern(t) for t in args.targets]
    if not args.report:
        names = patterns
        if args.survivors:  # mutmut keeps a result until the function changes: name the survivors to retest them
            names = sorted(k for res in results(files).values() for k, s in res.items() if s not in DETECTED
                           and (not patterns or any(fnmatch.fnmatch(k, p) for p in patterns)))
            if not names:
                print("no survivors to test again")
                return report(files, patterns or None, show_diffs=not args.no_diffs)
        code = run(names, args.children, args.fresh, args.with_s3)
        if code != 0:
            print(f"mutmut run exited with {code}", file=sys.stderr)
            return code
    return report(files, patterns or None, show_diffs=not args.no_diffs)


if __name__ == "__main__":
    sys.exit(main())
