"""Run ids are checked like video ids; the printed follow-up command survives any id; ids and captions with
control or escape characters never reach the terminal raw (issue 11, item 6)."""
from __future__ import annotations

import shlex
import subprocess

import pytest
from typer.testing import CliRunner

from flows import cli
from flows.terminal import printable
from storage import query, tables
from storage.root import open_root
from pipeline.params import check_run_id

runner = CliRunner()
RAW = ("\x1b[2J\x1b]0;pwned\x07", "\r", "\x08", "\u202e", "\x00", "\x9b")  # clear screen + title, CR, BS, RLO...


@pytest.mark.parametrize("bad", ["a/b", "../x", "", " x", "x\n", "e\x1b[31m", "evil\u202eexe", "cafe\u0301", "x" * 300])
def test_bad_run_ids_are_refused(bad):
    with pytest.raises(ValueError, match="bad run id"):
        check_run_id(bad)


def test_the_cli_and_the_flow_refuse_a_bad_run_id_before_doing_anything(tmp_path, h):
    result = runner.invoke(cli.app, ["run", str(h.DEMO_DIR / "manifest.csv"), "--storage", f"file://{tmp_path}",
                                     "--run-id", "../../etc"])
    assert result.exit_code == 2 and "bad run id" in result.output and not list(tmp_path.iterdir())
    result = runner.invoke(cli.app, ["run", str(h.DEMO_DIR / "manifest.csv"), "--storage", f"file://{tmp_path}",
                                     "--run-id", "x\x1b[2J"])
    assert result.exit_code == 2 and "\x1b" not in result.output and "\\x1b" in result.output
    from flows.catalog import catalog_run

    with pytest.raises(ValueError, match="bad run id"):
        catalog_run.fn(str(h.DEMO_DIR / "manifest.csv"), storage_url=f"file://{tmp_path}", run_id="a/b")


@pytest.mark.parametrize("run_id", ["o'brien", "x'; DROP TABLE tracks; --", "$(touch pwned)", "`id`", "a b\"c"])
def test_the_follow_up_command_can_be_pasted_whatever_the_id(tmp_path, run_id):
    root = open_root(str(tmp_path / "out"))
    tables.write_rows(root, "tracks", run_id, [dict(video_id="v", track_id="t0", version=1, position=0, caption="c",
                                                    seed=1, method="nag", steps=2, uri="x", sha256="0" * 64,
                                                    duration_s=1.0, sample_rate=16000)], unit="v@v1")
    command = cli.follow_up_command(root.url, run_id)
    argv = shlex.split(command)
    shell = subprocess.run(["bash", "-c", f"printf '%s\\0' {command}"], cwd=tmp_path, capture_output=True, text=True)
    assert shell.stdout.split("\0")[:-1] == argv  # the shell reads it back as the same words, runs nothing
    assert not (tmp_path / "pwned").exists()
    assert argv[:2] == ["foley", "query"] and argv[3:] == ["--storage", root.url]
    rows = query.query_readonly(query.connect_readonly(root), argv[2])
    assert rows.column("run_id").to_pylist() == [run_id]  # the SQL string literal is the id, exactly


def test_reports_show_control_characters_escaped(tmp_path):
    root = open_root(str(tmp_path / "out"))
    caption = "A door creaks" + "".join(RAW) + " then shuts."
    tables.write_rows(root, "tracks", "r", [dict(video_id="v\x1b[31m", track_id="t0", version=1, position=0,
                                                 caption=caption, seed=1, method="nag", steps=2, uri="x",
                                                 sha256="0" * 64, duration_s=1.0, sample_rate=16000)], unit="v@v1")
    tables.write_rows(root, "videos", "r", [dict(video_id="bad\x07id", version=1, video_uri="x", status="failed",
                                                 error="prepare: CorruptMedia: \x1b]0;owned\x07")], unit="b@v1")
    for args in (["report", "captions"], ["report", "failures"], ["query", "SELECT * FROM tracks"]):
        result = runner.invoke(cli.app, [*args, "--storage", root.url])
        assert result.exit_code == 0, result.output
        assert not set(result.output) & {"\x1b", "\x07", "\r", "\x08", "\u202e", "\x00", "\x9b"}, args
    out = runner.invoke(cli.app, ["report", "captions", "--storage", root.url]).output
    assert "A door creaks\\x1b[2J\\x1b]0;pwned\\x07" in out and "\\u202e" in out


def test_printable_keeps_ordinary_unicode():
    assert printable("vidéo-動画 🎬 naïve") == "vidéo-動画 🎬 naïve"
    assert printable("a\tb\nc\x7f") == "a\\x09b\\x0ac\\x7f"
