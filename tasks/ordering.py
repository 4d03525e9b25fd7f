"""The order in which a video's captions are generated (track k is pushed away from tracks 1..k-1).

Modes: ``descending`` scorer score (the paper's default: the core event first; Table A5), ``ascending``,
``random`` (seeded by the run seed and the video id, so reruns agree) and ``given`` (manifest order).
The scores come from ImageBind (the paper's choice: the video-text cosine of ImageBind huge, frames at
0.5 fps) when it is among the run's evaluation models (``--eval-weights imagebind=PATH``), else from the
model's own caption scorer (the demo world's). With neither, ``descending``/``ascending`` fall back to
``given``, and the result says so (``order`` vs ``requested``; the run row records it too).
Results are cached by inputs (video content, model identity, scorer, captions, mode, seed, video id).
"""
from __future__ import annotations

import hashlib
import json
import random
from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from evaluation.registry import load_eval_model, model_label, parse_eval_weights
from pipeline.handoffs import Captions, OrderedCaptions, PreparedVideo
from pipeline.metrics import evaluator_name, frame_request, model_frames
from pipeline.models import load_model, model_id, video_features
from pipeline.params import check_order

CACHE_VERSION = 2  # bump when the ordering rules change: cached results name it
ORDER_MODEL = "imagebind"  # the evaluation model that orders captions when configured (section 5.1)


def order_indices(scores: list[float] | None, order: str, *, n: int, seed: int, video_id: str) -> tuple[list[int], str]:
    """Indices of the captions in generation order, and the mode actually used (pure function)."""
    check_order(order)
    if order == "random":
        rng = random.Random(hashlib.sha256(f"order\x00{seed}\x00{video_id}".encode()).digest())
        idx = list(range(n))
        rng.shuffle(idx)
        return idx, "random"
    if order == "given" or scores is None:
        return list(range(n)), "given"
    sign = -1.0 if order == "descending" else 1.0
    return sorted(range(n), key=lambda i: (sign * scores[i], i)), order


def _cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """The order is a function of the video's content, the model, the captions, the mode, seed and video id."""
    bundle = load_model(parameters["model"], parameters["duration"])
    ib = parse_eval_weights(parameters.get("eval_weights")).get(ORDER_MODEL)
    inputs = json.dumps([list(parameters["captions"].captions), parameters["order"], parameters["seed"],
                         parameters["video_id"], None if ib is None else [ib.path, ib.preset]])
    return (f"order-v{CACHE_VERSION}-{model_id(bundle)}-{parameters['video'].sha256}-{parameters['duration']}-"
            f"{hashlib.sha256(inputs.encode()).hexdigest()[:16]}")


@task(name="order-captions", cache_key_fn=_cache_key, persist_result=True, task_run_name="order-{video_id}")
def order_captions(captions: Captions, video: PreparedVideo, model: str, duration: float, order: str, seed: int,
                   video_id: str, eval_weights: list[str] | None = None) -> OrderedCaptions:
    """Order the captions of :func:`tasks.captions.resolve_captions`.

    Args:
        eval_weights: the run's evaluation models (``evaluation.registry``); with ``imagebind`` among them,
            ImageBind's video-text score ranks the captions.

    Returns:
        The captions in generation order, their scores (None without a scorer), the mode used, ``order``
        and the scorer's name.
    """
    texts = list(captions.captions)
    scores, scorer = None, None
    if order in ("descending", "ascending"):
        scores, scorer = caption_scores(texts, video, model, duration, eval_weights)
    idx, used = order_indices(scores, order, n=len(texts), seed=seed, video_id=video_id)
    return OrderedCaptions(tuple(texts[i] for i in idx), None if scores is None else tuple(scores[i] for i in idx),
                           used, order, scorer if scores is not None else None)


def caption_scores(texts: list[str], video: PreparedVideo, model: str, duration: float,
                   eval_weights: list[str] | None) -> tuple[list[float] | None, str | None]:
    """Each caption's video-text score and the scorer's name: ImageBind on the video's first ``duration``
    seconds when configured, else the model's caption scorer on its clip features; (None, None) without."""
    ib = parse_eval_weights(eval_weights).get(ORDER_MODEL)
    if ib is not None and video.width and video.height:
        scorer = load_eval_model(ORDER_MODEL, ib)
        frames = model_frames(video.video_uri, [frame_request(scorer, "ib", video.height, video.width)], duration)[0]
        return [float(s) for s in scorer.score_captions(frames, texts)], model_label(ORDER_MODEL, scorer)
    bundle = load_model(model, duration)
    if bundle.scorer is None:
        return None, None
    features = video_features(bundle, video.video_uri, video.sha256, duration)
    return [float(s) for s in bundle.scorer.score(features.clip_f, texts)], evaluator_name(bundle.scorer)
