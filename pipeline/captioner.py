"""The captioners behind the captions stage (library code; the task is :func:`tasks.captions.resolve_captions`).

``--captioner demo`` is the model bundle's own captioner; ``endpoint`` and ``local`` ask a VLM with the
paper's two-step prompt (:mod:`captioning.two_step`). Either way the proposal comes back as a
:class:`captioning.two_step.CaptionTrace`, which the :class:`pipeline.handoffs.Captions` hand-off carries to
the ``captions`` table. A VLM's chat backend is made once per process (a local model loads once); its API
key is read where the backend is made, from a Prefect ``Secret`` block or the environment, and is never
part of the settings.
"""
from __future__ import annotations

import json
import os
import threading
from typing import Any

from captioning.captioner import CaptionerSettings, frame_size, make_chat, sample_frames
from captioning.two_step import CaptionTrace, two_step_captions
from nag_model.bundle import FoleyBundle
from pipeline.handoffs import PreparedVideo
from pipeline.models import model_id, video_features
from pipeline.objects import open_input

_chats: dict[str, Any] = {}
_chats_lock = threading.Lock()


def api_key(settings: CaptionerSettings) -> str | None:
    """The endpoint's API key: from the Prefect ``Secret`` block named in the settings, else the environment."""
    if settings.api_key_block:
        from prefect.blocks.system import Secret

        return Secret.load(settings.api_key_block).get()
    return os.environ.get(settings.api_key_env) or None


def vlm_chat(settings: CaptionerSettings):
    """The chat backend of ``settings``, made once per process (a local model loads once)."""
    key = json.dumps(settings.to_dict(), sort_keys=True)
    with _chats_lock:
        if key not in _chats:
            _chats[key] = make_chat(settings, api_key(settings) if settings.kind == "endpoint" else None)
        return _chats[key]


def vlm_captions(settings: CaptionerSettings, video: PreparedVideo, duration: float) -> CaptionTrace:
    """The two-step VLM captions of a prepared video, shown ``settings.n_frames`` frames of its first
    ``duration`` seconds (:func:`captioning.two_step.two_step_captions`).

    Raises:
        captioning.two_step.CaptionerAnswerError: no usable answer (it carries the trace).
    """
    with open_input(video.video_uri) as source:
        frames = sample_frames(source, min(duration, video.duration_s or duration), settings.n_frames,
                               frame_size(video.width, video.height))
    return two_step_captions(vlm_chat(settings), frames, backend=settings.kind, max_captions=settings.max_captions,
                             max_chars=settings.max_chars, max_tokens=settings.max_tokens)


def bundle_captions(bundle: FoleyBundle, video: PreparedVideo, duration: float, max_captions: int) -> CaptionTrace:
    """The bundle's own captioner's proposals for a prepared video (the bundle must have a captioner)."""
    features = video_features(bundle, video.video_uri, video.sha256, duration)
    proposed = bundle.captioner.propose(features.clip_f, features.sync_f, max_captions=max_captions)
    return CaptionTrace(backend="demo", model=model_id(bundle), captions=tuple(proposed))
