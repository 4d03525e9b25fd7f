"""Loudness helpers against closed-form answers.

A full-scale 1 kHz sine reads -3.01 LUFS in BS.1770 (the -0.691 dB term cancels the K-filter gain at
1 kHz), so a sine of amplitude A reads 20*log10(A) - 3.01 LUFS; its sample peak is A.
"""
import math

import numpy as np
import pytest

from audio.loudness import (
    as_float_audio,
    peak_limit_gain_db,
    integrated_loudness,
    scale_under_true_peak,
    normalize_loudness,
    true_peak_db,
)

SR = 16_000


def sine(amplitude: float, seconds: float, freq: float = 1000.0, sr: int = SR) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def expected_lufs(amplitude: float) -> float:
    return 20 * math.log10(amplitude) - 3.01


@pytest.mark.parametrize("sr", [16_000, 44_100, 48_000])
@pytest.mark.parametrize("amplitude", [0.05, 0.1, 0.5])
def test_sine_has_closed_form_loudness(sr, amplitude):
    assert integrated_loudness(sine(amplitude, 3.0, sr=sr), sr) == pytest.approx(expected_lufs(amplitude), abs=0.1)


def test_stereo_sine_is_3_db_louder_than_mono():
    x = sine(0.1, 3.0)
    stereo = np.stack([x, x])  # (channels, samples)
    assert integrated_loudness(stereo, SR) == pytest.approx(expected_lufs(0.1) + 3.01, abs=0.1)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("target", [-20.0, -14.0, -30.0])
def test_normalize_reaches_target(target):
    x = sine(0.02, 4.0)
    y = normalize_loudness(x, SR, target)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert integrated_loudness(y, SR) == pytest.approx(target, abs=0.1)
    # A pure gain: the ratio to the input is constant and equals the closed-form gain.
    gain = 10 ** ((target - integrated_loudness(x, SR)) / 20)
    np.testing.assert_allclose(y, x * gain, rtol=1e-5, atol=1e-7)


