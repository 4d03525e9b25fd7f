"""The logger of the current Prefect run, or the module logger when a task runs as ``task.fn()``."""
from __future__ import annotations

import logging

from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger


def logger() -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger inside a flow or task run; ``logging.getLogger("foley")`` otherwise."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("foley")
