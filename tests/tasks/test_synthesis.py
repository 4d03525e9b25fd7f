"""Step-by-step synthesis as a plain function: stems in storage, rows that fit the schema, determinism."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from pipeline.edit_plan import NewTrack
from pipeline.handoffs import OrderedCaptions
from media.audio_io import audio_from_bytes
from audio.loudness import true_peak_db
from nag_model.generator import StepByStepGenerator
from storage import keys, tables
from pipeline.objects import key_of
from pipeline.params import AudioOutput, TrackSettings
from pipeline.videos import describe_video
from pipeline.stems import deliverable
from pipeline.tracks import track_id_for, track_seed
from tasks.synthesis import synthesize_track, synthesize_tracks

SYN = TrackSettings(steps=2)
ORDERED = OrderedCaptions(("A fan hums.", "A lamp beeps."), None, "given", "given")


@pytest.fixture(scope="module")
def video(h, demo_video):
    return describe_video(demo_video, h.MODEL, h.DURATION)


def run(root, video, h, run_id="r", video_id="v"):
    return synthesize_tracks.fn(root.url, run_id, video_id, video, ORDERED, h.MODEL, h.DURATION, SYN, AudioOutput(), 0,
                                gpu_slot_name=None)


def test_seeds_are_deterministic_and_distinct():
    digest = hashlib.sha256(b"track-seed\x000\x00v\x00t0\x001").digest()
    assert track_seed(0, "v", "t0") == track_seed(0, "v", "t0", 1) == int.from_bytes(digest[:8], "little") % 2**63
    assert any(track_seed(0, "v", f"t{k}") % 2 for k in range(8))  # every bit of the 63 can be set
    seeds = {track_seed(s, v, t, n) for s in (0, 1) for v in ("v", "w") for t in ("t0", "t1") for n in (1, 2)}
    assert len(seeds) == 16 and all(0 <= s < 2**63 for s in seeds)


def test_tracks_are_stored_as_stems_with_rows(root, video, h):
    rows = run(root, video, h)
    assert [r["track_id"] for r in rows] == ["t0", "t1"] and [r["position"] for r in rows] == [0, 1]
    assert [r["caption"] for r in rows] == list(ORDERED.captions)
    assert all(r["run_id"] == "r" and r["video_id"] == "v" and r["version"] == 1 for r in rows)
    for row in rows:
        data = root.read_bytes(key_of(root, row["uri"]))
        assert key_of(root, row["uri"]) == keys.track_key("r", "v", row["track_id"], 1, "flac")
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        wav, rate = audio_from_bytes(data)
        assert rate == row["sample_rate"] == 16000 and len(wav) / rate == pytest.approx(row["duration_s"])
        assert true_peak_db(wav, rate) <= -0.9  # held under the ceiling, never clipped
        assert row["seed"] == track_seed(0, "v", row["track_id"]) and row["method"] == "nag" and row["beta"] == 1.5
        assert row["generation_s"] > 0
    tables.to_arrow("tracks", "r", [{k: v for k, v in r.items() if k in tables.schema("tracks").names} for r in rows])


def test_a_rerun_writes_the_same_stems_at_the_same_keys(root, video, h):
    first = run(root, video, h)
    second = run(root, video, h)
    assert [(r["uri"], r["sha256"]) for r in first] == [(r["uri"], r["sha256"]) for r in second]


def test_independent_rows_leave_beta_null_and_48k_wav_delivery(root, video, h):
    syn = TrackSettings(method="independent", steps=2)
    rows = synthesize_tracks.fn(root.url, "r", "v", video, ORDERED, h.MODEL, h.DURATION, syn,
                                AudioOutput("wav", 24, resample_48k=True), 0, gpu_slot_name=None)
    assert rows[0]["beta"] is None and rows[0]["method"] == "independent"
    assert rows[0]["uri"].endswith(".wav") and rows[0]["sample_rate"] == 48000
    assert rows[0]["duration_s"] == pytest.approx(video.covered_s, abs=1e-3)  # the whole video, windows joined


def test_one_track_against_others_is_the_edit_step(root, video, h):
    rows = run(root, video, h)
    new = synthesize_track.fn(root.url, "r", "v", video, NewTrack("t2", 1, None, 2, "A door knocks.", 5), rows,
                              model=h.MODEL, duration=h.DURATION, synthesis=SYN, output=AudioOutput(),
                              gpu_slot_name=None)
    assert new["track_id"] == "t2" and new["seed"] == 5 and new["position"] == 2
    assert root.exists(key_of(root, new["uri"]))
    redo = synthesize_track.fn(root.url, "r", "v", video, NewTrack("t0", 2, 1, 0, "A fan hums.", 9), rows[1:],
                               model=h.MODEL, duration=h.DURATION, synthesis=SYN, output=AudioOutput(),
                               gpu_slot_name=None)
    assert redo["version"] == 2 and redo["supersedes"] == 1 and redo["uri"] != rows[0]["uri"]


@pytest.mark.parametrize("output, tolerance", [
    (AudioOutput(), 2.0 ** -15),  # 16-bit FLAC: half a quantisation step (at the stored level), max abs error
    (AudioOutput("wav", 24, resample_48k=True), 5e-2),  # 16k -> 48k -> 16k (drops energy near 8 kHz): relative RMS
], ids=["flac16", "wav24-48k"])
def test_an_edit_rebuilds_the_context_the_model_made_from_the_stored_stems(root, video, h, monkeypatch, output, tolerance):
    """The stems are stored with one static gain (toward -20 LUFS, under the -1 dBTP ceiling); the NAG context of
    an edit must be the tracks as the model made them (that gain undone, model rate), not the stored stems."""
    made, contexts = [], []
    generate_track = StepByStepGenerator.generate_track

    def spy(self, video, caption, seed, settings=TrackSettings(), context=()):
        contexts.append([t.waveform.copy() for t in context])
        track = generate_track(self, video, caption, seed, settings, context)
        made.append(track.waveform.copy())
        return track

    generate_videos = StepByStepGenerator.generate_videos

    def spy_videos(self, jobs, on_track=None):  # the catalog's syntheses go through the batcher
        out = generate_videos(self, jobs, on_track=on_track)
        made.extend(t.waveform.copy() for tracks in out for t in tracks)
        return out

    monkeypatch.setattr(StepByStepGenerator, "generate_track", spy)
    monkeypatch.setattr(StepByStepGenerator, "generate_videos", spy_videos)
    rows = synthesize_tracks.fn(root.url, "r", "v", video, ORDERED, h.MODEL, h.DURATION, SYN, output, 0,
                                gpu_slot_name=None)
    gains = [r["gain_db"] for r in rows]  # what undoes each stem's storage gain
    assert all(abs(g) > 3 for g in gains) and abs(gains[0] - gains[1]) > 1  # stored at other levels, by other gains
    synthesize_track.fn(root.url, "r", "v", video, NewTrack("t2", 1, None, 2, "A door knocks.", 5), rows,
                        model=h.MODEL, duration=h.DURATION, synthesis=SYN, output=output, gpu_slot_name=None)
    n = round(min(video.covered_s, h.DURATION) * 16000)
    assert len(contexts[-1]) == 2
    for got, want, gain in zip(contexts[-1], made[:2], gains):
        want = want[:n]
        assert got.shape == want.shape
        if output.resample_48k:
            assert np.linalg.norm(got - want) / np.linalg.norm(want) < tolerance
            assert float(got @ want / (want @ want)) == pytest.approx(1.0, abs=tolerance)  # the level is the model's
        else:
            assert np.abs(got - want).max() <= tolerance * 10 ** (gain / 20)


def test_a_stem_is_stored_with_one_static_gain_toward_the_target_under_the_ceiling():
    quiet = np.full(1600, 0.1, np.float32)
    out, gain = deliverable(quiet, 16000)
    assert gain > 10 and true_peak_db(out, 16000) <= -1.0  # raised: no 16-bit resolution wasted
    assert deliverable(np.zeros(1600, np.float32), 16000)[1] == 0.0  # silence stays
    loud = np.sin(np.linspace(0, 200, 16000)).astype(np.float32) * 3
    out, gain = deliverable(loud, 16000)
    assert gain < -10 and true_peak_db(out, 16000) <= -1.0
    assert np.allclose(out, loud * 10 ** (gain / 20), atol=1e-5)  # one static gain: the shape is kept
    assert track_id_for(3) == "t3"

