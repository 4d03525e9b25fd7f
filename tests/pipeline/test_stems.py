"""Stored stems turned back into generator context (pipeline.stems.context_tracks)."""
from __future__ import annotations


import numpy as np
import pytest

from pipeline.objects import write_audio
from pipeline.params import AudioOutput
from pipeline.stems import context_tracks


def test_context_tracks_are_mono_float32_at_the_model_rate_with_their_gain_undone(root):
    left, right = np.full(1600, 0.2, np.float32), np.full(1600, 0.4, np.float32)
    stereo = write_audio(root, "s.wav", np.stack([left, right]), 16000, AudioOutput("wav", 24))
    at48k = write_audio(root, "m.wav", left, 16000, AudioOutput("wav", 24, resample_48k=True))
    rows = [{**stereo, "caption": "A fan hums.", "seed": 7, "gain_db": 6.0},
            {**at48k, "caption": "A lamp beeps.", "seed": 8, "gain_db": None}]  # a row from before gain_db
    a, b = context_tracks(root, rows, 16000)
    assert (a.caption, a.seed, a.sample_rate, b.caption, b.seed, b.sample_rate) == (
        "A fan hums.", 7, 16000, "A lamp beeps.", 8, 16000)
    assert a.waveform.dtype == b.waveform.dtype == np.float32 and a.waveform.shape == b.waveform.shape == (1600,)
    assert np.allclose(a.waveform, 0.3 * 10 ** (6 / 20), atol=1e-4)  # the channels' mean, 6 dB up
    assert np.allclose(b.waveform[200:-200], 0.2, atol=2e-3)  # no gain; back at 16 kHz


def test_a_stem_is_stored_at_the_ceiling_or_the_target_and_reports_what_the_ceiling_took(root):
    from audio.loudness import integrated_loudness, peak_limit_gain_db, true_peak_db
    from pipeline.stems import deliverable, store_stem

    sr = 16000
    loud = (np.sin(np.linspace(0, 200, sr)) * 0.01).astype(np.float32)
    loud[::1600] = 3.0  # clicks far above a quiet bed: ceiling-bound, its true peak sets the gain
    out, gain = deliverable(loud, sr)
    assert out.dtype == np.float32 and true_peak_db(out, sr) == pytest.approx(-1.0, abs=0.01)
    quiet = (np.sin(np.linspace(0, 200, sr)) * 0.01).astype(np.float32)  # loudness-bound: raised to -20 LUFS
    out, gain = deliverable(quiet, sr)
    assert out.dtype == np.float32 and gain > 0 and integrated_loudness(out, sr) == pytest.approx(-20.0, abs=0.05)
    gated = (np.sin(np.linspace(0, 200, sr)) * 2e-4).astype(np.float32)  # under the -70 LUFS gate: left as it is
    out, gain = deliverable(gated, sr)
    assert gain == 0.0 and np.array_equal(out, gated)
    row = store_stem(root, "t.flac", loud, sr, AudioOutput())
    assert row["limiter_gain_db"] == peak_limit_gain_db(loud, sr, -1.0) < -10
    assert row["gain_db"] == -deliverable(loud, sr)[1]
    assert store_stem(root, "q.flac", quiet, sr, AudioOutput())["limiter_gain_db"] == 0.0
