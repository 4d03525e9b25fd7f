"""Rows last: a version of a video is committed by writing its ``tracks``, ``mixes``, ``metrics`` and
``captions`` rows and then its ``videos`` row.

Each version of a video writes each table in one unit (``<video_id>@v<version>``), so writing it again
replaces those rows instead of adding to them: reruns never duplicate rows. Rows must match their
table's schema exactly (:func:`storage.tables.to_arrow` refuses unknown columns); the only fields
dropped are the measurements the synthesis hands to scoring beside each track row (:data:`MEASURED`),
which are stored as ``metrics`` rows instead.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from storage import tables
from storage.cleanup import clear_unit, reset_video_state, unit
from storage.manifest import ManifestEntry
from storage.root import Root

MEASURED = ("generation_s", "limiter_gain_db")  # on track rows from the synthesis; stored as metrics


def track_columns(row: dict) -> dict:
    """A track row as the ``tracks`` table stores it: without the :data:`MEASURED` fields."""
    return {k: v for k, v in row.items() if k not in MEASURED}


def video_row(run_id: str, entry: ManifestEntry, version: int, status: str, *, video_fields: dict | None = None,
              n_captions: int | None = None, error: str | None = None) -> dict:
    """A ``videos`` row from a manifest entry and (when known) the prepared video's columns
    (``pipeline.handoffs.PreparedVideo.row_fields``)."""
    video = video_fields or {}
    return {"run_id": run_id, "video_id": entry.video_id, "version": version,
            "video_uri": entry.video_uri or "", "status": status, "error": error,
            "duration_s": video.get("duration_s"), "fps": video.get("fps"), "width": video.get("width"),
            "height": video.get("height"), "has_audio": video.get("has_audio"), "n_captions": n_captions}


def captions_row(run_id: str, video_id: str, version: int, *, captions: Sequence[str] | None,
                 trace: Mapping | None = None, error: str | None = None) -> dict:
    """A ``captions`` row: the captions a version was resolved with (None when none came out) and, for
    proposed ones, the captioner's trace (``captioning.two_step.CaptionTrace.to_dict``: backend, model,
    prompt, raw and structured answers); ``source`` is the trace's backend, ``manifest`` without one."""
    trace = trace or {}
    return {"run_id": run_id, "video_id": video_id, "version": version, "source": trace.get("backend") or "manifest",
            "model": trace.get("model"), "captions": list(captions) if captions is not None else None,
            "prompt": trace.get("prompt"), "raw_answer": trace.get("raw_answer"),
            "structured_answer": trace.get("structured_answer"), "dropped": trace.get("dropped"),
            "attempts": trace.get("attempts"), "error": error}


def commit_version(root: Root, run_id: str, video_id: str, version: int, video: dict, track_rows: list[dict],
                   mix_row: dict, metric_rows: list[dict], captions: dict | None = None) -> None:
    """Write one version's rows, ``videos`` last (tables without rows get their unit emptied; ``captions``
    is the version's :func:`captions_row`, None for an edit, which resolves no captions list)."""
    u = unit(video_id, version)
    for table, rows in (("tracks", [track_columns(r) for r in track_rows]), ("mixes", [mix_row]),
                        ("metrics", metric_rows), ("captions", [captions] if captions else [])):
        if rows:
            tables.write_rows(root, table, run_id, rows, unit=u)
        else:
            clear_unit(root, table, run_id, u)
    tables.write_rows(root, "videos", run_id, [video], unit=u)


def record_failure(root: Root, run_id: str, entry: ManifestEntry, error: str, *, n_captions: int | None = None,
                   video_fields: dict | None = None, captions: dict | None = None) -> None:
    """Version 1 of a video failed: remove what its attempt stored and write its ``failed`` videos row (after
    its ``captions`` row, when the captions stage delivered something to trace)."""
    reset_video_state(root, run_id, entry.video_id, committed=0)
    if captions:
        tables.write_rows(root, "captions", run_id, [captions], unit=unit(entry.video_id, 1))
    row = video_row(run_id, entry, 1, "failed", error=error, n_captions=n_captions, video_fields=video_fields)
    tables.write_rows(root, "videos", run_id, [row], unit=unit(entry.video_id, 1))
