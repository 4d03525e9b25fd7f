"""FD, KL and IS on cases with known answers."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

import torch
import torch.nn.functional as F

from evaluation import set_metrics
from evaluation.set_metrics import (frechet_distance, inception_score, inception_score_splits, kl_per_clip,
                                    kl_softmax_per_clip)


def test_fd_of_identical_sets_is_zero():
    x = np.random.default_rng(0).normal(size=(200, 6))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_fd_of_a_shifted_set_is_the_squared_shift():
    x = np.random.default_rng(1).normal(size=(300, 5))
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    assert frechet_distance(x + shift, x) == pytest.approx(float(shift @ shift), rel=1e-6)


def test_fd_of_gaussians_with_diagonal_covariances_matches_the_closed_form():
    # N(0, diag(a)) vs N(0, diag(b)): sum (sqrt a - sqrt b)^2, from samples whitened to the exact covariances
    rng = np.random.default_rng(2)
    z = rng.normal(size=(400, 3))
    z = (z - z.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # covariance exactly I
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = float(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    assert frechet_distance(z * np.sqrt(a), z * np.sqrt(b)) == pytest.approx(expected, rel=1e-6)


def test_fd_matches_scipy_sqrtm_on_full_rank_sets_and_is_exact_on_singular_ones():
    rng = np.random.default_rng(3)
    g, r = rng.normal(size=(50, 4)) @ rng.normal(size=(4, 4)), rng.normal(size=(60, 4)) + 0.3
    s_g, s_r = np.cov(g, rowvar=False), np.cov(r, rowvar=False)
    d = g.mean(0) - r.mean(0)
    expected = d @ d + np.trace(s_g + s_r - 2 * np.real(scipy.linalg.sqrtm(s_g @ s_r)))
    assert frechet_distance(g, r) == pytest.approx(expected, rel=1e-9)
    few = rng.normal(size=(3, 16))  # rank-2 covariances in 16 dimensions
    assert frechet_distance(few, few) == pytest.approx(0.0, abs=1e-5)  # sqrt of rounding-size eigenvalues
    assert frechet_distance(few + 1.0, few) == pytest.approx(16.0, rel=1e-6)


def test_kl_is_zero_for_equal_distributions_and_matches_hand_values_in_both_directions():
    p = np.array([[0.5, 0.5], [0.9, 0.1]])
    assert np.allclose(kl_per_clip(p, p), 0.0, atol=1e-6)
    gen, ref = np.array([[0.25, 0.75]]), np.array([[0.5, 0.5]])
    ref_gen = 0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75)  # KL(ref || gen)
    gen_ref = 0.25 * np.log(0.25 / 0.5) + 0.75 * np.log(0.75 / 0.5)  # KL(gen || ref)
    assert kl_per_clip(gen, ref)[0] == pytest.approx(ref_gen, abs=1e-5)
    assert kl_per_clip(gen, ref, direction="generated||reference")[0] == pytest.approx(gen_ref, abs=1e-5)
    # sigmoid outputs are normalised per clip first: (0.2, 0.6) is the distribution (0.25, 0.75)
    assert kl_per_clip(np.array([[0.2, 0.6]]), ref)[0] == pytest.approx(ref_gen, abs=1e-5)
    with pytest.raises(ValueError, match="one reference clip per generated clip"):
        kl_per_clip(p, p[:1])


def test_inception_score_of_uniform_is_one_and_of_distinct_one_hots_is_the_class_count():
    assert inception_score(np.full((10, 4), 0.25)) == pytest.approx(1.0)
    assert inception_score(np.eye(4)) == pytest.approx(4.0, rel=1e-4)
    two = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert inception_score(two) == pytest.approx(2.0, rel=1e-4)


# av-benchmark's variants (av_bench/metrics): FD by scipy sqrtm, KL and IS from raw logits


def test_fd_sqrtm_matches_the_closed_form_and_the_eigh_method_on_full_rank_sets():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(400, 3))
    z = (z - z.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = float(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)) + 4.0  # plus a mean shift of 2 in one dimension
    shift = np.array([0.0, 2.0, 0.0])
    assert frechet_distance(z * np.sqrt(a) + shift, z * np.sqrt(b), method="sqrtm") == pytest.approx(expected, rel=1e-9)
    g, r = rng.normal(size=(80, 6)) @ rng.normal(size=(6, 6)), rng.normal(size=(90, 6)) - 0.2
    assert frechet_distance(g, r, method="sqrtm") == pytest.approx(frechet_distance(g, r), rel=1e-9)
    with pytest.raises(ValueError, match="method must be one of"):
        frechet_distance(g, r, method="svd")


def test_fd_sqrtm_retries_with_eps_on_the_diagonals_when_the_root_is_not_finite(monkeypatch):
    calls = []
    real_sqrtm = scipy.linalg.sqrtm

    def sqrtm(a):
        calls.append(a)
        return np.full_like(a, np.inf) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(set_metrics.scipy.linalg, "sqrtm", sqrtm)
    rng = np.random.default_rng(4)
    g, r = rng.normal(size=(30, 3)), rng.normal(size=(40, 3))
    s_g, s_r = np.cov(g, rowvar=False), np.cov(r, rowvar=False)
    fd = frechet_distance(g, r, method="sqrtm")
    eye = np.eye(3) * 1e-6
    assert len(calls) == 2 and np.allclose(calls[1], (s_g + eye) @ (s_r + eye), rtol=0, atol=1e-15)
    d = g.mean(0) - r.mean(0)
    assert fd == pytest.approx(d @ d + np.trace(s_g + s_r) - 2 * np.trace(np.real(real_sqrtm(calls[1]))), rel=1e-12)


def test_kl_softmax_matches_hand_values_and_av_benchmarks_kl_div_expression():
    gen, ref = np.array([[0.0, np.log(3.0)]]), np.array([[5.0, 5.0]])  # softmax (0.25, 0.75) and (0.5, 0.5)
    expected = 0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75)  # KL(reference || generated), no epsilon
    assert kl_softmax_per_clip(gen, ref)[0] == pytest.approx(expected, rel=1e-12)
    assert kl_softmax_per_clip(gen + 7.0, ref)[0] == pytest.approx(expected, rel=1e-12)  # softmax: shift-free
    rng = np.random.default_rng(5)
    g, r = rng.normal(size=(6, 527)) * 3, rng.normal(size=(6, 527)) * 3
    torch_value = F.kl_div(F.log_softmax(torch.from_numpy(g), 1), F.log_softmax(torch.from_numpy(r), 1),
                           reduction="sum", log_target=True) / len(g)
    assert kl_softmax_per_clip(g, r).mean() == pytest.approx(float(torch_value), rel=1e-10)
    with pytest.raises(ValueError, match="one reference clip per generated clip"):
        kl_softmax_per_clip(g, r[:2])


def test_inception_score_splits_shuffles_with_randomstate_2020_then_scores_contiguous_splits():
    a, b = np.log([0.9, 0.1]), np.log([0.1, 0.9])
    k = 0.9 * np.log(1.8) + 0.1 * np.log(0.2)  # KL((0.9, 0.1) || (0.5, 0.5)) = KL((0.1, 0.9) || (0.5, 0.5))
    logits = np.stack([a, a, b, b])
    # unshuffled: splits [a, a] and [b, b], each with one distribution: score 1
    assert inception_score_splits(logits, splits=2, seed=None) == pytest.approx((1.0, 0.0))
    # RandomState(2020).permutation(4) = [2, 1, 3, 0]: splits [b, a] and [b, a], each exp(k)
    assert list(np.random.RandomState(2020).permutation(4)) == [2, 1, 3, 0]
    assert inception_score_splits(logits, splits=2) == pytest.approx((np.exp(k), 0.0))
    # splits of unequal content: [a, b] -> exp(k), [a, a] -> 1 (seed=None); mean and population std
    mean, std = inception_score_splits(np.stack([a, b, a, a]), splits=2, seed=None)
    assert (mean, std) == pytest.approx(((np.exp(k) + 1) / 2, (np.exp(k) - 1) / 2))
    assert inception_score_splits(logits, splits=1, seed=None)[0] == pytest.approx(np.exp(k))
    with pytest.raises(ValueError, match="at least `splits` = 10 clips"):
        inception_score_splits(logits)
