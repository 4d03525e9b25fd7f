"""Checks of a run's storage that several flow tests share: no duplicates, no orphans, no temporaries."""
from __future__ import annotations

import hashlib

import duckdb

from storage import keys
from storage.query import connect
from storage.root import Root
from pipeline.objects import key_of


def expected_objects(root: Root, con: duckdb.DuckDBPyConnection, run_id: str) -> set[str]:
    """Every object key that the run's rows refer to (spectrograms derived from track and mix rows)."""
    out: set[str] = set()
    for video_id, track_id, version, uri in con.sql(
            "SELECT video_id, track_id, version, uri FROM tracks WHERE run_id = $r", params={"r": run_id}).fetchall():
        out |= {key_of(root, uri), keys.spectrogram_key(run_id, video_id, version, track_id)}
    for video_id, version, uri, muxed in con.sql(
            "SELECT video_id, version, uri, muxed_uri FROM mixes WHERE run_id = $r", params={"r": run_id}).fetchall():
        out |= {key_of(root, uri), key_of(root, muxed), keys.spectrogram_key(run_id, video_id, version)}
    return out


def check_run_storage(root: Root, run_id: str) -> duckdb.DuckDBPyConnection:
    """Assert: unique rows, every object referenced (no orphans) and present, hashes match, no temporaries."""
    con = connect(root)
    for table, key in [("videos", "video_id, version"), ("tracks", "video_id, track_id, version"),
                       ("mixes", "video_id, version"), ("metrics", "video_id, track_id, version, metric")]:
        dupes = con.sql(f"SELECT {key}, count(*) FROM {table} WHERE run_id = $r GROUP BY ALL HAVING count(*) > 1",
                        params={"r": run_id}).fetchall()
        assert not dupes, f"duplicate {table} rows: {dupes[:5]}"
    run_prefix = keys.video_prefix(run_id, "x").rsplit("/videos/", 1)[0] + "/"
    stored = {k for k in root.list("runs") if k.startswith(run_prefix)}
    expected = expected_objects(root, con, run_id)
    assert stored == expected, f"orphans: {sorted(stored - expected)[:5]}; missing: {sorted(expected - stored)[:5]}"
    for uri, sha in con.sql("SELECT uri, sha256 FROM tracks WHERE run_id = $r UNION ALL "
                            "SELECT uri, sha256 FROM mixes WHERE run_id = $r", params={"r": run_id}).fetchall():
        assert hashlib.sha256(root.read_bytes(key_of(root, uri))).hexdigest() == sha
    hidden = [p for p in root.fs.find(root.base) if "/." in p[len(root.base):]]
    assert not hidden, f"temporary files left: {hidden[:5]}"
    return con
