"""DuckDB over the Parquet tables: connections with views, read-only queries, canned reports.

:func:`connect` returns an in-memory DuckDB connection with one view per table (``runs``,
``videos``, ``tracks``, ``mixes``, ``metrics``, ``captions``, ``evaluations``, ``run_metrics``) over the files under the storage root, local
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

:func:`connect_readonly` is the connection for SQL typed by a user (``foley query``): after the views
are built it is locked down (:func:`lock_down`) so that a query reads the tables' own files and
nothing else: no other file, URL or bucket (``read_csv('/etc/passwd')``, ``read_text('/proc/self/environ')``,
which would show the S3 secret of the environment, ``read_parquet('s3://other-bucket/…')``), no globbing
of the table folders, no extension loaded or installed, and the configuration locked so the query cannot
undo any of it. :func:`query_readonly` stops a query that runs longer than its timeout (DuckDB has no
statement timeout: a timer interrupts the connection) and fetches at most the rows it will show.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import threading

import duckdb
import pyarrow as pa

from storage import tables
from storage.root import Root, open_root
from storage.versions import VERSIONED, latest_sql

READ_ONLY_STATEMENTS = frozenset({duckdb.StatementType.SELECT})
QUERY_TIMEOUT_S = 60.0  # a user's query is interrupted after this long
QUERY_MEMORY_LIMIT = "2GB"  # DuckDB's working memory for a user's query (nothing spills to disk)


class ReadOnlyQueryError(ValueError):
    """A query given to :func:`query_readonly` could change something."""


class QueryTimeout(RuntimeError):
    """A query ran longer than its timeout and was interrupted."""


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


def connect_readonly(root: Root | str, storage_options: Mapping[str, Any] | None = None, *,
                     memory_limit: str = QUERY_MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    """Like :func:`connect`, then locked down (:func:`lock_down`): the connection for SQL typed by a user.

    Its views cannot be refreshed (the list of readable files is fixed); connect again to see new files.
    """
    if not isinstance(root, Root):
        root = open_root(root, storage_options)
    con = duckdb.connect(":memory:")
    lock_down(con, refresh_views(con, root), memory_limit=memory_limit)
    return con


def _path_forms(uri: str) -> list[str]:
    """The spellings under which DuckDB may open ``uri``: ``file:///a`` is also ``/a``; a registered
    fsspec file system's ``proto://b/k`` is also opened as ``proto:///b/k``."""
    scheme, _, rest = uri.partition("://")
    if scheme == "file":
        return [uri, rest]
    return [uri, f"{scheme}:///{rest.lstrip('/')}", f"{scheme}://{rest.lstrip('/')}"]


def lock_down(con: duckdb.DuckDBPyConnection, readable: list[str], *, memory_limit: str = QUERY_MEMORY_LIMIT) -> None:
    """Let ``con`` read the files ``readable`` (the views' files) and nothing else, for good.

    External access off with only those paths allowed (so no other file, URL or bucket, and no glob of a
    folder), no extension auto-installed or auto-loaded (``INSTALL``/``LOAD`` are refused by
    :func:`query_readonly` anyway), a memory limit with nothing spilled to disk, and the configuration
    locked (a later ``SET`` fails).
    """
    allowed = sorted({form for uri in readable for form in _path_forms(uri)})
    con.execute("SET allowed_paths = $paths", {"paths": allowed})
    con.execute("SET allowed_directories = $dirs", {"dirs": []})  # DuckDB's default lists its temp folder
    con.execute("SET temp_directory = ''")  # no spilling: the memory limit is the limit
    con.execute("SET memory_limit = $limit", {"limit": memory_limit})
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET allow_community_extensions = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def refresh_views(con: duckdb.DuckDBPyConnection, root: Root) -> list[str]:
    """(Re)build the table views from the files stored now.

    Returns:
        The URIs of the files the views read.
    """
    if root.protocol != "file":
        protocol = root.fs.protocol if isinstance(root.fs.protocol, str) else root.fs.protocol[0]
        if protocol in con.list_filesystems():
            con.unregister_filesystem(protocol)
        con.register_filesystem(root.fs)
    return [uri for table in tables.TABLES for uri in _create_view(con, root, table)]


