"""Set metrics of generated audio against a reference set: FD, KL and IS (numpy/scipy).

The formulas are those of the audio-generation benchmarks the paper follows (MMAudio's av-benchmark,
after AudioLDM's evaluation and Salimans et al. 2016); the feature spaces (PANNs, VGGish, PaSST, or the
demo evaluator) are the caller's. Every function takes plain arrays.

* **FD** (Fréchet distance): fit a Gaussian to each set of embeddings, then
  ``|mu_g - mu_r|^2 + Tr(S_g + S_r - 2 (S_g S_r)^(1/2))``.
* **KL**: per clip, the divergence between the class distribution of the generated audio and that of its own
  reference clip (same video), averaged over clips. The default direction is ``KL(reference || generated)``,
  which is what ``torch.nn.functional.kl_div(log p_generated, p_reference)`` computes, the call the
  AudioLDM / av-benchmark evaluations make; ``direction="generated||reference"`` gives the other one.
* **IS** (inception score): ``exp(mean_x KL(p(y|x) || p(y)))`` with ``p(y)`` the mean class distribution of
  the set; 1 when every clip has the same distribution, the number of classes at most.

Class probabilities from a multi-label tagger (independent sigmoids) are turned into one distribution
per clip by dividing by their sum (:func:`class_distributions`).

**av-benchmark's exact variants** (``av_bench/metrics``), for numbers comparable with published ones on the
PANNs and PaSST logits (:mod:`evaluation.models.panns`):

* FD: ``frechet_distance(..., method="sqrtm")`` takes ``scipy.linalg.sqrtm(S_g S_r)``, retried with 1e-6
  added to both diagonals when the result is not finite, as av-benchmark does; the default eigen-decomposition
  gives the same number on full-rank covariances and stays exact on singular ones.
* KL-PANNS-softmax / KL-PASST-softmax: :func:`kl_softmax_per_clip` over the raw 527 logits,
  ``KL(softmax(reference) || softmax(generated))`` with no epsilon; av-benchmark reports its mean over clips
  (``kl_div(..., reduction="sum") / N``).
* ISC-PANNS / ISC-PASST: :func:`inception_score_splits` over the raw logits: rows shuffled with
  ``np.random.RandomState(2020).permutation``, softmax, 10 contiguous splits, ``exp(mean KL(p || p_split))``
  per split, then the mean and (population) standard deviation over splits.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.special

EPS = 1e-6  # added to probabilities before the logarithms (as the AudioLDM evaluation does)
KL_DIRECTIONS = ("reference||generated", "generated||reference")


def gaussian_fit(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of (N, D) embeddings (unbiased; needs N >= 2)."""
    x = np.asarray(embeddings, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need (N >= 2, D) embeddings to fit a Gaussian, got shape {x.shape}")
    return x.mean(0), np.atleast_2d(np.cov(x, rowvar=False))


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (eigenvalues below 0 from rounding clipped)."""
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


FD_METHODS = ("eigh", "sqrtm")


def _trace_sqrtm_product(s_g: np.ndarray, s_r: np.ndarray, eps: float = 1e-6) -> float:
    """``Tr(sqrtm(S_g S_r))`` as av-benchmark takes it (``av_bench/metrics/fad.py``, after pytorch-fid)."""
    root = scipy.linalg.sqrtm(s_g @ s_r)
    if not np.isfinite(root).all():  # a singular product: retry with eps on both diagonals
        offset = np.eye(s_g.shape[0]) * eps
        root = scipy.linalg.sqrtm((s_g + offset) @ (s_r + offset))
    if np.iscomplexobj(root):
        if not np.allclose(np.diagonal(root).imag, 0.0, atol=1e-3):
            raise ValueError(f"sqrtm(S_g S_r) has an imaginary component of {np.abs(root.imag).max():.3g}")
        root = root.real
    return float(np.trace(root))


def frechet_distance(generated: np.ndarray, reference: np.ndarray, *, method: str = FD_METHODS[0]) -> float:
    """Fréchet distance between Gaussian fits of (N, D) and (M, D) embeddings (Heusel et al. 2017, Eq. 6).

    ``method="eigh"`` (default) takes ``Tr((S_g S_r)^(1/2))`` as ``Tr((S_r^(1/2) S_g S_r^(1/2))^(1/2))`` (the
    same number: the two matrices are similar), from symmetric eigen-decompositions, so it stays exact when
    the covariances are singular (fewer clips than dimensions), where ``scipy.linalg.sqrtm(S_g @ S_r)`` is
    inaccurate. ``method="sqrtm"`` is av-benchmark's computation (see the module docstring), for numbers
    comparable with published FD-PANN / FD-VGG / FD-PaSST.
    """
    if method not in FD_METHODS:
        raise ValueError(f"method must be one of {FD_METHODS}, got {method!r}")
    mu_g, s_g = gaussian_fit(generated)
    mu_r, s_r = gaussian_fit(reference)
    if mu_g.shape != mu_r.shape:
        raise ValueError(f"embedding sizes differ: {mu_g.shape[0]} vs {mu_r.shape[0]}")
    if method == "sqrtm":
        trace_root = _trace_sqrtm_product(s_g, s_r)
    else:
        root_r = _psd_sqrt(s_r)
        inner = root_r @ s_g @ root_r
        trace_root = float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None))))
    diff = mu_g - mu_r
    return float(diff @ diff + np.trace(s_g) + np.trace(s_r) - 2.0 * trace_root)


def class_distributions(probabilities: np.ndarray) -> np.ndarray:
    """(N, C) class probabilities (softmax or independent sigmoids) -> (N, C) rows summing to 1."""
    p = np.asarray(probabilities, np.float64)
    if p.ndim != 2 or (p < 0).any():
        raise ValueError(f"need (N, C) non-negative probabilities, got shape {p.shape}")
    return p / np.maximum(p.sum(-1, keepdims=True), 1e-12)


def _kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) of each row pair, over classes."""
    return np.sum(p * (np.log(p + EPS) - np.log(q + EPS)), axis=-1)


def kl_per_clip(generated: np.ndarray, reference: np.ndarray, *, direction: str = KL_DIRECTIONS[0]) -> np.ndarray:
    """(N,) KL divergence of each generated clip's class distribution against its own reference clip's.

    Args:
        generated, reference: (N, C) class probabilities, row i of both from the same video.
        direction: ``"reference||generated"`` (default, av-benchmark's) or ``"generated||reference"``.
    """
    if direction not in KL_DIRECTIONS:
        raise ValueError(f"direction must be one of {KL_DIRECTIONS}, got {direction!r}")
    g, r = class_distributions(generated), class_distributions(reference)
    if g.shape != r.shape:
        raise ValueError(f"need one reference clip per generated clip: shapes {g.shape} vs {r.shape}")
    return _kl_rows(r, g) if direction == KL_DIRECTIONS[0] else _kl_rows(g, r)


def inception_score(probabilities: np.ndarray) -> float:
    """``exp(mean_x KL(p(y|x) || p(y)))`` over (N, C) class probabilities (Salimans et al. 2016), one split."""
    p = class_distributions(probabilities)
    marginal = p.mean(0, keepdims=True)
    return float(np.exp(np.mean(_kl_rows(p, marginal))))


def _logits(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise ValueError(f"need (N, C) {what} logits, got shape {x.shape}")
    return x


def kl_softmax_per_clip(generated_logits: np.ndarray, reference_logits: np.ndarray) -> np.ndarray:
    """(N,) ``KL(softmax(reference) || softmax(generated))`` per clip, from (N, C) raw logits (av-benchmark).

    The mean over clips is av-benchmark's KL-PANNS-softmax / KL-PASST-softmax (``av_bench/metrics/kl.py``:
    ``kl_div(log_softmax(generated), log_softmax(reference), reduction="sum", log_target=True) / N``).
    """
    g, r = _logits(generated_logits, "generated"), _logits(reference_logits, "reference")
    if g.shape != r.shape:
        raise ValueError(f"need one reference clip per generated clip: shapes {g.shape} vs {r.shape}")
    log_g, log_r = scipy.special.log_softmax(g, axis=1), scipy.special.log_softmax(r, axis=1)
    return np.sum(np.exp(log_r) * (log_r - log_g), axis=1)


def inception_score_splits(logits: np.ndarray, *, splits: int = 10, seed: int | None = 2020) -> tuple[float, float]:
    """Inception score over (N, C) raw logits as av-benchmark computes ISC (``av_bench/metrics/isc.py``).

    Rows are shuffled with ``np.random.RandomState(seed).permutation(N)`` (``seed=None``: not shuffled), turned
    into softmax distributions and cut into ``splits`` contiguous parts (rows ``i N // splits`` to
    ``(i + 1) N // splits``); each part scores ``exp(mean_x KL(p(y|x) || mean p(y)))``.

    Returns:
        (mean, standard deviation) of the per-split scores (population std, as ``np.std``).
    """
    x = _logits(logits, "classifier")
    n = x.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"need at least `splits` = {splits} clips (and splits >= 1), got {n}")
    if seed is not None:
        x = x[np.random.RandomState(seed).permutation(n)]
    log_p = scipy.special.log_softmax(x, axis=1)
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        part, log_part = p[i * n // splits:(i + 1) * n // splits], log_p[i * n // splits:(i + 1) * n // splits]
        log_q = np.log(part.mean(axis=0, keepdims=True))
        scores.append(float(np.exp(np.mean(np.sum(part * (log_part - log_q), axis=1)))))
    return float(np.mean(scores)), float(np.std(scores))
