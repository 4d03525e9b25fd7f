"""Rows last: a video's rows are written only after all its objects exist, and its ``videos`` row,
which commits the version, is written after its ``tracks``, ``mixes`` and ``metrics`` rows.

Each version of a video writes each table in one unit (``<video_id>@v<version>``), so writing it
again replaces those rows instead of adding to them: reruns never duplicate rows. A failed video
gets a ``videos`` row with ``status = 'failed'`` and ``error = "<stage>: <ErrorType>: <message>"``,
and whatever its attempt had stored is removed (:mod:`tasks.cleanup`).
"""
from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from captioning.two_step import CaptionerAnswerError
from storage import tables
from storage.root import Root, open_root
from tasks.cleanup import clear_unit, reset_video_state, unit
from tasks.logs import logger
from tasks.retry_policy import IO_RETRY

STAGES = ("reset", "prepare", "captions", "ordering", "synthesis", "mixing", "scoring")


def first_failure(results: dict[str, Any]) -> tuple[str, BaseException] | None:
    """The first stage (in :data:`STAGES` order) whose result is an exception, or one that never ran.

    ``results`` maps stage names to what each stage delivered (``flows.catalog.outcome``): the value,
    the exception of a failed task, or None for a task that did not run because an upstream task failed.
    """
    missing = None
    for stage in STAGES:
        value = results.get(stage)
        if isinstance(value, BaseException):
            return stage, value
        if value is None and missing is None:
            missing = stage
    if missing is not None:
        return missing, RuntimeError(f"the {missing} stage did not run")
    return None


def describe_error(stage: str, exc: BaseException) -> str:
    """``"<stage>: <ErrorType>: <message>"`` (one line, at most 2000 characters)."""
    text = " ".join(str(exc).split()) or repr(exc)
    return f"{stage}: {type(exc).__name__}: {text}"[:2000]


def _columns(table: str, row: dict[str, Any]) -> dict[str, Any]:
    names = set(tables.schema(table).names)
    return {k: v for k, v in row.items() if k in names}


def video_row(run_id: str, entry: dict, version: int, status: str, *, video: dict | None = None,
              n_captions: int | None = None, error: str | None = None) -> dict:
    """A ``videos`` row from a manifest entry and (when known) the prepared video's description."""
    video = video or {}
    return {"run_id": run_id, "video_id": entry["video_id"], "version": version,
            "video_uri": entry.get("video_uri") or "", "status": status, "error": error,
            "duration_s": video.get("duration_s"), "fps": video.get("fps"), "width": video.get("width"),
            "height": video.get("height"), "has_audio": video.get("has_audio"), "n_captions": n_captions}


def captions_row(run_id: str, video_id: str, version: int, captions: Any) -> dict | None:
    """The ``captions`` row of a video from the captions stage's outcome (its result, or a
    :class:`~captioning.two_step.CaptionerAnswerError` carrying the model's answers); None when there is
    nothing to trace (the stage did not run or failed otherwise)."""
    if isinstance(captions, CaptionerAnswerError):
        trace, kept, error = captions.trace.to_dict(), None, describe_error("captions", captions)
    elif isinstance(captions, dict):
        trace, kept, error = captions.get("trace") or {}, captions["captions"], None
    else:
        return None
    source = trace.get("backend") or "manifest"  # only proposed captions carry a trace
    return {"run_id": run_id, "video_id": video_id, "version": version, "source": source, "model": trace.get("model"),
            "captions": kept, "prompt": trace.get("prompt"), "raw_answer": trace.get("raw_answer"),
            "structured_answer": trace.get("structured_answer"), "dropped": trace.get("dropped"),
            "attempts": trace.get("attempts"), "error": error}


def write_captions_row(root: Root, run_id: str, video_id: str, version: int, captions: Any) -> None:
    row = captions_row(run_id, video_id, version, captions)
    if row is not None:
        tables.write_rows(root, "captions", run_id, [row], unit=unit(video_id, version))


def commit_version(root: Root, run_id: str, video_id: str, version: int, video: dict, track_rows: list[dict],
                   mix_row: dict, metric_rows: list[dict]) -> None:
    """Write one version's rows, ``videos`` last (tables without rows get their unit emptied)."""
    u = unit(video_id, version)
    for table, rows in (("tracks", track_rows), ("mixes", [mix_row]), ("metrics", metric_rows)):
        if rows:
            tables.write_rows(root, table, run_id, [_columns(table, r) for r in rows], unit=u)
        else:
            clear_unit(root, table, run_id, u)
    tables.write_rows(root, "videos", run_id, [_columns("videos", video)], unit=u)


@task(name="record-video", cache_policy=NO_CACHE, task_run_name="record-{entry[video_id]}", **IO_RETRY)
def record_video(storage_url: str, run_id: str, entry: dict, reset: Any, video: Any, captions: Any, ordered: Any,
                 tracks: Any, mix: Any, metrics: Any) -> dict:
    """Commit version 1 of a catalog video, or record why it failed (arguments are the stages' outcomes:
    values, exceptions, or None for stages that did not run).

    Returns ``{"video_id", "status", "error"}``.
    """
    root = open_root(storage_url)
    results = {"reset": reset, "prepare": video, "captions": captions, "ordering": ordered, "synthesis": tracks,
               "mixing": mix, "scoring": metrics}
    failure = first_failure(results)
    if failure is not None:
        error = describe_error(*failure)
        reset_video_state(root, run_id, entry["video_id"], committed=0)
        write_captions_row(root, run_id, entry["video_id"], 1, captions)
        n = len(captions["captions"]) if isinstance(captions, dict) else None
        tables.write_rows(root, "videos", run_id, [video_row(run_id, entry, 1, "failed", error=error, n_captions=n,
                                                             video=video if isinstance(video, dict) else None)],
                          unit=unit(entry["video_id"], 1))
        logger().warning("video %r failed: %s", entry["video_id"], error)
        return {"video_id": entry["video_id"], "status": "failed", "error": error}
    write_captions_row(root, run_id, entry["video_id"], 1, captions)
    commit_version(root, run_id, entry["video_id"], 1,
                   video_row(run_id, entry, 1, "ok", video=video, n_captions=len(tracks)), tracks, mix, metrics)
    return {"video_id": entry["video_id"], "status": "ok", "error": None}


@task(name="record-rejected", cache_policy=NO_CACHE, task_run_name="reject-{entry[video_id]}", **IO_RETRY)
def record_rejected(storage_url: str, run_id: str, entry: dict) -> dict:
    """The error row of a manifest row rejected before any stage ran (bad id, duplicate, ...)."""
    root = open_root(storage_url)
    reset_video_state(root, run_id, entry["video_id"], committed=0)
    error = entry["error"]  # "manifest row <n>: ..."
    n = len(entry["captions"]) if entry.get("captions") is not None else None
    tables.write_rows(root, "videos", run_id, [video_row(run_id, entry, 1, "failed", error=error, n_captions=n)],
                      unit=unit(entry["video_id"], 1))
    return {"video_id": entry["video_id"], "status": "failed", "error": error}


@task(name="record-edit", cache_policy=NO_CACHE, task_run_name="record-{video_id}-v{version}", **IO_RETRY)
def record_edit(storage_url: str, run_id: str, video_id: str, version: int, video: dict, track_rows: list[dict],
                mix_row: dict, metric_rows: list[dict]) -> dict:
    """Commit version ``version`` of an edited video (new track rows, the new mix, its metrics, the video)."""
    commit_version(open_root(storage_url), run_id, video_id, version, video, track_rows, mix_row, metric_rows)
    return {"video_id": video_id, "version": version, "status": "ok"}
