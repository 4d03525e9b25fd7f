"""The sound sources of SynthFoley: one small frozen dataclass per kind.

`Kind.sample(rng, duration, sounding)` makes every random choice (event times, pitches, colours,
speed curves); `sound(n, sr)` and `draw(img, i, fps)` are then pure functions of those choices,
so the audio does not depend on whether frames are rendered. Object kinds draw into their own
cell (a (h, w, 3) view of the frame); ambience kinds (ambience.py) draw over the whole frame.

A visible source can be silent. `silent_mode` says how: "idle" (it does nothing: the ball rolls,
the bird perches, nobody knocks) or "muted" (it acts without a sound: the lamp blinks without a
beep, the fan spins quietly, the walker walks on a soft floor).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from . import draw as d
from .dsp import envelope, gate, guard, harmonics, knots, modes, noise, place, pwl, pwl_integral

FLOOR = (120, 100, 80)
GROUND = (95, 95, 90)


@dataclass(frozen=True)
class Source:
    """One planned source. Times are seconds from the clip start; `events` are its physical events."""

    kind: ClassVar[str] = ""
    ambience: ClassVar[bool] = False
    layer: ClassVar[str] = "cell"  # where it draws: its "cell", or the whole frame "back"/"front" of the objects
    silent_mode: ClassVar[str] = "idle"

    sounding: bool
    seed: int  # seeds the noise of `sound`
    events: tuple[float, ...]

    @classmethod
    def sample(cls, rng: np.random.Generator, duration: float, sounding: bool) -> "Source":
        raise NotImplementedError

    def sound(self, n: int, sr: int) -> np.ndarray:
        """The source's waveform, (n,) float64 at an arbitrary level (world.py normalises it)."""
        raise NotImplementedError

    def draw(self, img: np.ndarray, i: int, fps: float) -> None:
        """Paint frame i into img: the source's cell, or the whole frame for ambience."""
        raise NotImplementedError

    def extras(self) -> dict:
        """Kind-specific ground truth for the metadata (intervals, speed curves, colours)."""
        return {}

    @classmethod
    def _acts(cls, sounding: bool) -> bool:
        """Whether the source performs its action (a muted source acts, an idle one does not)."""
        return sounding or cls.silent_mode == "muted"

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *key])

    def _event_near(self, i: int, fps: float, after: int = 0) -> int | None:
        """Frames since the event shown at frame round(e * fps), if that is within [0, after]."""
        if not self.events:
            return None
        lag = i - np.rint(np.asarray(self.events) * fps).astype(int)
        ok = (lag >= 0) & (lag <= after)
        return int(lag[ok].min()) if ok.any() else None


def _bounce(p: float, lo: float, hi: float) -> float:
    """Map a coordinate moving at constant speed onto [lo, hi], reflecting at the walls."""
    u = p % 2.0
    return lo + (hi - lo) * (u if u <= 1.0 else 2.0 - u)


