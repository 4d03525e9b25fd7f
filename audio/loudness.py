"""Loudness normalisation and true-peak limiting for condition audio and mixes.

The NAG paper builds the condition audio of step k as ``normalize(sum_{l<k} x^(l))`` and the composite
as ``normalize(sum_k x^(k))``, where ``normalize`` is pyloudnorm's ITU-R BS.1770-4 integrated loudness
normalisation to -20 LUFS (section 5.1). pyloudnorm alone is unsafe on real data: silence gives an
all-NaN result, clips shorter than one 0.4 s gating block raise, integer input raises, NaN input is
measured as -inf silently, and gains are applied without any peak control. The functions here keep
pyloudnorm's measurement and formula and close those holes.

Audio layout: a 1-D array ``(samples,)`` or a 2-D array ``(channels, samples)`` with at most five
channels in BS.1770 order (L, R, C, Ls, Rs). Float inputs keep their dtype; integer PCM inputs are
scaled to [-1, 1) and returned as float32. Inputs are never modified in place.
"""
from __future__ import annotations

import math

import numpy as np
import pyloudnorm
from scipy.signal import resample_poly

__all__ = [
    "BLOCK_SECONDS",
    "ABSOLUTE_GATE_LUFS",
    "DEFAULT_TARGET_LUFS",
    "as_float_audio",
    "integrated_loudness",
    "normalize_loudness",
    "true_peak_db",
    "peak_limit_gain_db",
    "scale_under_true_peak",
]

BLOCK_SECONDS = 0.4  # BS.1770-4 gating block length (pyloudnorm's default block_size)
ABSOLUTE_GATE_LUFS = -70.0  # BS.1770-4 absolute gate
DEFAULT_TARGET_LUFS = -20.0  # NAG paper, section 5.1 (mean loudness of the VGGSound test set)
MAX_CHANNELS = 5  # BS.1770 channel weights exist for L, R, C, Ls, Rs only

# Clips shorter than one block are measured as if looped up to this length (see _loop_to_measurable).
_SHORT_CLIP_LOOP_SECONDS = 3.0
# Safety margin below the ceiling so that float32 rounding of the scaled signal cannot cross it.
_CEILING_MARGIN_DB = 1e-3


def as_float_audio(wav: np.ndarray) -> np.ndarray:
    """Validate ``(samples,)`` or ``(channels, samples)`` audio; integer PCM is scaled to float32 [-1, 1)."""
    x = np.asarray(wav)
    if x.ndim not in (1, 2):
        raise ValueError(f"audio must be (samples,) or (channels, samples); got shape {x.shape}")
    if x.ndim == 2 and not 1 <= x.shape[0] <= MAX_CHANNELS:
        raise ValueError(
            f"audio must be (channels, samples) with 1..{MAX_CHANNELS} channels (BS.1770); got shape "
            f"{x.shape} (a (samples, channels) array must be transposed first)"
        )
    if x.dtype == np.bool_:
        raise ValueError("audio must be numeric PCM or float samples, not bool")
    if np.issubdtype(x.dtype, np.signedinteger):
        x = x.astype(np.float32) / np.float32(2 ** (8 * x.dtype.itemsize - 1))
    elif np.issubdtype(x.dtype, np.unsignedinteger):
        half = 2 ** (8 * x.dtype.itemsize - 1)
        x = (x.astype(np.float64) - half).astype(np.float32) / np.float32(half)
    elif not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"audio must be integer PCM or floating point; got dtype {x.dtype}")
    if not np.isfinite(x).all():
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"audio contains {bad} NaN or infinite sample(s); refusing to measure or scale it")
    return x


def _check_rate(sample_rate: int) -> None:
    if not sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive; got {sample_rate}")


