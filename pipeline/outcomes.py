"""What the stages of one video delivered, the first failure among them (the error of its row), and the
captions stage's trace for the ``captions`` table."""
from __future__ import annotations

from typing import Any

from captioning.two_step import CaptionerAnswerError
from pipeline.handoffs import Captions
from storage.commit import captions_row

STAGES = ("reset", "prepare", "captions", "ordering", "synthesis", "mixing", "scoring")


def first_failure(results: dict[str, Any]) -> tuple[str, BaseException] | None:
    """The first stage (in :data:`STAGES` order) whose result is an exception, or one that never ran.

    ``results`` maps stage names to what each stage delivered (``flows.catalog.outcome``): the value,
    the exception of a failed task, or None for a task that did not run because an upstream task failed.
    """
    missing = None
    for stage in STAGES:
        value = results.get(stage)
        if isinstance(value, BaseException):
            return stage, value
        if value is None and missing is None:
            missing = stage
    if missing is not None:
        return missing, RuntimeError(f"the {missing} stage did not run")
    return None


def describe_error(stage: str, exc: BaseException) -> str:
    """``"<stage>: <ErrorType>: <message>"`` (one line, at most 2000 characters)."""
    text = " ".join(str(exc).split()) or repr(exc)
    return f"{stage}: {type(exc).__name__}: {text}"[:2000]


def captions_outcome_row(run_id: str, video_id: str, version: int, captions: Any) -> dict | None:
    """The ``captions`` row (:func:`storage.commit.captions_row`) of what the captions stage delivered: its
    :class:`~pipeline.handoffs.Captions` (with the captioner's trace when proposed), or a
    :class:`~captioning.two_step.CaptionerAnswerError` carrying the model's unusable answers; None when
    there is nothing to trace (the stage did not run, or failed otherwise)."""
    if isinstance(captions, CaptionerAnswerError):
        return captions_row(run_id, video_id, version, captions=None, trace=captions.trace.to_dict(),
                            error=describe_error("captions", captions))
    if isinstance(captions, Captions):
        return captions_row(run_id, video_id, version, captions=captions.captions,
                            trace=captions.trace.to_dict() if captions.trace is not None else None)
    return None
