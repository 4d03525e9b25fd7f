"""Where delivery runs (:func:`pipeline.delivery.mix_and_deliver`: the mix, the muxed video, the
spectrograms): threads of this process, or worker processes. :mod:`pipeline.host_work` chooses by where
the model runs:

* model on the CPU: two helper threads at a lower CPU priority (Linux niceness, per thread), so that
  delivering one video slows the synthesis of the next as little as it can;
* model on a GPU: spawned worker processes at the same lower priority. The cores are free then, and
  most of this work is Python holding the GIL (AAC encoding frame by frame, the limiter, the
  spectrograms), so threads would deliver about one video at a time however many cores there are.

A call gets back what ``fn(*args)`` returns or raises, wherever it ran (:func:`on_delivery_worker`).
"""
from __future__ import annotations

import contextlib
import os
import pickle
import sys
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

DELIVERY_NICE = 10  # delivery work yields the CPU to the model where both share it
DELIVERY_THREADS = 2  # with the model on the CPU


def _below_the_model() -> None:
    """Lower the priority of this delivery thread (or worker process: its first thread); Linux schedules
    threads individually."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), DELIVERY_NICE)


def _threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=DELIVERY_THREADS, thread_name_prefix="delivery", initializer=_below_the_model)


_pool: Executor = _threads()
_processes = 0  # worker processes of _pool; 0: it is the threads
_pool_lock = threading.Lock()
_alone = threading.BoundedSemaphore(4)  # calls run again alone after a pool broke, at most this many at once


class DeliveryWorkerDied(RuntimeError):
    """A delivery worker process ended without a Python error (a crash in FFmpeg, say) on this video."""


def _spawned(n: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=n, mp_context=get_context("spawn"), initializer=_below_the_model)


def use_processes(n: int) -> None:
    """Deliver on ``n`` spawned worker processes from now on (0: on the two low-priority threads). The
    previous pool finishes what it was given. Spawned, not forked: this process may hold CUDA and threads."""
    global _pool, _processes
    if n < 0:
        raise ValueError(f"worker processes must be >= 0, got {n}")
    with _pool_lock:
        if n == _processes:
            return
        old = _pool
        _pool = _spawned(n) if n else _threads()
        _processes = n
    old.shutdown(wait=False)


def delivery_processes() -> int:
    """Worker processes delivery runs on now (0: threads)."""
    return _processes


def on_delivery_worker(fn, *args):
    """``fn(*args)`` on a delivery thread of this process, or a worker process (:func:`use_processes`); its
    result or exception. ``fn`` and ``args`` must pickle (module-level function, plain values).

    An exception from a worker process keeps its chain of causes (what ``tasks.retry_policy`` reads to
    tell a missing file from a network hiccup). A worker process that dies takes its pool down with
    every call in it: each of those calls then runs again alone, in a process of its own, so the video
    that killed it fails its own row (:class:`DeliveryWorkerDied`) and the others are delivered."""
    with _pool_lock:
        pool, processes = _pool, _processes
    if not processes:
        return pool.submit(fn, *args).result()
    try:
        return _result(pool.submit(_in_worker, fn, args))
    except BrokenProcessPool:
        _replace_broken(pool)
    with _alone, _spawned(1) as alone:  # a broken pool may have held every waiting video: a few at a time
        try:
            return _result(alone.submit(_in_worker, fn, args))
        except BrokenProcessPool as exc:
            raise DeliveryWorkerDied(f"a delivery worker process died running {fn.__name__} (it ended without a "
                                     "Python error, e.g. a crash inside FFmpeg); this video failed, the others go on") from exc


def _replace_broken(pool: Executor) -> None:
    """A fresh pool of the same size in place of ``pool``, if no other call has replaced it yet."""
    global _pool
    with _pool_lock:
        if _pool is not pool:
            return
        _pool = _spawned(_processes)
    pool.shutdown(wait=False)


def _in_worker(fn, args):
    """Run in a worker process: ``fn(*args)``, its exception carrying its causes across the pickling."""
    try:
        return fn(*args)
    except BaseException as exc:
        causes, cur = [], exc.__cause__ or exc.__context__
        while cur is not None and len(causes) < 8:
            try:
                pickle.dumps(cur)
            except Exception:  # noqa: BLE001 - a cause that cannot travel is left out
                break
            causes.append(cur)
            cur = cur.__cause__ or cur.__context__
        try:
            exc._delivery_causes = causes  # an exception's __dict__ pickles with it; __cause__ does not
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - then without its causes
            exc.__dict__.pop("_delivery_causes", None)
        raise


def _result(future: Future):
    """``future.result()``, with a worker's exception linked back to its causes (the remote traceback last)."""
    try:
        return future.result()
    except BaseException as exc:
        causes = exc.__dict__.pop("_delivery_causes", None) if hasattr(exc, "__dict__") else None
        if causes:
            remote = exc.__cause__  # concurrent.futures' text of the worker's traceback
            exc.__cause__ = causes[0]
            for cause, after in zip(causes, causes[1:] + [remote]):
                cause.__cause__ = after
        raise
