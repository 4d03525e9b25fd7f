"""Rows last, videos row last of all; resets remove what unfinished attempts left; errors name their stage."""
from __future__ import annotations

import dataclasses

from storage import keys, tables
from pipeline.handoffs import Captions, OrderedCaptions, PreparedVideo
from pipeline.outcomes import STAGES, describe_error, first_failure
from storage.cleanup import reset_video_state, sweep_table_temporaries, unit
from storage.commit import captions_row, commit_version, record_failure, video_row
from storage.manifest import ManifestEntry
from tasks.record import record_rejected, record_video

ENTRY = ManifestEntry(1, "v", "/x.mp4", ("a",))


def fake_version(root, version: int, track_versions: dict[str, int]):
    """Objects and rows of one committed version of video v (tiny stand-in bytes)."""
    track_rows = []
    for track_id, tv in track_versions.items():
        key = keys.track_key("r", "v", track_id, tv)
        sha = root.put_atomic(key, b"fLaC" + track_id.encode())
        root.put_atomic(keys.spectrogram_key("r", "v", tv, track_id), b"png")
        track_rows.append({"run_id": "r", "video_id": "v", "track_id": track_id, "version": tv, "position": 0,
                           "caption": "c", "seed": 1, "method": "nag", "steps": 2, "uri": root.uri(key), "sha256": sha,
                           "duration_s": 1.0, "sample_rate": 16000})
    mix_key = keys.mix_key("r", "v", version)
    muxed = keys.muxed_key("r", "v", version)
    root.put_atomic(mix_key, b"mix")
    root.put_atomic(muxed, b"mp4")
    root.put_atomic(keys.spectrogram_key("r", "v", version), b"png")
    mix = {"run_id": "r", "video_id": "v", "version": version, "track_ids": list(track_versions),
           "uri": root.uri(mix_key), "sha256": "0" * 64, "muxed_uri": root.uri(muxed)}
    metrics = [{"run_id": "r", "video_id": "v", "track_id": None, "version": version, "metric": "lufs", "value": -20.0}]
    commit_version(root, "r", "v", version, video_row("r", ENTRY, version, "ok", n_captions=len(track_rows)),
                   track_rows, mix, metrics)


def test_the_videos_row_is_written_last(root, monkeypatch):
    order = []
    real = tables.write_rows
    monkeypatch.setattr(tables, "write_rows", lambda root_, table, *a, **k: order.append(table) or real(root_, table, *a, **k))
    fake_version(root, 1, {"t0": 1})
    assert order == ["tracks", "mixes", "metrics", "videos"]


def test_reset_removes_an_unfinished_version_and_keeps_the_committed_one(root):
    fake_version(root, 1, {"t0": 1, "t1": 1})
    committed = set(root.list(keys.video_prefix("r", "v")))
    # an edit to version 2 killed after some objects and rows, plus a temporary file of a cut write
    orphan = keys.track_key("r", "v", "t2", 1)
    root.put_atomic(orphan, b"half")
    tables.write_rows(root, "tracks", "r", [{"run_id": "r", "video_id": "v", "track_id": "t2", "version": 1,
                                             "position": 2, "caption": "c", "seed": 1, "method": "nag", "steps": 2,
                                             "uri": root.uri(orphan), "sha256": "0" * 64, "duration_s": 1.0,
                                             "sample_rate": 16000}], unit=unit("v", 2))
    root.fs.pipe_file(root.path(keys.video_prefix("r", "v")) + "/mix/.v2.flac.abc.tmp", b"x")
    out = reset_video_state(root, "r", "v")
    assert out["committed_version"] == 1 and len(out["removed"]) == 2
    assert set(root.list(keys.video_prefix("r", "v"))) == committed
    assert not [p for p in root.fs.find(root.path(keys.video_prefix("r", "v"))) if "/." in p]
    assert "t2" not in tables.read_table(root, "tracks", "r")["track_id"].to_pylist()


def test_reset_of_a_new_video_removes_everything_under_its_prefix(root):
    root.put_atomic(keys.track_key("r", "v", "t0", 1), b"left by a killed run")
    tables.write_rows(root, "metrics", "r", [{"run_id": "r", "video_id": "v", "version": 1, "metric": "lufs",
                                              "value": -3.0}], unit=unit("v", 1))
    reset_video_state(root, "r", "v", committed=0)
    assert root.list(keys.video_prefix("r", "v")) == [] and tables.read_table(root, "metrics", "r").num_rows == 0


def test_the_committed_version_is_the_latest_ok_one(root):
    from storage.cleanup import committed_version

    assert committed_version(root, "r", "v") == 0  # a new video
    tables.write_rows(root, "videos", "r", [video_row("r", ENTRY, 1, "failed", error="x")], unit=unit("v", 1))
    assert committed_version(root, "r", "v") == 0  # a failed video has nothing committed
    fake_version(root, 1, {"t0": 1})
    fake_version(root, 2, {"t0": 2})
    tables.write_rows(root, "videos", "r", [video_row("r", ENTRY, 3, "failed", error="x")], unit=unit("v", 3))
    assert committed_version(root, "r", "v") == 2


