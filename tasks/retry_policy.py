"""Retries for I/O tasks: exponential backoff, and only for errors that can go away by themselves.

A missing file, a permission error, a corrupt video or a bad caption will fail the same way on every
attempt, so those end the task at once (and become an error row); a network or storage hiccup
(any other ``OSError``, including ``media.MediaUnreadable`` caused by one) is retried after 2, 4 and
8 s (+-20% jitter). The deterministic synthesis step has no retries.
"""
from __future__ import annotations

from typing import Any

from prefect.tasks import exponential_backoff

IO_RETRIES = 3
IO_BACKOFF_S = 2.0

PERMANENT_OS_ERRORS: tuple[type[OSError], ...] = (FileNotFoundError, IsADirectoryError, NotADirectoryError,
                                                   PermissionError)


def is_transient(exc: BaseException | None) -> bool:
    """True when retrying could help: an ``OSError`` that is not (caused by) a permanent one."""
    if not isinstance(exc, OSError):
        return False
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, PERMANENT_OS_ERRORS):
            return False
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return True


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only transient errors (see :func:`is_transient`)."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return is_transient(exc)


IO_RETRY: dict[str, Any] = {
    "retries": IO_RETRIES,
    "retry_delay_seconds": exponential_backoff(backoff_factor=IO_BACKOFF_S),
    "retry_jitter_factor": 0.2,
    "retry_condition_fn": retry_if_transient,
}
