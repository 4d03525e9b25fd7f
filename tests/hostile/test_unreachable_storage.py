"""An S3 endpoint that is down fails `foley run` and `foley query` in seconds, in one line, with a non-zero
exit code (issue 11, item 4: it took 67 s and printed a 202-line traceback)."""
from __future__ import annotations

import time

import pytest

DOWN = {"FOLEY_S3_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret"}


@pytest.mark.parametrize("command", [["run", "{manifest}", "--storage", "s3://foley-down"],
                                     ["query", "SELECT count(*) FROM videos", "--storage", "s3://foley-down"],
                                     ["report", "failures", "--storage", "s3://foley-down"]],
                         ids=["run", "query", "report"])
def test_an_unreachable_endpoint_fails_fast_in_one_line(run_foley, h, command):
    args = [a.format(manifest=h.DEMO_DIR / "manifest.csv") for a in command]
    start = time.monotonic()
    done = run_foley(*args, env=DOWN, timeout=120)
    elapsed = time.monotonic() - start
    assert done.returncode == 2
    lines = [l for l in (done.stdout + done.stderr).splitlines() if l.strip()]
    assert lines == [lines[0]] and lines[0].startswith("error: s3://foley-down: cannot connect to the S3 endpoint")
    assert "Traceback" not in done.stderr and "secret" not in done.stderr
    assert elapsed < 30  # interpreter start included; the storage check itself takes ~2 s


def test_timeouts_and_retries_are_bounded_and_can_be_set(monkeypatch):
    from storage.root import StorageConfigError, s3_options

    config = s3_options({"key": "k", "secret": "s"})["config_kwargs"]
    assert config == {"connect_timeout": 5.0, "read_timeout": 30.0, "retries": {"max_attempts": 5, "mode": "standard"}}
    monkeypatch.setenv("FOLEY_S3_READ_TIMEOUT", "2.5")
    monkeypatch.setenv("FOLEY_S3_MAX_ATTEMPTS", "9")
    config = s3_options({"key": "k", "secret": "s"})["config_kwargs"]
    assert config["read_timeout"] == 2.5 and config["retries"]["max_attempts"] == 9
    assert s3_options({"key": "k", "secret": "s", "config_kwargs": {"read_timeout": 1}})["config_kwargs"][
        "read_timeout"] == 1  # what the caller says wins
    monkeypatch.setenv("FOLEY_S3_CONNECT_TIMEOUT", "soon")
    with pytest.raises(StorageConfigError, match="FOLEY_S3_CONNECT_TIMEOUT"):
        s3_options({"key": "k", "secret": "s"})