def test_a_known_committed_version_is_not_read_again(root, monkeypatch):
    """A resumed catalog passes committed=0 for every unfinished video: the reset then reads no videos table."""
    from storage import cleanup

    fake_version(root, 1, {"t0": 1})
    read = []
    monkeypatch.setattr(cleanup, "committed_version", lambda *a: read.append(a) or 1)
    assert reset_video_state(root, "r", "v", committed=1)["committed_version"] == 1
    assert read == [] and root.exists(keys.track_key("r", "v", "t0", 1))
    assert reset_video_state(root, "r", "v")["committed_version"] == 1 and len(read) == 1


def test_clearing_a_compacted_unit_shadows_its_copy(root):
    from storage.cleanup import clear_unit

    row = {"run_id": "r", "video_id": "v", "version": 2, "metric": "lufs", "value": -3.0}
    tables.write_rows(root, "metrics", "r", [row], unit=unit("v", 2))
    tables.write_rows(root, "metrics", "r", [{**row, "video_id": "w"}], unit=unit("w", 2))
    tables.compact(root, "metrics", "r")
    assert clear_unit(root, "metrics", "r", unit("v", 2))
    assert tables.read_table(root, "metrics", "r")["video_id"].to_pylist() == ["w"]
    assert not clear_unit(root, "metrics", "r", unit("x", 1))  # nothing to clear: nothing written
    tables.write_rows(root, "metrics", "r", [{**row, "video_id": "x"}], unit=unit("x", 1))
    assert clear_unit(root, "metrics", "r", unit("x", 1)) and not root.exists(keys.part_key("metrics", "r", unit("x", 1)))


def test_table_temporaries_of_this_run_are_swept(root):
    tables.write_rows(root, "videos", "r", [video_row("r", ENTRY, 1, "ok")], unit=unit("v", 1))
    tmp = root.path(keys.partition_prefix("videos", "r")) + "/.part-x.parquet.123.tmp"
    root.fs.pipe_file(tmp, b"x")
    assert sweep_table_temporaries(root, "r") == [tmp]
    assert tables.read_table(root, "videos", "r").num_rows == 1


def test_first_failure_names_the_earliest_stage():
    ok = {s: {} for s in STAGES}
    assert first_failure(ok) is None
    failed = {**ok, "captions": ValueError("bad"), "ordering": None, "synthesis": None}
    stage, exc = first_failure(failed)
    assert stage == "captions" and str(exc) == "bad"
    stage, exc = first_failure({**ok, "mixing": None})
    assert stage == "mixing" and "did not run" in str(exc)
    assert describe_error("prepare", OSError("a\nb")) == "prepare: OSError: a b"
    assert describe_error("mixing", ValueError()) == "mixing: ValueError: ValueError()"  # no message: its repr
    long = describe_error("scoring", RuntimeError("x" * 5000))
    assert len(long) == 2000 and long.startswith("scoring: RuntimeError: xxx")


def test_a_videos_row_takes_the_prepared_videos_description():
    video = {"duration_s": 7.5, "fps": 25.0, "width": 640, "height": 360, "has_audio": True, "sha256": "ab"}
    row = video_row("r", ENTRY, 2, "ok", video_fields=video, n_captions=3)
    assert row == {"run_id": "r", "video_id": "v", "version": 2, "video_uri": "/x.mp4", "status": "ok", "error": None,
                   "duration_s": 7.5, "fps": 25.0, "width": 640, "height": 360, "has_audio": True, "n_captions": 3}
    bare = video_row("r", ManifestEntry(2, "w", "", None), 1, "failed", error="prepare: boom")
    assert bare["video_uri"] == "" and bare["error"] == "prepare: boom" and bare["duration_s"] is None


def test_a_version_without_rows_of_a_table_empties_that_tables_unit(root):
    """An edit that removes a track writes no track rows: what a killed attempt left in that unit goes."""
    fake_version(root, 1, {"t0": 1, "t1": 1})
    tables.write_rows(root, "tracks", "r", [{"run_id": "r", "video_id": "v", "track_id": "t9", "version": 1,
                                             "position": 2, "caption": "c", "seed": 1, "method": "nag", "steps": 2,
                                             "uri": "memory://x/t9", "sha256": "0" * 64, "duration_s": 1.0,
                                             "sample_rate": 16000}], unit=unit("v", 2))
    mix = {"run_id": "r", "video_id": "v", "version": 2, "track_ids": ["t0"], "uri": "memory://x/m", "sha256": "0" * 64}
    commit_version(root, "r", "v", 2, video_row("r", ENTRY, 2, "ok", n_captions=1), [], mix, [])
    assert sorted(tables.read_table(root, "tracks", "r")["track_id"].to_pylist()) == ["t0", "t1"]
    assert not root.exists(keys.part_key("tracks", "r", unit("v", 2)))


