"""Environment defaults for running flows from the CLI, applied before Prefect is imported.

Prefect's telemetry is switched off (it tries to reach the internet), its home is a writable folder,
and the ephemeral API server gets time to start on a slow machine. Values the user set win.

Without ``PREFECT_API_URL`` a flow runs on Prefect's ephemeral API server, a ``uvicorn`` child process.
Prefect stops it at exit, but a ``kill -9`` of the parent left it running (reparented to PID 1, still
listening). :func:`start_ephemeral_server` starts it as a child that the kernel stops with its parent
(Linux ``PR_SET_PDEATHSIG``); the CLI does so before every flow.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

DEFAULTS = {
    "DO_NOT_TRACK": "1",  # Prefect SDK analytics
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # the server's telemetry heartbeat
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",  # a fresh database takes ~10 s on 2 cores
}


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
        return True
    except OSError:
        return False


def default_prefect_home() -> str:
    """``~/.prefect`` when writable, else a folder under the system temp dir."""
    home = Path(os.environ.get("HOME") or "~").expanduser() / ".prefect"
    if _writable(home):
        return str(home)
    fallback = Path(tempfile.gettempdir()) / f"foley-prefect-home-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    fallback.mkdir(parents=True, exist_ok=True)
    return str(fallback)


def apply_defaults(*, quiet_console: bool = False) -> None:
    """Set the defaults above (and PREFECT_HOME) where the environment does not already say.

    ``quiet_console`` keeps Prefect's run logs off the console (progress bars stay readable, and a
    failed video's traceback is data, reported in the summary); they still reach the Prefect API.
    ``PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL=INFO`` shows them again.
    """
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    if "PREFECT_HOME" not in os.environ:
        os.environ["PREFECT_HOME"] = default_prefect_home()
    if quiet_console:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")


_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def _die_with(parent: int) -> None:
    """In the child, between fork and exec: ask for SIGTERM when the parent dies; exit if it already has."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


class _PopenDyingWithUs:
    """The ``subprocess`` module as Prefect's server module sees it while it starts the server, with
    ``Popen`` starting children that die with this process."""

    def __getattr__(self, name: str):
        return getattr(subprocess, name)

    @property
    def Popen(self):  # noqa: N802 - the attribute Prefect calls
        return functools.partial(subprocess.Popen, preexec_fn=functools.partial(_die_with, os.getpid()))


def start_ephemeral_server() -> None:
    """Start Prefect's ephemeral API server now, in this thread, as a child that dies with this process.

    Call it from the main thread (the kernel's parent-death signal follows the thread that started the
    child). It is the instance Prefect's clients use afterwards. Nothing happens with ``PREFECT_API_URL``
    set, when the server already runs, or off Linux (there the server still stops at a normal exit).
    """
    from prefect.server.api import server as server_module
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value() or _prctl is None or None in server_module.SubprocessASGIServer._instances:
        return
    server = server_module.SubprocessASGIServer()
    real, server_module.subprocess = server_module.subprocess, _PopenDyingWithUs()
    try:
        server.start()
    finally:
        server_module.subprocess = real


@contextlib.contextmanager
def local_run_settings() -> Iterator[None]:
    """Settings for a flow run on Prefect's ephemeral server (no ``PREFECT_API_URL``): no flow heartbeat, and
    the server started here so that it dies with this process (:func:`start_ephemeral_server`).

    Heartbeats let a server notice dead runs, which the ephemeral server never checks, and each flow
    run spends ~1 s joining the heartbeat thread. With a server configured nothing changes.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        start_ephemeral_server()
        yield


@contextlib.contextmanager
def shared_api() -> Iterator[None]:
    """Let other processes on this machine (a local Dask cluster's workers) use this process's Prefect API.

    Without ``PREFECT_API_URL``, every process that runs a task would start an ephemeral server of its
    own on the same database. So the ephemeral server is started here and ``PREFECT_API_URL`` (the
    setting, and the environment that worker processes inherit) points at it while the context lasts.
    """
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    start_ephemeral_server()  # dies with this process (on Linux)
    server = SubprocessASGIServer()  # the one Prefect's own client would start in this process
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield
    finally:
        del os.environ["PREFECT_API_URL"]
