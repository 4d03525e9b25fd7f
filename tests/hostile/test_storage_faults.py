"""A catalog run against the real S3 server (Ceph RGW) through a fault-injecting proxy on 127.0.0.1:
connection resets (before and during a response), stalls past the read timeout, slow reads and 503s, at
whatever request they fall on (the manifest, video reads, stems, mixes, muxed videos, Parquet parts,
listings, deletes). The run completes (retries), or fails the rows it could not finish with a clear error
and a rerun of the run id finishes them; nothing is lost, no row is duplicated, and no object is visible
that no row names or whose content does not match its hash (issue 11, item 8).

FOLEY_FAULT_RATE, FOLEY_FAULT_MAX and FOLEY_FAULT_SEED change the plan (probability per request, faults
per kind, seed) for longer measurements; run with ``-s`` to see what was injected where."""
from __future__ import annotations

import json
import os
import uuid
from urllib.parse import urlparse

import pytest

from storage.root import open_root

import foley_fault_proxy as faultproxy  # tests/conftest.py SHARED_MODULES

pytestmark = [pytest.mark.s3, pytest.mark.slow, pytest.mark.usefixtures("prefect_api"),
              pytest.mark.skipif(not os.environ.get("FOLEY_S3_ENDPOINT_URL"),
                                 reason="FOLEY_S3_ENDPOINT_URL is unset (scripts/start-s3.sh)")]


def test_a_catalog_run_survives_storage_faults(h, tmp_path, monkeypatch, check_run_storage, capsys):
    from flows.catalog import catalog_run

    bucket = f"foley-faults-{uuid.uuid4().hex[:10]}"
    direct = open_root(f"s3://{bucket}")
    direct.ensure_exists()
    try:
        videos = {"a": h.write_video(tmp_path / "a.mp4", 1.2), "b": h.write_video(tmp_path / "b.mp4", 3.0),
                  "c": h.write_video(tmp_path / "c.mp4", 1.5)}
        for name, path in videos.items():
            direct.put_atomic(f"catalog/{name}.mp4", path.read_bytes())
        rows = [{"id": n, "video_uri": f"{n}.mp4", "captions": ["A ball bounces.", "Wind blows."]} for n in videos]
        direct.put_atomic("catalog/manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())

        server = urlparse(os.environ["FOLEY_S3_ENDPOINT_URL"])
        plan = faultproxy.Plan(rate=float(os.environ.get("FOLEY_FAULT_RATE", "0.08")),
                               max_faults=int(os.environ.get("FOLEY_FAULT_MAX", "4")),
                               seed=int(os.environ.get("FOLEY_FAULT_SEED", "11")), stall_s=20.0)
        settings = {"model": h.MODEL, "duration": h.DURATION, "steps": 2}
        with faultproxy.FaultProxy((server.hostname, server.port), plan, lifetime_s=900) as proxy:
            monkeypatch.setenv("FOLEY_S3_ENDPOINT_URL", proxy.url)
            monkeypatch.setenv("FOLEY_S3_READ_TIMEOUT", "1.5")  # a stall is noticed in 1.5 s
            monkeypatch.setenv("FOLEY_S3_CONNECT_TIMEOUT", "2")
            monkeypatch.setenv("FOLEY_S3_MAX_ATTEMPTS", "6")
            state = catalog_run(f"s3://{bucket}/catalog/manifest.jsonl", storage_url=f"s3://{bucket}/out",
                                run_id="faulty", return_state=True, **settings)
            first = state.result(raise_on_failure=False)
            requests = proxy.requests
        monkeypatch.undo()  # straight to the server again
        faults = proxy.faults
        root = open_root(f"s3://{bucket}/out")
        con = check_run_storage(root, "faulty")  # no duplicates, orphans, half-written objects, temporaries
        statuses = dict(con.sql("SELECT video_id, status FROM videos").fetchall()) if isinstance(first, dict) else {}
        failed_errors = con.sql("SELECT error FROM videos WHERE status = 'failed'").fetchall()
        assert all(e and ":" in e for (e,) in failed_errors)  # a stage and a reason, per row
        if not isinstance(first, dict) or first["n_failed"]:  # what the retries could not save, a rerun finishes
            again = catalog_run(f"s3://{bucket}/catalog/manifest.jsonl", storage_url=f"s3://{bucket}/out",
                                run_id="faulty", **settings)
            assert again["n_failed"] == 0
            con = check_run_storage(root, "faulty")
        latest = con.sql("SELECT video_id, status FROM videos QUALIFY row_number() OVER "
                         "(PARTITION BY video_id ORDER BY version DESC) = 1 ORDER BY video_id").fetchall()
        assert latest == [("a", "ok"), ("b", "ok"), ("c", "ok")]
        assert con.sql("SELECT count(*) FROM tracks WHERE active").fetchall() == [(6,)]
        counts = {k: sum(f.kind == k for f in faults) for k in faultproxy.KINDS}
        assert sum(counts.values()) >= 5 and sum(1 for c in counts.values() if c) >= 4  # several kinds were hit
        stalls = [f.held_s for f in faults if f.kind == "stall"]  # a stalled server costs the read timeout (1.5 s),
        assert stalls and all(s is not None and s < 6 for s in stalls), stalls  # not botocore's default 60 s
        with capsys.disabled():
            print(f"\nfault injection: {requests} requests through the proxy, faults {counts}; first run "
                  f"{'completed' if isinstance(first, dict) else 'failed'} with "
                  f"{statuses if statuses else first!r}; hit: {sorted({f.request.split(' ')[0] for f in faults})}")
            for f in faults:
                held = f" (client gave up after {f.held_s:.1f} s)" if f.held_s is not None else ""
                print(f"  {f.at:6.1f}s {f.kind:9s} {f.request[:100]}{held}")
    finally:
        direct.fs.rm(bucket, recursive=True)