def test_a_rejected_row_is_a_failed_videos_row(root):
    entry = dataclasses.replace(ENTRY, video_id="a/b", error="manifest row 3: the id 'a/b' contains a path separator")
    out = record_rejected.fn(root.url, "r", entry)
    rows = tables.read_table(root, "videos", "r").to_pylist()
    assert out["status"] == "failed" and rows[0]["video_id"] == "a/b" and rows[0]["error"] == entry.error


def test_record_video_writes_a_failure_and_cleans_up(root):
    root.put_atomic(keys.track_key("r", "v", "t0", 1), b"partial")
    video = PreparedVideo("/x.mp4", "0" * 64, 8.0, None, 64, None, False, 8.0)
    out = record_video.fn(root.url, "r", ENTRY, {}, video, Captions(("a",), "manifest"),
                          OrderedCaptions(("a",), None, "given", "given"), RuntimeError("synthesis blew up"),
                          None, None)
    assert out == {"video_id": "v", "status": "failed", "error": "synthesis: RuntimeError: synthesis blew up"}
    row = tables.read_table(root, "videos", "r").to_pylist()[0]
    assert row["width"] == 64 and row["n_captions"] == 1 and root.list(keys.video_prefix("r", "v")) == []


def test_a_captions_row_carries_the_captioners_trace():
    trace = {"backend": "openai", "model": "m-1", "prompt": "p", "raw_answer": "raw", "structured_answer": "{}",
             "dropped": ["x"], "attempts": 2}
    row = captions_row("r", "v", 3, captions=("a", "b"), trace=trace, error=None)
    assert row == {"run_id": "r", "video_id": "v", "version": 3, "source": "openai", "model": "m-1",
                   "captions": ["a", "b"], "prompt": "p", "raw_answer": "raw", "structured_answer": "{}",
                   "dropped": ["x"], "attempts": 2, "error": None}
    bare = captions_row("r", "v", 1, captions=None, error="captions: boom")
    assert bare == {"run_id": "r", "video_id": "v", "version": 1, "source": "manifest", "model": None,
                    "captions": None, "prompt": None, "raw_answer": None, "structured_answer": None,
                    "dropped": None, "attempts": None, "error": "captions: boom"}
    assert captions_row("r", "v", 1, captions=["a"])["captions"] == ["a"]


def test_a_version_commits_its_captions_row(root):
    track = {"run_id": "r", "video_id": "v", "track_id": "t0", "version": 1, "position": 0, "caption": "c", "seed": 1,
             "method": "nag", "steps": 2, "uri": "memory://x/t0", "sha256": "0" * 64, "duration_s": 1.0,
             "sample_rate": 16000}
    mix = {"run_id": "r", "video_id": "v", "version": 1, "track_ids": ["t0"], "uri": "memory://x/m", "sha256": "0" * 64}
    commit_version(root, "r", "v", 1, video_row("r", ENTRY, 1, "ok", n_captions=1), [track], mix, [],
                   captions=captions_row("r", "v", 1, captions=["c"]))
    (row,) = tables.read_table(root, "captions", "r").to_pylist()
    assert row["captions"] == ["c"] and row["source"] == "manifest"


def test_a_failure_replaces_its_attempts_rows_and_a_rerun_replaces_the_failure(root):
    """record_failure writes version 1's units: the failed attempt's rows go, and a rerun's rows replace its own."""
    key = keys.track_key("r", "v", "t0", 1)
    root.put_atomic(key, b"partial")
    partial = {"run_id": "r", "video_id": "v", "track_id": "t0", "version": 1, "position": 0, "caption": "c", "seed": 1,
               "method": "nag", "steps": 2, "uri": root.uri(key), "sha256": "0" * 64, "duration_s": 1.0,
               "sample_rate": 16000}
    tables.write_rows(root, "tracks", "r", [partial], unit=unit("v", 1))  # an attempt killed before its videos row
    for _ in range(2):  # a failed rerun replaces the failure rows instead of adding to them
        record_failure(root, "r", ENTRY, "synthesis: boom", captions=captions_row("r", "v", 1, captions=["a"]))
    assert tables.read_table(root, "tracks", "r").num_rows == 0 and root.list(keys.video_prefix("r", "v")) == []
    (row,) = tables.read_table(root, "videos", "r").to_pylist()
    assert (row["run_id"], row["video_id"], row["version"], row["status"]) == ("r", "v", 1, "failed")
    assert tables.read_table(root, "captions", "r").num_rows == 1
    assert root.exists(keys.part_key("videos", "r", unit("v", 1)))
    assert root.exists(keys.part_key("captions", "r", unit("v", 1)))
    fake_version(root, 1, {"t0": 1})  # a later run commits version 1: its videos row replaces the failed one
    assert tables.read_table(root, "videos", "r").select(["version", "status"]).to_pylist() == [
        {"version": 1, "status": "ok"}]
