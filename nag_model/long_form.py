"""Soundtracks longer than the model's window: overlapping windows, joined by equal-power crossfades.

MMAudio generates a fixed window (8 s; the paper's clips). A longer video is covered by windows of that
length whose starts are ``hop`` apart (``hop`` = window - overlap, on a whole-second grid so that each
window's frames start on a frame of both visual streams: 8 fps and 25 fps); the last window is moved
back so that it ends at most one grid step after the video. Each window is conditioned on its own
frames and sync features (:func:`window_features`) and on the caption, and consecutive windows of a
track are joined in the waveform domain with an equal-power crossfade (``cos``/``sin`` gains, whose
squares sum to 1: uncorrelated material keeps its power across the join) over the last ``overlap``
seconds of the earlier window. Where the last window overlaps more, the earlier window plays until then.

Step by step holds over the whole length: every window of track k is pushed (NAG, Eq. 7) away from the
mix of tracks 1..k-1 over the same stretch of time (their finished waveforms cut to the window), so the
ControlNet sees exactly what the earlier tracks play while this window plays. Tracks are made one after
the other, each over the whole video (as :meth:`StepByStepGenerator.generate`), so a track is final
before the next one references it. The first window of track 1 is the plain generation of its first 8 s
(same seed, same conditions) up to where the second window fades in; a video no longer than one window
is generated exactly as :class:`StepByStepGenerator` generates it, every track included.

A track covers ``windows[-1].end`` samples (the last window whole; callers cut it to the video). Window
j > 0 draws its noise from a seed derived from the track's seed and j (:func:`window_seed`).

Cost: one generation per window per track, ``ceil((T - overlap) / hop)`` windows for T seconds (with
8-s windows and 1 s of overlap, ~8.6 windows per minute of video per track). Memory: one window's
model state at a time, plus the tracks' waveforms and every window's features.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from nag_model.config import CLIP_FPS, SYNC_FPS
from nag_model.generator import StepByStepGenerator, Track, TrackSettings, VideoFeatures, step_by_step

OVERLAP_S = 1.0  # seconds two consecutive windows share (the crossfade)
GRID_S = 1.0  # window starts are whole multiples of this: a frame of both 8 fps and 25 fps


@dataclass(frozen=True)
class Window:
    """One generation window: samples ``[start, start + length)`` of the soundtrack."""

    start: int
    length: int

    @property
    def end(self) -> int:
        return self.start + self.length


def plan_windows(total: int, window: int, sample_rate: int, *, overlap_s: float = OVERLAP_S,
                 grid_s: float = GRID_S) -> list[Window]:
    """Windows of ``window`` samples covering ``total`` samples (module docstring).

    Consecutive windows overlap by at least ``overlap_s`` (rounded so the hop is a whole number of
    ``grid_s``); one window when ``total <= window``.

    Raises:
        ValueError: a window too short to advance by one grid step with that overlap.
    """
    if total <= 0 or window <= 0:
        raise ValueError(f"need positive lengths, got total={total}, window={window}")
    if total <= window:
        return [Window(0, window)]
    grid = round(grid_s * sample_rate)
    hop = (window - round(overlap_s * sample_rate)) // grid * grid
    if hop < grid:
        raise ValueError(f"a {window / sample_rate:g}-s window cannot advance by whole {grid_s:g}-s steps with "
                         f"{overlap_s:g} s of overlap; long videos need a longer window")
    n = math.ceil((total - window) / hop) + 1  # the fewest windows whose last one reaches the end
    starts = [j * hop for j in range(n - 1)]
    starts.append(max(starts[-1] + grid, math.ceil((total - window) / grid) * grid))  # ends within a grid step
    return [Window(s, window) for s in starts]


def window_seed(seed: int, index: int) -> int:
    """Noise seed of window ``index`` of a track with ``seed``: the seed itself for the first window."""
    if index == 0:
        return seed
    digest = hashlib.sha256(f"window-seed\x00{seed}\x00{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def window_features(encode: Callable[[np.ndarray, np.ndarray], VideoFeatures], clip_frames: np.ndarray,
                    sync_frames: np.ndarray, windows: Sequence[Window], sample_rate: int) -> list[VideoFeatures]:
    """Each window's conditions from its own frames.

    Args:
        encode: frames -> features padded or trimmed to the model's lengths (``FoleyBundle.video_features``).
        clip_frames: (T8, H, W, 3) uint8 at 8 fps from the start of the video; sync_frames: (T25, H, W, 3) at 25 fps.
        windows: :func:`plan_windows`' windows (starts on the whole-second grid).
    """
    out = []
    for w in windows:
        start_s = w.start / sample_rate
        clip = clip_frames[min(round(start_s * CLIP_FPS), len(clip_frames) - 1):]  # past the end: the last frame
        sync = sync_frames[min(round(start_s * SYNC_FPS), len(sync_frames) - 1):]
        out.append(encode(clip, sync))
    return out


def equal_power_fades(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(fade_out, fade_in) over ``n`` samples: ``cos`` and ``sin`` of a quarter turn, squares summing to 1."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / n
    return np.cos(0.5 * np.pi * t), np.sin(0.5 * np.pi * t)


def join_windows(pieces: Sequence[np.ndarray], windows: Sequence[Window], fade: int) -> np.ndarray:
    """Place each window's waveform at its start; over the last ``fade`` samples of each overlap (all of
    it when shorter) the earlier window fades out and the later one in, with equal power.

    Returns:
        (windows[-1].end,) float32.
    """
    if len(pieces) != len(windows) or not pieces:
        raise ValueError(f"need one waveform per window, got {len(pieces)} for {len(windows)} windows")
    out = np.zeros(windows[-1].end, np.float64)
    covered = 0  # samples of out already written
    for piece, w in zip(pieces, windows):
        piece = np.asarray(piece, np.float64).reshape(-1)
        if piece.shape[0] < w.length:
            raise ValueError(f"a window of {w.length} samples got a waveform of {piece.shape[0]}")
        piece = piece[: w.length]
        n = min(fade, max(0, covered - w.start))  # crossfade over [covered - n, covered)
        if n:
            fade_out, fade_in = equal_power_fades(n)
            at = covered - w.start  # where the earlier window ends, in this window
            out[covered - n : covered] = out[covered - n : covered] * fade_out + piece[at - n : at] * fade_in
        skip = max(0, covered - w.start)
        out[w.start + skip : w.end] = piece[skip:]
        covered = w.end
    return out.astype(np.float32)


def _cut(wave: np.ndarray, w: Window) -> np.ndarray:
    """``wave`` over window ``w``, zero-padded where it ends first."""
    part = np.zeros(w.length, np.float32)
    piece = np.asarray(wave, np.float32).reshape(-1)[w.start : w.end]
    part[: piece.shape[0]] = piece
    return part


class LongFormGenerator:
    """Tracks of any length from a :class:`StepByStepGenerator` that makes one window (module docstring)."""

    def __init__(self, generator: StepByStepGenerator, *, overlap_s: float = OVERLAP_S, grid_s: float = GRID_S):
        self.generator, self.overlap_s, self.grid_s = generator, overlap_s, grid_s

    @property
    def sample_rate(self) -> int:
        return self.generator.codec.sample_rate

    def windows(self, total: int) -> list[Window]:
        """The windows that cover ``total`` samples."""
        return plan_windows(total, self.generator.num_samples, self.sample_rate, overlap_s=self.overlap_s,
                            grid_s=self.grid_s)

    def generate_track(self, features: Sequence[VideoFeatures], total: int, caption: str, seed: int,
                       settings: TrackSettings = TrackSettings(), context: Sequence[Track] = ()) -> Track:
        """One track over ``total`` samples, each window pushed away from ``context`` over that window.

        Args:
            features: one per window of :meth:`windows` (``total``), e.g. from :func:`window_features`.
            context: the earlier tracks (or all others on a redo), any lengths (zero past their end).

        Returns:
            The track, ``windows(total)[-1].end`` samples long (at least ``total``).
        """
        windows = self.windows(total)
        if len(features) != len(windows):
            raise ValueError(f"{total} samples take {len(windows)} windows, got features for {len(features)}")
        pieces, made = [], None
        for j, (w, video) in enumerate(zip(windows, features)):
            over_window = [Track(t.caption, t.seed, t.settings, _cut(t.waveform, w), t.sample_rate) for t in context]
            made = self.generator.generate_track(video, caption, window_seed(seed, j), settings, context=over_window)
            pieces.append(made.waveform)
        assert made is not None
        fade = round(self.overlap_s * self.sample_rate)
        return Track(caption, seed, settings, join_windows(pieces, windows, fade), self.sample_rate, made.against)

    def generate(self, features: Sequence[VideoFeatures], total: int, captions: Sequence[str],
                 seeds: Sequence[int] | None = None, settings: TrackSettings = TrackSettings(),
                 on_track: Callable[[int, Track], None] | None = None) -> list[Track]:
        """Tracks for ``captions`` in order over ``total`` samples; track k against tracks 1..k-1 (Eq. 7)."""
        return step_by_step(lambda caption, seed, context: self.generate_track(features, total, caption, seed,
                                                                               settings, context=context),
                            captions, seeds, on_track)
