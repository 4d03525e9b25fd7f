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
separated tracks).

With the paper's evaluation models (configured with ``--eval-weights``, loaded by :mod:`evaluation.registry`;
``model`` = the model's name): :func:`clap_metrics` (CLAP T-A per track as ``ta_similarity``, CLAP A-A per mix
as ``aa_similarity_mean`` / ``aa_similarity_max``), :func:`ib_metrics` (``ib_score``: cosine of the video's and
the audio's ImageBind embeddings, per track and per mix) and :func:`desync_metrics` (``desync`` of the mix, in
seconds). Their set metrics (FD, KL, IS) are run-level rows (:mod:`evaluation.run_sets`). Only finite values
are stored.
"""
from __future__ import annotations

import math
from itertools import combinations
from typing import Any, Sequence

import numpy as np

from media.audio_io import resample
from media.decode import FrameRequest, decode_frames
from pipeline.objects import open_input
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
    tags = np.asarray(evaluator.tag(batch), np.float64)  # (B, labels)
    label_index = {label: i for i, label in enumerate(evaluator.labels)}
    rows = clap_metrics(evaluator, name, waves, rate, captions, track_ids, versions, score_ids, mix_version)
    for k, (track_id, version, caption) in enumerate(zip(track_ids, versions, captions, strict=True)):
        wanted = [label_index[l] for l in evaluator.labels_of(caption) if l in label_index]
        if track_id in score_ids and wanted:
            rows.append(metric_row(track_id, version, "target_presence", float(tags[k, wanted].mean()), name))
    return [r for r in rows if r is not None]


def clap_metrics(model: Any, name: str, waves: Sequence[np.ndarray], rate: int, captions: Sequence[str],
                 track_ids: Sequence[str], versions: Sequence[int], score_ids: set[str],
                 mix_version: int) -> list[dict]:
    """CLAP T-A (``ta_similarity``: each track of ``score_ids`` against its caption) and CLAP A-A
    (``aa_similarity_mean`` / ``_max`` over every pair of the mix's tracks; lower = better separated) from a
    model with ``embed_audio`` and ``embed_text`` (LAION-CLAP, or the demo evaluator)."""
    audio = _unit(model.embed_audio(_batch(waves, rate, int(model.sample_rate))))  # (B, D)
    text = _unit(model.embed_text(list(captions)))  # (B, D)
    rows: list[dict | None] = [metric_row(t, n, "ta_similarity", float(audio[k] @ text[k]), name)
                               for k, (t, n) in enumerate(zip(track_ids, versions, strict=True)) if t in score_ids]
    pairs = [float(audio[i] @ audio[j]) for i, j in combinations(range(len(waves)), 2)]
    if pairs:
        rows.append(metric_row(None, mix_version, "aa_similarity_mean", float(np.mean(pairs)), name))
        rows.append(metric_row(None, mix_version, "aa_similarity_max", float(np.max(pairs)), name))
    return [r for r in rows if r is not None]


IB_FPS, SYNC_FPS = 0.5, 25.0  # av-benchmark's frame rates for ImageBind and Synchformer
MAX_SHORT_SIDE = 480  # frames are handed over at the source size, the shorter edge at most this (memory)


def frame_request(model: Any, role: str, height: int, width: int) -> FrameRequest:
    """How ``model`` wants its frames decoded: its own ``frame_request(height, width)`` when it has one, else at
    its ``video_fps`` (ImageBind 0.5, Synchformer 25) and at the source size, so that the module does
    av-benchmark's resize and crops itself; a source whose shorter edge exceeds :data:`MAX_SHORT_SIDE` is
    scaled down to it first (bicubic, swscale), keeping the aspect ratio."""
    if hasattr(model, "frame_request"):
        return model.frame_request(height, width)
    fps = float(getattr(model, "video_fps", IB_FPS if role == "ib" else SYNC_FPS))
    scale = min(1.0, MAX_SHORT_SIDE / min(height, width))
    return FrameRequest(fps, (max(1, round(height * scale)), max(1, round(width * scale))))


def model_frames(video_uri: str, requests: Sequence[FrameRequest], seconds: float) -> list[np.ndarray]:
    """(T, H, W, 3) uint8 RGB frames of the first ``seconds`` of the video, one array per request (one decode)."""
    with open_input(video_uri) as source:
        decoded = decode_frames(source, list(requests), duration=seconds)
    return [s.frames for s in decoded.frame_sets]


def ib_metrics(model: Any, name: str, frames: np.ndarray, waves: Sequence[np.ndarray], mix: np.ndarray, rate: int,
               track_ids: Sequence[str], versions: Sequence[int], score_ids: set[str], mix_version: int) -> list[dict]:
    """IB-score: cosine between the video's ImageBind embedding and each track's (``score_ids``) and the mix's."""
    video = _unit(model.embed_video([frames]))[0]  # (D,)
    audio = _unit(model.embed_audio(_batch([*waves, mix], rate, int(model.sample_rate))))  # (B + 1, D)
    rows = [metric_row(t, n, "ib_score", float(audio[k] @ video), name)
            for k, (t, n) in enumerate(zip(track_ids, versions, strict=True)) if t in score_ids]
    rows.append(metric_row(None, mix_version, "ib_score", float(audio[-1] @ video), name))
    return [r for r in rows if r is not None]


def desync_metrics(model: Any, name: str, frames: np.ndarray, mix: np.ndarray, rate: int,
                   mix_version: int) -> list[dict]:
    """DeSync of the mix: Synchformer's mean |offset| in seconds over the first and last 4.8-s windows (none for a
    video shorter than the model's window: ``config.num_frames`` frames)."""
    need = getattr(getattr(model, "config", None), "num_frames", 0)
    if len(frames) < need:
        return []
    value = float(np.asarray(model.desync([frames], _batch([mix], rate, int(model.sample_rate))))[0])
    return [r for r in [metric_row(None, mix_version, "desync", value, name)] if r is not None]
