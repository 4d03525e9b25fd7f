"""A catalog run and an edit with manifest, videos and outputs all on a real S3 server (Ceph RGW); the
videos are decoded straight from S3 with the storage credentials, which no log and no error row shows.

Skipped unless FOLEY_S3_ENDPOINT_URL (with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) is set, e.g. by
`scripts/start-s3.sh` then `set -a; . /tmp/foley-ceph/s3.env; set +a`.
"""
from __future__ import annotations

import json
import logging
import os
import uuid

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler

from flows.catalog import catalog_run
from flows.edit import edit_video
from media.decode import FrameRequest, decode_frames
from storage.root import open_root

pytestmark = [pytest.mark.s3, pytest.mark.skipif(not os.environ.get("FOLEY_S3_ENDPOINT_URL"),
                                                 reason="FOLEY_S3_ENDPOINT_URL is unset (scripts/start-s3.sh)")]


def _run_logs(flow_run_id) -> str:
    APILogHandler().flush()  # logs reach the server in batches: send what is queued
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200)
    assert logs  # the run did log (so the check below has something to look at)
    return "\n".join(log.message for log in logs)


def test_a_run_entirely_on_s3(h, check_run_storage, caplog):
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
        with caplog.at_level(logging.DEBUG):  # botocore and s3fs included
            frames = decode_frames(catalog.uri("videos/sf-10109180.mp4"), [FrameRequest(8, (32, 32))], duration=1.0)
            state = catalog_run(catalog.uri("manifest.jsonl"), storage_url=root.url, run_id="s3-run",
                                model=h.MODEL, duration=h.DURATION, steps=h.STEPS, return_state=True)
        assert frames.frame_sets[0].frames.shape == (8, 32, 32, 3)  # read with FOLEY_S3_ENDPOINT_URL and the keys
        result = state.result()
        assert (result["n_ok"], result["n_failed"]) == (2, 1)
        secret, key_id = os.environ["AWS_SECRET_ACCESS_KEY"], os.environ["AWS_ACCESS_KEY_ID"]
        assert secret not in caplog.text  # at any level, in any library's records
        assert key_id not in "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
        run_logs = _run_logs(state.state_details.flow_run_id)  # what the Prefect server stored
        assert secret not in run_logs and key_id not in run_logs
        edit_video("s3-run", "a", "remove", track_id="t0", storage_url=root.url)
        con = check_run_storage(root, "s3-run")
        assert con.sql("SELECT video_id, error LIKE 'prepare: MediaUnreadable%' FROM videos WHERE status = 'failed'"
                       ).fetchall() == [("c", True)]
        assert not con.sql("SELECT error FROM videos WHERE contains(error, $s)", params={"s": secret}).fetchall()
        assert con.sql("SELECT track_ids FROM mixes WHERE video_id = 'a' AND active").fetchall() == [(["t1"],)]
        _check_the_report_on_s3(root, result)
    finally:
        root.fs.rm(bucket, recursive=True)


def _check_the_report_on_s3(root, result):
    """The report was written to the bucket; its media links are presigned URLs that the S3 server serves."""
    import re

    import httpx

    from storage import keys

    assert result["report_uri"] == root.uri(keys.report_key("s3-run"))
    page = root.read_bytes(keys.report_key("s3-run")).decode()
    links = re.findall(r'src="(http[^"]+)"', page)
    assert links and all("Signature=" in link for link in links)  # presigned (SigV2 or SigV4 query auth)
    for link in links[:3]:
        response = httpx.get(link.replace("&amp;", "&"), timeout=30)
        assert response.status_code == 200 and len(response.content) > 1000
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in page
