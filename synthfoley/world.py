"""Composition of a SynthFoley clip: which sources, where, how loud, what the captions say.

`plan_clip(seed)` makes every random decision (cheap: no audio, no frames); `render(plan)` turns it
into frames, per-source stems and their mix; `make_clip` does both. One numpy Generator seeded with
the clip seed drives the plan; each source's noise has its own seed drawn from it, so the audio is
the same whether or not frames are rendered, at any frame size.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .ambience import AMBIENCE_KINDS
from .captions import LABELS, loudness_class, make_caption
from .draw import layout
from .dsp import active_level_db
from .sources import OBJECT_KINDS, Source

FPS = 25
SR = 16_000
MIN_SECONDS = 2.5  # every sounding source has an event in the first 2.5 s
MODEL_SECONDS = 8.0  # the model reads the first 8 s; levels and the label are measured there
REF_DB = -21.0  # active level (dsp.active_level_db) of a source at 0 dB gain
PEAK = 0.89  # the mix never peaks above this (-1 dBFS); all stems are scaled together if it would

KINDS: dict[str, type[Source]] = {cls.kind: cls for cls in OBJECT_KINDS + AMBIENCE_KINDS}

N_SOURCES_P = (0.15, 0.25, 0.25, 0.2, 0.15)  # P(1..5 sources)
AMBIENCE_WEIGHT = 0.6  # relative chance of picking an ambience kind vs an object kind
P_ON_SCREEN = 0.75  # an object kind is placed in a free cell with this chance, else it is off-screen
P_SILENT_VISIBLE = 0.3  # a visible object is silent (idle or muted) with this chance
P_SILENT_AMBIENCE = 0.15  # an ambience is only hinted (drawn, not heard) with this chance
P_HINT = 0.7  # a heard ambience also has its visual hint with this chance
GAIN_DB = {"on_screen": (-18.0, 0.0), "off_screen": (-20.0, -4.0), "ambience": (-22.0, -6.0)}
LABEL_MARGIN_DB = 1.5  # the loudest source beats the runner-up by at least this much


@dataclass(frozen=True)
class SourceInfo:
    """Ground truth of one source in a clip (the JSON sidecar holds these fields)."""

    kind: str
    on_screen: bool  # drawn in a cell (object kinds only)
    sounding: bool  # has audio; False for a visible idle/muted object or a hint-only ambience
    hint_visible: bool  # ambience: its visual hint is drawn
    cell: int | None  # 0..3 (row-major 2x2 grid) when on screen
    gain_db: float  # level relative to REF_DB; sets the caption adverb
    loudness: str  # "loud" | "moderate" | "soft"
    caption: str | None  # None when silent
    event_times: tuple[float, ...]  # physical events (contacts, steps, lamp switch-ons), seconds
    event_frames: tuple[int, ...]  # round(event_times * FPS): the frames that show them
    extras: dict = field(default_factory=dict)  # kind-specific curves and colours
    level_db: float | None = None  # measured active level of the stem over the first 8 s (None if silent)

    @property
    def timed_by_video(self) -> bool:
        """Whether the clip's picture fixes when this source sounds: it is on screen, or it has no discrete
        events (a continuous sound). Nothing shows the times of an off-screen event source."""
        return self.on_screen or not self.event_times


@dataclass(frozen=True)
class ClipPlan:
    seed: int
    duration: float
    sources: tuple[Source, ...]
    infos: tuple[SourceInfo, ...]
    label_index: int  # the most prominent (loudest) sounding source
    captions: tuple[str, ...]  # one per sounding source, loudest first
    palette: tuple[tuple[int, int, int], ...]  # sky top, sky bottom, ground


@dataclass(frozen=True)
class Clip:
    """A rendered clip. Arrays are read-only.

    frames: (T, H, W, 3) uint8 at FPS, T = round(duration * FPS); None when rendered without frames.
    stems: (S, N) float32 at SR, one row per source in `sources` (zeros for silent ones).
    mix: (N,) float32, exactly stems.sum(axis=0).
    """

    id: str
    seed: int
    duration: float
    frames: np.ndarray | None
    stems: np.ndarray
    mix: np.ndarray
    sources: tuple[SourceInfo, ...]
    label: str  # VGGSound-style label of the loudest source
    label_index: int
    captions: tuple[str, ...]
    fps: int = FPS
    sr: int = SR

    def meta(self) -> dict:
        """JSON-ready ground truth: ids, rates, label, captions and every SourceInfo."""
        return {
            "id": self.id, "seed": self.seed, "duration": self.duration, "fps": self.fps, "sr": self.sr,
            "size": None if self.frames is None else int(self.frames.shape[1]),
            "label": self.label, "label_index": self.label_index, "captions": list(self.captions),
            "sources": [dataclasses.asdict(s) for s in self.sources],
        }


def clip_id(seed: int) -> str:
    return f"sf-{seed:08d}"


def plan_clip(seed: int, duration: float = 8.0) -> ClipPlan:
    """Draw the sources of clip `seed`: kinds, placement, silence, gains, events and captions."""
    if duration < MIN_SECONDS:
        raise ValueError(f"duration must be at least {MIN_SECONDS} s, got {duration}")
    rng = np.random.default_rng(seed)
    n = int(rng.choice(len(N_SOURCES_P), p=N_SOURCES_P)) + 1
    names = list(KINDS)
    w = np.array([AMBIENCE_WEIGHT if KINDS[k].ambience else 1.0 for k in names])
    kinds = [str(k) for k in rng.choice(names, n, replace=False, p=w / w.sum())]
    free = [int(c) for c in rng.permutation(4)]

    rows = []  # [kind, on_screen, sounding, hint, cell, gain]
    for kind in kinds:
        if KINDS[kind].ambience:
            sounding = bool(rng.random() >= P_SILENT_AMBIENCE)
            hint = (not sounding) or bool(rng.random() < P_HINT)
            rows.append([kind, False, sounding, hint, None, rng.uniform(*GAIN_DB["ambience"])])
        elif free and rng.random() < P_ON_SCREEN:
            sounding = bool(rng.random() >= P_SILENT_VISIBLE)
            rows.append([kind, True, sounding, False, free.pop(), rng.uniform(*GAIN_DB["on_screen"])])
        else:
            rows.append([kind, False, True, False, None, rng.uniform(*GAIN_DB["off_screen"])])
    if not any(r[2] for r in rows):
        rows[0][2] = True
    heard = sorted((r for r in rows if r[2]), key=lambda r: -r[5])
    if len(heard) > 1 and heard[0][5] - heard[1][5] < LABEL_MARGIN_DB:
        heard[1][5] = heard[0][5] - LABEL_MARGIN_DB

    sources, infos = [], []
    for kind, on_screen, sounding, hint, cell, gain in rows:
        src = KINDS[kind].sample(rng, duration, sounding)
        gain = round(float(gain), 2)
        loud = loudness_class(gain)
        caption = make_caption(rng, kind, loud) if sounding else None
        events = tuple(e for e in src.events if 0 <= e < duration)
        sources.append(src)
        infos.append(SourceInfo(kind, on_screen, sounding, hint, cell, gain, loud, caption, events,
                                tuple(int(round(e * FPS)) for e in events), src.extras()))
    label_index = max((i for i, s in enumerate(infos) if s.sounding), key=lambda i: infos[i].gain_db)
    order = sorted((i for i, s in enumerate(infos) if s.sounding), key=lambda i: -infos[i].gain_db)
    top = rng.uniform([70, 110, 160], [150, 180, 235])
    palette = (tuple(int(c) for c in top), tuple(int(min(255, c + 45)) for c in top),
               tuple(int(c) for c in rng.uniform([60, 80, 40], [100, 125, 70])))
    return ClipPlan(seed, float(duration), tuple(sources), tuple(infos), label_index,
                    tuple(infos[i].caption for i in order), palette)


def render(plan: ClipPlan, size: int = 64, with_frames: bool = True) -> Clip:
    """Synthesize the stems and mix of a plan, and its frames unless with_frames is False."""
    if size < 32 or size % 2:
        raise ValueError(f"size must be an even number of pixels >= 32 (H.264 yuv420p), got {size}")
    n = int(round(plan.duration * SR))
    m = min(n, int(round(MODEL_SECONDS * SR)))
    stems = np.zeros((len(plan.sources), n), np.float64)  # (S, N)
    for k, (src, info) in enumerate(zip(plan.sources, plan.infos)):
        if info.sounding:
            x = src.sound(n, SR)
            level = active_level_db(x[:m], SR)
            if not np.isfinite(level):
                raise RuntimeError(f"clip {plan.seed}: sounding {info.kind} is silent in the first {m / SR} s")
            stems[k] = x * 10 ** ((REF_DB + info.gain_db - level) / 20)
    stems = stems.astype(np.float32)
    peak = float(np.abs(stems.sum(axis=0)).max())
    if peak > PEAK:
        stems *= np.float32(PEAK / peak)
    mix = stems.sum(axis=0)
    infos = tuple(dataclasses.replace(info, level_db=round(active_level_db(stems[k, :m], SR), 3))
                  if info.sounding else info for k, info in enumerate(plan.infos))
    frames = _frames(plan, size) if with_frames else None
    for a in (frames, stems, mix):
        if a is not None:
            a.flags.writeable = False
    return Clip(clip_id(plan.seed), plan.seed, plan.duration, frames, stems, mix, infos,
                LABELS[infos[plan.label_index].kind], plan.label_index, plan.captions)


def make_clip(seed: int, duration: float = 8.0, *, size: int = 64, with_frames: bool = True) -> Clip:
    """Clip `seed` of the SynthFoley world, entirely in memory (see plan_clip and render).

    Args:
        seed: any non-negative int; the same seed always gives the same clip.
        duration: seconds (the model reads the first 8 s; 10 s clips are fine).
        size: frame height and width in pixels (64 by default).
        with_frames: False skips drawing (the audio is unchanged).
    """
    return render(plan_clip(seed, duration), size, with_frames)


def _frames(plan: ClipPlan, size: int) -> np.ndarray:
    cells, strip_y = layout(size)
    top, bottom, ground = (np.asarray(c, np.float32) for c in plan.palette)
    bg = np.empty((size, size, 3), np.uint8)  # (H, W, 3)
    ramp = np.linspace(0.0, 1.0, strip_y)[:, None]
    bg[:strip_y] = np.rint(top * (1 - ramp) + bottom * ramp)[:, None, :].astype(np.uint8)
    bg[strip_y:] = ground.astype(np.uint8)
    frames = np.empty((int(round(plan.duration * FPS)), size, size, 3), np.uint8)  # (T, H, W, 3)
    pairs = list(zip(plan.sources, plan.infos))
    for i, img in enumerate(frames):
        img[...] = bg
        for src, info in pairs:
            if info.hint_visible and src.layer == "back":
                src.draw(img, i, FPS)
        for src, info in pairs:
            if info.on_screen:
                x0, y0, x1, y1 = cells[info.cell]
                src.draw(img[y0:y1, x0:x1], i, FPS)
        for src, info in pairs:
            if info.hint_visible and src.layer == "front":
                src.draw(img, i, FPS)
    return frames