def _create_view(con: duckdb.DuckDBPyConnection, root: Root, table: str) -> list[str]:
    schema = tables.schema(table)
    files = tables.table_files(root, table)
    columns = ", ".join(schema.names)
    # the empty table gives the types; UNION BY NAME gives null columns to files written before them
    con.from_arrow(schema.empty_table()).create_view(f"_{table}_empty", replace=True)
    sources = [f"SELECT {columns} FROM _{table}_empty"]
    if files.parts:
        con.read_parquet([root.uri(key) for key in files.parts], union_by_name=True,
                         hive_partitioning=False).create_view(f"_{table}_parts", replace=True)
        sources.append(f"SELECT * FROM _{table}_parts")
    if files.compacted:
        con.read_parquet([root.uri(key) for key in files.compacted], union_by_name=True,
                         hive_partitioning=False).create_view(f"_{table}_compacted", replace=True)
        live = pa.table({"part_key": pa.array(files.parts, pa.string())})
        con.from_arrow(live).create_view(f"_{table}_live_parts", replace=True)
        sources.append(
            f"SELECT * EXCLUDE ({tables.PART_COLUMN}) FROM _{table}_compacted "
            f"WHERE {tables.PART_COLUMN} NOT IN (SELECT part_key FROM _{table}_live_parts)"
        )
    con.execute(f"CREATE OR REPLACE VIEW raw_{table} AS SELECT {columns} FROM ({' UNION ALL BY NAME '.join(sources)})")
    used = [root.uri(key) for key in files.parts + files.compacted]
    if table not in VERSIONED:
        con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM raw_{table}")
        if table == "videos":  # each video's latest version (storage.versions)
            con.execute(f"CREATE OR REPLACE VIEW latest_videos AS SELECT * FROM videos {latest_sql()}")
        return used
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
    return used


def query_readonly(con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any] | None = None, *,
                   timeout_s: float | None = None, max_rows: int | None = None) -> pa.Table:
    """Run one read-only statement (for ``foley query "SQL"``) and return its rows.

    DuckDB's own parser classifies the statement (``duckdb.extract_statements``); anything
    but a single SELECT (which includes ``FROM t``, ``WITH … SELECT``, ``DESCRIBE``,
    ``SHOW``, ``SUMMARIZE``) is refused before it runs: INSERT, COPY, CREATE, ATTACH, SET,
    PRAGMA, CALL, EXPORT, LOAD, EXPLAIN (EXPLAIN ANALYZE runs its statement), …. What the
    SELECT may read is the connection's business: give it one from :func:`connect_readonly`.

    Args:
        timeout_s: interrupt the query after this many seconds (None: no limit).
        max_rows: fetch at most this many rows plus one (which tells the caller there are more);
            None fetches all.

    Raises:
        ReadOnlyQueryError: more than one statement, or one that is not a SELECT.
        QueryTimeout: it ran longer than ``timeout_s``.
        duckdb.ParserException: the SQL does not parse; other ``duckdb.Error`` s as DuckDB raises them
            (``PermissionException`` for a file it may not read).
    """
    statements = duckdb.extract_statements(sql)
    if len(statements) != 1:
        raise ReadOnlyQueryError(f"give exactly one SQL statement, got {len(statements)}")
    kind = statements[0].type
    if kind not in READ_ONLY_STATEMENTS:
        raise ReadOnlyQueryError(f"only read-only SELECT queries are allowed here, got a {kind.name} statement")
    timer = threading.Timer(timeout_s, con.interrupt) if timeout_s is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        relation = con.sql(statements[0], params=dict(params or {}))
        if max_rows is None:
            return relation.to_arrow_table()
        return _first_rows(relation, max_rows + 1)
    except duckdb.InterruptException:
        raise QueryTimeout(f"the query ran longer than {timeout_s:g} s and was stopped") from None
    finally:
        if timer is not None:
            timer.cancel()


