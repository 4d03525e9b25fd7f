"""Shared by the ported evaluation models' parity tests."""
from __future__ import annotations

import numpy as np
import pytest


def _rel_err(ours, ref) -> float:
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


@pytest.fixture
def rel_err():
    """max |ours - ref| / max |ref|, in float64: one scale-free parity measure for embeddings, logits and
    features against the numbers the official code produced."""
    return _rel_err
