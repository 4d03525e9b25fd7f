"""Remove what a killed or failed attempt left behind, so that reruns leave no orphans.

Every object of a video lives under ``storage.keys.video_prefix(run, video)`` at a key that is a
function of (run, video, track, version, format). A version of a video is *committed* when its
``videos`` row with status ``ok`` exists; that row is written last. So, before a video is
(re)processed at version ``n + 1`` (``n`` = its latest committed version, 0 for a new video):

1. the row units of version ``n + 1`` in ``tracks``, ``mixes`` and ``metrics`` (left by an attempt
   killed before its ``videos`` row) are emptied;
2. every object under the video's prefix that no committed row refers to is deleted, including
   the hidden temporary files an interrupted atomic write can leave on local disks and the open
   multipart uploads of one cut off on S3 (``storage.root.Root.delete_prefix``).

After a failure the same reset runs again, so a failed video keeps no partial outputs. The hidden
temporaries of interrupted table writes are swept per run (:func:`sweep_table_temporaries`) when
a run starts or ends. Precondition: one writer (catalog run or edit) per video at a time.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage import keys, tables, versions
from storage.root import Root

ROW_TABLES = ("tracks", "mixes", "metrics", "captions")  # tables written before the videos row of a version


unit = tables.video_unit  # the write unit of one version of one video


def _compacted_parts(root: Root, table: str, run_id: str) -> set[str]:
    """The part keys whose rows the partition's compacted file holds (its ``_part`` column)."""
    key = keys.compacted_key(table, run_id)
    if not root.exists(key):
        return set()
    column = pq.read_table(pa.BufferReader(root.read_bytes(key)), columns=[tables.PART_COLUMN])[tables.PART_COLUMN]
    return set(pc.unique(column).to_pylist())


def clear_unit(root: Root, table: str, run_id: str, unit_name: str) -> bool:
    """Remove one write unit's rows: delete its part file, or, when the compacted file holds a copy of
    them, replace the part with an empty one that shadows that copy. Returns whether anything changed."""
    part = keys.part_key(table, run_id, unit_name)
    if part in _compacted_parts(root, table, run_id):
        tables.write_rows(root, table, run_id, [], unit=unit_name)
        return True
    if root.exists(part):
        root.delete(part)
        return True
    return False


def committed_version(root: Root, run_id: str, video_id: str) -> int:
    """The latest version of ``video_id`` with an ``ok`` videos row (0: none)."""
    videos = tables.read_video(root, "videos", run_id, video_id).select(["version", "status"]).to_pylist()
    return versions.committed_version(videos)


def committed_keys(root: Root, run_id: str, video_id: str) -> set[str]:
    """Keys of every object that committed rows of ``video_id`` refer to (spectrograms derived)."""
    expected: set[str] = set()
    tracks = tables.read_video(root, "tracks", run_id, video_id)
    for row in tracks.select(["track_id", "version", "uri"]).to_pylist():
        expected.add(keys.key_of(root.url, row["uri"]))
        expected.add(keys.spectrogram_key(run_id, video_id, row["version"], row["track_id"]))
    mixes = tables.read_video(root, "mixes", run_id, video_id)
    for row in mixes.select(["version", "uri", "muxed_uri"]).to_pylist():
        expected.add(keys.key_of(root.url, row["uri"]))
        expected.add(keys.spectrogram_key(run_id, video_id, row["version"]))
        if row["muxed_uri"]:
            expected.add(keys.key_of(root.url, row["muxed_uri"]))
    return expected


def reset_video_state(root: Root, run_id: str, video_id: str, committed: int | None = None) -> dict:
    """Steps 1 and 2 of the module docstring. ``committed`` skips reading the videos table when known.

    Returns ``{"committed_version": n, "removed": [paths]}``.
    """
    n = committed_version(root, run_id, video_id) if committed is None else committed
    for table in ROW_TABLES:
        clear_unit(root, table, run_id, unit(video_id, n + 1))
    keep = committed_keys(root, run_id, video_id) if n else set()
    removed = root.delete_prefix(keys.video_prefix(run_id, video_id), keep=keep)
    return {"committed_version": n, "removed": removed}


def sweep_table_temporaries(root: Root, run_id: str) -> list[str]:
    """Delete what interrupted table writes left in this run's partitions (everything but the listed files)."""
    removed = []
    for table in tables.TABLES:
        prefix = keys.partition_prefix(table, run_id)
        removed += root.delete_prefix(prefix, keep=root.list(prefix))
    return removed
