"""Rows of the ``metrics`` table for a video's new track versions and its new mix version.

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
from prefect import task
from prefect.cache_policies import NO_CACHE

from media.audio_io import resample
from nag_model.bundle import AudioEvaluator
from audio.loudness import integrated_loudness, true_peak_db
from storage.root import open_root
from pipeline.handoffs import OrderedCaptions
from pipeline.models import load_model, model_id
from pipeline.objects import read_audio
from tasks.retry_policy import IO_RETRY

LEVEL_MODEL = "bs1770"


def evaluator_name(evaluator: Any) -> str:
    return str(getattr(evaluator, "name", None) or type(evaluator).__name__)


def _row(track_id: str | None, version: int, metric: str, value: float, model: str | None) -> dict | None:
    value = float(value)
    if not math.isfinite(value):
        return None
    return {"track_id": track_id, "version": int(version), "metric": metric, "value": value, "model": model}


def level_metrics(wav: np.ndarray, rate: int, track_id: str | None, version: int) -> list[dict]:
    """Loudness, true peak and duration of one track or mix."""
    rows = [_row(track_id, version, "lufs", integrated_loudness(wav, rate), LEVEL_MODEL),
            _row(track_id, version, "true_peak_db", true_peak_db(wav, rate), LEVEL_MODEL),
            _row(track_id, version, "duration_s", wav.shape[-1] / rate, None)]
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
        rows.append(_row(track_id, version, "ta_similarity", float(audio[k] @ text[k]), name))
        wanted = [label_index[l] for l in evaluator.labels_of(caption) if l in label_index]
        if wanted:
            rows.append(_row(track_id, version, "target_presence", float(tags[k, wanted].mean()), name))
    pairs = [float(audio[i] @ audio[j]) for i, j in combinations(range(len(waves)), 2)]
    if pairs:
        rows.append(_row(None, mix_version, "aa_similarity_mean", float(np.mean(pairs)), name))
        rows.append(_row(None, mix_version, "aa_similarity_max", float(np.max(pairs)), name))
    return [r for r in rows if r is not None]


@task(name="score-video", cache_policy=NO_CACHE, task_run_name="score-{video_id}", **IO_RETRY)
def score_video(storage_url: str, run_id: str, video_id: str, tracks: list[dict], mix: dict, model: str,
                duration: float, ordered: OrderedCaptions | None = None, score_track_ids: list[str] | None = None) -> list[dict]:
    """``metrics`` rows for ``tracks`` (all tracks of the mix, in order) and ``mix`` (its ``mixes`` row).

    Args:
        ordered: :func:`tasks.ordering.order_captions`' result (its scores align with ``tracks``), if any.
        score_track_ids: which tracks get per-track rows (new versions only in an edit); None = all.
    """
    root = open_root(storage_url)
    bundle = load_model(model, duration)
    caption_scores = ordered.scores if ordered is not None else None
    score_ids = {t["track_id"] for t in tracks} if score_track_ids is None else set(score_track_ids)
    waves, rate = [], None
    rows: list[dict] = []
    for k, t in enumerate(tracks):
        wav, rate = read_audio(root, t["uri"])
        wav = wav if wav.ndim == 1 else wav.mean(axis=0)
        waves.append(wav)
        if t["track_id"] not in score_ids:
            continue
        rows += level_metrics(wav, rate, t["track_id"], t["version"])
        if "generation_s" in t:
            rows.append(_row(t["track_id"], t["version"], "generation_s", t["generation_s"], model_id(bundle)))
        if "limiter_gain_db" in t:
            rows.append(_row(t["track_id"], t["version"], "limiter_gain_db", t["limiter_gain_db"], LEVEL_MODEL))
        if caption_scores is not None and bundle.scorer is not None and k < len(caption_scores):
            rows.append(_row(t["track_id"], t["version"], "caption_score", caption_scores[k],
                             evaluator_name(bundle.scorer)))
    mix_wav, mix_rate = read_audio(root, mix["uri"])
    rows += level_metrics(mix_wav, mix_rate, None, mix["version"])
    rows.append(_row(None, mix["version"], "limiter_gain_db", mix.get("limiter_gain_db", 0.0), LEVEL_MODEL))
    if bundle.evaluator is not None:
        rows += evaluator_metrics(bundle.evaluator, waves, int(rate), [t["caption"] for t in tracks],
                                  [t["track_id"] for t in tracks], [t["version"] for t in tracks], score_ids,
                                  mix["version"])
    return [{"run_id": run_id, "video_id": video_id, **r} for r in rows if r is not None]
