"""Mix generated tracks the way the NAG paper does, made safe for delivery.

Paper (section 5.1): composite = normalize(sum_k x^(k)), loudness normalisation to -20 LUFS with
pyloudnorm, no per-track weights. Here: optional per-track gains, tracks of different lengths
zero-padded to the longest, silence and sub-0.4 s clips handled (``nag_model.loudness``), and a true-peak
ceiling applied after normalisation so the mix never clips. With ``gains_db=None`` and
``ceiling_db=None`` the result is the paper's mix exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from nag_model.loudness import (
    DEFAULT_TARGET_LUFS,
    as_float_audio,
    integrated_loudness,
    limit_true_peak,
    peak_limit_gain_db,
    true_peak_db,
)

__all__ = ["MixReport", "mix_tracks"]


@dataclass(frozen=True)
class MixReport:
    """What the mixer measured and did. Levels are -inf for a silent mix."""

    lufs: float  # integrated loudness of the returned mix (below target when the limiter engaged)
    true_peak_db: float  # dBTP of the returned mix (4x oversampled)
    gain_db: float  # loudness-normalisation gain applied to the sum (0 for silence)
    limiter_gain_db: float  # extra static gain (<= 0) from the true-peak ceiling; 0 when not engaged
    limited: bool  # whether the ceiling forced a gain reduction
    sum_lufs: float  # loudness of the (gain-weighted) sum before normalisation


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
) -> tuple[np.ndarray, MixReport]:
    """Sum tracks, normalise to ``target_lufs`` (BS.1770 via pyloudnorm) and hold the true peak under a ceiling.

    Args:
        tracks: each ``(samples,)`` or ``(channels, samples)``, same layout for all, any lengths
            (shorter ones are zero-padded at the end).
        sample_rate: Hz, shared by all tracks.
        gains_db: one gain per track applied before summing; None is the paper's unweighted sum.
        target_lufs: the paper's -20 LUFS by default.
        ceiling_db: true-peak ceiling in dBTP applied after normalisation with one static gain
            (``nag_model.loudness.limit_true_peak``); None disables it (paper behaviour, may clip).

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
    limiter_db = 0.0
    if ceiling_db is not None:
        limiter_db = peak_limit_gain_db(mix, sample_rate, ceiling_db)
        mix = limit_true_peak(mix, sample_rate, ceiling_db)  # re-measures, so the ceiling holds after rounding
    report = MixReport(
        lufs=integrated_loudness(mix, sample_rate),
        true_peak_db=true_peak_db(mix, sample_rate),
        gain_db=gain_db,
        limiter_gain_db=limiter_db,
        limited=limiter_db < 0.0,
        sum_lufs=sum_lufs,
    )
    return mix, report
