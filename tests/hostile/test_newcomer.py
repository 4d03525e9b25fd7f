"""What tripped a new user (issue 11, item 7): the progress bar's end, one default storage for every
command, deploying without the Dask extra, an ERROR at the end of every deployed run, flow-run names."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows import cli

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture(scope="module")
def clips(h, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clips")
    rows = [(f"clip-{k}", h.write_video(d / f"clip{k}.mp4", 1.0 + 0.2 * k), "A ball bounces. | Wind blows.")
            for k in range(3)]
    manifest = d / "manifest.csv"
    manifest.write_text("id,video_uri,captions\n" + "".join(f"{i},{p},{c}\n" for i, p, c in rows))
    return manifest


def test_the_bar_ends_full_and_every_command_finds_the_demos_storage(clips, h, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["run", str(clips), "--run-id", "newcomer", "--model", h.MODEL, "--steps", "2", "--duration",
            str(h.DURATION)]
    first = runner.invoke(cli.app, args)
    assert first.exit_code == 0, first.output
    assert "3/3" in first.output and (tmp_path / "foley-out" / "tables").is_dir()  # the demo's folder
    again = runner.invoke(cli.app, args)  # resumed: every video already finished, the bar still ends full
    assert again.exit_code == 0 and "3 already finished (of 3)" in again.output and "3/3" in again.output
    report = runner.invoke(cli.app, ["report", "methods"])  # no --storage: the same ./foley-out
    assert report.exit_code == 0 and "(no rows)" not in report.output and "nag" in report.output
    listed = runner.invoke(cli.app, ["query", "SELECT count(*) AS n FROM videos"])
    assert listed.exit_code == 0 and listed.output.split()[-1] == "3"


def test_flow_runs_are_named_by_their_run_id(clips, h, tmp_path):
    from prefect.client.orchestration import get_client

    from flows.catalog import catalog_run
    from flows.edit import edit_video

    storage = f"file://{tmp_path / 'out'}"
    state = catalog_run(str(clips), storage_url=storage, run_id="named-run", model=h.MODEL, steps=2,
                        duration=h.DURATION, return_state=True)
    edited = edit_video("named-run", "clip-0", "remove", track_id="t0", storage_url=storage, return_state=True)
    assert state.is_completed() and edited.is_completed()
    with get_client(sync_client=True) as client:
        names = [client.read_flow_run(s.state_details.flow_run_id).name for s in (state, edited)]
    assert names == ["named-run", "named-run: remove on clip-0"]


def test_deploying_without_the_dask_extra_works_and_running_it_says_what_is_missing(tmp_path):
    script = textwrap.dedent("""
        import sys
        sys.modules["prefect_dask"] = None  # as if `pip install -e .` without [dask]
        from prefect.flows import load_flow_from_entrypoint
        flow = load_flow_from_entrypoint("flows/dask_cluster.py:catalog_run_dask")
        assert flow.name == "catalog-run-dask", flow.name
        assert "manifest_uri" in flow.parameters.properties
        try:
            flow.fn("m.csv")
        except ImportError as exc:
            print("refused:", exc)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "refused:" in done.stdout and "pip install" in done.stdout and "foley-nag[dask]" in done.stdout


def test_a_flow_that_ends_while_it_holds_the_gpu_slot_releases_it_without_an_error(clips, h, tmp_path):
    """On a fast machine the flow ends while its process still holds the slot; released at interpreter exit,
    Prefect needed new threads after Python had begun shutting them down (an ERROR traceback each run)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    script = textwrap.dedent(f"""
        from flows.catalog import catalog_run
        from pipeline import gpu_slot as gpu
        gpu.holder("gpu-atexit-test").linger_s = 600  # the slot is still held when the flow ends
        catalog_run({str(clips)!r}, storage_url={f"file://{tmp_path / 'out'}"!r}, model={h.MODEL!r}, steps=2,
                    duration={h.DURATION}, gpu_slot="gpu-atexit-test")
        print("flow done", flush=True)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_API_URL": PREFECT_API_URL.value(),
           "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "INFO"}  # as a worker's flow run logs (the CLI quiets it)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "flow done" in done.stdout, output[-3000:]
    assert "can't register atexit" not in output and "Traceback" not in output, output[-3000:]
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name("gpu-atexit-test").active_slots == 0
