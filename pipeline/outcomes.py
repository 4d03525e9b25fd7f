"""What the stages of one video delivered, and the first failure among them (the error of its row)."""
from __future__ import annotations

from typing import Any

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
