"""DuckDB over the Parquet tables: connections with views, read-only queries, canned reports.

:func:`connect` returns an in-memory DuckDB connection with one view per table (``runs``,
``videos``, ``tracks``, ``mixes``, ``metrics``) over the files under the storage root, local
or S3. DuckDB's httpfs extension cannot be installed offline (and has no wheel for DuckDB 2.0),
so a non-local root's fsspec file system is registered with ``con.register_filesystem``.

The views resolve part and compacted files as described in :mod:`storage.tables` (each row
once) from the file list taken when the views are built: call :func:`refresh_views` to see
files written later. A table with no files yet is an empty view with the right columns.
``latest_videos`` holds each video's latest version (:mod:`storage.versions`).
``tracks`` and ``mixes`` also get ``superseded_by`` and ``active`` (see storage.tables); that
is a join, which DuckDB does not drop when those columns are unused (about 0.5 s on a million
rows here), so the views ``raw_<table>`` (the stored columns only) exist for queries that do
not need them.

SQL here is built only from our own identifiers (table and column names); every value is a
bound parameter (``$run_id``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import duckdb
import pyarrow as pa

from storage import tables
from storage.root import Root, open_root
from storage.versions import VERSIONED, latest_sql

READ_ONLY_STATEMENTS = frozenset({duckdb.StatementType.SELECT})


class ReadOnlyQueryError(ValueError):
    """A query given to :func:`query_readonly` could change something."""


def connect(root: Root | str, storage_options: Mapping[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view per table over ``root``'s Parquet files.

    Args:
        root: a :class:`~storage.root.Root`, or its URL (opened with ``storage_options``).
    """
    if not isinstance(root, Root):
        root = open_root(root, storage_options)
    con = duckdb.connect(":memory:")
    refresh_views(con, root)
    return con


def refresh_views(con: duckdb.DuckDBPyConnection, root: Root) -> None:
    """(Re)build the table views from the files stored now."""
    if root.protocol != "file":
        protocol = root.fs.protocol if isinstance(root.fs.protocol, str) else root.fs.protocol[0]
        if protocol in con.list_filesystems():
            con.unregister_filesystem(protocol)
        con.register_filesystem(root.fs)
    for table in tables.TABLES:
        _create_view(con, root, table)


def _create_view(con: duckdb.DuckDBPyConnection, root: Root, table: str) -> None:
    schema = tables.schema(table)
    files = tables.table_files(root, table)
    columns = ", ".join(schema.names)
    # the empty table gives the types; UNION BY NAME gives null columns to files written before them
    con.from_arrow(schema.empty_table()).create_view(f"_{table}_empty", replace=True)
    sources = [f"SELECT {columns} FROM _{table}_empty"]
    if files.parts:
        con.read_parquet([root.uri(key) for key in files.parts], union_by_name=True).create_view(
            f"_{table}_parts", replace=True)
        sources.append(f"SELECT * FROM _{table}_parts")
    if files.compacted:
        con.read_parquet([root.uri(key) for key in files.compacted], union_by_name=True).create_view(
            f"_{table}_compacted", replace=True)
        live = pa.table({"part_key": pa.array(files.parts, pa.string())})
        con.from_arrow(live).create_view(f"_{table}_live_parts", replace=True)
        sources.append(
            f"SELECT * EXCLUDE ({tables.PART_COLUMN}) FROM _{table}_compacted "
            f"WHERE {tables.PART_COLUMN} NOT IN (SELECT part_key FROM _{table}_live_parts)"
        )
    con.execute(f"CREATE OR REPLACE VIEW raw_{table} AS SELECT {columns} FROM ({' UNION ALL BY NAME '.join(sources)})")
    if table not in VERSIONED:
        con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM raw_{table}")
        if table == "videos":  # each video's latest version (storage.versions)
            con.execute(f"CREATE OR REPLACE VIEW latest_videos AS SELECT * FROM videos {latest_sql()}")
        return
    key_columns = VERSIONED[table]
    on = " AND ".join(f"r.{name} = s.{name}" for name in key_columns)
    con.execute(
        f"CREATE OR REPLACE VIEW {table} AS "
        "SELECT r.*, s.superseded_by, s.superseded_by IS NULL AS active "
        f"FROM raw_{table} AS r LEFT JOIN ("
        f"  SELECT {', '.join(key_columns)}, supersedes, min(version) AS superseded_by "
        f"  FROM raw_{table} WHERE supersedes IS NOT NULL GROUP BY ALL"
        f") AS s ON {on} AND r.version = s.supersedes"
    )


