"""How much of the host a run's per-video work gets, by where its model runs.

With the model on the CPU, the model needs the cores: a worker prepares one video at a time and
delivers (mix, mux, spectrograms) on two low-priority threads, as the pipeline always did there.

With the model on a GPU the cores are free, and the limit is Python's GIL: most of the per-video work
is Python (AAC frames, the limiter, spectrograms, Prefect's own bookkeeping). Measured on an H200 with
16 cores (docs/benchmarks.md), a 256-video catalog made 4.0 tracks/s with the GPU busy 5% of the
synthesis stage, the model waiting on the host. So on a GPU a worker prepares :data:`PREPARE_ON_GPU`
videos at once (a batch of videos fills sooner) and delivers on worker processes
(:func:`delivery_processes_for`), out of the GIL's way: 5.2 tracks/s on the same machine.

The flow calls :func:`configure` once it knows where the model runs; the settings are per process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from pipeline import delivery_workers, videos

PREPARE_ON_GPU = 4
MAX_DELIVERY_PROCESSES = 8


@dataclass(frozen=True)
class HostWork:
    prepare_at_once: int
    delivery_processes: int  # 0: the two low-priority delivery threads


def delivery_processes_for(cores: int) -> int:
    """Delivery worker processes beside a GPU model: half the cores (the other half runs Prefect, the
    batcher, scoring and the worker's own threads), at least 2, at most :data:`MAX_DELIVERY_PROCESSES`."""
    return max(2, min(MAX_DELIVERY_PROCESSES, cores // 2))


def plan(device: str) -> HostWork:
    """The host work for a model on ``device`` (as resolved: ``cpu``, ``cuda``, ``cuda:N``)."""
    if device.startswith("cpu"):
        return HostWork(prepare_at_once=1, delivery_processes=0)
    return HostWork(prepare_at_once=PREPARE_ON_GPU, delivery_processes=delivery_processes_for(os.cpu_count() or 2))


def configure(device: str) -> HostWork:
    """Size this process's preparation slots and delivery workers for a model on ``device``."""
    work = plan(device)
    videos.prepare_at_once(work.prepare_at_once)
    delivery_workers.use_processes(work.delivery_processes)
    return work
