"""`kill -9` of `foley run` takes Prefect's ephemeral server down with it (issue 11, item 5: the server was
reparented to PID 1 and kept listening)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"),
                                                   reason="the parent-death signal is Linux's")]


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_ephemeral_server_dies_with_a_killed_cli(tmp_path, h):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"id,video_uri,captions\nv,{h.DEMO_DIR / 'sf-10161943.mp4'},A fan hums.\n")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PYTHONPATH=str(ROOT), PREFECT_HOME=str(tmp_path / "prefect-home"))
    cli = subprocess.Popen([sys.executable, "-m", "flows.cli", "run", str(manifest), "--storage",
                            f"file://{tmp_path / 'out'}", "--model", "random:tiny", "--duration", "2", "--steps", "2",
                            "--no-progress"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = None
    try:
        deadline = time.monotonic() + 180
        while server is None and time.monotonic() < deadline and cli.poll() is None:
            server = next((p for p in _children(cli.pid) if "uvicorn" in _cmdline(p)), None)
            time.sleep(0.2)
        assert server is not None, "the CLI never started its ephemeral server"
        os.kill(cli.pid, signal.SIGKILL)
        cli.wait(10)
        deadline = time.monotonic() + 30
        while _alive(server) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(server), "the ephemeral server outlived the killed CLI"
    finally:
        if cli.poll() is None:
            cli.kill()
        if server is not None and _alive(server) and "uvicorn" in _cmdline(server):
            os.kill(server, signal.SIGKILL)  # the server this test started, left behind (the defect)
