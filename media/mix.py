"""Mix generated tracks the way the NAG paper does, made safe for delivery.

Paper (section 5.1): composite = normalize(sum_k x^(k)), loudness normalisation to -20 LUFS with
pyloudnorm, no per-track weights. Here: optional per-track gains, tracks of different lengths
zero-padded to the longest, silence and sub-0.4 s clips handled (``audio.loudness``), and a
true-peak limiter after normalisation so that the mix never crosses the ceiling and still reaches the
target loudness. With ``gains_db=None`` and ``ceiling_db=None`` the result is the paper's mix exactly.

The limiter (:func:`limit_true_peak`) works offline on the whole clip, which makes look-ahead free:

1. the true peak of every sample is read from the 4x oversampled signal (``scipy.signal.resample_poly``,
   as ``audio.loudness.true_peak_db``) and turned into the attenuation each sample needs;
2. look-ahead and attack: a running maximum over +-``lookahead_s`` and then a moving average of the same
   width, so the gain ramps down smoothly before a peak and is at its lowest on the peak itself (every
   average includes the peak's own requirement, so no sample gets less attenuation than it needs);
3. release: after the peak the attenuation falls back at ``release_db_per_s`` (a linear-in-dB, that is
   exponential, recovery), never faster than step 2 allows;
4. the gained signal is measured again, and a last static gain removes what interpolation between
   gain steps can leave above the ceiling (usually nothing; at most a few hundredths of a dB).

Only peaks are attenuated, so the loudness drops only a little; :func:`mix_tracks` then raises the
gain before the limiter by the shortfall until the mix reaches the target (or the limiter would have
to take more than ``max_limit_db`` off a peak). Libraries considered: pedalboard's ``Limiter`` limits
sample peaks, not true peaks, and FFmpeg's ``loudnorm`` (true-peak aware) renormalises dynamically
in 3 s windows, which changes the mix's dynamics rather than only its peaks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.ndimage import maximum_filter1d, uniform_filter1d
from scipy.signal import resample_poly

from audio.loudness import (
    DEFAULT_TARGET_LUFS,
    as_float_audio,
    integrated_loudness,
    peak_limit_gain_db,
    true_peak_db,
)
from audio.loudness import scale_under_true_peak as static_ceiling

__all__ = ["MixReport", "mix_tracks", "limit_true_peak", "LOUDNESS_STATUSES"]

OVERSAMPLE = 4  # BS.1770-4 Annex 2 true-peak measurement
LOOKAHEAD_S = 0.002  # the gain starts to fall this long before a peak (and the averaging spans twice this)
RELEASE_DB_PER_S = 300.0  # 10 dB of gain reduction are released in 33 ms (a slower release squashes an impact's body)
MAX_LIMIT_DB = 20.0  # the loudness make-up stops where the limiter would take more than this off a peak
_LOUDNESS_TOLERANCE_LU = 0.05
_MIN_SLOPE = 0.1  # LU per dB: below this, more limiting is not worth the loudness it buys
_MAX_ROUNDS = 8
TARGET_TOLERANCE_LU = 0.5  # a mix within this of the target is on target
LOUDNESS_STATUSES = ("on_target", "below_target", "silent")


@dataclass(frozen=True)
class MixReport:
    """What the mixer measured and did. Levels are -inf for a silent mix."""

    lufs: float  # integrated loudness of the returned mix (the target unless the limit cap was reached)
    true_peak_db: float  # dBTP of the returned mix (4x oversampled)
    gain_db: float  # gain applied to the sum before the limiter (normalisation + make-up; 0 for silence)
    limiter_gain_db: float  # the limiter's deepest gain reduction (<= 0); 0 when it did not engage
    limited: bool  # whether the limiter reduced any sample
    sum_lufs: float  # loudness of the (gain-weighted) sum before normalisation
    target_lufs: float = DEFAULT_TARGET_LUFS

    @property
    def loudness_status(self) -> str:
        """``on_target`` (within 0.5 LU), ``below_target`` (its peaks would have needed more than the
        limiter's ``max_limit_db``: a very impulsive mix) or ``silent`` (nothing above the -70 LUFS gate)."""
        if not math.isfinite(self.lufs):
            return "silent"
        return "on_target" if self.lufs >= self.target_lufs - TARGET_TOLERANCE_LU else "below_target"


def _true_peak_db(x: np.ndarray) -> np.ndarray:
    """Per sample, the true peak in dB of ``x`` (any channel; 4x oversampled values up to the next sample)."""
    x2 = x.reshape(-1, x.shape[-1])  # (C, N)
    peaks = np.abs(x2).max(axis=0)  # (N,)
    if x2.shape[-1] > 1:
        up = np.abs(resample_poly(x2, OVERSAMPLE, 1, axis=-1)).max(axis=0)  # (N * 4,)
        peaks = np.maximum(peaks, up[: OVERSAMPLE * x2.shape[-1]].reshape(-1, OVERSAMPLE).max(axis=1))
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(peaks)


def _attenuation(excess_db: np.ndarray, sample_rate: int, lookahead_s: float, release_db_per_s: float) -> np.ndarray:
    """Steps 2 and 3 of the module docstring: the gain reduction in dB per sample, >= ``excess_db`` everywhere."""
    need = np.maximum(excess_db, 0.0)  # (N,)
    if not need.any():
        return need
    width = 2 * max(1, round(lookahead_s * sample_rate)) + 1
    held = uniform_filter1d(maximum_filter1d(need, width, mode="nearest"), width, mode="nearest")
    held = np.maximum(held, need)  # exact already (every average includes the sample's own need): float rounding
    slope = release_db_per_s / sample_rate * np.arange(need.shape[0])
    return np.maximum.accumulate(held + slope) - slope  # max over k <= n of held[k] - (n - k) * rate


def _apply(x: np.ndarray, attenuation_db: np.ndarray, sample_rate: int, ceiling_db: float) -> tuple[np.ndarray, float]:
    """``x`` with the gain reduction applied and step 4; returns the audio and the deepest reduction (<= 0 dB)."""
    y = (x * 10.0 ** (-attenuation_db / 20.0)).astype(np.float32)
    residual_db = peak_limit_gain_db(y, sample_rate, ceiling_db)  # 0 unless interpolation crossed the line
    return static_ceiling(y, sample_rate, ceiling_db), residual_db - float(attenuation_db.max(initial=0.0))


def limit_true_peak(
    wav: np.ndarray,
    sample_rate: int,
    ceiling_db: float = -1.0,
    *,
    lookahead_s: float = LOOKAHEAD_S,
    release_db_per_s: float = RELEASE_DB_PER_S,
) -> tuple[np.ndarray, float]:
    """A look-ahead true-peak limiter (module docstring): the result's true peak is <= ``ceiling_db`` dBTP.

    Args:
        wav: ``(samples,)`` or ``(channels, samples)`` float audio; channels share one gain (the image stays).
        sample_rate: Hz.
        ceiling_db: dBTP.
        lookahead_s: attack time; the gain is fully down on the peak.
        release_db_per_s: how fast the gain recovers after a peak.

    Returns:
        ``(limited, reduction_db)``: float32 audio of the same shape, and the deepest gain reduction in dB
        (<= 0; 0 when nothing crossed the ceiling, and the audio is then unchanged).
    """
    x = as_float_audio(wav).astype(np.float64)
    if x.shape[-1] == 0:
        return x.astype(np.float32), 0.0
    attenuation = _attenuation(_true_peak_db(x) - ceiling_db, sample_rate, lookahead_s, release_db_per_s)
    return _apply(x, attenuation, sample_rate, ceiling_db)


def _stack(tracks: Sequence[np.ndarray]) -> np.ndarray:
    """Validate tracks and zero-pad them into one (tracks, channels, samples) float64 array."""
    if len(tracks) == 0:
        raise ValueError("mix_tracks needs at least one track")
    xs = [as_float_audio(t) for t in tracks]
    shapes = [x.shape for x in xs]
    channels = {1 if x.ndim == 1 else x.shape[0] for x in xs}
    if len(channels) != 1 or len({x.ndim for x in xs}) != 1:
        raise ValueError(f"all tracks need the same layout and channel count; got shapes {shapes}")
    n = max(x.shape[-1] for x in xs)
    out = np.zeros((len(xs), channels.pop(), n), np.float64)  # (T, C, N)
    for i, x in enumerate(xs):
        out[i, :, : x.shape[-1]] = x.reshape(out.shape[1], -1)
    return out


def mix_tracks(
    tracks: Sequence[np.ndarray],
    sample_rate: int,
    *,
    gains_db: Sequence[float] | None = None,
    target_lufs: float = DEFAULT_TARGET_LUFS,
    ceiling_db: float | None = -1.0,
    max_limit_db: float = MAX_LIMIT_DB,
) -> tuple[np.ndarray, MixReport]:
    """Sum tracks, normalise to ``target_lufs`` (BS.1770 via pyloudnorm) and keep the true peak under a ceiling.

    Args:
        tracks: each ``(samples,)`` or ``(channels, samples)``, same layout for all, any lengths
            (shorter ones are zero-padded at the end).
        sample_rate: Hz, shared by all tracks.
        gains_db: one gain per track applied before summing; None is the paper's unweighted sum.
        target_lufs: the paper's -20 LUFS by default.
        ceiling_db: true-peak ceiling in dBTP, held by :func:`limit_true_peak` with loudness make-up;
            None disables it (paper behaviour, may clip).
        max_limit_db: the most the limiter may take off a peak for the make-up; a mix whose peaks would
            need more ends below the target (the report says by how much).

    Returns:
        ``(mix, report)``: mix is float32 with the tracks' layout and the longest length.

    Raises:
        ValueError: no tracks, mismatched layouts, wrong number of gains, NaN/inf samples.
    """
    stack = _stack(tracks)  # (T, C, N)
    if gains_db is not None:
        if len(gains_db) != len(tracks) or not all(math.isfinite(g) for g in gains_db):
            raise ValueError(f"need one finite gain per track ({len(tracks)}); got {list(gains_db)}")
        stack *= (10.0 ** (np.asarray(gains_db, np.float64) / 20.0))[:, None, None]
    total = stack.sum(axis=0)  # (C, N)
    if np.ndim(tracks[0]) == 1:
        total = total[0]
    sum_lufs = integrated_loudness(total, sample_rate)
    gain_db = target_lufs - sum_lufs if math.isfinite(sum_lufs) else 0.0
    mix = (total * 10.0 ** (gain_db / 20.0)).astype(np.float32)
    reduction_db = 0.0
    if ceiling_db is not None and not math.isfinite(sum_lufs):  # silence, or below the -70 LUFS gate
        mix, reduction_db = limit_true_peak(mix, sample_rate, ceiling_db)
    elif ceiling_db is not None:
        peaks_db = _true_peak_db(total)  # the limiter's input is total * gain: its peaks move with the gain
        max_gain_db = ceiling_db + max_limit_db - float(peaks_db.max())  # the deepest reduction is exactly
        gain_db = min(gain_db, max_gain_db)  # peak + gain - ceiling, so this keeps it <= max_limit_db
        best, previous, slope = None, None, 1.0  # slope: LU of loudness per dB of gain, 1 until limiting starts
        for _ in range(_MAX_ROUNDS):
            attenuation = _attenuation(peaks_db + gain_db - ceiling_db, sample_rate, LOOKAHEAD_S, RELEASE_DB_PER_S)
            lufs = integrated_loudness(total * 10.0 ** ((gain_db - attenuation) / 20.0), sample_rate)
            if best is None or best[0] < lufs <= target_lufs + _LOUDNESS_TOLERANCE_LU:
                best = (lufs, gain_db, attenuation)
            shortfall = target_lufs - lufs
            if previous is not None and gain_db != previous[0]:  # secant: limiting flattens the curve
                slope = (lufs - previous[1]) / (gain_db - previous[0])
            capped = shortfall > 0 and gain_db >= max_gain_db
            if abs(shortfall) <= _LOUDNESS_TOLERANCE_LU or slope < _MIN_SLOPE or capped:
                break  # there, or more limiting no longer buys loudness (BS.1770 gating can even lower it)
            previous = (gain_db, lufs)
            gain_db = min(gain_db + shortfall / slope, max_gain_db)  # make up what the limiter took
        _, gain_db, attenuation = best
        mix, reduction_db = _apply(total * 10.0 ** (gain_db / 20.0), attenuation, sample_rate, ceiling_db)
    report = MixReport(
        lufs=integrated_loudness(mix, sample_rate),
        true_peak_db=true_peak_db(mix, sample_rate),
        gain_db=gain_db,
        limiter_gain_db=reduction_db,
        limited=reduction_db < 0.0,
        sum_lufs=sum_lufs,
        target_lufs=target_lufs,
    )
    return mix, report
