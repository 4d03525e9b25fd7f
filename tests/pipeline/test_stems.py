"""Stored stems turned back into generator context (pipeline.stems.context_tracks)."""
from __future__ import annotations

import uuid

import numpy as np
import pytest

from pipeline.objects import write_audio
from pipeline.params import AudioOutput
from pipeline.stems import context_tracks
from storage.root import open_root


@pytest.fixture
def root():
    """A fresh memory:// storage root."""
    r = open_root(f"memory://test-{uuid.uuid4().hex[:8]}")
    yield r
    if r.fs.exists(r.base):
        r.fs.rm(r.base, recursive=True)


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
