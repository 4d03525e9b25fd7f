"""Statistics of benchmark results in the SynthFoley world: paired bootstrap over clips.

Rates such as leakage are pooled over (track, earlier track) pairs, but the pairs of one clip are
not independent, so confidence intervals resample whole clips. Two methods run on the same clips
are compared *paired*: each bootstrap sample draws clips once and recomputes both methods' rates on
them, which removes the clip-to-clip variation the methods share.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.stats import DegenerateDataWarning, bootstrap


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap confidence interval."""

    estimate: float
    low: float
    high: float

    def significant(self) -> bool:
        """The interval excludes 0."""
        return self.high < 0 or self.low > 0


def paired_rate_difference(num_a, den_a, num_b, den_b, *, relative: bool = False, confidence: float = 0.95,
                           n_resamples: int = 2000, seed: int = 0) -> Interval:
    """Difference of pooled rates, method a minus baseline b, with a paired percentile bootstrap over clips.

    Args:
        num_a, den_a: per-clip counts for method a (events such as leaking pairs, and items such as pairs).
        num_b, den_b: the same clips' counts for the baseline b.
        relative: report sum(num_a)/sum(den_a) / (sum(num_b)/sum(den_b)) - 1 instead of the difference.
        confidence, n_resamples, seed: the bootstrap's level, number of resamples and seed.

    Returns:
        The estimate on all clips and the interval; NaN where the baseline rate is 0 (relative) or
        there are fewer than 2 clips. Relative intervals leave out the resamples whose baseline rate is 0.
    """
    data = [np.asarray(v, np.float64) for v in (num_a, den_a, num_b, den_b)]
    if len({len(v) for v in data}) != 1:
        raise ValueError(f"need one count per clip in every array, got lengths {[len(v) for v in data]}")

    def statistic(na, da, nb, db, axis=-1):
        ra = na.sum(axis) / np.maximum(da.sum(axis), 1e-12)
        rb = nb.sum(axis) / np.maximum(db.sum(axis), 1e-12)
        if relative:
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(rb > 0, ra / np.where(rb > 0, rb, 1.0) - 1.0, np.nan)
        return ra - rb

    estimate = float(statistic(*data))
    if len(data[0]) < 2 or not np.isfinite(estimate):
        return Interval(estimate, float("nan"), float("nan"))
    with warnings.catch_warnings():  # every resample equal (e.g. no clip differs): the interval is that value
        warnings.simplefilter("ignore", DegenerateDataWarning)
        res = bootstrap(data, statistic, paired=True, vectorized=True, confidence_level=confidence,
                        n_resamples=n_resamples, method="percentile", rng=np.random.default_rng(seed))
    if not relative:
        return Interval(estimate, float(res.confidence_interval.low), float(res.confidence_interval.high))
    # a resample whose baseline rate is 0 has no relative change: leave it out (rare unless rates are tiny)
    tail = 50 * (1 - confidence)
    low, high = np.nanpercentile(res.bootstrap_distribution, [tail, 100 - tail])
    return Interval(estimate, float(low), float(high))
