"""Shared helpers for the SynthFoley tests, as fixtures (test modules are imported in importlib mode)."""
from __future__ import annotations

import numpy as np
import pytest

from synthfoley.world import plan_clip


def _onsets(x: np.ndarray, sr: int, rel: float = 1e-3, gap: float = 0.03) -> np.ndarray:
    """Times (s) where |x| rises above rel * max|x| after at least `gap` s below it (or at the start)."""
    active = np.flatnonzero(np.abs(x) > rel * np.abs(x).max())
    if len(active) == 0:
        return np.zeros(0)
    starts = np.concatenate([active[:1], active[1:][np.diff(active) > gap * sr]])
    return starts / sr


def _find_seeds(pred, n: int, limit: int = 3000, clear_view: bool = False) -> list[int]:
    """The first n seeds whose plan has a source satisfying pred(info) (and no rain over the picture)."""
    def ok(p):
        rain = any(i.kind == "rain" and i.hint_visible for i in p.infos)
        return any(pred(i) for i in p.infos) and not (clear_view and rain)

    found = []
    for s in range(limit):
        if len(found) == n:
            break
        if ok(plan_clip(s)):
            found.append(s)
    assert len(found) == n, f"only {len(found)} seeds below {limit} match"
    return found


@pytest.fixture
def onsets():
    return _onsets


@pytest.fixture
def find_seeds():
    return _find_seeds