def _first_rows(relation: duckdb.DuckDBPyRelation, n: int) -> pa.Table:
    """At most ``n`` rows of ``relation``, fetched in batches (the rest is never materialised)."""
    reader = relation.to_arrow_reader(batch_size=min(max(n, 1), 10_000))
    batches, have = [], 0
    try:
        for batch in reader:
            batches.append(batch)
            have += batch.num_rows
            if have >= n:
                break
    finally:
        reader.close()
    return pa.Table.from_batches(batches, schema=reader.schema).slice(0, n)


def sql_string(value: str) -> str:
    """``value`` as a SQL string literal (quotes doubled): for a query printed for a person to run,
    never for one run here (those bind parameters)."""
    return "'" + value.replace("'", "''") + "'"


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
LIMIT $limit
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


def failed_videos(con: duckdb.DuckDBPyConnection, run_id: str | None = None, limit: int | None = None) -> pa.Table:
    """Videos whose latest version failed, with the error (the first ``limit``; None = all). ``run_id``
    None = all runs."""
    return con.sql(FAILED_VIDEOS_SQL, params={"run_id": run_id, "limit": limit}).to_arrow_table()


def tracks_per_caption(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> pa.Table:
    """Per caption: active tracks, all versions, distinct videos; most-used first."""
    return con.sql(TRACKS_PER_CAPTION_SQL, params={"run_id": run_id}).to_arrow_table()


# ------------------------------------------------------------------ one run's summary (printed after a run)
SUMMARY_SQL = """
WITH latest AS (SELECT * FROM latest_videos WHERE run_id = $run_id)
SELECT (SELECT count(*) FROM latest) AS videos,
       (SELECT count(*) FROM latest WHERE status = 'ok') AS ok,
       (SELECT count(*) FROM latest WHERE status = 'failed') AS failed,
       (SELECT count(*) FROM tracks WHERE run_id = $run_id AND active) AS tracks,
       (SELECT round(avg(lufs), 2) FROM mixes WHERE run_id = $run_id AND active) AS mean_mix_lufs,
       (SELECT round(min(lufs), 2) FROM mixes WHERE run_id = $run_id AND active) AS min_mix_lufs,
       (SELECT round(max(greatest(true_peak_db, muxed_true_peak_db)), 2) FROM mixes
        WHERE run_id = $run_id AND active) AS max_true_peak_db
"""
BELOW_TARGET_SQL = """
SELECT video_id, round(lufs, 2) AS lufs, round(limiter_gain_db, 2) AS limiter_gain_db
FROM mixes WHERE run_id = $run_id AND active AND loudness_status = 'below_target' ORDER BY video_id LIMIT $limit
"""
OUTPUTS_SQL = """
SELECT video_id, version, len(track_ids) AS tracks, muxed_uri
FROM mixes WHERE run_id = $run_id AND active ORDER BY video_id LIMIT $limit
"""


def run_summary(con: duckdb.DuckDBPyConnection, run_id: str) -> pa.Table:
    """One row: videos (ok, failed), active tracks, mean and min mix loudness, and the highest true peak of
    a mix, as stored or as delivered in the muxed video."""
    return con.sql(SUMMARY_SQL, params={"run_id": run_id}).to_arrow_table()


def mixes_below_target(con: duckdb.DuckDBPyConnection, run_id: str, limit: int = 20) -> pa.Table:
    """The run's active mixes that missed the loudness target (``loudness_status = 'below_target'``)."""
    return con.sql(BELOW_TARGET_SQL, params={"run_id": run_id, "limit": limit}).to_arrow_table()


def run_outputs(con: duckdb.DuckDBPyConnection, run_id: str, limit: int = 20) -> pa.Table:
    """The run's active mixes: version, number of tracks and the muxed video."""
    return con.sql(OUTPUTS_SQL, params={"run_id": run_id, "limit": limit}).to_arrow_table()


REPORTS: dict[str, Callable[..., pa.Table]] = {
    "metric-means": metric_means_by_method,
    "failed-videos": failed_videos,
    "tracks-per-caption": tracks_per_caption,
}
