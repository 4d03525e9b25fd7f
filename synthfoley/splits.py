"""Train/val/test splits: disjoint ranges of clip seeds, and the in-memory clip stream for training."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .world import Clip, make_clip, plan_clip

SPLITS: dict[str, range] = {
    "train": range(0, 10_000_000),
    "val": range(10_000_000, 10_100_000),
    "test": range(10_100_000, 10_200_000),
}


def split_seeds(split: str, n: int, seed: int = 0) -> np.ndarray:
    """n distinct clip seeds of `split`, drawn without replacement by a Generator seeded with (seed, split).

    The same (split, n, seed) always gives the same seeds; seeds of different splits never overlap.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {sorted(SPLITS)}")
    seeds = SPLITS[split]
    if not 0 <= n <= len(seeds):
        raise ValueError(f"n must be in [0, {len(seeds)}] for split {split!r}, got {n}")
    rng = np.random.default_rng([seed, list(SPLITS).index(split)])
    return seeds.start + rng.choice(len(seeds), n, replace=False)


def iter_clips(split: str, n: int, seed: int = 0, *, duration: float = 8.0, size: int = 64,
               with_frames: bool = True) -> Iterator[Clip]:
    """Yield the n clips of split_seeds(split, n, seed), made in memory (no file I/O)."""
    for s in split_seeds(split, n, seed):
        yield make_clip(int(s), duration, size=size, with_frames=with_frames)


def seed_range(spec: str) -> range:
    """'START:STOP' -> range(START, STOP) of clip seeds (any seeds, inside a split or not)."""
    try:
        start, stop = (int(v) for v in spec.split(":"))
    except ValueError:
        raise ValueError(f"a seed range is START:STOP with two integers, got {spec!r}") from None
    if not 0 <= start < stop:
        raise ValueError(f"need 0 <= START < STOP in a seed range, got {spec!r}")
    return range(start, stop)


def captioned_seeds(candidates, n: int, min_captions: int = 1, max_captions: int = 5) -> list[int]:
    """The first n seeds of `candidates` whose clip has min..max captions (cheap: plans only)."""
    out = []
    for s in candidates:
        if min_captions <= len(plan_clip(int(s)).captions) <= max_captions:
            out.append(int(s))
            if len(out) == n:
                break
    return out
