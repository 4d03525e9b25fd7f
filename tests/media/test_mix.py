"""The paper's mix (sum, then -20 LUFS) with the production safeguards."""
from __future__ import annotations

import math

import numpy as np
import pytest

from media.mix import mix_tracks
from nag_model.loudness import integrated_loudness, true_peak_db

SR = 16_000


def tone(freq: float, seconds: float, amplitude: float) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(round(seconds * SR)) / SR)).astype(np.float32)


@pytest.mark.filterwarnings("error")
def test_mix_is_sum_normalised_to_minus_20_lufs():
    a, b = tone(440, 8, 0.05), tone(1500, 8, 0.02)
    mix, report = mix_tracks([a, b], SR)
    assert mix.shape == a.shape and mix.dtype == np.float32
    assert integrated_loudness(mix, SR) == pytest.approx(-20.0, abs=0.1)
    assert report.lufs == pytest.approx(-20.0, abs=0.1) and not report.limited
    # it is the plain sum scaled by one gain (paper), and the reported gain is that gain
    np.testing.assert_allclose(mix, (a + b) * 10 ** (report.gain_db / 20), rtol=1e-5, atol=1e-7)
    assert report.gain_db == pytest.approx(-20.0 - integrated_loudness(a + b, SR), abs=1e-6)


def test_per_track_gains_change_the_balance():
    a, b = tone(440, 4, 0.1), tone(1500, 4, 0.1)
    mix, _ = mix_tracks([a, b], SR, gains_db=[0.0, -20.0])
    spectrum = np.abs(np.fft.rfft(mix))
    freqs = np.fft.rfftfreq(len(mix), 1 / SR)
    ratio = spectrum[np.argmin(np.abs(freqs - 1500))] / spectrum[np.argmin(np.abs(freqs - 440))]
    assert ratio == pytest.approx(0.1, rel=0.01)
    with pytest.raises(ValueError, match="one finite gain per track"):
        mix_tracks([a, b], SR, gains_db=[0.0])


@pytest.mark.filterwarnings("error")
def test_loud_peaky_mix_is_limited_to_the_ceiling():
    rng = np.random.default_rng(0)
    clicks = np.zeros(SR * 4, np.float32)
    clicks[rng.integers(0, len(clicks), 20)] = 1.0  # sparse clicks: low loudness, high peaks
    mix, report = mix_tracks([clicks, tone(200, 4, 0.001)], SR, target_lufs=-14.0, ceiling_db=-1.0)
    assert report.limited and report.limiter_gain_db < 0
    assert true_peak_db(mix, SR) <= -1.0 and report.true_peak_db <= -1.0
    assert report.lufs == pytest.approx(-14.0 + report.limiter_gain_db, abs=0.1)  # static gain: loudness drops
    # without the ceiling the same mix would clip
    unlimited, raw = mix_tracks([clicks, tone(200, 4, 0.001)], SR, target_lufs=-14.0, ceiling_db=None)
    assert raw.true_peak_db > 0.0 and np.max(np.abs(unlimited)) > 1.0


@pytest.mark.filterwarnings("error")
def test_silent_tracks_mix_to_zeros():
    mix, report = mix_tracks([np.zeros(SR * 2, np.float32), np.zeros(SR, np.float32)], SR)
    assert mix.shape == (SR * 2,) and not np.any(mix) and np.isfinite(mix).all()
    assert report.lufs == -math.inf and report.true_peak_db == -math.inf and report.gain_db == 0.0


@pytest.mark.filterwarnings("error")
def test_short_and_uneven_tracks():
    mix, report = mix_tracks([tone(1000, 0.3, 0.1), tone(1000, 0.2, 0.1)], SR)  # both under one 0.4 s block
    assert mix.shape == (round(0.3 * SR),)
    assert np.isfinite(mix).all() and report.lufs == pytest.approx(-20.0, abs=0.1)
    cut = round(0.2 * SR)  # the shorter track is zero-padded: twice the amplitude before 0.2 s, once after
    assert np.max(np.abs(mix[:cut])) / np.max(np.abs(mix[cut:])) == pytest.approx(2.0, rel=1e-3)


def test_stereo_tracks_and_layout_mismatch():
    st = np.stack([tone(440, 3, 0.1), tone(660, 3, 0.1)])
    mix, report = mix_tracks([st, st * 0.5], SR)
    assert mix.shape == st.shape and report.lufs == pytest.approx(-20.0, abs=0.1)
    with pytest.raises(ValueError, match="same layout"):
        mix_tracks([st, tone(440, 3, 0.1)], SR)
    with pytest.raises(ValueError, match="at least one"):
        mix_tracks([], SR)
    with pytest.raises(ValueError, match="NaN"):
        mix_tracks([np.full(SR, np.nan, np.float32)], SR)
