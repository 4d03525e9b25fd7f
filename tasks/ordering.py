"""The order in which a video's captions are generated (track k is pushed away from tracks 1..k-1).

Modes: ``descending`` scorer score (the paper's default: the core event first; Table A5), ``ascending``,
``random`` (seeded by the run seed and the video id, so reruns agree) and ``given`` (manifest order).
A model without a caption scorer cannot rank captions: ``descending``/``ascending`` then fall back to
``given``, and the result says so (``order`` vs ``requested``; the run row records it too).
Results are cached by inputs (video content, model identity, captions, mode, seed, video id).
"""
from __future__ import annotations

import hashlib
import json
import random
from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from pipeline.handoffs import Captions, OrderedCaptions, PreparedVideo
from pipeline.models import load_model, model_id, video_features
from pipeline.params import check_order

CACHE_VERSION = 1  # bump when the ordering rules change: cached results name it


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
    inputs = json.dumps([list(parameters["captions"].captions), parameters["order"], parameters["seed"],
                         parameters["video_id"]])
    return (f"order-v{CACHE_VERSION}-{model_id(bundle)}-{parameters['video'].sha256}-{parameters['duration']}-"
            f"{hashlib.sha256(inputs.encode()).hexdigest()[:16]}")


@task(name="order-captions", cache_key_fn=_cache_key, persist_result=True, task_run_name="order-{video_id}")
def order_captions(captions: Captions, video: PreparedVideo, model: str, duration: float, order: str, seed: int,
                   video_id: str) -> OrderedCaptions:
    """Order the captions of :func:`tasks.captions.resolve_captions`.

    Returns:
        The captions in generation order, their scores (None without a scorer), the mode used and ``order``.
    """
    texts = list(captions.captions)
    bundle = load_model(model, duration)
    scores = None
    if bundle.scorer is not None and order in ("descending", "ascending"):
        features = video_features(bundle, video.video_uri, video.sha256, duration)
        scores = [float(s) for s in bundle.scorer.score(features.clip_f, texts)]
    idx, used = order_indices(scores, order, n=len(texts), seed=seed, video_id=video_id)
    return OrderedCaptions(tuple(texts[i] for i in idx), None if scores is None else tuple(scores[i] for i in idx),
                           used, order)
