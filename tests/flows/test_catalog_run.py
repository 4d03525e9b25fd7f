"""A real catalog run: stems, mixes, muxed videos, spectrograms and rows; failures become rows."""
from __future__ import annotations

import io
import json

import av
import pytest

from flows.catalog import catalog_run, on_video_done
from media.audio_io import audio_from_bytes
from storage import keys, tables
from storage.query import connect
from storage.root import open_root
from pipeline.objects import key_of


@pytest.fixture(scope="module")
def run(catalog):
    root = open_root(catalog["storage_url"])
    return root, connect(root), catalog["run_id"]


def test_the_summary(catalog):
    r = catalog["result"]
    assert (r["status"], r["n_videos"], r["n_ok"], r["n_failed"], r["n_skipped"]) == ("completed", 18, 4, 14, 0)
    assert r["model_id"].startswith("random-tiny-0@")


def test_each_manifest_row_has_one_videos_row_with_the_expected_outcome(run, cases):
    _, con, run_id = run
    rows = {vid: (status, error) for vid, status, error in con.sql(
        "SELECT video_id, status, error FROM videos WHERE run_id = $r", params={"r": run_id}).fetchall()}
    assert set(rows) == set(cases)
    for vid, (_, _, status, fragment) in cases.items():
        assert rows[vid][0] == status, (vid, rows[vid])
        if fragment:
            assert fragment in rows[vid][1], (vid, rows[vid][1])
        else:
            assert rows[vid][1] is None


def test_stems_are_stored_with_their_rows(run, ok_tracks, h):
    root, con, run_id = run
    got = dict(con.sql("SELECT video_id, count(*) FROM tracks WHERE run_id = $r GROUP BY 1", params={"r": run_id})
               .fetchall())
    assert got == ok_tracks
    for uri, duration, rate, video_id in con.sql(
            "SELECT uri, duration_s, sample_rate, video_id FROM tracks WHERE run_id = $r", params={"r": run_id}).fetchall():
        wav, file_rate = audio_from_bytes(root.read_bytes(key_of(root, uri)))
        assert file_rate == rate == 16000 and len(wav) / rate == pytest.approx(duration)
        assert duration == pytest.approx(0.6 if video_id == "short-clip" else 8.0, abs=0.05)  # the whole video
        assert uri.endswith(".flac")


def test_track_order_seeds_and_settings(run):
    _, con, run_id = run
    rows = con.sql("SELECT track_id, position, caption, method, alpha, beta, steps, active FROM tracks "
                   "WHERE run_id = $r AND video_id = 'sf-10161943' ORDER BY position", params={"r": run_id}).fetchall()
    assert rows == [("t0", 0, "The fan hums sharply.", "nag", 4.5, 1.5, 2, True),
                    ("t1", 1, "The lamp beeps softly.", "nag", 4.5, 1.5, 2, True)]


def test_mixes_and_muxed_videos(run, ok_tracks):
    root, con, run_id = run
    mixes = con.sql("SELECT video_id, track_ids, muxed_uri, lufs, true_peak_db FROM mixes WHERE run_id = $r",
                    params={"r": run_id}).fetchall()
    assert {m[0]: len(m[1]) for m in mixes} == ok_tracks
    for _, _, muxed_uri, lufs, peak in mixes:
        assert peak <= -0.99 and lufs <= -19.95
        with av.open(io.BytesIO(root.read_bytes(key_of(root, muxed_uri)))) as c:
            assert [s.type for s in c.streams] == ["video", "audio"]  # the mix only (stems_in_video off)
            assert c.streams.audio[0].codec_context.name == "aac"


def test_spectrograms_per_track_and_per_mix(run):
    root, con, run_id = run
    for video_id, track_id, version in con.sql("SELECT video_id, track_id, version FROM tracks WHERE run_id = $r",
                                               params={"r": run_id}).fetchall():
        assert root.read_bytes(keys.spectrogram_key(run_id, video_id, version, track_id))[:4] == b"\x89PNG"
    for (video_id,) in con.sql("SELECT video_id FROM mixes WHERE run_id = $r", params={"r": run_id}).fetchall():
        assert root.read_bytes(keys.spectrogram_key(run_id, video_id, 1))[:4] == b"\x89PNG"


def test_metrics_per_track_and_per_mix(run):
    _, con, run_id = run
    per = dict(con.sql("SELECT metric, count(*) FROM metrics WHERE run_id = $r AND track_id IS NOT NULL GROUP BY 1",
                       params={"r": run_id}).fetchall())
    assert per["duration_s"] == per["generation_s"] == per["true_peak_db"] == per["limiter_gain_db"] == 7
    mix = dict(con.sql("SELECT metric, count(*) FROM metrics WHERE run_id = $r AND track_id IS NULL GROUP BY 1",
                       params={"r": run_id}).fetchall())
    assert mix == {"lufs": 4, "true_peak_db": 4, "duration_s": 4, "limiter_gain_db": 4}


def test_runs_row_records_parameters_and_the_order_fallback(run, catalog):
    _, con, run_id = run
    status, n_videos, n_failed, params_json = con.sql(
        "SELECT status, n_videos, n_failed, params_json FROM runs WHERE run_id = $r", params={"r": run_id}).fetchall()[0]
    record = json.loads(params_json)
    assert (status, n_videos, n_failed) == ("completed", 18, 14)
    assert record["params"]["steps"] == 2 and record["params"]["manifest_uri"] == catalog["manifest"]
    assert record["resolved"] == {"order": "given"}  # no scorer in the random model


def test_storage_is_consistent_and_keys_are_safe(run, check_run_storage):
    root, _, run_id = run
    check_run_storage(root, run_id)
    for key in root.list():
        assert key.isascii() and ".." not in key.split("/")
    assert not tables.table_files(root, "tracks", run_id).parts  # compacted at the end of the run


def test_a_rerun_skips_finished_videos_and_retries_failed_ones(catalog, run, h, check_run_storage):
    root, _, run_id = run
    before = {k: root.fs.info(root.path(k))["mtime"] for k in root.list("runs")}
    done = []
    with on_video_done(lambda: done.append(1)):  # what moves the CLI's progress bar
        result = catalog_run(catalog["manifest"], storage_url=catalog["storage_url"], run_id=run_id, model=h.MODEL,
                             duration=h.DURATION, steps=h.STEPS)
    assert (result["n_skipped"], result["n_ok"], result["n_failed"]) == (4, 4, 14)
    assert len(done) == 4 + 14  # once per manifest row: 4 skipped (finished ok), 14 failed ones retried
    assert {k: root.fs.info(root.path(k))["mtime"] for k in root.list("runs")} == before  # nothing regenerated
    check_run_storage(root, run_id)


def test_a_rerun_with_other_settings_is_refused(catalog, h):
    from tasks.run_log import RunConflict

    with pytest.raises(RunConflict, match="steps: 2 -> 3"):
        catalog_run(catalog["manifest"], storage_url=catalog["storage_url"], run_id=catalog["run_id"], model=h.MODEL,
                    duration=h.DURATION, steps=3)
