"""The GPU slot: a named Prefect global concurrency limit that every synthesis holds (library code;
the task that creates the limit is :func:`tasks.gpu_slot.ensure_gpu_slots`).

One limit (``gpu`` by default, one slot per GPU) is shared by every worker process on the Prefect
server. Within a process, syntheses queue on a local lock and the process holds one slot for as long
as it has synthesis work, handing it from one synthesis to the next in memory; it releases the slot
after :data:`LINGER_S` seconds without work. Acquiring a slot is an API call that took ~2 s on
Prefect's ephemeral (SQLite) server while the flow's other tasks were writing their states, so
releasing and re-acquiring between consecutive videos left the GPU idle that long each time.

Slots are leased for :data:`GPU_LEASE_S` and renewed while held: on a Prefect server, the slot of a
killed worker comes back when its lease expires. The ephemeral server expires no leases (see
:func:`ensure_limit`).

A flow releases what its process still holds when it ends (:func:`release_gpu_slots`, a flow state hook):
released at interpreter exit instead, the release needed new threads after Python had begun shutting
them down, and every deployed run ended with an ERROR traceback ("can't register atexit after shutdown").
"""
from __future__ import annotations

import atexit
import contextlib
import threading
from typing import Iterator

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.concurrency.sync import concurrency
from prefect.context import SettingsContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_URL

GPU_SLOT = "gpu"
GPU_LEASE_S = 60  # a killed holder's slot returns this long after its last renewal (on a full server)
LINGER_S = 1.0  # keep the slot this long after the last synthesis, for the next one
RESERVE_S = 5.0  # a flow reserves the slot this long at its start, before its first synthesis is ready
RESERVE_WAIT_S = 1.0  # and waits this long at most for it, before its tasks start (see SlotHolder.reserve)


def ensure_limit(name: str = GPU_SLOT, slots: int = 1) -> tuple[int, int]:
    """Create the global concurrency limit ``name`` with ``slots`` slots if it does not exist; returns its
    size and how many slots left taken by a killed earlier run were released.

    An existing limit keeps its size (an operator may have sized it to the GPUs). Without the limit,
    Prefect's ``concurrency()`` would silently not limit anything. Prefect's ephemeral server (no
    ``PREFECT_API_URL``: a local ``foley run``) runs no lease expiry, and a fresh one cannot hold leases
    of other processes, so there the slots still counted as taken by an earlier run that was killed are
    released here.
    """
    released = 0
    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
            except ObjectAlreadyExists:  # created concurrently
                pass
            limit = client.read_global_concurrency_limit_by_name(name)
        if PREFECT_API_URL.value() is None and limit.active_slots and not holder(name).holding:
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=0))
            released = limit.active_slots
    return limit.limit, released


class _Attempt:
    """One acquisition of the slot and the hold that follows it."""

    def __init__(self) -> None:
        self.held = False
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None


