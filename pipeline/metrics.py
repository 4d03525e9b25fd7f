"""The ``metrics`` rows of tracks and mixes (library code; the task is :func:`tasks.scoring.score_video`).

Always (``model`` = ``bs1770`` for levels): ``lufs`` (integrated loudness; omitted for silence),
``true_peak_db``, ``duration_s`` and ``limiter_gain_db`` (how far the true-peak ceiling lowered the
stem or the mix; 0 when it did not engage); per new track also ``generation_s`` (seconds of
generation, ``model`` = the model id) and, when the model has a caption scorer, ``caption_score``
(the score that ordered it).

With an audio evaluator on the bundle (:class:`nag_model.bundle.AudioEvaluator`: a CLAP-like space and
a tagger), as in the paper's per-track metrics: per track ``ta_similarity`` (cosine between the
track's audio embedding and its caption's text embedding; higher is better) and ``target_presence``
(mean tagger probability of the labels the caption names); per mix ``aa_similarity_mean`` and
``aa_similarity_max`` (audio-audio cosine over every pair of the mix's tracks; lower means better
separated tracks). The paper's CLAP, PANNs, PaSST, VGGish, ImageBind and Synchformer metrics plug into
the same evaluator slot. Only finite values are stored.
"""
from __future__ import annotations

import math
from itertools import combinations
from typing import Any, Sequence

import numpy as np

from media.audio_io import resample
from nag_model.bundle import AudioEvaluator
from audio.loudness import integrated_loudness, true_peak_db

LEVEL_MODEL = "bs1770"


def evaluator_name(evaluator: Any) -> str:
    return str(getattr(evaluator, "name", None) or type(evaluator).__name__)


def metric_row(track_id: str | None, version: int, metric: str, value: float, model: str | None) -> dict | None:
    value = float(value)
    if not math.isfinite(value):
        return None
    return {"track_id": track_id, "version": int(version), "metric": metric, "value": value, "model": model}


def level_metrics(wav: np.ndarray, rate: int, track_id: str | None, version: int) -> list[dict]:
    """Loudness, true peak and duration of one track or mix."""
    rows = [metric_row(track_id, version, "lufs", integrated_loudness(wav, rate), LEVEL_MODEL),
            metric_row(track_id, version, "true_peak_db", true_peak_db(wav, rate), LEVEL_MODEL),
            metric_row(track_id, version, "duration_s", wav.shape[-1] / rate, None)]
    return [r for r in rows if r is not None]


def _batch(waves: Sequence[np.ndarray], rate: int, target: int) -> np.ndarray:
    """(B, L) at the evaluator's rate, zero-padded to the longest."""
    xs = [resample(w, rate, target) if rate != target else np.asarray(w, np.float32) for w in waves]
    out = np.zeros((len(xs), max(x.shape[-1] for x in xs)), np.float32)
    for i, x in enumerate(xs):
        out[i, : x.shape[-1]] = x
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def evaluator_metrics(evaluator: AudioEvaluator, waves: Sequence[np.ndarray], rate: int, captions: Sequence[str],
                      track_ids: Sequence[str], versions: Sequence[int], score_ids: set[str],
                      mix_version: int) -> list[dict]:
    """Per-track text-audio similarity and target presence (for ``score_ids``) and the mix's audio-audio
    similarity over all its tracks, from an :class:`AudioEvaluator`."""
    name = evaluator_name(evaluator)
    batch = _batch(waves, rate, int(evaluator.sample_rate))
    audio = _unit(evaluator.embed_audio(batch))  # (B, D)
    text = _unit(evaluator.embed_text(list(captions)))  # (B, D)
    tags = np.asarray(evaluator.tag(batch), np.float64)  # (B, labels)
    label_index = {label: i for i, label in enumerate(evaluator.labels)}
    rows: list[dict | None] = []
    for k, (track_id, version, caption) in enumerate(zip(track_ids, versions, captions, strict=True)):
        if track_id not in score_ids:
            continue
        rows.append(metric_row(track_id, version, "ta_similarity", float(audio[k] @ text[k]), name))
        wanted = [label_index[l] for l in evaluator.labels_of(caption) if l in label_index]
        if wanted:
            rows.append(metric_row(track_id, version, "target_presence", float(tags[k, wanted].mean()), name))
    pairs = [float(audio[i] @ audio[j]) for i, j in combinations(range(len(waves)), 2)]
    if pairs:
        rows.append(metric_row(None, mix_version, "aa_similarity_mean", float(np.mean(pairs)), name))
        rows.append(metric_row(None, mix_version, "aa_similarity_max", float(np.max(pairs)), name))
    return [r for r in rows if r is not None]
