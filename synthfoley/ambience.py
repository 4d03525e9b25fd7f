"""Off-screen ambience: sounds the picture only hints at (swaying grass, a grey rainy tint, silhouettes).

Ambience is never on screen; its hint may be drawn or not (world.py decides), and a hint may show
without the sound (a breeze too light to hear). Hints draw over the whole frame; the grass and the
crowd stand in the bottom strip below the object cells.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from . import draw as d
from .dsp import bandpass, envelope, guard, knots, noise, place, pwl
from .sources import Source


@dataclass(frozen=True)
class Wind(Source):
    """Wind: low band noise (60-900 Hz) swelling with gusts, a whistle band in strong gusts.
    Hint: grass blades in the bottom strip lean with the same gust curve."""

    kind = "wind"
    ambience = True
    layer = "back"

    gust_t: tuple[float, ...]
    gust_v: tuple[float, ...]
    blades: tuple[tuple[float, float, float], ...]  # (x fraction, height in strip heights, phase)

    @classmethod
    def sample(cls, rng, duration, sounding):
        gt, gv = knots(rng, duration, 0.8, 0.15, 1.0)
        blades = tuple((float(x), float(hh), float(p)) for x, hh, p in
                       zip(np.linspace(0.02, 0.98, 16) + rng.uniform(-0.02, 0.02, 16),
                           rng.uniform(0.8, 1.5, 16), rng.uniform(0, 2 * np.pi, 16)))
        return cls(sounding, int(rng.integers(2**31)), (), gt, gv, blades)

    def sound(self, n, sr):
        g = pwl(self.gust_t, self.gust_v, np.arange(n) / sr)
        rng = self._rng()
        return guard(noise(rng, n, 60, 900, sr) * g ** 1.5 + 0.3 * noise(rng, n, 700, 1600, sr) * g ** 3, sr)

    def draw(self, img, i, fps):
        size, t = img.shape[0], i / fps
        strip = size - d.layout(size)[1]
        gust = float(pwl(self.gust_t, self.gust_v, t))
        x, hh, p = np.asarray(self.blades).T  # (3, blades)
        bh = hh * strip
        lean = 1.2 * gust * bh * (0.5 + 0.5 * np.sin(2 * np.pi * 1.1 * t + p))
        base = np.full_like(x, size - 1.0)
        d.lines(img, np.stack([x * size, base, x * size + lean, base - bh], axis=1), (70, 140, 60))

    def extras(self):
        return {"gust_knots": [list(p) for p in zip(self.gust_t, self.gust_v)]}


@dataclass(frozen=True)
class Rain(Source):
    """Rain: a high hiss (1.2-6.5 kHz) plus dense random drop clicks. Hint: grey tint and streaks."""

    kind = "rain"
    ambience = True
    layer = "front"
    RATE: ClassVar[float] = 120.0  # drop clicks per second

    level_t: tuple[float, ...]
    level_v: tuple[float, ...]

    @classmethod
    def sample(cls, rng, duration, sounding):
        lt, lv = knots(rng, duration, 2.0, 0.6, 1.0)
        return cls(sounding, int(rng.integers(2**31)), (), lt, lv)

    def sound(self, n, sr):
        rng = self._rng()
        m = int(0.01 * sr)
        clicks = [noise(rng, m, 2500, 6500, sr) * envelope(m, sr, 0.0002, 0.002) for _ in range(8)]
        times = np.sort(rng.uniform(0, n / sr, rng.poisson(self.RATE * n / sr)))
        pick, amp = rng.integers(0, 8, len(times)), rng.uniform(0.2, 1.0, len(times))
        drops = place(times, lambda k: amp[k] * clicks[pick[k]], n, sr)
        hiss = noise(rng, n, 1200, 6500, sr, order=4)
        return guard((0.6 * hiss + 1.5 * drops) * pwl(self.level_t, self.level_v, np.arange(n) / sr), sr)

    def draw(self, img, i, fps):
        size = img.shape[0]
        d.blend(img, (125, 128, 138), 0.3)
        rng = self._rng(i)
        xy = rng.uniform(0, size, (int(25 * pwl(self.level_t, self.level_v, i / fps)), 2))  # (M, 2)
        d.lines(img, np.concatenate([xy, xy + (-1.0, 3.0)], axis=1), (205, 205, 220))


@dataclass(frozen=True)
class Crowd(Source):
    """Crowd: several babbling 'voices' (noise bands at 400-2000 Hz, syllable-rate modulated) over a
    murmur bed. Hint: dark head-and-shoulder silhouettes bobbing in the bottom strip."""

    kind = "crowd"
    ambience = True
    layer = "back"

    voices: tuple[tuple[float, float], ...]  # (formant Hz, syllables per s)
    heads: tuple[tuple[float, float], ...]  # (x fraction, bob phase)

    @classmethod
    def sample(cls, rng, duration, sounding):
        nv, nh = int(rng.integers(6, 13)), int(rng.integers(5, 10))
        voices = tuple((float(f), float(r)) for f, r in zip(rng.uniform(400, 2000, nv), rng.uniform(3, 6, nv)))
        heads = tuple((float(x), float(p)) for x, p in zip(np.sort(rng.uniform(0.03, 0.97, nh)),
                                                           rng.uniform(0, 2 * np.pi, nh)))
        return cls(sounding, int(rng.integers(2**31)), (), voices, heads)

    def sound(self, n, sr):
        rng = self._rng()
        out = 0.3 * noise(rng, n, 250, 2500, sr)
        for fc, rate in self.voices:
            am = np.maximum(bandpass(rng.standard_normal(n), None, rate, sr), 0.0)
            out += noise(rng, n, 0.7 * fc, 1.4 * fc, sr) * am / (am.max() + 1e-12)
        return guard(out, sr)

    def draw(self, img, i, fps):
        size, t = img.shape[0], i / fps
        r = 0.3 * (size - d.layout(size)[1])
        x, p = (np.asarray(self.heads) * (size, 1.0)).T  # (2, heads)
        bob = 0.5 * np.sin(2 * np.pi * 1.5 * t + p)
        ones = np.ones_like(x)
        shoulders = np.stack([x, (size - 1) * ones, 2.5 * r * ones, 1.6 * r * ones], axis=1)
        heads = np.stack([x, size - 1 - 2.2 * r + bob, r * ones, r * ones], axis=1)
        d.ellipses(img, np.concatenate([shoulders, heads]), (30, 30, 40))


AMBIENCE_KINDS: tuple[type[Source], ...] = (Wind, Rain, Crowd)
