"""Small signal helpers for the procedural sounds (numpy + scipy.signal, float64 inside)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import signal

F_MAX = 7000.0  # every source keeps its energy below this (Nyquist is 8 kHz at 16 kHz)


def bandpass(x: np.ndarray, lo: float | None, hi: float | None, sr: int, order: int = 2) -> np.ndarray:
    """Butterworth band-, low- (lo=None) or high-pass (hi=None), causal."""
    if lo is None:
        sos = signal.butter(order, min(hi, F_MAX), btype="lowpass", fs=sr, output="sos")
    elif hi is None:
        sos = signal.butter(order, lo, btype="highpass", fs=sr, output="sos")
    else:
        sos = signal.butter(order, [lo, min(hi, F_MAX)], btype="bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def noise(rng: np.random.Generator, n: int, lo: float | None, hi: float | None, sr: int,
          order: int = 2) -> np.ndarray:
    """Filtered white noise, scaled to unit RMS."""
    x = bandpass(rng.standard_normal(n), lo, hi, sr, order)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def guard(x: np.ndarray, sr: int) -> np.ndarray:
    """Final low-pass at F_MAX for continuous sources (4th-order Butterworth, causal)."""
    return bandpass(x, None, F_MAX, sr, order=4)


def envelope(n: int, sr: int, attack: float, decay: float) -> np.ndarray:
    """Raised-cosine attack, exponential decay, and a cosine fade to exactly 0 over the last 20%."""
    t = np.arange(n) / sr
    env = np.exp(-np.maximum(t - attack, 0.0) / decay)
    na = max(1, int(attack * sr))
    env[:na] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(na) / na)
    nf = max(1, n // 5)
    env[n - nf:] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(1, nf + 1) / nf)
    return env


def modes(n: int, sr: int, freqs: Sequence[float], amps: Sequence[float], decays: Sequence[float],
          attack: float = 0.001) -> np.ndarray:
    """Sum of exponentially damped sinusoids (a struck object's modes); modes above F_MAX are dropped."""
    t = np.arange(n) / sr
    out = np.zeros(n)
    for f, a, d in zip(freqs, amps, decays):
        if f < F_MAX:
            out += a * np.sin(2 * np.pi * f * t) * envelope(n, sr, attack, d)
    return out


def place(events: Sequence[float], make: Callable[[int], np.ndarray], n: int, sr: int) -> np.ndarray:
    """Add `make(k)` at sample round(events[k] * sr) for every event (truncated at the end)."""
    out = np.zeros(n)
    for k, t in enumerate(events):
        i = int(round(t * sr))
        if 0 <= i < n:
            tpl = make(k)
            m = min(len(tpl), n - i)
            out[i:i + m] += tpl[:m]
    return out


def harmonics(f0: np.ndarray, amps: Sequence[float], sr: int) -> np.ndarray:
    """Additive tone with time-varying fundamental f0 (Hz per sample); partials above F_MAX are muted."""
    phase = 2 * np.pi * np.cumsum(f0) / sr
    out = np.zeros_like(f0, dtype=np.float64)
    for k, a in enumerate(amps, start=1):
        out += a * np.sin(k * phase) * (k * f0 < F_MAX)
    return out


def pwl(knot_t: np.ndarray, knot_v: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Piecewise-linear curve through the knots, held flat outside them."""
    return np.interp(t, knot_t, knot_v)


def pwl_integral(knot_t: np.ndarray, knot_v: np.ndarray, t: float) -> float:
    """Closed-form integral from knot_t[0] to t of the piecewise-linear curve (t within the knots)."""
    kt, kv = np.asarray(knot_t, float), np.asarray(knot_v, float)
    areas = np.concatenate([[0.0], np.cumsum(np.diff(kt) * (kv[1:] + kv[:-1]) / 2)])
    j = int(np.clip(np.searchsorted(kt, t, side="right") - 1, 0, len(kt) - 2))
    vt = float(np.interp(t, kt, kv))
    return float(areas[j] + (t - kt[j]) * (kv[j] + vt) / 2)


def knots(rng: np.random.Generator, duration: float, step: float, lo: float, hi: float
          ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Random knot times every `step` s covering [0, duration] and values in [lo, hi]."""
    ts = np.arange(0.0, duration + step, step)
    vs = rng.uniform(lo, hi, len(ts))
    return tuple(float(x) for x in ts), tuple(round(float(v), 4) for v in vs)


def active_level_db(x: np.ndarray, sr: int, frame: float = 0.05, gate_db: float = 30.0) -> float:
    """Gated RMS in dBFS: mean power of the 50-ms frames within `gate_db` of the loudest frame.

    This is the level the sources are normalised to and the one the clip label ranks by;
    it suits sparse events (a drip) and steady sounds (a hum) alike. -inf for silence.
    """
    m = int(frame * sr)
    n = len(x) // m
    if n == 0:
        return float("-inf")
    p = np.mean(np.asarray(x[: n * m], np.float64).reshape(n, m) ** 2, axis=1)
    top = p.max()
    if top <= 0:
        return float("-inf")
    gated = p[p >= top * 10 ** (-gate_db / 10)]
    return float(10 * np.log10(gated.mean()))


def gate(n: int, sr: int, ramp: float = 0.005) -> np.ndarray:
    """Ones with raised-cosine ramps of `ramp` seconds at both ends (a switched tone)."""
    g = np.ones(n)
    m = max(1, min(int(ramp * sr), n // 2))
    r = 0.5 - 0.5 * np.cos(np.pi * np.arange(m) / m)
    g[:m] *= r
    g[n - m:] *= r[::-1]
    return g
