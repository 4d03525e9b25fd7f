"""The hostile-input regression suite: what a new user and an attacker tried on the pipeline (issue 11).

Media is generated here, small and fast. Tests that run flows ask for ``prefect_api`` (the session's
Prefect test server, tests/conftest.py); the S3 ones need scripts/start-s3.sh's server and are skipped
without it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import foley_flow_invariants as INVARIANTS  # tests/conftest.py SHARED_MODULES
import foley_test_helpers as H
import pytest

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent

S3_SKIP = pytest.mark.skipif(not os.environ.get("FOLEY_S3_ENDPOINT_URL"),
                             reason="FOLEY_S3_ENDPOINT_URL is unset (scripts/start-s3.sh)")


@pytest.fixture(scope="session")
def h():
    return H


@pytest.fixture(scope="session")
def check_run_storage():
    return INVARIANTS.check_run_storage


@pytest.fixture(scope="session")
def s3_bucket():
    """A fresh bucket on the test S3 server, deleted with its content at the end."""
    from storage.root import open_root

    bucket = f"foley-hostile-{uuid.uuid4().hex[:10]}"
    root = open_root(f"s3://{bucket}")
    root.ensure_exists()
    yield bucket
    root.fs.rm(bucket, recursive=True)


def foley(*args: str, env: dict | None = None, cwd: str | Path | None = None, timeout: float = 300,
          ) -> subprocess.CompletedProcess:
    """The real ``foley`` command in a child process (what a user types), with this checkout first on the path."""
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], env=full, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def run_foley():
    return foley
