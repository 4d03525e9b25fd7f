"""`foley query` reads the project's tables and nothing else, and stops a runaway query (issue 11, item 1)."""
from __future__ import annotations

import os
import time

import pytest
from typer.testing import CliRunner

from flows.cli import app
from storage import query, tables
from storage.root import open_root

runner = CliRunner()
S3_SKIP = pytest.mark.skipif(not os.environ.get("FOLEY_S3_ENDPOINT_URL"),
                             reason="FOLEY_S3_ENDPOINT_URL is unset (scripts/start-s3.sh)")

ESCAPES = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/proc/self/environ')",  # the S3 secret of the environment
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_json('/etc/os-release')",
    "SELECT * FROM glob('/*')",
    "SELECT * FROM read_csv('https://example.com/x.csv')",
    "SELECT * FROM read_parquet('http://127.0.0.1:9/x.parquet')",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "INSTALL httpfs",
    "LOAD httpfs",
    "ATTACH '/tmp/x.duckdb'",
    "COPY (SELECT 1) TO '/tmp/foley-pwned.csv'",
    "CALL pragma_version()",
]


def _storage(root) -> list[str]:
    """A root with one videos row, and two files the query must not read: one beside the tables, one in them
    but not a table file."""
    tables.write_rows(root, "videos", "r1", [dict(video_id="v", version=1, video_uri="x", status="ok")], unit="v@v1")
    root.put_atomic("secret.txt", b"not yours")
    root.put_atomic("tables/notes.txt", b"not a table")
    return [root.uri("secret.txt"), root.uri("tables/notes.txt"), f"{root.url}/tables/videos/**/*.parquet",
            f"{root.url}/**"]


def _refused(con, sql: str) -> str:
    with pytest.raises(Exception) as info:  # noqa: PT011 - DuckDB's PermissionException, or ours
        query.query_readonly(con, sql, timeout_s=5)
    return str(info.value)


def _check(root):
    inside = _storage(root)
    con = query.connect_readonly(root)
    assert query.query_readonly(con, "SELECT video_id, status FROM videos").to_pylist() == [
        {"video_id": "v", "status": "ok"}]
    assert "run" not in [r[0] for r in con.sql("DESCRIBE videos").fetchall()]  # no Hive column in the views
    for sql in ESCAPES + [f"SELECT * FROM read_text('{uri}')" for uri in inside] + [
            f"SELECT * FROM read_parquet('{inside[2]}')"]:
        message = _refused(con, sql)
        assert "not yours" not in message and "PATH=" not in message, sql


def test_queries_read_the_tables_and_nothing_else_on_local_disk(tmp_path):
    _check(open_root(str(tmp_path / "out")))


def test_queries_read_the_tables_and_nothing_else_in_memory():
    _check(open_root("memory://sandbox-test"))


@S3_SKIP
@pytest.mark.s3
def test_queries_read_the_tables_and_nothing_else_on_s3(s3_bucket):
    root = open_root(f"s3://{s3_bucket}/out")
    _check(root)
    other = open_root(f"s3://{s3_bucket}/elsewhere")
    other.put_atomic("tables/videos/run=x/part-a.parquet", b"PAR1")
    con = query.connect_readonly(root)
    assert "Permission" in _refused(con, f"SELECT * FROM read_text('{other.uri('tables/videos/run=x/part-a.parquet')}')")
    assert "Permission" in _refused(con, "SELECT * FROM read_text('s3://some-other-bucket/secret')")
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in _refused(con, "SELECT * FROM read_text('/proc/self/environ')")


def test_a_runaway_query_is_stopped_and_huge_results_are_not_materialised(tmp_path):
    root = open_root(str(tmp_path / "out"))
    _storage(root)
    con = query.connect_readonly(root)
    start = time.monotonic()
    with pytest.raises(query.QueryTimeout, match="longer than 1 s"):
        query.query_readonly(con, "SELECT sum(range) FROM range(100000000000)", timeout_s=1)
    assert time.monotonic() - start < 10
    rows = query.query_readonly(con, "SELECT * FROM range(1000000000000)", timeout_s=10, max_rows=5)
    assert rows.num_rows == 6  # the five shown and one that says there are more


def test_the_cli_refuses_escapes_in_one_line(tmp_path):
    storage = f"file://{tmp_path / 'out'}"
    _storage(open_root(storage))
    for sql in ["SELECT * FROM read_text('/proc/self/environ')", "SELECT * FROM read_csv('/etc/passwd')"]:
        result = runner.invoke(app, ["query", sql, "--storage", storage])
        assert result.exit_code == 2 and result.output.startswith("error: ") and "root:" not in result.output
    result = runner.invoke(app, ["query", "SELECT sum(range) FROM range(100000000000)", "--storage", storage,
                                 "--timeout", "1"])
    assert result.exit_code == 2 and "was stopped" in result.output
    result = runner.invoke(app, ["query", "SELECT * FROM range(1000000000000)", "--storage", storage,
                                 "--max-rows", "3"])
    assert result.exit_code == 0 and result.output.rstrip().endswith("... more rows")
