"""Mixing (mix file, muxed video, spectrograms) and the metric rows, with and without an evaluator."""
from __future__ import annotations

import dataclasses

import av
import numpy as np
import pytest

from pipeline.handoffs import OrderedCaptions
from media.audio_io import audio_from_bytes
from audio.loudness import integrated_loudness, true_peak_db
from storage import keys, tables
from tasks.mixing import mix_video
from pipeline.objects import key_of
from pipeline.params import AudioOutput
from pipeline.metrics import evaluator_metrics, level_metrics
from tasks.scoring import score_video

ORDERED = OrderedCaptions(("A motor hums steadily.", "A lamp beeps softly.", "Rain falls."), (3.0, 2.0, 1.0),
                          "descending", "descending")


@pytest.fixture(scope="module")
def made(h, demo_video):
    """Three stems of the demo video in a memory root, shared by this module's tests (read only)."""
    return h.demo_stems("memory://mixing-module", ORDERED, demo_video)


def test_mix_file_muxed_video_and_spectrograms(made, h):
    root, video, tracks = made
    mix = mix_video.fn(root.url, "r", "v", video, tracks, AudioOutput(stems_in_video=True))
    assert mix["track_ids"] == ["t0", "t1", "t2"] and mix["version"] == 1 and mix["supersedes"] is None
    assert mix["track_versions"] == [1, 1, 1] and mix["limiter_gain_db"] <= 0.0
    wav, rate = audio_from_bytes(root.read_bytes(key_of(root, mix["uri"])))
    assert integrated_loudness(wav, rate) == pytest.approx(mix["lufs"], abs=0.05)
    assert mix["lufs"] == pytest.approx(-20.0, abs=0.1) and true_peak_db(wav, rate) <= -0.99  # the limiter holds both
    muxed = root.read_bytes(key_of(root, mix["muxed_uri"]))
    with av.open(__import__("io").BytesIO(muxed)) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 1 + 3  # the mix, then one stream per stem
        assert c.streams.video[0].codec_context.name == "h264"
    for t in tracks:
        assert root.read_bytes(keys.spectrogram_key("r", "v", 1, t["track_id"]))[:8] == b"\x89PNG\r\n\x1a\n"
    assert root.read_bytes(keys.spectrogram_key("r", "v", 1))[:4] == b"\x89PNG"
    tables.to_arrow("mixes", "r", [{k: v for k, v in mix.items() if k in tables.schema("mixes").names}])


def test_a_mix_version_keeps_track_pictures_and_adds_its_own(made):
    root, video, tracks = made
    before = root.fs.info(root.path(keys.spectrogram_key("r", "v", 1, "t0")))
    mix = mix_video.fn(root.url, "r", "v", video, tracks[:2], AudioOutput(), version=2, supersedes=1)
    assert mix["supersedes"] == 1 and root.exists(keys.mix_key("r", "v", 2))
    assert root.exists(keys.spectrogram_key("r", "v", 2))
    assert root.fs.info(root.path(keys.spectrogram_key("r", "v", 1, "t0"))) == before  # not redrawn


def test_level_metrics_of_silence_skip_loudness():
    names = [r["metric"] for r in level_metrics(np.zeros(16000, np.float32), 16000, "t0", 1)]
    assert names == ["duration_s"]  # -inf LUFS and dBTP are not stored


def test_score_rows_without_an_evaluator(made, h):
    root, video, tracks = made
    mix = mix_video.fn(root.url, "r", "v", video, tracks, AudioOutput())
    rows = score_video.fn(root.url, "r", "v", tracks, mix, h.MODEL, h.DURATION, ORDERED)
    per_track = {(r["track_id"], r["metric"]) for r in rows if r["track_id"]}
    assert {("t0", m) for m in ("lufs", "true_peak_db", "duration_s", "generation_s", "limiter_gain_db")} <= per_track
    assert not any(r["metric"] == "caption_score" for r in rows)  # the random model has no scorer
    assert {r["metric"] for r in rows if r["track_id"] is None} == {"lufs", "true_peak_db", "duration_s",
                                                                     "limiter_gain_db"}
    tables.to_arrow("metrics", "r", rows)


