"""The GPU slot: a real global concurrency limit, held by the process across consecutive syntheses."""
from __future__ import annotations

import threading
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError
from prefect.concurrency.sync import concurrency

from pipeline import gpu_slot as gpu
from tasks.gpu_slot import ensure_gpu_slots


def active_slots(name: str) -> int:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots


def test_syntheses_never_overlap_and_share_one_acquisition(monkeypatch):
    name = "gpu-test-share"
    assert ensure_gpu_slots.fn(name, 1) == 1
    acquisitions = []
    real = gpu.concurrency
    monkeypatch.setattr(gpu, "concurrency", lambda *a, **k: acquisitions.append(a) or real(*a, **k))
    running, peak, lock = [0], [0], threading.Lock()

    def synthesis():
        with gpu.gpu_slot(name):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            assert active_slots(name) == 1
            time.sleep(0.2)
            with lock:
                running[0] -= 1

    threads = [threading.Thread(target=synthesis) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1 and len(acquisitions) == 1  # one hold, handed from one synthesis to the next
    deadline = time.monotonic() + 10
    while active_slots(name) and time.monotonic() < deadline:  # released after LINGER_S without work
        time.sleep(0.2)
    assert active_slots(name) == 0


def test_the_slot_waits_for_another_holder():
    name = "gpu-test-other"
    ensure_gpu_slots.fn(name, 1)
    taken = threading.Event()

    def other_process():
        with concurrency(name, occupy=1, strict=True, lease_duration=60):
            taken.set()
            time.sleep(1.5)

    other = threading.Thread(target=other_process)
    other.start()
    taken.wait(10)
    start = time.monotonic()
    with gpu.gpu_slot(name):
        waited = time.monotonic() - start
    other.join()
    assert waited > 1.0  # it had to wait for the other holder to release


def test_a_missing_limit_is_an_error_not_a_silent_no_op():
    with pytest.raises(ConcurrencySlotAcquisitionError, match="must be created"):
        with gpu.gpu_slot("gpu-test-never-created"):
            pass
    with gpu.gpu_slot(None):  # no slot requested: runs as is (notebooks, unit tests)
        pass