def test_normalize_stereo_keeps_channel_balance():
    x = np.stack([sine(0.1, 3.0), sine(0.05, 3.0)])
    y = normalize_loudness(x, SR)
    assert integrated_loudness(y, SR) == pytest.approx(-20.0, abs=0.1)
    assert np.max(np.abs(y[0])) / np.max(np.abs(y[1])) == pytest.approx(2.0, rel=1e-4)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("shape", [(SR * 2,), (2, SR * 2), (SR // 10,), (0,)])
def test_silence_stays_silent(shape):
    x = np.zeros(shape, np.float32)
    assert integrated_loudness(x, SR) == -math.inf
    y = normalize_loudness(x, SR)
    assert y.shape == x.shape and not np.any(y) and np.isfinite(y).all()
    assert y is not x
    assert true_peak_db(x, SR) == -math.inf
    assert not np.any(scale_under_true_peak(x, SR))


@pytest.mark.filterwarnings("error")
def test_below_absolute_gate_is_returned_unchanged():
    x = sine(2e-4, 2.0)  # about -77 LUFS, under the -70 LUFS gate
    assert integrated_loudness(x, SR) == -math.inf
    np.testing.assert_array_equal(normalize_loudness(x, SR), x)


@pytest.mark.filterwarnings("error")
def test_clip_shorter_than_one_block_is_measured_and_normalised():
    x = sine(0.1, 0.3)  # 0.3 s: pyloudnorm alone raises for < 0.4 s
    assert integrated_loudness(x, SR) == pytest.approx(expected_lufs(0.1), abs=0.1)
    y = normalize_loudness(x, SR)
    assert y.shape == x.shape
    assert integrated_loudness(y, SR) == pytest.approx(-20.0, abs=0.1)
    # a single sample and a very short stereo clip do not raise either
    assert math.isfinite(integrated_loudness(np.stack([x[:80], x[:80]]), SR))
    normalize_loudness(x[:1], SR)
    assert math.isfinite(integrated_loudness(np.array([0.5], np.float32), SR))  # one sample is measured too
    # a short (1, samples) clip is looped in time only: it reads as the same clip without the channel axis
    assert integrated_loudness(x[None], SR) == integrated_loudness(x, SR)


def test_int16_is_converted():
    x = sine(0.1, 2.0)
    pcm = np.round(x * 32768).astype(np.int16)
    y = normalize_loudness(pcm, SR)
    assert y.dtype == np.float32
    assert integrated_loudness(pcm, SR) == pytest.approx(integrated_loudness(x, SR), abs=0.01)
    assert integrated_loudness(y, SR) == pytest.approx(-20.0, abs=0.1)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_raises(bad):
    x = sine(0.1, 1.0)
    x[100] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        normalize_loudness(x, SR)
    with pytest.raises(ValueError, match="NaN or infinite"):
        integrated_loudness(x, SR)


def test_bad_shapes_raise_with_the_shape():
    with pytest.raises(ValueError, match=r"\(32000, 2\)"):
        integrated_loudness(np.zeros((SR * 2, 2), np.float32), SR)  # (samples, channels) by mistake
    with pytest.raises(ValueError, match="shape"):
        integrated_loudness(np.zeros((1, 2, 3), np.float32), SR)


def test_input_is_not_modified():
    x = sine(0.1, 1.0)
    before = x.copy()
    normalize_loudness(x, SR)
    scale_under_true_peak(x * 10, SR)
    np.testing.assert_array_equal(x, before)


def test_true_peak_of_sine_and_of_intersample_peak():
    assert true_peak_db(sine(0.5, 1.0), SR) == pytest.approx(20 * math.log10(0.5), abs=0.05)
    # fs/4 sine at 45 degrees phase: every sample is at 0.707*A, the true peak is A (+3.01 dB above samples)
    # (faded in and out: an abrupt start overshoots by ~0.1 dB when reconstructed, which is real but not closed-form)
    n = np.arange(SR)
    fade = np.minimum(1.0, np.minimum(n, n[::-1]) / 2000.0)
    x = (np.sin(np.pi / 2 * n + np.pi / 4) * fade).astype(np.float32)
    assert 20 * math.log10(np.max(np.abs(x))) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_db(x, SR) == pytest.approx(0.0, abs=0.05)
    # oversample=1 is the sample peak; a single sample has no neighbours to interpolate between
    assert true_peak_db(x, SR, oversample=1) == 20 * math.log10(float(np.max(np.abs(x.astype(np.float64)))))
    assert true_peak_db(np.array([0.5]), SR) == 20 * math.log10(0.5)
    assert true_peak_db(np.array([0.5, 0.5]), SR) > 20 * math.log10(0.5) + 1.0  # two samples are interpolated
    # 2x oversampling finds this peak halfway between samples; each channel of a stereo pair is oversampled in time
    assert true_peak_db(x, SR, oversample=2) == pytest.approx(0.0, abs=0.05)
    assert true_peak_db(np.stack([x, x * np.float32(0.5)]), SR) == pytest.approx(0.0, abs=0.05)
    # at pi/8 the peak lies a quarter of a sample off the grid: 4x finds it, 2x does not
    quarter = (np.sin(np.pi / 2 * n + np.pi / 8) * fade).astype(np.float32)
    assert true_peak_db(quarter, SR, oversample=2) == pytest.approx(-0.69, abs=0.05)
    assert true_peak_db(quarter, SR) == pytest.approx(0.0, abs=0.05)
    with pytest.raises(ValueError, match=r"^oversample must be >= 1; got 0$"):
        true_peak_db(x, SR, oversample=0)


@pytest.mark.parametrize("ceiling", [-1.0, -3.0, -0.1])
def test_limit_true_peak_meets_ceiling(ceiling):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(SR) * 0.5).astype(np.float32)  # peaks well above 0 dBFS
    n = np.arange(SR)
    x[:4000] += 1.2 * np.sin(np.pi / 2 * n[:4000] + np.pi / 4).astype(np.float32)
    assert true_peak_db(x, SR) > ceiling
    y = scale_under_true_peak(x, SR, ceiling)
    assert true_peak_db(y, SR) <= ceiling
    assert true_peak_db(y, SR) == pytest.approx(ceiling, abs=0.01)
    # a static gain: loudness drops by exactly the gain applied
    gain_db = 20 * math.log10(np.max(np.abs(y)) / np.max(np.abs(x)))
    assert integrated_loudness(y, SR) - integrated_loudness(x, SR) == pytest.approx(gain_db, abs=0.01)


def test_limit_true_peak_leaves_quiet_audio_unchanged():
    x = sine(0.1, 1.0)
    np.testing.assert_array_equal(scale_under_true_peak(x, SR, -1.0), x)
    at = true_peak_db(x, SR)  # a true peak exactly at the ceiling needs no gain; above it, the gap and the margin
    assert peak_limit_gain_db(x, SR, at) == 0.0 and peak_limit_gain_db(x, SR, at - 2.0) == pytest.approx(-2.001, abs=1e-12)


def test_rates_layouts_and_pcm_are_checked_exactly():
    x = sine(0.1, 1.0)
    for rate in (0, -16000, None):
        with pytest.raises(ValueError, match=rf"^sample_rate must be positive; got {rate}$"):
            true_peak_db(x, rate)
    assert true_peak_db(x, 1) == true_peak_db(x, SR)  # any positive rate: the measure is relative to the grid
    assert math.isfinite(integrated_loudness(np.stack([x] * 5), SR))  # L, R, C, Ls, Rs: five channels are fine
    with pytest.raises(ValueError, match=r"^audio must be numeric PCM or float samples, not bool$"):
        as_float_audio(np.ones(4, bool))
    with pytest.raises(ValueError, match=r"^audio must be integer PCM or floating point; got dtype complex128$"):
        as_float_audio(np.ones(4, complex))
    with pytest.raises(ValueError, match=r"^audio contains 3 NaN or infinite sample\(s\); refusing to measure or scale it$"):
        as_float_audio(np.array([0.1, np.nan, 0.2, np.inf, -np.inf]))
    u8 = as_float_audio(np.array([0, 64, 128, 255], np.uint8))  # unsigned PCM: 128 is the zero line
    assert u8.dtype == np.float32 and u8.tolist() == [-1.0, -0.5, 0.0, 127 / 128]
    u16 = as_float_audio(np.array([0, 32768, 65535], np.uint16))
    assert u16.tolist() == [-1.0, 0.0, np.float32(32767 / 32768)]
