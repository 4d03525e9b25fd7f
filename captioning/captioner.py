"""Which captioner proposes captions for videos that have none, and the frames it is shown.

:class:`CaptionerSettings` is the one setting the pipeline passes around (``--captioner demo|endpoint|local``
and its options). ``demo`` is the model bundle's own captioner (:mod:`nag_model`); ``endpoint`` and ``local``
run the two-step VLM procedure of :mod:`captioning.two_step` through :mod:`captioning.endpoint` or
:mod:`captioning.local`. No API key is ever part of the settings: it is read where the request is made
(environment variable or Prefect Secret block named here).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from captioning.prompt import MAX_CAPTION_CHARS, MAX_CAPTIONS
from common.captioners import CAPTIONERS

Kind = Literal["demo", "endpoint", "local"]
KINDS = CAPTIONERS
DEFAULT_API_KEY_ENV = "FOLEY_VLM_API_KEY"
FRAME_LONG_SIDE = 448  # px; Qwen2.5-VL reads ~(448/28)^2 = 256 tokens per frame at this size


@dataclass(frozen=True)
class CaptionerSettings:
    """How captions are proposed for videos that have none in the manifest.

    Attributes:
        kind: ``demo`` (the model bundle's captioner), ``endpoint`` (an OpenAI-compatible chat endpoint that
            serves a VLM) or ``local`` (a transformers VLM folder).
        url, model: the endpoint's base URL (``http://host:8000/v1``) and served model name (``endpoint``).
        path: the local model folder (``local``); ``device``, ``dtype``: where and how it runs.
        api_key_env: environment variable holding the endpoint's API key (default ``FOLEY_VLM_API_KEY``).
        api_key_block: name of a Prefect ``Secret`` block holding it instead.
        n_frames: frames sampled evenly over the captioned seconds and sent as images.
        timeout_s, retries: per request, and retries of transient errors (endpoint).
        max_tokens: per answer.
    """

    kind: Kind = "demo"
    url: str | None = None
    model: str | None = None
    path: str | None = None
    device: str = "cpu"
    dtype: str | None = None
    api_key_env: str = DEFAULT_API_KEY_ENV
    api_key_block: str | None = None
    n_frames: int = 4
    timeout_s: float = 120.0
    retries: int = 3
    max_tokens: int = 512
    max_captions: int = MAX_CAPTIONS
    max_chars: int = MAX_CAPTION_CHARS

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"captioner must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "endpoint" and not (self.url and self.model):
            raise ValueError("--captioner endpoint needs --captioner-url (e.g. http://vlm:8000/v1) and "
                             "--captioner-model (the served model name)")
        if self.kind == "local" and not self.path:
            raise ValueError("--captioner local needs --captioner-path (a transformers VLM folder)")
        if not 1 <= self.n_frames <= 32:
            raise ValueError(f"n_frames must be 1..32, got {self.n_frames}")
        if not 1 <= self.max_captions <= MAX_CAPTIONS:
            raise ValueError(f"max_captions must be 1..{MAX_CAPTIONS}, got {self.max_captions}")

    @classmethod
    def from_dict(cls, data: dict | None) -> "CaptionerSettings":
        return cls(**(data or {}))

    def to_dict(self) -> dict:
        return asdict(self)

    def identity(self) -> str:
        """What the captions depend on (no key, no timeouts): 16 hex digits, for caches."""
        spec = {k: v for k, v in asdict(self).items()
                if k not in ("api_key_env", "api_key_block", "timeout_s", "retries", "device")}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    def model_name(self) -> str:
        """The captioning model as recorded: served name, folder name, or 'demo'."""
        if self.kind == "endpoint":
            return f"{self.model} @ {self.url}"
        if self.kind == "local":
            return str(self.path)
        return "demo"


def frame_size(width: int | None, height: int | None, long_side: int = FRAME_LONG_SIDE) -> tuple[int, int]:
    """``(height, width)`` with the video's aspect ratio and ``long_side`` pixels on the longer side (even)."""
    if not width or not height:
        return long_side, long_side
    scale = long_side / max(width, height)
    return max(2, round(height * scale / 2) * 2), max(2, round(width * scale / 2) * 2)


def sample_frames(source, duration: float, n_frames: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``n_frames`` RGB frames ``(H, W, 3)`` spread evenly over the first ``duration`` seconds (fewer when short)."""
    from media.decode import FrameRequest, decode_frames

    decoded = decode_frames(source, [FrameRequest(n_frames / duration, size, "stretch")], duration=duration)
    return list(decoded.frame_sets[0].frames[:n_frames])


def make_chat(settings: CaptionerSettings, api_key: str | None = None):
    """The chat backend of ``settings`` (``endpoint`` or ``local``)."""
    if settings.kind == "endpoint":
        from captioning.endpoint import EndpointChat, EndpointConfig

        return EndpointChat(EndpointConfig(settings.url, settings.model, settings.timeout_s, settings.retries),
                            api_key=api_key)
    if settings.kind == "local":
        from captioning.local import LocalChat

        return LocalChat(settings.path, device=settings.device, dtype=settings.dtype)
    raise ValueError(f"the {settings.kind!r} captioner is the model bundle's; it has no chat backend")
