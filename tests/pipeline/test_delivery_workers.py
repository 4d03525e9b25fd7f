"""Delivery on worker processes (the plan of a run whose model is on a GPU, ``pipeline.host_work``): results
and exceptions come back as from a thread, and a worker that dies fails only the call that killed it."""
from __future__ import annotations

import operator
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from media.errors import MediaUnreadable
from pipeline import delivery_workers as delivery
from pipeline.videos import file_sha256
from tasks.retry_policy import is_transient


@pytest.fixture(scope="module")
def processes():
    delivery.use_processes(2)
    try:
        yield
    finally:
        delivery.use_processes(0)


def _missing_file_error(tmp_path) -> MediaUnreadable:
    with pytest.raises(MediaUnreadable) as info:
        delivery.on_delivery_worker(file_sha256, str(tmp_path / "gone.mp4"))
    return info.value


def test_threads_by_default(tmp_path):
    assert delivery.delivery_processes() == 0
    assert delivery.on_delivery_worker(operator.add, 2, 3) == 5
    assert delivery.on_delivery_worker(os.getpid) == os.getpid()
    assert not is_transient(_missing_file_error(tmp_path))  # a missing file is not retried


def test_a_worker_process_returns_what_a_thread_returns(processes):
    assert delivery.delivery_processes() == 2
    assert delivery.on_delivery_worker(operator.add, 2, 3) == 5
    assert delivery.on_delivery_worker(os.getpid) != os.getpid()


def test_an_exception_keeps_its_causes_across_the_process_boundary(processes, tmp_path):
    exc = _missing_file_error(tmp_path)
    assert isinstance(exc.__cause__, FileNotFoundError)
    assert not is_transient(exc)  # as from a thread: the missing file is permanent, so no retries
    assert "Traceback" in str(exc.__cause__.__cause__)  # the worker's traceback is still there, last


def test_a_dying_worker_fails_only_its_own_call(processes):
    """os._exit in a worker breaks the pool under every call in it; the other calls (running or queued) are
    run again alone, at most four at a time, and succeed; the culprit fails with DeliveryWorkerDied; later
    calls get a fresh pool."""
    with ThreadPoolExecutor(6) as callers:
        innocents = [callers.submit(delivery.on_delivery_worker, time.sleep, 1.0) for _ in range(5)]
        time.sleep(0.2)  # two innocents are running, three queued, when the culprit kills its worker
        culprit = callers.submit(delivery.on_delivery_worker, os._exit, 3)
        with pytest.raises(delivery.DeliveryWorkerDied, match="_exit"):
            culprit.result()
        assert [f.result() for f in innocents] == [None] * 5
    assert delivery.on_delivery_worker(operator.add, 2, 3) == 5
