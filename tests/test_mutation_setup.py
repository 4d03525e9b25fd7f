"""The mutation-testing setup (scripts/mutation.py, docs/testing.md): its configuration is consistent, and a mutant's
pytest keeps only the tests paired with its file, with the S3 cases only for the files that talk to S3."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    import mutation_script  # tests/conftest.py SHARED_MODULES

    return mutation_script


def test_every_mutated_file_has_its_tests_and_a_group():
    script = _script()
    files = script.configured_files()
    pairs = script.paired_tests()  # raises SystemExit when the selection is not the union of the pairs
    assert sorted(pairs) == sorted(files)
    assert all((ROOT / test).is_file() for tests in pairs.values() for test in tests)
    assert sorted(f for group in script.groups().values() for f in group) == sorted(files)


def _collected(mutant: str, *files: str) -> list[str]:
    env = {**os.environ, "FOLEY_MUTATION": "1", "MUTANT_UNDER_TEST": mutant}  # S3 cases are collected, skipped or not
    env.pop("FOLEY_TEST_ORDER", None)
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return [line for line in out.stdout.splitlines() if "::" in line]


@pytest.mark.parametrize("mutant, paired, with_s3", [
    ("storage.tables.x_to_arrow__mutmut_1", "tests/storage/test_tables.py", False),
    ("storage.root.xǁRootǁput_atomic__mutmut_3", "tests/storage/test_root.py", True),
    ("", None, None),  # mutmut's own runs (stats, clean): every test, the S3 cases of root.py's tests only
])
def test_a_mutant_runs_its_files_tests_and_the_s3_cases_only_for_root(mutant, paired, with_s3):
    files = ("tests/storage/test_tables.py", "tests/storage/test_root.py")
    kept = _collected(mutant, *files)
    s3 = [t for t in kept if re.search(r"[\[-]s3[\]-]", t)]  # the S3 cases of ROOT_KINDS (tests/storage/conftest.py)
    if paired is None:
        assert {t.split("::")[0] for t in kept} == set(files)
        assert s3 and all(t.startswith("tests/storage/test_root.py") for t in s3)
    else:
        assert kept and all(t.startswith(paired) for t in kept)
        assert bool(s3) is with_s3
