"""Paired bootstrap of rate differences over clips."""
from __future__ import annotations

import numpy as np
import pytest

from synthfoley.stats import paired_rate_difference


def _clips(n=60, p_a=0.1, p_b=0.2, seed=0):
    rng = np.random.default_rng(seed)
    den = rng.integers(3, 11, n)  # pairs per clip
    hard = rng.uniform(0.5, 1.5, n)  # a clip effect both methods share (what pairing removes)
    return rng.binomial(den, np.clip(p_a * hard, 0, 1)), den, rng.binomial(den, np.clip(p_b * hard, 0, 1)), den


def test_estimate_is_the_pooled_difference_and_ratio():
    a, da, b, db = _clips()
    d = paired_rate_difference(a, da, b, db)
    r = paired_rate_difference(a, da, b, db, relative=True)
    assert d.estimate == pytest.approx(a.sum() / da.sum() - b.sum() / db.sum())
    assert r.estimate == pytest.approx((a.sum() / da.sum()) / (b.sum() / db.sum()) - 1)
    assert d.low < d.estimate < d.high and r.low < r.estimate < r.high


def test_a_clear_cut_is_significant_and_no_change_is_not():
    assert paired_rate_difference(*_clips(p_a=0.05, p_b=0.25)).high < 0
    same = paired_rate_difference(*_clips(p_a=0.2, p_b=0.2, seed=3))
    assert same.low < 0 < same.high and not same.significant()
    ident = paired_rate_difference(*_clips()[2:], *_clips()[2:])
    assert (ident.estimate, ident.low, ident.high) == (0.0, 0.0, 0.0)


def test_width_matches_the_cluster_standard_error():
    """With equal denominators, the difference is sum(a - b) / sum(den): its cluster (clip) standard
    error gives the normal-theory half width, which the percentile bootstrap should match closely."""
    a, den, b, _ = _clips(n=200, seed=5)
    d = paired_rate_difference(a, den, b, den, n_resamples=4000)
    per_clip = (a - b) - d.estimate * den  # linearised ratio estimator
    se = np.sqrt(len(den) * per_clip.var(ddof=1)) / den.sum()
    assert (d.high - d.low) / 2 == pytest.approx(1.96 * se, rel=0.15)


def test_seeded_and_checked():
    a, da, b, db = _clips()
    assert paired_rate_difference(a, da, b, db, seed=7) == paired_rate_difference(a, da, b, db, seed=7)
    with pytest.raises(ValueError, match="one count per clip"):
        paired_rate_difference(a[:-1], da, b, db)
    assert np.isnan(paired_rate_difference(a, da, b * 0, db, relative=True).estimate)


def test_relative_interval_survives_resamples_without_baseline_events():
    den = np.full(20, 5)
    b = np.zeros(20, int)
    b[:2] = 1  # two baseline events: some resamples have none
    a = np.zeros(20, int)
    r = paired_rate_difference(a, den, b, den, relative=True)
    assert r.estimate == -1.0 and r.low == -1.0 and r.high == -1.0
