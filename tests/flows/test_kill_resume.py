"""SIGKILL a real `foley run` midway, run it again: it completes with no duplicate rows and no orphans.

Both runs are separate `foley run` processes on Prefect's ephemeral server sharing one Prefect home,
as a user on one machine would run them, so the test also covers the GPU slot that the killed run
still holds (an ephemeral server never expires leases).

The run is killed at a moment chosen on the storage itself: the process group is frozen (SIGSTOP),
the tables and objects are read, and only if at least one video is finished and another has objects
but no committed row is it killed (SIGKILL, the run and its Prefect server together); otherwise it
goes on (SIGCONT). So the state the assertions start from is exactly the one at the kill, however
loaded the machine is; timeouts are generous for the same reason.
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
TIMEOUT_S = 600  # per run; a run takes ~20 s on an idle 2-core machine


def _state(root, run_id: str, ids: list[str]) -> tuple[set[str], set[str]]:
    """(videos committed ok, uncommitted videos that already have objects)."""
    if not root.fs.exists(root.base):
        return set(), set()
    videos = tables.read_table(root, "videos", run_id).to_pylist()
    ok = {r["video_id"] for r in videos if r["status"] == "ok"}
    return ok, {v for v in ids if v not in ok and root.list(keys.video_prefix(run_id, v))}


def _kill_midway(proc: subprocess.Popen, root, run_id: str, ids: list[str], log) -> tuple[set[str], set[str]]:
    """Freeze, look, and kill once finished, partial and untouched videos coexist; returns the state then."""
    deadline = time.monotonic() + TIMEOUT_S
    while proc.poll() is None and time.monotonic() < deadline:
        os.killpg(proc.pid, signal.SIGSTOP)
        try:
            ok, started = _state(root, run_id, ids)
        except FileNotFoundError:  # a part file replaced between listing and reading: look again
            ok, started = set(), set()
        if ok and started:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
            return ok, started
        os.killpg(proc.pid, signal.SIGCONT)
        time.sleep(0.05)
    pytest.fail(f"the run ended (rc={proc.poll()}) or stalled before it could be killed midway:\n"
                f"{log.read_text()[-3000:]}")


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
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = str(TIMEOUT_S // 2)
    cmd = [sys.executable, "-m", "flows.cli", "run", str(manifest), "--storage", storage_url, "--run-id", run_id,
           "--model", h.MODEL, "--duration", str(h.DURATION), "--steps", str(STEPS), "--no-progress"]

    log = tmp_path / "first-run.log"  # a file, not a pipe nobody reads while the run writes
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            ok_before, started = _kill_midway(proc, root, run_id, ids, log)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert 0 < len(ok_before) < N_VIDEOS and started  # killed with finished, partial and untouched videos
    assert _state(root, run_id, ids) == (ok_before, started)  # nothing moved after the kill
    finished = {k: root.read_bytes(k) for v in ok_before for k in root.list(keys.video_prefix(run_id, v))}

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, start_new_session=True)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert f"{N_VIDEOS} ok, 0 failed, {len(ok_before)} already finished" in rerun.stdout
    assert {k: root.read_bytes(k) for k in finished} == finished  # finished videos were not redone
    con = check_run_storage(root, run_id)  # one row per unit, every object referenced, no temporaries
    assert con.sql("SELECT count(*) FROM videos WHERE run_id = $r", params={"r": run_id}).fetchall() == [(N_VIDEOS,)]
    assert con.sql("SELECT count(*) FROM tracks WHERE run_id = $r", params={"r": run_id}).fetchall() == \
        [(2 * N_VIDEOS,)]
    assert con.sql("SELECT status FROM runs WHERE run_id = $r", params={"r": run_id}).fetchall() == [("completed",)]
