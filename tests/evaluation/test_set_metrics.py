"""FD, KL and IS on cases with known answers."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from evaluation.set_metrics import frechet_distance, inception_score, kl_per_clip


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


def test_kl_softmax_matches_hand_computed_values_and_torch_kl_div():
    import torch
    import torch.nn.functional as F

    from evaluation.set_metrics import kl_softmax_per_clip

    ref, gen = np.array([[0.0, np.log(3.0)]]), np.array([[0.0, 0.0]])  # softmax: (1/4, 3/4) vs (1/2, 1/2)
    expected = 0.25 * np.log(0.25 / 0.5) + 0.75 * np.log(0.75 / 0.5)
    assert kl_softmax_per_clip(gen, ref)[0] == pytest.approx(expected, rel=1e-12)
    rng = np.random.default_rng(5)
    g, r = rng.normal(size=(7, 11)) * 3, rng.normal(size=(7, 11)) * 3
    torch_kl = F.kl_div(F.log_softmax(torch.from_numpy(g), 1), F.log_softmax(torch.from_numpy(r), 1),
                        reduction="sum", log_target=True) / 7  # av-benchmark's call
    assert kl_softmax_per_clip(g, r).mean() == pytest.approx(float(torch_kl), rel=1e-10)
    assert kl_softmax_per_clip(r, r) == pytest.approx(np.zeros(7), abs=1e-12)


def test_inception_score_of_logits_follows_av_benchmark_splits():
    from evaluation.set_metrics import inception_score_logits

    one_hot = np.full((20, 4), -50.0)
    one_hot[np.arange(20), np.arange(20) % 4] = 50.0  # 4 classes, 5 clips each
    assert inception_score_logits(one_hot, splits=1) == pytest.approx(4.0, rel=1e-9)
    assert inception_score_logits(np.zeros((30, 5))) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(25, 6)) * 2
    perm = np.random.RandomState(2020).permutation(25)  # by hand: av-benchmark's shuffle and chunks
    p = np.exp(x[perm]) / np.exp(x[perm]).sum(-1, keepdims=True)
    chunks = [p[i * 25 // 10:(i + 1) * 25 // 10] for i in range(10)]
    by_hand = np.mean([np.exp(np.mean(np.sum(c * (np.log(c) - np.log(c.mean(0, keepdims=True))), -1))) for c in chunks])
    assert inception_score_logits(x) == pytest.approx(by_hand, rel=1e-10)
    assert inception_score_logits(x[:3]) == pytest.approx(
        inception_score_logits(x[:3], splits=3))  # fewer clips than splits: one chunk per clip
