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
"""
from __future__ import annotations

import numpy as np

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


def frechet_distance(generated: np.ndarray, reference: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of (N, D) and (M, D) embeddings (Heusel et al. 2017, Eq. 6).

    ``Tr((S_g S_r)^(1/2))`` is taken as ``Tr((S_r^(1/2) S_g S_r^(1/2))^(1/2))`` (the same number: the two
    matrices are similar), from symmetric eigen-decompositions, so it stays exact when the covariances are
    singular (fewer clips than dimensions), where ``scipy.linalg.sqrtm(S_g @ S_r)`` is inaccurate.
    """
    mu_g, s_g = gaussian_fit(generated)
    mu_r, s_r = gaussian_fit(reference)
    if mu_g.shape != mu_r.shape:
        raise ValueError(f"embedding sizes differ: {mu_g.shape[0]} vs {mu_r.shape[0]}")
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


# ---- av-benchmark's forms over a classifier's logits (PANNs Cnn14, PaSST): what the paper's KL and IS use
IS_SPLITS, IS_SEED = 10, 2020  # av-benchmark's compute_isc(splits=10, samples_shuffle=True, rng_seed=2020)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    if z.ndim != 2:
        raise ValueError(f"need (N, C) logits, got shape {z.shape}")
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def kl_softmax_per_clip(generated_logits: np.ndarray, reference_logits: np.ndarray) -> np.ndarray:
    """(N,) ``KL(softmax(reference) || softmax(generated))`` per clip pair, exact log-softmax (no epsilon).

    av-benchmark's ``KL-PANNS-softmax`` / ``KL-PASST-softmax`` is the mean of these over the pairs
    (``F.kl_div(log_softmax(gen), log_softmax(ref), reduction="sum", log_target=True) / N``).
    """
    lg, lr = _log_softmax(generated_logits), _log_softmax(reference_logits)
    if lg.shape != lr.shape:
        raise ValueError(f"need one reference clip per generated clip: shapes {lg.shape} vs {lr.shape}")
    return np.sum(np.exp(lr) * (lr - lg), axis=-1)


def inception_score_logits(logits: np.ndarray, *, splits: int = IS_SPLITS, seed: int | None = IS_SEED) -> float:
    """Inception score of (N, C) logits as av-benchmark computes it: softmax, clips shuffled with
    ``np.random.RandomState(seed)`` (None: not shuffled), ``splits`` consecutive chunks
    (``[i N // splits, (i + 1) N // splits)``), ``exp(mean KL(p || mean p))`` per chunk, mean over chunks.

    With fewer clips than ``splits`` some chunks would be empty (NaN in av-benchmark): ``splits`` is then
    lowered to the number of clips. Returns the mean (av-benchmark also reports the std over chunks).
    """
    log_p = _log_softmax(logits)
    n = log_p.shape[0]
    if n < 1:
        raise ValueError("need at least one clip")
    if seed is not None:
        log_p = log_p[np.random.RandomState(seed).permutation(n)]
    k = min(int(splits), n)
    scores = []
    for i in range(k):
        chunk = log_p[i * n // k:(i + 1) * n // k]
        p = np.exp(chunk)
        q = p.mean(0, keepdims=True)
        scores.append(float(np.exp(np.mean(np.sum(p * (chunk - np.log(q)), axis=-1)))))
    return float(np.mean(scores))
