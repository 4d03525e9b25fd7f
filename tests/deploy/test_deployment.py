"""The deployments of prefect.yaml on a real Prefect server, a process work pool and a worker: a run by
call (as the nightly schedule would start it) and a run fired by a new-manifest event.

One module-scoped server; every process talks to it through PREFECT_API_URL, as on a studio's
machines. The runs use the random-weight model and 2-s clips so they stay quick.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEMO_MANIFEST = ROOT / "synthfoley" / "demo_catalog" / "manifest.csv"
FAST = {"model": "random:tiny", "duration": 2.0, "steps": 2}

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.read().strip() == b"true":
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"prefect server at {url} not healthy after {timeout}s")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_UI_ENABLED": "false", "PREFECT_WORKER_QUERY_SECONDS": "2",
           "PREFECT_WORKER_PREFETCH_SECONDS": "2"}
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port),
                             "--no-ui"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(api, proc)
        yield {**env, "PREFECT_API_URL": api}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _prefect(env, *args, timeout=120) -> str:
    out = subprocess.run([str(BIN / "prefect"), *args], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, f"prefect {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _videos(storage: Path) -> list[tuple]:
    con = duckdb.connect()
    rows = con.execute("SELECT video_id, status FROM read_parquet(?, union_by_name = true) ORDER BY video_id",
                       [f"{storage}/tables/videos/**/*.parquet"]).fetchall()
    return rows


def test_deployments_run_on_a_worker_by_schedule_call_and_event(server, tmp_path):
    env = server
    _prefect(env, "work-pool", "create", "foley-process", "--type", "process")
    out = _prefect(env, "--no-prompt", "deploy", "--all")
    assert "nightly-catalog" in out and "on-new-manifest" in out and "edit-video" in out
    scheduled = json.loads(subprocess.run(
        [sys.executable, "-c", (
            "import json; from prefect.client.orchestration import get_client\n"
            "with get_client(sync_client=True) as c:\n"
            "    d = c.read_deployment_by_name('catalog-run/nightly-catalog')\n"
            "    print(json.dumps([s.schedule.cron for s in d.schedules]))")],
        env=env, capture_output=True, text=True, check=True).stdout)
    assert scheduled == ["0 2 * * *"]

    worker_log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "foley-process", "--limit", "1"],
                              env=env, cwd=ROOT, stdout=worker_log, stderr=subprocess.STDOUT)
    try:
        storage = tmp_path / "out"
        params = [f"manifest_uri={DEMO_MANIFEST}", f"storage_url=file://{storage}", "run_id=by-call",
                  *(f"{k}={v}" for k, v in FAST.items())]
        args = ["deployment", "run", "catalog-run/nightly-catalog", "--watch", "--watch-timeout", "300"]
        for p in params:
            args += ["--param", p]
        _prefect(env, *args, timeout=360)
        rows = _videos(storage)
        assert ("sf-10109180", "ok") in rows and len(rows) == 4

        # A new manifest lands: the event fires the on-new-manifest deployment.
        event_storage = tmp_path / "event-out"
        payload = {"manifest_uri": str(DEMO_MANIFEST), "storage_url": f"file://{event_storage}", **FAST}
        _prefect(env, "event", "emit", "foley.manifest.created", "--resource-id", "foley.manifest.test",
                 "--payload", json.dumps(payload))
        deadline, done = time.monotonic() + 240, ""
        while time.monotonic() < deadline:
            done = subprocess.run([sys.executable, "-c", (
                "from prefect.client.orchestration import get_client\n"
                "from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName\n"
                "with get_client(sync_client=True) as c:\n"
                "    runs = c.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=['on-new-manifest'])))\n"
                "    print(','.join(r.state.type.value for r in runs))")],
                env=env, capture_output=True, text=True, check=True).stdout.strip()
            if done and all(s in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") for s in done.split(",")):
                break
            time.sleep(2)
        assert done == "COMPLETED", done
        assert len(_videos(event_storage)) == 4
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
        worker_log.close()
