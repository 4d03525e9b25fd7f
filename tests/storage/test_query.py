"""DuckDB views over the tables, the read-only query function and the canned reports."""

from __future__ import annotations

import duckdb
import pytest

from storage import query, tables
from storage.root import Root, open_root


def test_views_over_empty_tables_have_the_schema(root: Root) -> None:
    con = query.connect(root)
    for table in tables.TABLES:
        names = [row[0] for row in con.sql(f"DESCRIBE {table}").fetchall()]
        derived = ["superseded_by", "active"] if table in query.VERSIONED else []
        assert names == tables.schema(table).names + derived
        assert con.sql(f"SELECT count(*) FROM {table}").fetchall() == [(0,)]
        assert [row[0] for row in con.sql(f"DESCRIBE raw_{table}").fetchall()] == tables.schema(table).names
    types = dict(con.sql("SELECT column_name, column_type FROM (DESCRIBE tracks)").fetchall())
    assert types["version"] == "INTEGER" and types["seed"] == "BIGINT"
    assert types["created_at"] == "TIMESTAMP WITH TIME ZONE"
    for report in query.REPORTS.values():
        assert report(con).num_rows == 0


def test_views_read_parts_and_compacted_files(root: Root, track_row) -> None:
    tables.write_rows(root, "tracks", "r1", [track_row("v1", "t0"), track_row("v1", "t1")], unit="v1@v1")
    tables.compact(root, "tracks", "r1")
    tables.write_rows(root, "tracks", "r1", [track_row("v2", "t0")], unit="v2@v1")
    tables.write_rows(root, "tracks", "r2", [track_row("v1", "t0", seed=3)], unit="v1@v1")
    con = query.connect(root)
    rows = con.sql("SELECT run_id, video_id, track_id, seed FROM tracks ORDER BY ALL").fetchall()
    assert rows == [("r1", "v1", "t0", 7), ("r1", "v1", "t1", 7), ("r1", "v2", "t0", 7), ("r2", "v1", "t0", 3)]


def test_superseded_by_and_active(root: Root, track_row) -> None:
    tables.write_rows(root, "tracks", "r", [track_row("v1", "t0"), track_row("v1", "t1")], unit="v1@v1")
    tables.write_rows(root, "tracks", "r", [track_row("v1", "t1", 2, supersedes=1)], unit="v1@v2")
    tables.write_rows(root, "tracks", "r", [track_row("v1", "t1", 4, supersedes=2)], unit="v1@v4")
    con = query.connect(root)
    rows = con.sql("SELECT track_id, version, superseded_by, active FROM tracks ORDER BY ALL").fetchall()
    assert rows == [("t0", 1, None, True), ("t1", 1, 2, False), ("t1", 2, 4, False), ("t1", 4, None, True)]


def test_refresh_views_sees_new_files(root: Root, track_row) -> None:
    con = query.connect(root)
    tables.write_rows(root, "tracks", "r", [track_row()], unit="u")
    assert con.sql("SELECT count(*) FROM tracks").fetchall() == [(0,)]
    query.refresh_views(con, root)
    assert con.sql("SELECT count(*) FROM tracks").fetchall() == [(1,)]


def test_connect_accepts_a_url(tmp_path, track_row) -> None:
    tables.write_rows(open_root(str(tmp_path)), "tracks", "r", [track_row("v1", "t0"), track_row("v1", "t1")],
                      unit="v1@v1")
    for url in (str(tmp_path), f"file://{tmp_path}"):  # a plain path and a file:// URL name the same root
        con = query.connect(url)
        assert con.sql("SELECT track_id FROM tracks ORDER BY ALL").fetchall() == [("t0",), ("t1",)], url
        assert con.sql("SELECT count(*) FROM runs").fetchall() == [(0,)]
    assert query.connect(str(tmp_path / "elsewhere")).sql("SELECT count(*) FROM tracks").fetchall() == [(0,)]


# --- read-only queries ----------------------------------------------------------------------

WRITES = [
    "INSERT INTO tracks VALUES (1)",
    "UPDATE tracks SET seed = 1",
    "DELETE FROM tracks",
    "CREATE TABLE t AS SELECT 1",
    "CREATE OR REPLACE VIEW tracks AS SELECT 1",
    "DROP VIEW tracks",
    "COPY (SELECT 1) TO '{out}'",
    "COPY tracks TO '{out}' (FORMAT parquet)",
    "EXPORT DATABASE '{out}'",
    "ATTACH '{out}' AS other",
    "DETACH other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "PRAGMA threads=1",
    "CALL pragma_version()",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '{out}'",
    "CHECKPOINT",
    "BEGIN TRANSACTION",
    "SELECT 1; DROP VIEW tracks",
    "SELECT 1; SELECT 2",
]


