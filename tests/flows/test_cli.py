"""The `foley` CLI: demo, run, query (read only), reports, edit; environment defaults."""
from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from flows import env
from flows.cli import app
from pipeline import models

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_query_prints_rows(catalog):
    code, out = invoke("query", "SELECT video_id, status FROM videos WHERE status = 'ok' ORDER BY video_id",
                       "--storage", catalog["storage_url"])
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split() == ["video_id", "status"] and len(lines) == 2 + 4
    assert "vidéo-動画" in out and "short-clip" in out


@pytest.mark.parametrize("sql", ["CREATE TABLE x AS SELECT 1", "COPY videos TO '/tmp/x.parquet'",
                                 "SELECT 1; SELECT 2", "ATTACH 'x.db'"])
def test_query_refuses_anything_but_one_select(catalog, sql):
    code, out = invoke("query", sql, "--storage", catalog["storage_url"])
    assert code == 2 and "error:" in out


def test_reports(catalog):
    code, out = invoke("report", "failures", "--storage", catalog["storage_url"], "--run-id", catalog["run_id"])
    assert code == 0 and "corrupt" in out and "CorruptMedia" in out
    assert len([l for l in out.splitlines()[2:] if l.strip()]) == 14
    code, out = invoke("report", "methods", "--storage", catalog["storage_url"])
    assert code == 0 and "nag" in out and "generation_s" in out and "lufs" in out
    code, out = invoke("report", "captions", "--storage", catalog["storage_url"])
    assert code == 0 and "The fan hums sharply." in out


def test_demo_runs_the_bundled_catalog_end_to_end(tmp_path, h):
    code, out = invoke("demo", "--storage", f"file://{tmp_path}", "--model", h.MODEL, "--steps", "2",
                       "--duration", str(h.DURATION), "--no-progress")
    assert code == 0, out
    assert "completed: 3 ok, 1 failed, 0 already finished (of 4)" in out  # the uncaptioned video needs a captioner
    assert "summary (DuckDB" in out and f"file://{tmp_path}/runs/" in out
    assert out.count("muxed/v1.mp4") == 3


def test_demo_without_the_demo_weights_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "DEMO_MODEL_DIR", tmp_path / "weights" / "demo")
    code, out = invoke("demo", "--storage", f"file://{tmp_path / 'out'}", "--no-progress")
    assert code == 2 and "demo model is not installed" in out and "bundle.json" in out


def test_run_refuses_bad_settings_before_starting(tmp_path, h):
    code, out = invoke("run", str(h.DEMO_DIR / "manifest.csv"), "--bit-depth", "12", "--storage", f"file://{tmp_path}")
    assert code == 2 and "bit_depth must be one of" in out
    code, out = invoke("run", str(tmp_path / "absent.csv"), "--storage", f"file://{tmp_path}")
    assert code == 2 and "cannot read the manifest" in out
    code, out = invoke("run", str(h.DEMO_DIR / "manifest.csv"), "--dask", "local:two", "--storage", f"file://{tmp_path}")
    assert code == 2 and "'local' or 'local:N'" in out


def test_edit_through_the_cli(tmp_path, h):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"id,video_uri,captions\nv,{h.DEMO_DIR / 'sf-10161943.mp4'},A fan hums. | A lamp beeps.\n")
    storage = f"file://{tmp_path / 'out'}"
    assert invoke("run", str(manifest), "--storage", storage, "--run-id", "cli", "--model", h.MODEL, "--steps", "2",
                  "--duration", str(h.DURATION), "--no-progress")[0] == 0
    code, out = invoke("edit", "cli", "v", "remove", "--track", "t0", "--storage", storage)
    assert code == 0 and "v: version 2 (remove t0); tracks now t1" in out
    code, out = invoke("edit", "cli", "v", "remove", "--track", "t1", "--storage", storage)
    assert code == 2 and "only track" in out


def test_a_local_dask_cluster_shares_this_processs_prefect_server(monkeypatch):
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # as `foley run` without a server
        with env.shared_api():
            url = SubprocessASGIServer().api_url  # the ephemeral server of this process
            assert PREFECT_API_URL.value() == url and os.environ["PREFECT_API_URL"] == url  # workers inherit it
        assert PREFECT_API_URL.value() is None and "PREFECT_API_URL" not in os.environ


def test_environment_defaults_respect_the_user(monkeypatch, tmp_path):
    for name in ("DO_NOT_TRACK", "PREFECT_SERVER_ANALYTICS_ENABLED", "PREFECT_HOME",
                 "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DO_NOT_TRACK", "0")
    env.apply_defaults(quiet_console=True)
    assert os.environ["DO_NOT_TRACK"] == "0"  # the user's choice stays
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert os.environ["PREFECT_HOME"] == str(tmp_path / ".prefect") and (tmp_path / ".prefect").is_dir()
    assert os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] == "CRITICAL"


def test_an_unwritable_home_falls_back_to_a_temp_folder(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("HOME", str(blocker))  # ~/.prefect cannot be made under a file
    home = env.default_prefect_home()
    assert home != str(blocker / ".prefect") and os.access(home, os.W_OK)


def test_report_html_writes_the_run_report(catalog):
    from storage import keys
    from storage.root import open_root

    root = open_root(catalog["storage_url"])
    root.delete(keys.report_key(catalog["run_id"]))  # the run wrote one; the command writes it again
    code, out = invoke("report", "html", catalog["run_id"], "--storage", catalog["storage_url"])
    assert code == 0 and out.strip() == root.uri(keys.report_key(catalog["run_id"]))
    assert "vidéo-動画" in root.read_bytes(keys.report_key(catalog["run_id"])).decode()
    code, out = invoke("report", "html", "no-such-run", "--storage", catalog["storage_url"])
    assert code == 2 and "no run 'no-such-run'" in out
    code, out = invoke("report", "html", "--storage", catalog["storage_url"])
    assert code == 2 and "needs a run id" in out


def test_run_refuses_an_incomplete_captioner(tmp_path, h):
    code, out = invoke("run", str(h.DEMO_DIR / "manifest.csv"), "--captioner", "endpoint", "--captioner-model", "m",
                       "--storage", f"file://{tmp_path}")
    assert code == 2 and "--captioner-url" in out