def test_evaluator_metrics_follow_the_protocol(made, h, evaluated_model):
    root, video, tracks = made
    mix = mix_video.fn(root.url, "r", "v", video, tracks, AudioOutput())
    rows = score_video.fn(root.url, "r", "v", tracks, mix, evaluated_model, h.DURATION, ORDERED,
                          score_track_ids=["t1"])
    got = {(r["track_id"], r["metric"]): r for r in rows}
    assert ("t1", "ta_similarity") in got and ("t0", "ta_similarity") not in got  # only the new track
    assert got[("t1", "caption_score")]["value"] == 2.0 and got[("t1", "caption_score")]["model"] == "stub-scorer"
    assert got[("t1", "target_presence")]["model"] == "stub-evaluator"  # "beeps" names the label "high"
    assert ("t2", "target_presence") not in got
    assert -1 <= got[(None, "aa_similarity_mean")]["value"] <= got[(None, "aa_similarity_max")]["value"] <= 1


def test_identical_tracks_are_not_separable(h):
    wav = np.sin(np.arange(16000) / 5.0).astype(np.float32)
    rows = evaluator_metrics(h.StubEvaluator(), [wav, wav], 16000, ["a hum", "a hum"], ["t0", "t1"], [1, 1],
                             {"t0", "t1"}, 1)
    mean = next(r for r in rows if r["metric"] == "aa_similarity_mean")
    assert mean["value"] == pytest.approx(1.0) and mean["track_id"] is None


def test_the_mix_sums_the_tracks_as_generated_not_as_limited(root, demo_video):
    """A stem stored at another level (quiet ones raised toward -20 LUFS, hot ones 20 dB down under their
    ceiling) still weighs in the mix as the model made it."""
    from media.mix import mix_tracks
    from pipeline.stems import store_stem as _store

    t = np.arange(32000) / 16000
    quiet = (0.05 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    hot = (8.0 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)  # far above full scale, as raw outputs can be
    out = AudioOutput(bit_depth=24)
    rows = []
    for k, wav in enumerate((quiet, hot)):
        stored = _store(root, keys.track_key("r", "v", f"t{k}", 1, "flac"), wav, 16000, out)
        rows.append({"track_id": f"t{k}", "version": 1, "caption": f"c{k}", **stored})
    assert rows[0]["limiter_gain_db"] == 0.0 and rows[1]["limiter_gain_db"] < -18
    for row, wav in zip(rows, (quiet, hot)):  # gain_db, the tracks column, undoes the storage gain
        stored, _ = audio_from_bytes(root.read_bytes(key_of(root, row["uri"])))
        np.testing.assert_allclose(stored * 10 ** (row["gain_db"] / 20), wav, atol=1e-3 * np.abs(wav).max())
    assert rows[0]["gain_db"] < -5  # the quiet stem was raised for storage (no 16-bit resolution wasted)
    mix = mix_video.fn(root.url, "r", "v", demo_video, rows, out)
    got, _ = audio_from_bytes(root.read_bytes(key_of(root, mix["uri"])))
    expected, _ = mix_tracks([quiet, hot], 16000, ceiling_db=-1.0)
    assert np.abs(got - expected).max() < 1e-3


def test_caption_scores_from_imagebind_are_stored_for_a_model_without_a_scorer(made, h):
    root, video, tracks = made
    mix = mix_video.fn(root.url, "r", "v", video, tracks, AudioOutput())
    ordered = dataclasses.replace(ORDERED, scorer="imagebind-huge")
    rows = score_video.fn(root.url, "r", "v", tracks, mix, h.MODEL, h.DURATION, ordered)
    got = sorted((r["track_id"], r["value"], r["model"]) for r in rows if r["metric"] == "caption_score")
    assert got == [("t0", 3.0, "imagebind-huge"), ("t1", 2.0, "imagebind-huge"), ("t2", 1.0, "imagebind-huge")]
