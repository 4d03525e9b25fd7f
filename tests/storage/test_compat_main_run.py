"""A run written by the pipeline before the architecture refactor (main at cd225a3) still reads:
same schemas, same keys, same views. The fixture is the ``tables/`` folder of a real run (demo model,
2 s, 2 steps: two ok videos, one failed; then ``add`` and ``regenerate`` edits of sf-10109180);
the audio objects are left out, the rows still name them."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from storage import keys, query, tables
from storage.root import open_root

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "run_main"
RUN = "run-fixture"
NEWER_TABLES = ("captions", "evaluations", "run_metrics")  # added after cd225a3 (issue 14; issue 13): the old run has no files of it and reads empty


@pytest.fixture()
def root(tmp_path):
    shutil.copytree(FIXTURE / "tables", tmp_path / "tables")
    return open_root(f"file://{tmp_path}")


def test_every_table_reads_with_the_current_schema(root):
    for table in tables.TABLES:
        data = tables.read_table(root, table, RUN)
        assert data.schema.names == tables.schema(table).names, table
        assert (data.num_rows == 0) if table in NEWER_TABLES else (data.num_rows > 0), table


def test_rows_name_the_keys_the_current_key_builder_makes(root):
    for row in tables.read_table(root, "tracks", RUN).to_pylist():
        key = keys.track_key(RUN, row["video_id"], row["track_id"], row["version"], "flac")
        assert row["uri"].endswith("/" + key)
    for row in tables.read_table(root, "mixes", RUN).to_pylist():
        assert row["uri"].endswith("/" + keys.mix_key(RUN, row["video_id"], row["version"], "flac"))
        assert row["muxed_uri"].endswith("/" + keys.muxed_key(RUN, row["video_id"], row["version"], "mp4"))


def test_views_give_the_latest_versions(root):
    con = query.connect(root)
    videos = con.sql("SELECT video_id, max(version) AS v FROM videos GROUP BY ALL ORDER BY ALL").fetchall()
    assert videos == [("bad", 1), ("sf-10109180", 3), ("sf-10161943", 1)]
    active = con.sql("SELECT track_id, version FROM tracks WHERE active AND video_id = 'sf-10109180' "
                     "ORDER BY ALL").fetchall()
    assert active == [("t0", 1), ("t1", 2), ("t2", 1)]
    mix = con.sql("SELECT version, track_ids, track_versions FROM mixes WHERE active AND video_id = 'sf-10109180'"
                  ).fetchall()
    assert mix == [(3, ["t0", "t1", "t2"], [1, 2, 1])]
    failed = query.failed_videos(con, RUN).to_pylist()
    assert [r["video_id"] for r in failed] == ["bad"] and "prepare: MediaUnreadable" in failed[0]["error"]
    assert con.sql("SELECT status, n_videos, n_failed FROM runs").fetchall() == [("completed", 3, 1)]
