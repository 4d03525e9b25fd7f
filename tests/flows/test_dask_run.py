"""The catalog run with its tasks on a local Dask cluster of two worker processes (prefect-dask).

The tasks are pickled to the workers (so their arguments must be picklable: URIs, ids and small
parameters), load the model in each worker process, and write the same objects and rows as the
threaded run, failures included.
"""
from __future__ import annotations

import json
import logging

from distributed import Client, LocalCluster
from prefect_dask import DaskTaskRunner

from flows.catalog import catalog_run
from storage.root import open_root


def test_a_catalog_runs_on_a_local_dask_cluster_of_two_workers(tmp_path, h, check_run_storage):
    rows = [{"id": "a", "video_uri": str(h.DEMO_DIR / "sf-10109180.mp4"),
             "captions": ["The fan hums.", "A lamp beeps."]},
            {"id": "b", "video_uri": str(h.DEMO_DIR / "sf-10161943.mp4"), "captions": ["Wind blows."]},
            {"id": "c", "video_uri": str(tmp_path / "missing.mp4"), "captions": ["x"]}]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    storage_url = f"file://{tmp_path / 'out'}"

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        flow = catalog_run.with_options(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
        result = flow(str(manifest), storage_url=storage_url, run_id="dask-run", model=h.MODEL, duration=h.DURATION,
                      steps=h.STEPS)
        loaded = client.run(lambda: len(__import__("pipeline.models", fromlist=["_bundles"])._bundles))

    assert (result["status"], result["n_ok"], result["n_failed"]) == ("completed", 2, 1)
    assert len(loaded) == 2 and sum(loaded.values()) >= 1  # the model ran in the worker processes
    con = check_run_storage(open_root(storage_url), "dask-run")  # no duplicates, no orphans, hashes match
    assert con.sql("SELECT video_id, status, split_part(error, ':', 2) FROM videos ORDER BY 1").fetchall() == [
        ("a", "ok", None), ("b", "ok", None), ("c", "failed", " MediaUnreadable")]
    assert con.sql("SELECT video_id, track_ids, track_versions FROM mixes ORDER BY 1").fetchall() == [
        ("a", ["t0", "t1"], [1, 1]), ("b", ["t0"], [1])]
    assert con.sql("SELECT count(*) FROM tracks WHERE gain_db IS NOT NULL").fetchall() == [(3,)]
