"""The two-step captioning procedure of appendix C of the NAG paper, over any chat backend.

A backend is a :class:`Chat`: it takes OpenAI-style chat messages (text parts and ``image_url`` parts
holding ``data:`` URLs) and an optional JSON schema its answer must follow, and returns the answer text.
:func:`two_step_captions` runs

1. describe: the frames and :func:`captioning.prompt.describe_prompt`, free-form answer;
2. reformat: the step-1 answer and :func:`captioning.prompt.reformat_prompt`, answer constrained by
   :func:`captioning.prompt.caption_schema`, then checked by :func:`captioning.prompt.parse_answer`.

An empty step-1 answer is asked for once more; a malformed or empty step-2 answer is reformatted once more
(saying what was wrong). What still fails raises :class:`CaptionerAnswerError`, which carries the
:class:`CaptionTrace` (prompts, model, raw answers) so the failure can be recorded and traced.
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np
from PIL import Image

from captioning.prompt import (MAX_CAPTION_CHARS, MAX_CAPTIONS, MalformedAnswer, caption_schema, describe_prompt,
                               parse_answer, reformat_prompt)


class Chat(Protocol):
    """A chat backend: ``model`` names the model; calling it returns the answer text."""

    model: str

    def __call__(self, messages: list[dict], *, json_schema: dict | None = None, max_tokens: int = 512) -> str: ...


@dataclass(frozen=True)
class CaptionTrace:
    """Everything needed to trace a video's captions back to the model's answers."""

    backend: str  # 'endpoint' | 'local' | 'demo'
    model: str
    prompt: str | None = None  # the step-1 prompt (None for the bundle's own captioner, which takes no prompt)
    raw_answer: str | None = None  # step 1, free form
    structured_answer: str | None = None  # the last step-2 answer
    captions: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()  # captions of the answer left out, and why
    attempts: int = 0  # chat calls made
    error: str | None = None

    def to_dict(self) -> dict:
        return {"backend": self.backend, "model": self.model, "prompt": self.prompt, "raw_answer": self.raw_answer,
                "structured_answer": self.structured_answer, "captions": list(self.captions),
                "dropped": list(self.dropped), "attempts": self.attempts, "error": self.error}


class CaptionerAnswerError(ValueError):
    """The model gave no usable captions after the retries; ``trace`` holds its answers."""

    def __init__(self, message: str, trace: CaptionTrace):
        super().__init__(message)
        self.trace = trace

    def __reduce__(self):  # keeps the trace through pickling (Dask workers, Prefect results)
        return (type(self), (str(self), self.trace))


def image_part(frame: np.ndarray, quality: int = 85) -> dict:
    """An OpenAI ``image_url`` message part holding one ``(H, W, 3)`` uint8 RGB frame as a JPEG data URL."""
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"a frame must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()}}


def decode_image_part(part: dict) -> Image.Image:
    """The PIL image of an ``image_url`` part with a ``data:`` URL (what :func:`image_part` makes)."""
    url = part["image_url"]["url"] if isinstance(part.get("image_url"), dict) else part.get("image_url")
    if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
        raise ValueError("only base64 data: URLs are accepted as images")
    return Image.open(io.BytesIO(base64.b64decode(url.split(";base64,", 1)[1]))).convert("RGB")


@dataclass
class _Run:
    chat: Chat
    backend: str
    max_captions: int
    max_chars: int
    max_tokens: int
    prompt: str
    attempts: int = 0
    raw: str | None = None
    structured: str | None = None
    dropped: list[str] = field(default_factory=list)

    def ask(self, messages: list[dict], schema: dict | None) -> str:
        self.attempts += 1
        return self.chat(messages, json_schema=schema, max_tokens=self.max_tokens) or ""

    def trace(self, captions: Sequence[str] = (), error: str | None = None) -> CaptionTrace:
        return CaptionTrace(backend=self.backend, model=self.chat.model, prompt=self.prompt, raw_answer=self.raw,
                            structured_answer=self.structured, captions=tuple(captions), dropped=tuple(self.dropped),
                            attempts=self.attempts, error=error)


def two_step_captions(chat: Chat, frames: Sequence[np.ndarray], *, backend: str, max_captions: int = MAX_CAPTIONS,
                      max_chars: int = MAX_CAPTION_CHARS, max_tokens: int = 512) -> CaptionTrace:
    """Captions for a video seen through ``frames`` (a few ``(H, W, 3)`` uint8 RGB frames).

    Returns:
        The trace, with ``captions`` in the model's order (1 to ``max_captions``).

    Raises:
        CaptionerAnswerError: no usable answer after one retry of the failing step (the trace is attached).
        Whatever the backend raises for transport errors (after its own retries).
    """
    if not frames:
        raise ValueError("the captioner needs at least one frame")
    run = _Run(chat, backend, max_captions, max_chars, max_tokens, describe_prompt(max_captions))
    describe = [{"role": "user", "content": [*(image_part(f) for f in frames), {"type": "text", "text": run.prompt}]}]
    for _ in range(2):
        run.raw = run.ask(describe, None)
        if run.raw.strip():
            break
    else:
        raise CaptionerAnswerError("the captioner's description of the video was empty twice",
                                   run.trace(error="empty description"))
    schema = caption_schema(max_captions, max_chars)
    reason = None
    for _ in range(2):
        text = reformat_prompt(run.raw, max_captions, retry_reason=reason)
        run.structured = run.ask([{"role": "user", "content": text}], schema)
        try:
            captions, dropped = parse_answer(run.structured, max_captions=max_captions, max_chars=max_chars)
        except MalformedAnswer as exc:
            reason = str(exc)
            continue
        run.dropped = dropped
        return run.trace(captions)
    raise CaptionerAnswerError(f"the captioner's answer was unusable twice: {reason}", run.trace(error=reason))
