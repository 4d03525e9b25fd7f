"""Storage roots for the suite: every ``root`` test runs on local files, memory:// and S3.

The S3 cases need the Ceph RGW of scripts/start-s3.sh: they are skipped unless
FOLEY_S3_ENDPOINT_URL is set (with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). Each session
gets its own bucket and each test its own prefix; both are removed afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from storage.root import Root, open_root

S3_SKIP = pytest.mark.skipif(
    not os.environ.get("FOLEY_S3_ENDPOINT_URL"),
    reason="FOLEY_S3_ENDPOINT_URL is unset: run scripts/start-s3.sh, then "
    "`set -a; . /tmp/foley-ceph/s3.env; set +a` to test against S3",
)
ROOT_KINDS = [
    pytest.param("file", id="file"),
    pytest.param("memory", id="memory"),
    pytest.param("s3", id="s3", marks=[pytest.mark.s3, S3_SKIP]),
]


@pytest.fixture(scope="session")
def s3_server() -> None:
    """Skip unless the test S3 server is configured (for tests that only run on S3)."""
    if not os.environ.get("FOLEY_S3_ENDPOINT_URL"):
        pytest.skip(S3_SKIP.kwargs["reason"])


@pytest.fixture(scope="session")
def s3_bucket() -> Iterator[str]:
    """A fresh bucket on the test S3 server, deleted with its content at the end."""
    bucket = f"foley-test-{uuid.uuid4().hex[:12]}"
    root = open_root(f"s3://{bucket}")
    root.ensure_exists()
    yield bucket
    root.fs.rm(bucket, recursive=True)


def _fresh_root(kind: str, request: pytest.FixtureRequest, tmp_path) -> Root:
    name = f"t-{uuid.uuid4().hex[:12]}"
    if kind == "file":
        return open_root(str(tmp_path / "store"))
    if kind == "memory":
        return open_root(f"memory://{name}")
    return open_root(f"s3://{request.getfixturevalue('s3_bucket')}/{name}")


@pytest.fixture(params=ROOT_KINDS)
def root(request: pytest.FixtureRequest, tmp_path) -> Iterator[Root]:
    """An empty storage root of each kind; its content is deleted after the test."""
    store = _fresh_root(request.param, request, tmp_path)
    store.ensure_exists()
    yield store
    if store.protocol != "file" and store.fs.exists(store.base):
        store.fs.rm(store.base, recursive=True)


def _track_row(video_id: str = "v1", track_id: str = "t0", version: int = 1, **overrides) -> dict:
    row = dict(
        video_id=video_id, track_id=track_id, version=version, supersedes=None, position=0,
        caption="dog barking", seed=7, method="nag", alpha=0.25, beta=2.0, steps=25,
        uri=f"s3://b/{video_id}/{track_id}/v{version}.flac", sha256="0" * 64, duration_s=8.0,
        sample_rate=44_100,
    )
    row.update(overrides)
    return row


def _video_row(video_id: str = "v1", version: int = 1, **overrides) -> dict:
    row = dict(video_id=video_id, version=version, video_uri=f"s3://catalog/{video_id}.mp4", status="ok",
               duration_s=8.0, fps=25.0, width=640, height=360, has_audio=False, n_captions=2)
    row.update(overrides)
    return row


@pytest.fixture
def track_row():
    """Factory of valid ``tracks`` rows: ``track_row(video_id, track_id, version, **overrides)``."""
    return _track_row


@pytest.fixture
def video_row():
    """Factory of valid ``videos`` rows: ``video_row(video_id, version, **overrides)``."""
    return _video_row
