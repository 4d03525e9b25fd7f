"""The captions stage: a video's captions from the manifest, else proposed by a captioner.

The rules (manifest captions, or up to 5 proposed by a captioner; empty, blank and over-long captions fail
the video) are in :mod:`pipeline.caption_rules`.

Results are cached by inputs (persisted in Prefect's result storage): the captioner is a model, and
its proposals for a given video content and model identity never change.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from prefect import task
from prefect.context import TaskRunContext

from captioning.captioner import CaptionerSettings
from common.captioners import DEMO
from pipeline.caption_rules import DEFAULT_MAX_CAPTION_CHARS, MAX_CAPTIONS, CaptionError, check_captions
from pipeline.captioner import bundle_captions, vlm_captions
from pipeline.handoffs import Captions, PreparedVideo
from pipeline.models import load_model, model_id
from storage.manifest import ManifestEntry

CACHE_VERSION = 2  # bump when the rules of pipeline.caption_rules change: cached results name it


def _cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """The result is a function of the video's content, the model, the manifest's captions (else the
    captioner's identity) and the limit."""
    bundle = load_model(parameters["model"], parameters["duration"])
    given = parameters["entry"].captions
    captioner = parameters.get("captioner") or CaptionerSettings()
    source = (f"captioner-{captioner.identity()}" if given is None
              else hashlib.sha256(json.dumps(list(given)).encode()).hexdigest()[:16])
    return (f"captions-v{CACHE_VERSION}-{model_id(bundle)}-{parameters['video'].sha256}-{parameters['duration']}-"
            f"{parameters.get('max_caption_chars', DEFAULT_MAX_CAPTION_CHARS)}-{source}")


@task(name="resolve-captions", cache_key_fn=_cache_key, persist_result=True, task_run_name="captions-{entry.video_id}")
def resolve_captions(entry: ManifestEntry, video: PreparedVideo, model: str, duration: float,
                     max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS,
                     captioner: CaptionerSettings | None = None) -> Captions:
    """Captions for one manifest entry.

    Returns:
        The checked :class:`Captions` and their source (``"manifest"`` or ``"captioner"``); proposed
        captions carry the captioner's :class:`captioning.two_step.CaptionTrace`.

    Raises:
        CaptionError: see the module docstring.
    """
    bundle = load_model(model, duration)
    max_words = bundle.base.config.text_seq_len
    if entry.captions is not None:
        checked = check_captions(list(entry.captions), max_chars=max_caption_chars, max_words=max_words)
        return Captions(tuple(checked), "manifest")
    captioner = captioner or CaptionerSettings()
    if captioner.kind == DEMO and bundle.captioner is None:
        raise CaptionError(f"the manifest gives no captions for {entry.video_id!r} and the model "
                           f"{bundle.name!r} has no captioner; add captions to the manifest")
    trace = (bundle_captions(bundle, video, duration, MAX_CAPTIONS) if captioner.kind == DEMO
             else vlm_captions(captioner, video, duration))
    checked = check_captions(list(trace.captions), max_chars=max_caption_chars, max_words=max_words)
    return Captions(tuple(checked), "captioner", trace)
