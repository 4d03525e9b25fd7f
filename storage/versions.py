"""Row versions: the one definition of "the latest version", for the SQL views and the Python side.

Every versioned thing (a video, a track, a mix) is named by key columns and gets rows with ``version``
1, 2, ...; its latest version is the row with the highest ``version`` among its rows. A video's
*committed* version is its latest ``ok`` ``videos`` row (0 when it has none). ``tracks`` and ``mixes``
rows also name the version they supersede; the views add ``superseded_by`` and ``active`` from it.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

# Key columns of each versioned thing.
VIDEO_KEY: tuple[str, ...] = ("run_id", "video_id")
VERSIONED: dict[str, tuple[str, ...]] = {
    "tracks": ("run_id", "video_id", "track_id"),
    "mixes": VIDEO_KEY,
}


def latest_sql(key: Sequence[str] = VIDEO_KEY) -> str:
    """A DuckDB ``QUALIFY`` clause keeping the latest version of each ``key`` (no user values in it)."""
    return f"QUALIFY row_number() OVER (PARTITION BY {', '.join(key)} ORDER BY version DESC) = 1"


def latest_rows(rows: Iterable[dict[str, Any]], key: Sequence[str]) -> dict[tuple, dict[str, Any]]:
    """The latest-version row of each ``key`` (the Python twin of :func:`latest_sql`)."""
    out: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        k = tuple(row[c] for c in key)
        if k not in out or row["version"] > out[k]["version"]:
            out[k] = row
    return out


def committed_version(video_rows: Iterable[dict[str, Any]]) -> int:
    """The latest version of a video with an ``ok`` ``videos`` row; 0 when none."""
    return max((int(r["version"]) for r in video_rows if r["status"] == "ok"), default=0)