@pytest.mark.parametrize("sql", WRITES)
def test_query_readonly_refuses_anything_but_one_select(tmp_path, sql: str) -> None:
    out = tmp_path / "out.parquet"
    con = query.connect(str(tmp_path / "store"))
    with pytest.raises(query.ReadOnlyQueryError):
        query.query_readonly(con, sql.format(out=out))
    assert not out.exists()
    assert con.sql("SELECT count(*) FROM tracks").fetchall() == [(0,)]  # the view is still there


def test_query_readonly_runs_selects_with_bound_parameters(root: Root, track_row) -> None:
    rows = [track_row(track_id="t0", caption="rain"), track_row(track_id="t1", caption="o'clock")]
    tables.write_rows(root, "tracks", "r", rows, unit="u")
    con = query.connect(root)
    result = query.query_readonly(con, "SELECT track_id FROM tracks WHERE caption = $caption", {"caption": "o'clock"})
    assert result.to_pylist() == [{"track_id": "t1"}]
    assert query.query_readonly(con, "FROM tracks SELECT count(*) AS n").to_pylist() == [{"n": 2}]
    assert query.query_readonly(con, "DESCRIBE videos").num_rows == len(tables.schema("videos"))
    with pytest.raises(duckdb.ParserException):
        query.query_readonly(con, "SELEC 1")


# --- canned reports -------------------------------------------------------------------------


@pytest.fixture
def catalog(root: Root, track_row, video_row) -> Root:
    """Two runs. r1: v1 ok (tracks by nag and independent, t1 regenerated), v2 failed,
    v3 failed then fixed in version 2; r2: v1 failed in version 2."""
    w = tables.write_rows
    w(root, "videos", "r1", [video_row("v1")], unit="v1@v1")
    w(root, "videos", "r1", [video_row("v2", status="failed", error="no video stream")], unit="v2@v1")
    w(root, "videos", "r1", [video_row("v3", status="failed", error="timeout")], unit="v3@v1")
    w(root, "videos", "r1", [video_row("v3", 2)], unit="v3@v2")
    w(root, "videos", "r2", [video_row("v1"), video_row("v1", 2, status="failed", error="OOM")], unit="v1")
    w(root, "tracks", "r1", [
        track_row("v1", "t0", caption="rain", method="nag"),
        track_row("v1", "t1", caption="thunder", method="independent"),
        track_row("v3", "t0", caption="rain", method="nag"),
    ], unit="tracks@v1")
    w(root, "tracks", "r1", [track_row("v1", "t1", 2, supersedes=1, caption="thunder", method="nag")], unit="v1@v2")
    w(root, "metrics", "r1", [
        dict(video_id="v1", track_id="t0", version=1, metric="clap", value=0.30, model="clap-630k"),
        dict(video_id="v1", track_id="t1", version=1, metric="clap", value=0.10, model="clap-630k"),
        dict(video_id="v1", track_id="t1", version=2, metric="clap", value=0.50, model="clap-630k"),
        dict(video_id="v3", track_id="t0", version=1, metric="clap", value=0.40, model="clap-630k"),
        dict(video_id="v1", track_id=None, version=1, metric="lufs", value=-23.0),
    ], unit="metrics")
    return root


def test_metric_means_by_method(catalog: Root) -> None:
    result = query.metric_means_by_method(query.connect(catalog)).to_pylist()
    assert [(r["method"], r["metric"], r["n"]) for r in result] == [("independent", "clap", 1), ("nag", "clap", 3)]
    assert result[0]["mean"] == pytest.approx(0.10)
    assert result[1]["mean"] == pytest.approx(0.40)
    assert result[1]["std"] == pytest.approx(0.1)
    assert query.metric_means_by_method(query.connect(catalog), run_id="r2").num_rows == 0


def test_failed_videos_reports_the_latest_version(catalog: Root) -> None:
    con = query.connect(catalog)
    rows = [(r["run_id"], r["video_id"], r["version"], r["error"]) for r in query.failed_videos(con).to_pylist()]
    assert rows == [("r1", "v2", 1, "no video stream"), ("r2", "v1", 2, "OOM")]
    assert [r["video_id"] for r in query.failed_videos(con, run_id="r1").to_pylist()] == ["v2"]


def test_tracks_per_caption(catalog: Root) -> None:
    rows = query.tracks_per_caption(query.connect(catalog)).to_pylist()
    assert rows == [
        {"caption": "rain", "n_tracks": 2, "n_versions": 2, "n_videos": 2},
        {"caption": "thunder", "n_tracks": 1, "n_versions": 2, "n_videos": 1},
    ]
    assert query.tracks_per_caption(query.connect(catalog), run_id="nope").num_rows == 0
