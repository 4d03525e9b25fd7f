"""SIGKILL a real `foley run` midway, run it again: it completes with no duplicate rows and no orphans.

Both runs are separate `foley run` processes on Prefect's ephemeral server sharing one Prefect home,
as a user on one machine would run them, so the test also covers the GPU slot that the killed run
still holds (an ephemeral server never expires leases).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from storage import keys, tables
from storage.root import open_root

N_VIDEOS = 4
STEPS = 2


def _state(root, run_id: str, ids: list[str]) -> tuple[set[str], set[str]]:
    """(videos committed ok, uncommitted videos that already have objects)."""
    if not root.fs.exists(root.base):
        return set(), set()
    try:
        videos = tables.read_table(root, "videos", run_id).to_pylist()
    except FileNotFoundError:  # a part file replaced while listing: look again next time
        return set(), set()
    ok = {r["video_id"] for r in videos if r["status"] == "ok"}
    return ok, {v for v in ids if v not in ok and root.list(keys.video_prefix(run_id, v))}


def test_a_killed_run_resumes_without_duplicates_or_orphans(tmp_path, h, check_run_storage):
    ids = [f"clip-{k}" for k in range(N_VIDEOS)]
    files = ["sf-10109180.mp4", "sf-10161943.mp4", "sf-10170532.mp4"]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"id": v, "video_uri": str(h.DEMO_DIR / files[k % 3]),
                                            "captions": ["The fan hums.", "A lamp beeps."]}) + "\n"
                                for k, v in enumerate(ids)))
    storage_url, run_id = f"file://{tmp_path / 'out'}", "killed"
    root = open_root(storage_url)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    cmd = [sys.executable, "-m", "flows.cli", "run", str(manifest), "--storage", storage_url, "--run-id", run_id,
           "--model", h.MODEL, "--duration", str(h.DURATION), "--steps", str(STEPS), "--no-progress"]

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    try:
        while True:
            ok, started = _state(root, run_id, ids)
            if ok and started:
                proc.send_signal(signal.SIGKILL)
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode(errors="replace")[-3000:] if proc.stdout else ""
                pytest.fail(f"the run ended (rc={proc.returncode}) or stalled before it was killed midway:\n{out}")
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    ok_before, started = _state(root, run_id, ids)
    assert 0 < len(ok_before) < N_VIDEOS and started  # killed with finished, partial and untouched videos
    finished = {k: root.read_bytes(k) for v in ok_before for k in root.list(keys.video_prefix(run_id, v))}

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert f"{N_VIDEOS} ok, 0 failed, {len(ok_before)} already finished" in rerun.stdout
    assert {k: root.read_bytes(k) for k in finished} == finished  # finished videos were not redone
    con = check_run_storage(root, run_id)  # one row per unit, every object referenced, no temporaries
    assert con.sql("SELECT count(*) FROM videos WHERE run_id = $r", params={"r": run_id}).fetchall() == [(N_VIDEOS,)]
    assert con.sql("SELECT count(*) FROM tracks WHERE run_id = $r", params={"r": run_id}).fetchall() == \
        [(2 * N_VIDEOS,)]
    assert con.sql("SELECT status FROM runs WHERE run_id = $r", params={"r": run_id}).fetchall() == [("completed",)]
