"""The task that makes sure the GPU slot (a global concurrency limit, :mod:`pipeline.gpu_slot`) exists."""
from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline.gpu_slot import GPU_SLOT, holder, ensure_limit
from tasks.logs import logger
from tasks.retry_policy import IO_RETRY


@task(name="ensure-gpu-slots", cache_policy=NO_CACHE, **IO_RETRY)
def ensure_gpu_slots(name: str = GPU_SLOT, slots: int = 1, reserve_s: float = 0.0) -> int:
    """Create the limit ``name`` with ``slots`` slots if missing (:func:`pipeline.gpu_slot.ensure_limit`);
    returns its size. ``reserve_s`` > 0 starts acquiring a slot for this process now
    (:meth:`pipeline.gpu_slot.SlotHolder.reserve`)."""
    size, released = ensure_limit(name, slots)
    if released:
        logger().warning("released %d slot(s) of %r left taken by an earlier run that was killed", released, name)
    if reserve_s > 0:
        holder(name).reserve(reserve_s)
    return size