class SlotHolder:
    """Holds one slot of a global limit for this process while syntheses want it (module docstring)."""

    def __init__(self, name: str, linger_s: float = LINGER_S):
        self.name, self.linger_s = name, linger_s
        self._cv = threading.Condition()
        self._users = 0  # syntheses running or queued in this process
        self._attempt: _Attempt | None = None
        self._closing = False
        self._flushing = False  # release now, once: the end of a flow
        self._timers: list[threading.Timer] = []
        self._run = threading.Lock()  # one synthesis at a time in this process

    @property
    def holding(self) -> bool:
        with self._cv:
            return self._attempt is not None and self._attempt.held

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Run the body with the slot held by this process, one body at a time."""
        with self._cv:
            self._users += 1
            attempt = self._attempt
            if attempt is None:
                attempt = self._attempt = _Attempt()
                self._start(attempt)
            self._cv.wait_for(lambda: attempt.held or attempt.error is not None)
            if not attempt.held:
                self._users -= 1
                raise attempt.error  # type: ignore[misc]
        try:
            with self._run:
                yield
        finally:
            with self._cv:
                self._users -= 1
                self._cv.notify_all()

    def _start(self, attempt: _Attempt) -> None:
        """Acquire and hold in a thread with the caller's Prefect settings: its API URL comes from them (a
        task on a Dask worker gets it from the flow's context, not from the worker's environment)."""
        caller = SettingsContext.get()

        def keep() -> None:
            with SettingsContext(profile=caller.profile, settings=caller.settings):
                self._keep(attempt)

        attempt.thread = threading.Thread(target=keep, name=f"gpu-slot-{self.name}", daemon=True)
        attempt.thread.start()

    def _keep(self, attempt: _Attempt) -> None:
        try:
            with concurrency(self.name, occupy=1, strict=True, lease_duration=GPU_LEASE_S,
                             raise_on_lease_renewal_failure=False):
                with self._cv:
                    attempt.held = True
                    self._cv.notify_all()
                    while True:  # never released under a running synthesis
                        self._cv.wait_for(lambda: self._users == 0)
                        if self._closing or self._flushing or not self._cv.wait_for(
                                lambda: self._users > 0 or self._closing or self._flushing, timeout=self.linger_s):
                            break
                    self._attempt = None  # from here on, a new synthesis starts a new acquisition
                    self._cv.notify_all()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting syntheses
            with self._cv:
                attempt.error = exc
                if self._attempt is attempt:
                    self._attempt = None
                self._cv.notify_all()

    def reserve(self, seconds: float, wait_s: float = RESERVE_WAIT_S) -> None:
        """Start acquiring the slot now and keep it for ``seconds`` even without work, so the first
        synthesis of a flow does not wait for the API while the flow starts its other tasks.

        Waits up to ``wait_s`` for the slot (a slot held elsewhere is then waited for in the background):
        the flow's burst of task runs that follows makes Prefect's SQLite server answer the slot's API
        call with a 503 now and then, which Prefect's client retries only ~2 s later.
        """
        with self._cv:
            self._users += 1
            if self._attempt is None:
                self._attempt = _Attempt()
                self._start(self._attempt)
            attempt = self._attempt
            self._cv.wait_for(lambda: attempt.held or attempt.error is not None, timeout=wait_s)
        timer = threading.Timer(seconds, self._unreserve, args=(None,))
        timer.args = (timer,)
        timer.daemon = True
        with self._cv:
            self._timers.append(timer)
        timer.start()

    def _unreserve(self, timer: threading.Timer) -> None:
        with self._cv:
            if timer in self._timers:  # not already given back by release()
                self._timers.remove(timer)
                self._users -= 1
                self._cv.notify_all()

    def release(self, timeout: float = 10.0) -> None:
        """Give the slot back now if this process holds it and no synthesis runs or waits (the end of a
        flow): pending reservations end and the hold does not linger. A later synthesis acquires again."""
        with self._cv:
            for timer in self._timers:
                timer.cancel()
                self._users -= 1
            self._timers.clear()
            attempt = self._attempt
            if attempt is None or not attempt.held or self._users > 0:  # nothing held, or still in use
                self._cv.notify_all()
                return
            self._flushing = True
            self._cv.notify_all()
            self._cv.wait_for(lambda: self._attempt is not attempt, timeout=timeout)
            self._flushing = False
        if attempt.thread is not None:
            attempt.thread.join(timeout)  # the release itself happens as the thread leaves concurrency()

    def close(self, timeout: float = 5.0) -> None:
        """Release the slot as soon as no synthesis runs, without lingering (at interpreter exit)."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        for thread in threading.enumerate():
            if thread.name == f"gpu-slot-{self.name}":
                thread.join(timeout)


_holders: dict[str, SlotHolder] = {}
_holders_lock = threading.Lock()


def holder(name: str) -> SlotHolder:
    """This process's holder of the limit ``name``."""
    with _holders_lock:
        if name not in _holders:
            _holders[name] = SlotHolder(name)
            atexit.register(_holders[name].close)
        return _holders[name]


def release_gpu_slots(*_hook_args: object) -> None:
    """Give back every slot this process holds and no synthesis uses (signature of a Prefect state hook:
    ``@flow(on_completion=[release_gpu_slots], on_failure=[...])``)."""
    with _holders_lock:
        holders = list(_holders.values())
    for holder in holders:
        holder.release()


@contextlib.contextmanager
def gpu_slot(name: str | None) -> Iterator[None]:
    """Hold one slot of the global limit ``name`` (strict: a missing limit is an error); None: no slot."""
    if name is None:
        yield
        return
    with holder(name).hold():
        yield
