"""Log-mel spectrogram pictures of generated tracks, as PNG bytes (matplotlib's Agg canvas, no pyplot state).

One picture per track (title = caption) and one multi-panel picture per video: every track and the mix
on a shared time axis (seconds) and a shared dB colour scale, so that relative levels can be compared.
"""
from __future__ import annotations

import io
import math
import textwrap
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nag_model.loudness import as_float_audio

__all__ = ["log_mel", "mel_filterbank", "spectrogram_png", "spectrogram_grid_png"]

_FLOOR_DB = -120.0  # level given to digital silence (avoids log(0))
_RANGE_DB = 80.0  # colour range below the loudest bin shown


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)  # HTK mel scale


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> tuple[np.ndarray, np.ndarray]:
    """Triangular HTK-mel filters from 0 Hz to Nyquist: ``(n_mels, n_fft // 2 + 1)`` weights and centre Hz."""
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(sample_rate / 2), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    weights = np.maximum(0.0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))
    return weights, edges[1:-1]


def log_mel(wav: np.ndarray, sample_rate: int, *, n_mels: int = 80) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-mel power in dB (a full-scale sine peaks near 0 dB): ``(n_mels, frames)``, frame times (s), centre Hz.

    64 ms Hann window (1024 points at 16 kHz), hop 1/4 window; channels are averaged first.
    """
    x = as_float_audio(wav).astype(np.float64)
    x = x.mean(axis=0) if x.ndim == 2 else x
    n_fft = 2 ** max(6, round(math.log2(0.064 * sample_rate)))
    hop = n_fft // 4
    x = np.pad(x, (n_fft // 2, n_fft // 2 + max(0, n_fft - x.size)))  # centred frames, at least one
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]  # (frames, n_fft)
    window = np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2 * (2.0 / window.sum()) ** 2  # (frames, bins)
    weights, centres = mel_filterbank(sample_rate, n_fft, n_mels)
    mel = power @ weights.T  # (frames, n_mels)
    db = np.where(mel > 0, 10.0 * np.log10(np.maximum(mel, 1e-30)), _FLOOR_DB)
    db = np.maximum(db, _FLOOR_DB).T  # (n_mels, frames)
    times = np.arange(db.shape[1]) * hop / sample_rate
    return db, times, centres


def _draw(
    ax, db: np.ndarray, centres: np.ndarray, duration: float, title: str, vmin: float, vmax: float, fmax: float
):
    image = ax.imshow(
        db, origin="lower", aspect="auto", extent=(0.0, duration, 0, db.shape[0]), vmin=vmin, vmax=vmax,
        cmap="magma", interpolation="nearest",
    )
    ticks_hz = [f for f in (0, 250, 500, 1000, 2000, 4000, 8000, 16000) if f <= fmax]
    ax.set_yticks(np.interp(_hz_to_mel(ticks_hz), _hz_to_mel(centres), np.arange(len(centres))))
    ax.set_yticklabels([f"{f // 1000}k" if f >= 1000 else str(f) for f in ticks_hz])
    ax.set_ylabel("Hz (mel)")
    ax.set_title(textwrap.shorten(title, 120, placeholder="..."), fontsize=9, loc="left")
    return image


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def _scale(dbs: Sequence[np.ndarray]) -> tuple[float, float]:
    vmax = max(float(d.max()) for d in dbs)
    return vmax - _RANGE_DB, vmax + 1e-6


def spectrogram_png(
    wav: np.ndarray,
    sample_rate: int,
    *,
    title: str,
    size_px: tuple[int, int] = (800, 300),
    dpi: int = 100,
) -> bytes:
    """One track's log-mel spectrogram as PNG bytes of exactly ``size_px`` (width, height); title = caption."""
    db, _, centres = log_mel(wav, sample_rate)
    duration = max(np.shape(wav)[-1], 1) / sample_rate
    fig = Figure(figsize=(size_px[0] / dpi, size_px[1] / dpi), dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    image = _draw(ax, db, centres, duration, title, *_scale([db]), sample_rate / 2)
    ax.set_xlabel("time (s)")
    fig.colorbar(image, ax=ax, label="dB")
    return _png(fig)


def spectrogram_grid_png(
    tracks: Sequence[tuple[str, np.ndarray]],
    sample_rate: int,
    *,
    mix: np.ndarray | None = None,
    title: str | None = None,
    width_px: int = 900,
    row_px: int = 160,
    dpi: int = 100,
) -> bytes:
    """All tracks of a video, one row each (caption as title), then the mix, on shared axes and colour scale.

    Args:
        tracks: ``(caption, audio)`` pairs in generation order.
        sample_rate: Hz, shared by all.
        mix: the composite, drawn last as "mix"; None to leave it out.
        title: figure title, e.g. the video id.
        width_px, row_px: the PNG is ``width_px`` x ``row_px * rows`` pixels.
    """
    panels = list(tracks) + ([("mix", mix)] if mix is not None else [])
    if not panels:
        raise ValueError("nothing to draw: no tracks and no mix")
    mels = [log_mel(a, sample_rate) for _, a in panels]
    duration = max(max(np.shape(a)[-1] for _, a in panels), 1) / sample_rate
    vmin, vmax = _scale([m[0] for m in mels])
    fig = Figure(figsize=(width_px / dpi, row_px * len(panels) / dpi), dpi=dpi, layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (caption, audio), (db, _, centres) in zip(axes, panels, mels):
        own = max(np.shape(audio)[-1], 1) / sample_rate  # a shorter track ends early on the shared axis
        image = _draw(ax, db, centres, own, caption, vmin, vmax, sample_rate / 2)
    axes[-1].set_xlim(0.0, duration)
    axes[-1].set_xlabel("time (s)")
    fig.colorbar(image, ax=list(axes), label="dB", shrink=0.9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _png(fig)
