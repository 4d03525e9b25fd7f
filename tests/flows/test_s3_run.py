"""A catalog run and an edit with manifest, videos and outputs all on a real S3 server (Ceph RGW).

Skipped unless FOLEY_S3_ENDPOINT_URL (with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) is set, e.g. by
`scripts/start-s3.sh` then `set -a; . /tmp/foley-ceph/s3.env; set +a`.
"""
from __future__ import annotations

import json
import os
import uuid

import pytest

from flows.catalog import catalog_run
from flows.edit import edit_video
from storage.root import open_root

pytestmark = [pytest.mark.s3, pytest.mark.skipif(not os.environ.get("FOLEY_S3_ENDPOINT_URL"),
                                                 reason="FOLEY_S3_ENDPOINT_URL is unset (scripts/start-s3.sh)")]


def test_a_run_entirely_on_s3(h, check_run_storage):
    bucket = f"foley-flows-{uuid.uuid4().hex[:10]}"
    root = open_root(f"s3://{bucket}/out")
    root.ensure_exists()
    try:
        catalog = open_root(f"s3://{bucket}/catalog")
        for name in ("sf-10109180.mp4", "sf-10161943.mp4"):
            catalog.put_atomic(f"videos/{name}", (h.DEMO_DIR / name).read_bytes())
        rows = [{"id": "a", "video_uri": "videos/sf-10109180.mp4", "captions": ["The fan hums.", "A lamp beeps."]},
                {"id": "b", "video_uri": "videos/sf-10161943.mp4", "captions": "Wind blows."},
                {"id": "c", "video_uri": "videos/missing.mp4", "captions": ["x"]}]
        catalog.put_atomic("manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
        result = catalog_run(catalog.uri("manifest.jsonl"), storage_url=root.url, run_id="s3-run", model=h.MODEL,
                             duration=h.DURATION, steps=h.STEPS)
        assert (result["n_ok"], result["n_failed"]) == (2, 1)
        edit_video("s3-run", "a", "remove", track_id="t0", storage_url=root.url)
        con = check_run_storage(root, "s3-run")
        assert con.sql("SELECT video_id, error LIKE 'prepare: MediaUnreadable%' FROM videos WHERE status = 'failed'"
                       ).fetchall() == [("c", True)]
        assert con.sql("SELECT track_ids FROM mixes WHERE video_id = 'a' AND active").fetchall() == [(["t1"],)]
    finally:
        root.fs.rm(bucket, recursive=True)