def _color(rng: np.random.Generator, palette: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    return palette[int(rng.integers(len(palette)))]


def _jitter_db(rng: np.random.Generator, db: float) -> float:
    return 10 ** (rng.uniform(-db, db) / 20)


@dataclass(frozen=True)
class Ball(Source):
    """Bouncing ball: a thud (damped modes + click) at each floor contact, quieter as bounces shrink.

    Idle: it rolls along the floor. The frame nearest each contact shows the ball squashed on the floor.
    """

    kind = "ball"
    H_MIN: ClassVar[float] = 0.08  # bounces lower than this (fraction of the free height) stop

    color: tuple[int, int, int]
    g: float  # free heights per s^2
    h0: float
    t_apex: float
    launch: tuple[float, ...]  # upward speed after each contact (0: comes to rest)
    x0: float
    vx: float
    pitch: float

    @classmethod
    def sample(cls, rng, duration, sounding):
        color = _color(rng, [(230, 60, 40), (240, 140, 30), (220, 40, 140)])
        g, h0, e = rng.uniform(8.0, 12.0), rng.uniform(0.6, 0.95), rng.uniform(0.78, 0.88)
        t_fall = math.sqrt(2 * h0 / g)
        t_apex = rng.uniform(0.12 - t_fall, 0.9 * t_fall)  # in flight at t = 0: thrown into view
        contacts, launch = [], []
        if cls._acts(sounding):
            c, v = t_apex + t_fall, math.sqrt(2 * g * h0)
            while c < duration:
                u = e * v
                contacts.append(round(c, 5))
                if u * u / (2 * g) < cls.H_MIN:
                    launch.append(0.0)
                    break
                launch.append(u)
                c, v = c + 2 * u / g, u
        return cls(sounding, int(rng.integers(2**31)), tuple(contacts), color, g, h0, t_apex,
                   tuple(launch), rng.uniform(0, 2), rng.uniform(0.05, 0.25), rng.uniform(110, 190))

    def height(self, t: float) -> float:
        """Height of the ball's bottom above the floor, as a fraction of the free height."""
        if not self.events:
            return 0.0
        if t < self.events[0]:
            return max(0.0, self.h0 - self.g / 2 * (t - self.t_apex) ** 2)
        k = int(np.searchsorted(self.events, t, side="right")) - 1
        dt = t - self.events[k]
        return max(0.0, self.launch[k] * dt - self.g / 2 * dt * dt)

    def sound(self, n, sr):
        impacts = (math.sqrt(2 * self.g * self.h0),) + self.launch[:-1]
        m, p = int(0.12 * sr), self.pitch

        def thud(k):
            body = modes(m, sr, [p, 2.31 * p, 3.9 * p], [1.0, 0.45, 0.2], [0.035, 0.018, 0.01])
            click = noise(self._rng(k), m, 900, 3500, sr) * envelope(m, sr, 0.0005, 0.004)
            return (impacts[k] / impacts[0]) ** 1.2 * (body + 0.25 * click)

        return place(self.events, thud, n, sr)

    def draw(self, img, i, fps):
        h, w = img.shape[:2]
        floor, r = h - 2, 0.11 * h
        d.rect(img, 0, floor, w, h, FLOOR)
        x = _bounce(self.x0 + self.vx * i / fps, r + 1, w - r - 1)
        if self._event_near(i, fps) is not None:  # the contact frame: squashed on the floor
            d.ellipse(img, x, floor - 0.75 * r, 1.25 * r, 0.75 * r, self.color)
        else:
            d.disc(img, x, floor - r - self.height(i / fps) * (floor - 2 * r - 1), r, self.color)

    def extras(self):
        return {"color": list(self.color)}


@dataclass(frozen=True)
class Lamp(Source):
    """Lamp that blinks: a steady beep (1.8-2.2 kHz tone plus its 3rd harmonic) exactly while it is lit."""

    kind = "lamp"
    silent_mode = "muted"

    intervals: tuple[tuple[float, float], ...]
    pitch: float
    shade: tuple[int, int, int]

    @classmethod
    def sample(cls, rng, duration, sounding):
        t = 0.0 if rng.random() < 0.3 else rng.uniform(0.1, 1.0)
        ivs = []
        while t < duration - 0.1:
            on = rng.uniform(0.25, 1.2)
            ivs.append((round(t, 4), round(min(t + on, duration), 4)))
            t += on + rng.uniform(0.25, 1.0)
        shade = _color(rng, [(60, 120, 200), (200, 80, 80), (80, 160, 90)])
        return cls(sounding, int(rng.integers(2**31)), tuple(a for a, _ in ivs), tuple(ivs),
                   rng.uniform(1800, 2200), shade)

    def lit(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.intervals)

    def sound(self, n, sr):
        p = self.pitch

        def beep(k):
            a, b = self.intervals[k]
            t = np.arange(int(round((b - a) * sr))) / sr
            tone = np.sin(2 * np.pi * p * t) + 0.2 * np.sin(6 * np.pi * p * t) * (3 * p < 7000)
            return tone * gate(len(t), sr)

        return place(self.events, beep, n, sr)

    def draw(self, img, i, fps):
        h, w = img.shape[:2]
        d.rect(img, 0.47 * w, 0.4 * h, 0.53 * w, h - 2, (90, 90, 90))
        d.rect(img, 0.35 * w, h - 3, 0.65 * w, h, (70, 70, 70))
        if self.lit(i / fps):
            d.disc(img, 0.5 * w, 0.36 * h, 0.24 * h, (235, 225, 150))
            d.disc(img, 0.5 * w, 0.36 * h, 0.1 * h, (255, 250, 160))
        else:
            d.disc(img, 0.5 * w, 0.36 * h, 0.1 * h, (70, 70, 65))
        d.rect(img, 0.3 * w, 0.1 * h, 0.7 * w, 0.3 * h, self.shade)

    def extras(self):
        return {"lit_intervals": [list(iv) for iv in self.intervals]}


@dataclass(frozen=True)
class Fan(Source):
    """Electric fan: a motor hum whose pitch follows the rotation speed (90 + 55 * rev/s Hz) plus airy noise.

    Muted: it spins without an audible sound. One blade has a coloured tip so the rotation reads.
    """

    kind = "fan"
    silent_mode = "muted"

    speed_t: tuple[float, ...]
    speed_v: tuple[float, ...]  # rev/s at the knots
    tip: tuple[int, int, int]

    @classmethod
    def sample(cls, rng, duration, sounding):
        st, sv = knots(rng, duration, 1.5, 0.6, 3.0)
        return cls(sounding, int(rng.integers(2**31)), (), st, sv,
                   _color(rng, [(220, 40, 40), (240, 200, 30), (40, 90, 220)]))

    def sound(self, n, sr):
        sp = pwl(self.speed_t, self.speed_v, np.arange(n) / sr)
        hum = harmonics(90 + 55 * sp, [1.0, 0.5, 0.3, 0.15], sr) * (0.5 + sp / 6)
        whoosh = noise(self._rng(), n, 400, 2500, sr) * 0.25 * sp / 3
        return guard(hum + whoosh, sr)

    def draw(self, img, i, fps):
        h, w = img.shape[:2]
        cx, cy, rad = 0.5 * w, 0.42 * h, 0.32 * h
        d.rect(img, 0.46 * w, cy, 0.54 * w, h - 2, (80, 80, 85))
        d.rect(img, 0.3 * w, h - 3, 0.7 * w, h, (60, 60, 65))
        d.disc(img, cx, cy, rad, (195, 195, 200))
        theta = 2 * np.pi * pwl_integral(self.speed_t, self.speed_v, i / fps)
        for k in range(3):
            a = theta + 2 * np.pi * k / 3
            d.line(img, cx, cy, cx + 0.85 * rad * np.cos(a), cy + 0.85 * rad * np.sin(a), (60, 60, 75), 2)
        d.disc(img, cx + 0.8 * rad * np.cos(theta), cy + 0.8 * rad * np.sin(theta), 1.6, self.tip)
        d.disc(img, cx, cy, 1.5, (30, 30, 30))

    def extras(self):
        return {"rev_per_s_knots": [list(p) for p in zip(self.speed_t, self.speed_v)]}


@dataclass(frozen=True)
class Bird(Source):
    """Bird on a branch: a downward-sweeping chirp (3.5-5 kHz, 1-3 notes) each time it flaps its wings.

    Idle: it perches with folded wings.
    """

    kind = "bird"
    GAP: ClassVar[float] = 0.02  # silence between the notes of one chirp

    color: tuple[int, int, int]
    f_hi: float
    ratio: float
    note: float
    n_notes: int

    @classmethod
    def sample(cls, rng, duration, sounding):
        color = _color(rng, [(90, 70, 50), (60, 90, 170), (200, 170, 40)])
        f_hi, ratio, note = rng.uniform(3500, 5000), rng.uniform(0.55, 0.75), rng.uniform(0.06, 0.11)
        n_notes = int(rng.integers(1, 4))
        events = []
        if cls._acts(sounding):
            t = rng.uniform(0.1, 0.8)
            while t < duration - 0.1:
                events.append(round(t, 5))
                t += n_notes * (note + cls.GAP) + rng.uniform(0.15, 1.0)
        return cls(sounding, int(rng.integers(2**31)), tuple(events), color, f_hi, ratio, note, n_notes)

    def sound(self, n, sr):
        m, gap = int(self.note * sr), int((self.note + self.GAP) * sr)
        tt = np.arange(m) / sr
        f = self.f_hi * (1 - (1 - self.ratio) * tt / self.note) + 150 * np.sin(2 * np.pi * 30 * tt)
        ph = 2 * np.pi * np.cumsum(f) / sr
        note = np.sin(np.pi * tt / self.note) ** 2 * (np.sin(ph) + 0.2 * np.sin(2 * ph) * (2 * f < 7000))

        def chirp(k):
            out = np.zeros(gap * self.n_notes + m)
            for j in range(self.n_notes):
                out[j * gap:j * gap + m] += note * (0.8 if j else 1.0)
            return out * _jitter_db(self._rng(k), 2.0)

        return place(self.events, chirp, n, sr)

    def draw(self, img, i, fps):
        h, w = img.shape[:2]
        branch = 0.7 * h
        d.line(img, 0.05 * w, branch, 0.95 * w, branch, (110, 80, 50), 2)
        cx, cy = 0.45 * w, branch - 0.11 * h
        d.ellipse(img, cx, cy, 0.15 * w, 0.1 * h, self.color)
        d.disc(img, cx + 0.13 * w, cy - 0.09 * h, 0.07 * h, self.color)
        d.line(img, cx + 0.19 * w, cy - 0.09 * h, cx + 0.25 * w, cy - 0.08 * h, (240, 150, 30))
        wing = tuple(int(c * 0.6) for c in self.color)
        lag = self._event_near(i, fps, after=2)
        if lag is None:
            d.ellipse(img, cx - 0.03 * w, cy, 0.09 * w, 0.05 * h, wing)
        else:  # the flap: wings up at the event frame, then down over two frames
            tip = cy - (0.4 - 0.15 * lag) * h
            d.line(img, cx, cy, cx - 0.2 * w, tip, wing, 2)
            d.line(img, cx, cy, cx + 0.05 * w, tip - 1, wing, 2)


@dataclass(frozen=True)
class Walker(Source):
    """Person walking: a footstep (low thump + scuff + toe) each time a foot lands.

    Muted: the same walk on a soft floor, silent. The landing foot touches the ground at the event frame.
    """

    kind = "walker"
    silent_mode = "muted"

    period: float
    color: tuple[int, int, int]
    pitch: float
    x0: float
    v: float

    @classmethod
    def sample(cls, rng, duration, sounding):
        period = rng.uniform(0.42, 0.62)
        t0 = rng.uniform(0.05, period)
        steps = [round(t0 + k * period + rng.uniform(-0.015, 0.015), 5)
                 for k in range(int((duration - t0) / period) + 1) if t0 + k * period < duration - 0.02]
        color = _color(rng, [(50, 60, 140), (150, 40, 40), (40, 110, 60)])
        return cls(sounding, int(rng.integers(2**31)), tuple(steps), period, color,
                   rng.uniform(70, 110), rng.uniform(0, 2), rng.uniform(0.08, 0.2))

    def sound(self, n, sr):
        m, lag = int(0.15 * sr), int(0.025 * sr)

        def step(k):
            rng = self._rng(k)
            thump = modes(m, sr, [self.pitch], [1.0], [0.03])
            scuff = noise(rng, m, 200, 1800, sr) * envelope(m, sr, 0.002, 0.02)
            toe = np.concatenate([np.zeros(lag), 0.35 * scuff[:m - lag]])
            return _jitter_db(rng, 2.0) * (thump + 0.8 * scuff + toe)

        return place(self.events, step, n, sr)

    def draw(self, img, i, fps):
        h, w = img.shape[:2]
        ground, t = h - 2, i / fps
        d.rect(img, 0, ground, w, h, GROUND)
        x = _bounce(self.x0 + self.v * t, 0.25 * w, 0.75 * w)
        ev = self.events or (t,)
        k = int(np.searchsorted(ev, t, side="right")) - 1
        prev = ev[k] if k >= 0 else ev[0] - self.period
        nxt = ev[k + 1] if k + 1 < len(ev) else prev + self.period
        phase = 0.0 if self._event_near(i, fps) is not None else min(1.0, (t - prev) / (nxt - prev))
        stride, hip = 0.22 * w, ground - 0.32 * h
        feet = {(k + 1) % 2: (-stride / 2 + stride * phase, 0.14 * h * np.sin(np.pi * phase)),  # swinging
                k % 2: (stride / 2 - stride * phase, 0.0)}  # planted
        legs = tuple(int(c * 0.6) for c in self.color)
        for off, lift in feet.values():
            d.line(img, x, hip, x + off, ground - 1 - lift, legs, 2)
        d.line(img, x, hip, x, ground - 0.62 * h, self.color, 2)
        d.disc(img, x, ground - 0.74 * h, 0.09 * h, (230, 190, 150))


@dataclass(frozen=True)
class Door(Source):
    """Door with a knocking hand: a hollow wooden knock (damped modes from 260-420 Hz + click) per hit, in
    groups of 2-4.

    Idle: the door stays shut and nobody knocks. The hand touches the door at the knock frames.
    """

    kind = "door"

    color: tuple[int, int, int]
    f1: float

    @classmethod
    def sample(cls, rng, duration, sounding):
        knocks = []
        if cls._acts(sounding):
            t = rng.uniform(0.2, 1.5)
            while t < duration - 0.5:
                gap = rng.uniform(0.14, 0.2)
                knocks += [round(t + j * gap + rng.uniform(-0.01, 0.01), 5) for j in range(int(rng.integers(2, 5)))]
                t = knocks[-1] + rng.uniform(1.0, 2.5)
        color = _color(rng, [(140, 90, 50), (110, 70, 40), (170, 120, 70)])
        return cls(sounding, int(rng.integers(2**31)), tuple(k for k in knocks if k < duration), color,
                   rng.uniform(260, 420))

    def sound(self, n, sr):
        m, f = int(0.08 * sr), self.f1

        def knock(k):
            rng = self._rng(k)
            body = modes(m, sr, [f, 1.9 * f, 3.3 * f], [1.0, 0.6, 0.3], [0.025, 0.015, 0.008])
            click = noise(rng, m, 1000, 4000, sr) * envelope(m, sr, 0.0005, 0.003)
            return _jitter_db(rng, 1.5) * (body + 0.6 * click)

        return place(self.events, knock, n, sr)

    def draw(self, img, i, fps):
        h, w = img.shape[:2]
        d.rect(img, 0, h - 2, w, h, FLOOR)
        dark = tuple(int(c * 0.6) for c in self.color)
        d.rect(img, 0.42 * w, 0.05 * h, 0.88 * w, h - 2, dark)
        d.rect(img, 0.46 * w, 0.09 * h, 0.84 * w, h - 2, self.color)
        d.disc(img, 0.52 * w, 0.55 * h, 1.2, (220, 190, 60))
        t = i / fps
        if any(abs(t - e) < 0.35 for e in self.events):
            r = 0.08 * h
            hx = 0.46 * w - r - (0 if self._event_near(i, fps) is not None else 3)
            d.line(img, 0, 0.5 * h, hx, 0.42 * h, (200, 150, 115), 2)
            d.disc(img, hx, 0.42 * h, r, (230, 180, 140))


@dataclass(frozen=True)
class Hammer(Source):
    """Hammer on an anvil: a metallic clank (inharmonic bar modes 1 : 2.76 : 5.40 : 8.93) at each strike.

    Idle: the hammer rests on the anvil. The head sits on the anvil at the strike frames.
    """

    kind = "hammer"

    f1: float
    period: float

    @classmethod
    def sample(cls, rng, duration, sounding):
        period = rng.uniform(0.5, 0.95)
        strikes = []
        if cls._acts(sounding):
            t = rng.uniform(0.2, 0.8)
            while t < duration - 0.05:
                strikes.append(round(t, 5))
                t += period * rng.uniform(0.95, 1.05) + (1.0 if rng.random() < 0.12 else 0.0)
        return cls(sounding, int(rng.integers(2**31)), tuple(strikes), rng.uniform(450, 750), period)

    def sound(self, n, sr):
        m, f = int(0.38 * sr), self.f1

        def clank(k):
            rng = self._rng(k)
            ring = modes(m, sr, [f, 2.76 * f, 5.40 * f, 8.93 * f], [1.0, 0.7, 0.45, 0.3], [0.12, 0.08, 0.05, 0.03])
            click = noise(rng, m, 2000, 6500, sr) * envelope(m, sr, 0.0005, 0.003)
            return _jitter_db(rng, 1.5) * (ring + 0.5 * click)

        return place(self.events, clank, n, sr)

    def angle(self, i: int, fps: float) -> float:
        """Handle angle above the horizontal (radians): 0 on the anvil at strike frames."""
        t, ev = i / fps, self.events
        if not ev or self._event_near(i, fps) is not None:
            return 0.0
        k = int(np.searchsorted(ev, t, side="right")) - 1
        if k == len(ev) - 1:
            return 0.0
        prev = ev[k] if k >= 0 else ev[0] - self.period
        return 1.2 * np.sin(np.pi * np.clip((t - prev) / (ev[k + 1] - prev), 0, 1)) ** 0.6

    def draw(self, img, i, fps):
        h, w = img.shape[:2]
        d.rect(img, 0, h - 2, w, h, FLOOR)
        d.rect(img, 0.2 * w, 0.85 * h, 0.6 * w, h - 2, (55, 55, 60))
        d.rect(img, 0.3 * w, 0.72 * h, 0.5 * w, 0.85 * h, (60, 60, 68))
        d.rect(img, 0.12 * w, 0.62 * h, 0.65 * w, 0.72 * h, (70, 70, 80))
        a = self.angle(i, fps)
        px, py, length = 0.9 * w, 0.54 * h, 0.5 * w
        hx, hy = px - length * np.cos(a), py - length * np.sin(a)
        d.line(img, px, py, hx, hy, (130, 90, 50), 2)
        d.rect(img, hx - 0.06 * w, hy - 0.08 * h, hx + 0.06 * w, hy + 0.08 * h, (160, 160, 172))


@dataclass(frozen=True)
class Car(Source):
    """Car driving along a road: an engine (sawtooth-like, f0 = 38 + 110 * speed Hz) plus rumble; pitch
    and level follow the speed (cell widths per s). Idle: parked with the engine off."""

    kind = "car"

    speed_t: tuple[float, ...]
    speed_v: tuple[float, ...]
    x0: float
    color: tuple[int, int, int]

    @classmethod
    def sample(cls, rng, duration, sounding):
        st, sv = knots(rng, duration, 2.0, 0.15, 0.7)
        if not cls._acts(sounding):
            sv = tuple(0.0 for _ in sv)
        color = _color(rng, [(200, 30, 30), (30, 80, 200), (230, 200, 40), (230, 230, 230)])
        return cls(sounding, int(rng.integers(2**31)), (), st, sv, rng.uniform(0, 1), color)

    def sound(self, n, sr):
        sp = pwl(self.speed_t, self.speed_v, np.arange(n) / sr)
        engine = harmonics(38 + 110 * sp, [1.0 / k for k in range(1, 25)], sr)
        rumble = noise(self._rng(), n, None, 300, sr)
        return guard((0.6 + sp) * (engine + 0.5 * rumble), sr)

    def draw(self, img, i, fps):
        h, w = img.shape[:2]
        d.rect(img, 0, 0.7 * h, w, h, (70, 70, 75))
        for x in range(2, w, 8):
            d.rect(img, x, 0.9 * h, x + 4, 0.9 * h + 1, (200, 200, 190))
        cl = 0.5 * w
        x = (self.x0 * w + w * pwl_integral(self.speed_t, self.speed_v, i / fps)) % (w + cl) - cl
        d.rect(img, x, 0.6 * h, x + cl, 0.76 * h, self.color)
        d.rect(img, x + 0.2 * cl, 0.47 * h, x + 0.75 * cl, 0.6 * h, tuple(int(c * 0.7) for c in self.color))
        d.rect(img, x + 0.28 * cl, 0.5 * h, x + 0.67 * cl, 0.58 * h, (170, 200, 230))
        for fx in (0.22, 0.78):
            d.disc(img, x + fx * cl, 0.77 * h, 0.075 * h, (20, 20, 20))

    def extras(self):
        return {"speed_knots": [list(p) for p in zip(self.speed_t, self.speed_v)]}


@dataclass(frozen=True)
class Drip(Source):
    """Dripping tap: a 'plink' (a sine rising 2.2x in 30 ms) when each drop hits the water.

    Idle: the tap is shut. The drop falls for 0.22 s and reaches the water at the event frame.
    """

    kind = "drip"
    FALL: ClassVar[float] = 0.22

    f0: float

    @classmethod
    def sample(cls, rng, duration, sounding):
        drops = []
        if cls._acts(sounding):
            t = rng.uniform(0.3, 0.9)
            while t < duration - 0.05:
                drops.append(round(t, 5))
                t += rng.uniform(0.35, 1.0)
        return cls(sounding, int(rng.integers(2**31)), tuple(drops), rng.uniform(650, 1000))

    def sound(self, n, sr):
        m = int(0.09 * sr)
        tt = np.arange(m) / sr
        f = self.f0 * 2.2 ** np.minimum(tt / 0.03, 1.0)
        plink = np.sin(2 * np.pi * np.cumsum(f) / sr) * envelope(m, sr, 0.001, 0.025)

        def drop(k):
            rng = self._rng(k)
            click = noise(rng, m, 1500, 5000, sr) * envelope(m, sr, 0.0003, 0.002)
            return _jitter_db(rng, 2.0) * (plink + 0.2 * click)

        return place(self.events, drop, n, sr)

    def draw(self, img, i, fps):
        h, w = img.shape[:2]
        water, surface, cx = (60, 90, 150), 0.84 * h, 0.52 * w
        d.rect(img, 0, 0.08 * h, 0.55 * w, 0.16 * h, (150, 150, 160))
        d.rect(img, 0.47 * w, 0.16 * h, 0.57 * w, 0.24 * h, (150, 150, 160))
        d.ellipse(img, 0.5 * w, 0.87 * h, 0.34 * w, 0.09 * h, (90, 100, 115))
        d.ellipse(img, 0.5 * w, 0.87 * h, 0.3 * w, 0.06 * h, water)
        lag = self._event_near(i, fps, after=4)
        if lag is not None:  # the splash: the drop at the surface, then a widening ripple
            d.ellipse(img, cx, surface + 1, 2 + 1.5 * lag, 0.8 + 0.3 * lag, (170, 200, 240))
            d.ellipse(img, cx, surface + 1, 1 + 1.5 * lag, 0.3 * lag, water)
        t = i / fps
        for e in self.events:
            if e - self.FALL <= t < e and lag != 0:
                frac = (t - (e - self.FALL)) / self.FALL
                d.disc(img, cx, 0.26 * h + (surface - 0.26 * h) * frac ** 2, 1.3, (120, 170, 255))


OBJECT_KINDS: tuple[type[Source], ...] = (Ball, Lamp, Fan, Bird, Walker, Door, Hammer, Car, Drip)
