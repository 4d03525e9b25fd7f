"""Rows last: a video's rows are written only after all its objects exist, and its ``videos`` row, which
commits the version, after its ``tracks``, ``mixes``, ``metrics`` and ``captions`` rows (:mod:`storage.commit`).

A failed video gets a ``videos`` row with ``status = 'failed'`` and ``error = "<stage>: <ErrorType>:
<message>"`` (:mod:`pipeline.outcomes`), and whatever its attempt had stored is removed
(:mod:`storage.cleanup`).
"""
from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline.handoffs import Captions, PreparedVideo
from pipeline.outcomes import captions_outcome_row, describe_error, first_failure
from storage.commit import commit_version, record_failure, video_row
from storage.manifest import ManifestEntry
from storage.root import open_root
from tasks.logs import logger
from tasks.retry_policy import IO_RETRY


@task(name="record-video", cache_policy=NO_CACHE, task_run_name="record-{entry.video_id}", **IO_RETRY)
def record_video(storage_url: str, run_id: str, entry: ManifestEntry, reset: Any, video: Any, captions: Any, ordered: Any,
                 tracks: Any, mix: Any, metrics: Any) -> dict:
    """Commit version 1 of a catalog video, or record why it failed (arguments are the stages' outcomes:
    values, exceptions, or None for stages that did not run).

    Returns ``{"video_id", "status", "error"}``.
    """
    root = open_root(storage_url)
    traced = captions_outcome_row(run_id, entry.video_id, 1, captions)  # also when the video failed
    failure = first_failure({"reset": reset, "prepare": video, "captions": captions, "ordering": ordered,
                             "synthesis": tracks, "mixing": mix, "scoring": metrics})
    if failure is not None:
        error = describe_error(*failure)
        record_failure(root, run_id, entry, error,
                       n_captions=len(captions.captions) if isinstance(captions, Captions) else None,
                       video_fields=video.row_fields() if isinstance(video, PreparedVideo) else None,
                       captions=traced)
        logger().warning("video %r failed: %s", entry.video_id, error)
        return {"video_id": entry.video_id, "status": "failed", "error": error}
    row = video_row(run_id, entry, 1, "ok", video_fields=video.row_fields(), n_captions=len(tracks))
    commit_version(root, run_id, entry.video_id, 1, row, tracks, mix, metrics, captions=traced)
    return {"video_id": entry.video_id, "status": "ok", "error": None}


@task(name="record-rejected", cache_policy=NO_CACHE, task_run_name="reject-{entry.video_id}", **IO_RETRY)
def record_rejected(storage_url: str, run_id: str, entry: ManifestEntry) -> dict:
    """The error row of a manifest row rejected before any stage ran (bad id, duplicate, ...)."""
    n = len(entry.captions) if entry.captions is not None else None
    record_failure(open_root(storage_url), run_id, entry, entry.error, n_captions=n)  # "manifest row <n>: ..."
    return {"video_id": entry.video_id, "status": "failed", "error": entry.error}


@task(name="record-edit", cache_policy=NO_CACHE, task_run_name="record-{video_id}-v{version}", **IO_RETRY)
def record_edit(storage_url: str, run_id: str, video_id: str, version: int, video: dict, track_rows: list[dict],
                mix_row: dict, metric_rows: list[dict]) -> dict:
    """Commit version ``version`` of an edited video (new track rows, the new mix, its metrics, the video)."""
    commit_version(open_root(storage_url), run_id, video_id, version, video, track_rows, mix_row, metric_rows)
    return {"video_id": video_id, "version": version, "status": "ok"}
