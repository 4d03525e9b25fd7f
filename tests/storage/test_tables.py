"""Parquet tables: schema checks, idempotent partition writes, versions, compaction."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from storage import keys, query, tables
from storage.root import Root


def _rows(table: pa.Table, *columns: str) -> list[tuple]:
    return sorted(tuple(row[c] for c in columns) for row in table.to_pylist())


# --- schemas and validation (no storage) ---------------------------------------------------


def test_every_table_has_an_explicit_schema() -> None:
    assert tables.TABLES == ("runs", "videos", "tracks", "mixes", "metrics", "captions", "evaluations", "run_metrics")
    assert tables.schema("tracks").field("version").type == pa.int32()
    assert tables.schema("mixes").field("track_ids").type == pa.list_(pa.string())
    assert tables.schema("metrics").field("track_id").nullable
    assert not tables.schema("metrics").field("value").nullable
    with pytest.raises(KeyError, match="unknown table 'trakcs'; the tables are runs, videos"):
        tables.schema("trakcs")


def test_to_arrow_fills_run_id_and_created_at(track_row) -> None:
    before = dt.datetime.now(dt.UTC)
    data = tables.to_arrow("tracks", "run-1", [track_row(), track_row(track_id="t1", run_id=None)])
    assert data.schema == tables.schema("tracks")
    assert data["run_id"].to_pylist() == ["run-1", "run-1"]
    created = data["created_at"].to_pylist()
    assert all(c.tzinfo is not None and before <= c <= dt.datetime.now(dt.UTC) for c in created)
    assert data["alpha"].to_pylist() == [0.25, 0.25]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"colour": "red"}, r"unknown columns \['colour'\]"),
        ({"caption": None}, "tracks.caption is required"),
        ({"method": "cfg"}, "tracks.method must be one of"),
        ({"run_id": "other-run"}, "rows of runs \\['other-run'\\] cannot be written to run 'run-1'"),
        ({"version": 0}, "version must be >= 1"),
        ({"version": 2, "supersedes": 2}, "supersedes must name an earlier version"),
        ({"seed": "seven"}, "seven"),
    ],
)
def test_bad_rows_are_refused_with_a_clear_message(track_row, overrides: dict, message: str) -> None:
    with pytest.raises((ValueError, pa.ArrowException), match=message):
        tables.to_arrow("tracks", "run-1", [track_row(**overrides)])


def test_a_missing_required_column_is_named() -> None:
    with pytest.raises(ValueError, match="required column 'video_uri' is missing"):
        tables.to_arrow("videos", "r", pa.table({"video_id": ["v"], "version": [1], "status": ["ok"]}))


def test_rows_of_other_runs_are_named_three_at_most(track_row) -> None:
    rows = [track_row(run_id=f"other-{i}") for i in range(4)]
    with pytest.raises(ValueError, match=r"rows of runs \['other-0', 'other-1', 'other-2'\] cannot be written to run 'run-1'$"):
        tables.to_arrow("tracks", "run-1", rows)


def test_created_at_is_utc_now_whatever_the_local_time_zone(track_row, monkeypatch) -> None:
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")  # UTC+9: a naive local "now" would be nine hours off
    time.tzset()
    try:
        before = dt.datetime.now(dt.UTC)
        created = tables.to_arrow("tracks", "run-1", [track_row()])["created_at"].to_pylist()[0]
        after = dt.datetime.now(dt.UTC)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert before <= created <= after


def test_a_written_part_file_is_zstd_compressed(root: Root, track_row) -> None:
    import pyarrow.parquet as pq

    key = tables.write_rows(root, "tracks", "run-1", [track_row()], unit="v1@v1")
    meta = pq.ParquetFile(pa.BufferReader(root.read_bytes(key))).metadata
    assert {meta.row_group(0).column(i).compression for i in range(meta.num_columns)} == {"ZSTD"}


def test_failed_videos_need_no_probe_columns() -> None:
    row = {"video_id": "v", "version": 1, "video_uri": "x", "status": "failed", "error": "bad"}
    data = tables.to_arrow("videos", "r", [row])
    assert data["width"].to_pylist() == [None] and data["error"].to_pylist() == ["bad"]


# --- writes on every back end -------------------------------------------------------------


def test_write_and_read_round_trip(root: Root, track_row) -> None:
    key = tables.write_rows(root, "tracks", "run-1", [track_row(), track_row(track_id="t1", position=1)], unit="v1@v1")
    assert key == keys.part_key("tracks", "run-1", "v1@v1") and root.exists(key)
    data = tables.read_table(root, "tracks")
    assert data.schema == tables.schema("tracks")
    assert _rows(data, "run_id", "track_id", "position", "caption") == [
        ("run-1", "t0", 0, "dog barking"), ("run-1", "t1", 1, "dog barking")]


def test_rewriting_a_unit_replaces_its_rows(root: Root, track_row) -> None:
    tables.write_rows(root, "tracks", "run-1", [track_row(track_id=t) for t in ("t0", "t1", "t2")], unit="v1@v1")
    tables.write_rows(root, "tracks", "run-1", [track_row(video_id="v2")], unit="v2@v1")
    # The rerun of v1 produces two tracks with new seeds: its three rows are replaced.
    tables.write_rows(root, "tracks", "run-1", [track_row(track_id=t, seed=99) for t in ("t0", "t1")], unit="v1@v1")
    data = tables.read_table(root, "tracks", "run-1")
    assert _rows(data, "video_id", "track_id", "seed") == [("v1", "t0", 99), ("v1", "t1", 99), ("v2", "t0", 7)]
    assert len(tables.table_files(root, "tracks").parts) == 2
    tables.write_rows(root, "tracks", "run-1", [], unit="v1@v1")  # a rerun with no output empties the unit
    assert _rows(tables.read_table(root, "tracks"), "video_id") == [("v2",)]


def test_runs_never_touch_each_others_files(root: Root, track_row) -> None:
    tables.write_rows(root, "tracks", "run-a", [track_row()], unit="v1@v1")
    before = {key: root.read_bytes(key) for key in root.list()}
    tables.write_rows(root, "tracks", "run-b", [track_row()], unit="v1@v1")
    tables.compact(root, "tracks", "run-b")
    assert {key: root.read_bytes(key) for key in before} == before
    assert _rows(tables.read_table(root, "tracks", "run-a"), "run_id") == [("run-a",)]
    assert _rows(tables.read_table(root, "tracks"), "run_id") == [("run-a",), ("run-b",)]


def test_edits_add_versions_and_keep_the_old_rows(root: Root, track_row) -> None:
    tables.write_rows(root, "tracks", "r", [track_row(track_id="t0"), track_row(track_id="t1")], unit="v1@v1")
    tables.write_rows(root, "tracks", "r", [track_row(track_id="t1", version=2, supersedes=1, seed=8)], unit="v1@v2")
    assert _rows(tables.read_table(root, "tracks"), "track_id", "version", "seed") == [
        ("t0", 1, 7), ("t1", 1, 7), ("t1", 2, 8)]


# --- compaction ---------------------------------------------------------------------------


def _write_three_units(root: Root, track_row) -> list[tuple]:
    for video in ("v1", "v2", "v3"):
        tables.write_rows(root, "tracks", "r", [track_row(video, t) for t in ("t0", "t1")], unit=f"{video}@v1")
    return _rows(tables.read_table(root, "tracks"), "video_id", "track_id", "version")


def test_compaction_keeps_the_rows_and_leaves_one_file(root: Root, track_row) -> None:
    expected = _write_three_units(root, track_row)
    assert len(expected) == 6
    assert tables.compact(root, "tracks", "r") == keys.compacted_key("tracks", "r")
    files = tables.table_files(root, "tracks", "r")
    assert (files.parts, files.compacted) == ((), (keys.compacted_key("tracks", "r"),))
    assert _rows(tables.read_table(root, "tracks"), "video_id", "track_id", "version") == expected
    assert tables.compact(root, "tracks", "r") is None  # nothing left to merge


def test_units_rewritten_or_added_after_compaction(root: Root, track_row) -> None:
    _write_three_units(root, track_row)
    tables.compact(root, "tracks", "r")
    tables.write_rows(root, "tracks", "r", [track_row("v2", "t9")], unit="v2@v1")  # rerun of v2: one track now
    tables.write_rows(root, "tracks", "r", [track_row("v4", "t0")], unit="v4@v1")
    expected = [("v1", "t0"), ("v1", "t1"), ("v2", "t9"), ("v3", "t0"), ("v3", "t1"), ("v4", "t0")]
    assert _rows(tables.read_table(root, "tracks"), "video_id", "track_id") == expected
    assert _rows(query.connect(root).sql("FROM tracks").to_arrow_table(), "video_id", "track_id") == expected
    tables.compact(root, "tracks", "r")
    assert len(root.list("tables")) == 1
    assert _rows(tables.read_table(root, "tracks"), "video_id", "track_id") == expected


def test_readers_see_every_row_once_at_every_step_of_compaction(root: Root, track_row, monkeypatch) -> None:
    """Stop compaction before each deletion of a merged part file and read the table then."""
    expected = _write_three_units(root, track_row)
    tables.write_rows(root, "tracks", "r", [track_row("v2", "t5")], unit="v2@v1")  # v2 rewritten once
    expected = [row for row in expected if row[0] != "v2"] + [("v2", "t5", 1)]
    states = []
    real_delete = Root.delete

    def observing_delete(self: Root, key: str) -> None:
        files = tables.table_files(self, "tracks")
        duck = query.connect(self).sql("SELECT video_id, track_id, version FROM tracks").fetchall()
        by_arrow = _rows(tables.read_table(self, "tracks"), "video_id", "track_id", "version")
        states.append((len(files.parts), by_arrow, sorted(duck)))
        real_delete(self, key)

    monkeypatch.setattr(Root, "delete", observing_delete)
    tables.compact(root, "tracks", "r")
    assert [parts for parts, _, _ in states] == [3, 2, 1]  # compacted file written, parts still there
    for _, by_arrow, by_duckdb in states:
        assert by_arrow == sorted(expected)
        assert by_duckdb == sorted(expected)


# --- one video's rows, and files written before a column existed --------------------------


def test_read_video_reads_only_that_videos_part_files(root: Root, track_row, video_row, monkeypatch) -> None:
    for video in ("v1", "v2", "v3"):
        tables.write_rows(root, "videos", "r", [video_row(video)], unit=tables.video_unit(video, 1))
        tables.write_rows(root, "tracks", "r", [track_row(video, t) for t in ("t0", "t1")],
                          unit=tables.video_unit(video, 1))
    for table in ("videos", "tracks"):
        tables.compact(root, table, "r")
    # after compaction: v2 edited twice (v2: a regenerated track; v3: no track rows), then an attempt
    # at v4 cut short before its videos row; v3's unit in tracks has no file at all
    tables.write_rows(root, "tracks", "r", [track_row("v2", "t1", 2, supersedes=1)], unit="v2@v2")
    tables.write_rows(root, "tracks", "r", [track_row("v2", "t2", 1)], unit="v2@v4")
    for version in (2, 3):
        tables.write_rows(root, "videos", "r", [video_row("v2", version)], unit=tables.video_unit("v2", version))
    tables.write_rows(root, "tracks", "r", [track_row("v3", "t9")], unit="v3@v2")  # uncommitted v2 of v3
    read = []
    real = Root.read_bytes
    monkeypatch.setattr(Root, "read_bytes", lambda self, key: read.append(key) or real(self, key))
    for table, columns in (("videos", ("video_id", "version")), ("tracks", ("video_id", "track_id", "version"))):
        every = tables.read_table(root, table, "r")
        for video in ("v1", "v2", "v3", "v9"):
            read.clear()
            got = tables.read_video(root, table, "r", video)
            assert got.schema == tables.schema(table)
            assert _rows(got, *columns) == [r for r in _rows(every, *columns) if r[0] == video]
            own = {keys.part_key(t, "r", tables.video_unit(video, n)) for t in ("videos", "tracks") for n in range(9)}
            assert set(read) <= own  # whole files read: only its own parts (the compacted file is read by range)
    assert _rows(tables.read_video(root, "tracks", "r", "v2"), "track_id", "version") == [
        ("t0", 1), ("t1", 1), ("t1", 2), ("t2", 1)]
    assert _rows(tables.read_video(root, "tracks", "r", "v3"), "track_id") == [("t0",), ("t1",), ("t9",)]


def test_files_written_before_a_column_existed_read_as_null(root: Root, track_row) -> None:
    old_schema = tables.schema("tracks").remove(tables.schema("tracks").get_field_index("gain_db"))
    old = tables.to_arrow("tracks", "r", [track_row("v1")]).select(old_schema.names)
    root.put_atomic(keys.part_key("tracks", "r", "v1@v1"), tables._parquet_bytes(old))
    assert tables.read_table(root, "tracks")["gain_db"].to_pylist() == [None]
    assert query.connect(root).sql("SELECT gain_db FROM tracks").fetchall() == [(None,)]  # no file has it
    tables.write_rows(root, "tracks", "r", [track_row("v2", gain_db=3.0)], unit="v2@v1")
    assert _rows(tables.read_table(root, "tracks"), "video_id", "gain_db") == [("v1", None), ("v2", 3.0)]
    con = query.connect(root)
    assert con.sql("SELECT video_id, gain_db FROM tracks ORDER BY 1").fetchall() == [("v1", None), ("v2", 3.0)]
    tables.compact(root, "tracks", "r")
    assert _rows(tables.read_table(root, "tracks"), "video_id", "gain_db") == [("v1", None), ("v2", 3.0)]


def test_evaluation_rows_are_strict() -> None:
    row = {"scope": "composite", "metric": "fd", "model": "demo", "method": "nag", "steps": 25,
           "caption_order": "descending", "source_run_id": "ev-nag-b1.5-descending", "n": 4, "value": 1.2}
    assert tables.to_arrow("evaluations", "ev", [row]).num_rows == 1
    with pytest.raises(ValueError, match="evaluations.scope must be one of"):
        tables.to_arrow("evaluations", "ev", [{**row, "scope": "mixes"}])
    with pytest.raises(ValueError, match="unknown columns"):
        tables.to_arrow("evaluations", "ev", [{**row, "order": "descending"}])
    with pytest.raises(ValueError, match="evaluations.value is required"):
        tables.to_arrow("evaluations", "ev", [{**row, "value": None}])


def test_run_metric_rows_are_strict() -> None:
    row = {"scope": "mixes", "metric": "kl", "model": "panns-cnn14-16k", "method": "nag", "n": 2, "value": 0.5,
           "reference": "source_audio", "video_ids": ["a", "b"], "video_versions": [1, 2], "per_video": [0.4, None],
           "seconds": 8.0}
    assert tables.to_arrow("run_metrics", "r", [row])["per_video"].to_pylist() == [[0.4, None]]
    for column, bad in (("scope", "composite"), ("metric", "clap"), ("method", "cfg")):
        with pytest.raises(ValueError, match=f"run_metrics.{column} must be one of"):
            tables.to_arrow("run_metrics", "r", [{**row, column: bad}])
    with pytest.raises(ValueError, match="run_metrics.video_versions is required"):
        tables.to_arrow("run_metrics", "r", [{**row, "video_versions": None}])


def test_read_video_reads_one_run_and_a_rewritten_unit_once(root: Root, track_row, video_row) -> None:
    for run in ("r1", "r2"):  # the same video id in two runs, both compacted
        tables.write_rows(root, "videos", run, [video_row("v")], unit=tables.video_unit("v", 1))
        tables.write_rows(root, "tracks", run, [track_row("v", "t0", seed=int(run[1]))], unit=tables.video_unit("v", 1))
        for table in ("videos", "tracks"):
            tables.compact(root, table, run)
    assert _rows(tables.read_video(root, "tracks", "r1", "v"), "track_id", "seed") == [("t0", 1)]
    # unit v@v1 rewritten after compaction: its new part shadows the compacted copy
    tables.write_rows(root, "tracks", "r1", [track_row("v", "t0", seed=5)], unit=tables.video_unit("v", 1))
    assert _rows(tables.read_video(root, "tracks", "r1", "v"), "track_id", "seed") == [("t0", 5)]
    with pytest.raises(ValueError, match="^runs has one row per run; read it with read_table$"):
        tables.read_video(root, "runs", "r1", "v")


def test_compaction_sorts_by_video_in_row_groups_a_reader_can_skip(root: Root) -> None:
    import pyarrow.parquet as pq

    n = 2 * tables.COMPACTED_ROW_GROUP + 1
    for unit, videos in (("a", ["v2"] * (n // 2)), ("b", ["v1"] * (n - n // 2))):  # parts (listed by name) in reverse video order
        tables.write_rows(root, "metrics", "r", pa.table({
            "run_id": ["r"] * len(videos), "video_id": videos, "track_id": [None] * len(videos),
            "version": pa.array([1] * len(videos), pa.int32()), "metric": ["lufs"] * len(videos),
            "value": [-20.0] * len(videos), "model": [None] * len(videos),
            "created_at": pa.array([dt.datetime(2026, 1, 1, tzinfo=dt.UTC)] * len(videos), tables.TIME)}),
            unit=unit)
    key = tables.compact(root, "metrics", "r")
    meta = pq.ParquetFile(pa.BufferReader(root.read_bytes(key))).metadata
    assert meta.num_rows == n and meta.num_row_groups == 3
    assert pq.read_table(pa.BufferReader(root.read_bytes(key)))["video_id"].to_pylist() == (
        ["v1"] * (n - n // 2) + ["v2"] * (n // 2))  # the compacted file itself is sorted, not just the reader's view
    assert {meta.row_group(0).column(i).compression for i in range(meta.num_columns)} == {"ZSTD"}
    assert tables.read_table(root, "metrics", "r")["video_id"].to_pylist() == ["v1"] * (n - n // 2) + ["v2"] * (n // 2)
    tables.write_rows(root, "runs", "r", [{"status": "completed", "model_id": "m", "params_json": "{}"}], unit="r")
    assert tables.compact(root, "runs", "r") == keys.compacted_key("runs", "r")  # a table without video_id
    assert tables.read_table(root, "runs", "r").num_rows == 1


def test_a_value_of_the_wrong_type_is_refused_not_converted(track_row) -> None:
    """Rows are converted with the table's types: the string "7" for the integer seed is an error, not 7."""
    with pytest.raises((TypeError, ValueError)):
        tables.to_arrow("tracks", "run-1", [track_row(seed="7")])