def query_readonly(con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
    """Run one read-only statement (for ``foley query "SQL"``) and return its rows.

    DuckDB's own parser classifies the statement (``duckdb.extract_statements``); anything
    but a single SELECT (which includes ``FROM t``, ``WITH … SELECT``, ``DESCRIBE``,
    ``SHOW``, ``SUMMARIZE``) is refused before it runs: INSERT, COPY, CREATE, ATTACH, SET,
    PRAGMA, CALL, EXPORT, LOAD, EXPLAIN (EXPLAIN ANALYZE runs its statement), ….

    Raises:
        ReadOnlyQueryError: more than one statement, or one that is not a SELECT.
        duckdb.ParserException: the SQL does not parse.
    """
    statements = duckdb.extract_statements(sql)
    if len(statements) != 1:
        raise ReadOnlyQueryError(f"give exactly one SQL statement, got {len(statements)}")
    kind = statements[0].type
    if kind not in READ_ONLY_STATEMENTS:
        raise ReadOnlyQueryError(f"only read-only SELECT queries are allowed here, got a {kind.name} statement")
    return con.sql(statements[0], params=dict(params or {})).to_arrow_table()


_RUN_FILTER = "($run_id IS NULL OR {alias}run_id = $run_id)"

METRIC_MEANS_SQL = f"""
SELECT t.method, m.metric, count(*) AS n, avg(m.value) AS mean, stddev_samp(m.value) AS std
FROM metrics AS m
JOIN raw_tracks AS t USING (run_id, video_id, track_id, version)
WHERE {_RUN_FILTER.format(alias='m.')}
GROUP BY t.method, m.metric
ORDER BY m.metric, t.method
"""

FAILED_VIDEOS_SQL = f"""
SELECT run_id, video_id, version, video_uri, error, created_at
FROM latest_videos
WHERE {_RUN_FILTER.format(alias='')} AND status = 'failed'
ORDER BY run_id, video_id
"""

TRACKS_PER_CAPTION_SQL = f"""
SELECT caption,
       count(*) FILTER (WHERE active) AS n_tracks,
       count(*) AS n_versions,
       count(DISTINCT video_id) AS n_videos
FROM tracks
WHERE {_RUN_FILTER.format(alias='')}
GROUP BY caption
ORDER BY n_tracks DESC, caption
"""


def metric_means_by_method(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> pa.Table:
    """Per (method, metric) over all track versions: n, mean, std (sample). Mix metrics
    (``track_id`` null) are left out. ``run_id`` None = all runs."""
    return con.sql(METRIC_MEANS_SQL, params={"run_id": run_id}).to_arrow_table()


def failed_videos(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> pa.Table:
    """Videos whose latest version failed, with the error. ``run_id`` None = all runs."""
    return con.sql(FAILED_VIDEOS_SQL, params={"run_id": run_id}).to_arrow_table()


def tracks_per_caption(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> pa.Table:
    """Per caption: active tracks, all versions, distinct videos; most-used first."""
    return con.sql(TRACKS_PER_CAPTION_SQL, params={"run_id": run_id}).to_arrow_table()


REPORTS: dict[str, Callable[..., pa.Table]] = {
    "metric-means": metric_means_by_method,
    "failed-videos": failed_videos,
    "tracks-per-caption": tracks_per_caption,
}