def _loop_to_measurable(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Loop a clip shorter than one BS.1770 block to >= 3 s; its loudness is that of the looped clip."""
    n = x.shape[-1]
    if n >= math.ceil(BLOCK_SECONDS * sample_rate):
        return x
    reps = math.ceil(_SHORT_CLIP_LOOP_SECONDS * sample_rate / n)
    return np.tile(x, (1,) * (x.ndim - 1) + (reps,))


def integrated_loudness(wav: np.ndarray, sample_rate: int) -> float:
    """Integrated gated loudness in LUFS (ITU-R BS.1770-4, pyloudnorm); -inf for silence or under the -70 LUFS gate.

    Clips shorter than one 0.4 s gating block, which BS.1770 does not define and pyloudnorm rejects,
    are measured as if looped to 3 s: a stationary sound reads the same as a long take of it.
    """
    _check_rate(sample_rate)
    x = as_float_audio(wav)
    if x.shape[-1] == 0 or not np.any(x):
        return -math.inf
    x = _loop_to_measurable(x.astype(np.float64), sample_rate)
    lufs = float(pyloudnorm.Meter(sample_rate).integrated_loudness(x.T))  # pyloudnorm wants (samples, channels)
    return lufs if math.isfinite(lufs) and lufs >= ABSOLUTE_GATE_LUFS else -math.inf


def normalize_loudness(wav: np.ndarray, sample_rate: int, target_lufs: float = DEFAULT_TARGET_LUFS) -> np.ndarray:
    """Scale to ``target_lufs`` integrated loudness, as ``pyloudnorm.normalize.loudness`` (NAG paper, section 5.1).

    Args:
        wav: ``(samples,)`` or ``(channels, samples)`` audio, float or integer PCM, finite.
        sample_rate: Hz.
        target_lufs: target integrated loudness; the paper uses -20 LUFS.

    Returns:
        A new array of the same shape (float dtype kept, integer input becomes float32). Silence and audio
        below the -70 LUFS absolute gate are returned unchanged (zeros stay zeros). No peak control is
        applied (the paper applies none); use :func:`scale_under_true_peak` after it where clipping matters.
        A very quiet clip just above the gate can receive a large gain (up to ~50 dB).

    Raises:
        ValueError: NaN/inf samples, a bad shape, or a non-positive sample rate.
    """
    x = as_float_audio(wav)
    lufs = integrated_loudness(x, sample_rate)
    if not math.isfinite(lufs):
        return x.copy()
    gain = 10.0 ** ((target_lufs - lufs) / 20.0)
    return (x.astype(np.float64) * gain).astype(x.dtype)


def true_peak_db(wav: np.ndarray, sample_rate: int, *, oversample: int = 4) -> float:
    """True peak in dBTP: max |x| of the 4x oversampled signal (ITU-R BS.1770-4 Annex 2); -inf for silence.

    The oversampling is ``scipy.signal.resample_poly`` (polyphase FIR), taken together with the sample
    peak so that the result is never below the sample peak. ``sample_rate`` is only validated: the
    measure is relative to the sampling grid.
    """
    _check_rate(sample_rate)
    if oversample < 1:
        raise ValueError(f"oversample must be >= 1; got {oversample}")
    x = as_float_audio(wav).astype(np.float64)
    if x.shape[-1] == 0:
        return -math.inf
    peak = float(np.max(np.abs(x)))
    if oversample > 1 and x.shape[-1] > 1:
        peak = max(peak, float(np.max(np.abs(resample_poly(x, oversample, 1, axis=-1)))))
    return 20.0 * math.log10(peak) if peak > 0.0 else -math.inf


def peak_limit_gain_db(wav: np.ndarray, sample_rate: int, ceiling_db: float = -1.0) -> float:
    """Static gain in dB (<= 0) that brings the true peak to at most ``ceiling_db`` dBTP; 0 when already below."""
    tp = true_peak_db(wav, sample_rate)
    if tp <= ceiling_db:
        return 0.0
    return ceiling_db - tp - _CEILING_MARGIN_DB


def scale_under_true_peak(wav: np.ndarray, sample_rate: int, ceiling_db: float = -1.0) -> np.ndarray:
    """Guarantee a true peak <= ``ceiling_db`` dBTP with one static, look-ahead-free gain over the whole clip.

    The oversampled peak scales exactly with a static gain, so one gain of ``ceiling - peak`` dB meets the
    ceiling (a 0.001 dB margin absorbs float32 rounding; the result is re-measured). Unlike a dynamic
    limiter it adds no distortion and keeps the dynamics, but it lowers the integrated loudness by the
    same number of dB whenever it engages: a single transient governs the level of the whole clip.
    Audio already below the ceiling (and silence) is returned unchanged.
    """
    x = as_float_audio(wav)
    out = x.copy()
    gain_db = peak_limit_gain_db(out, sample_rate, ceiling_db)
    while gain_db < 0.0:  # one pass in exact arithmetic; re-measured in case float32 rounding crossed the line
        out = (out.astype(np.float64) * 10.0 ** (gain_db / 20.0)).astype(x.dtype)
        gain_db = peak_limit_gain_db(out, sample_rate, ceiling_db)
    return out
