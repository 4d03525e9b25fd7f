"""The whole Euler loop of a track batch as one CUDA graph, captured once per batch layout.

At batch 1 a guided step is a few hundred small kernels and the GPU idles between their launches.
`GraphedSampler` captures `TrackBatch.sample` (all steps) the first time it meets a layout
(`TrackBatch.signature` and the step count) and afterwards replays it: new tracks are copied into
the captured batch's tensors, one replay runs every step, and no host-device synchronisation
happens inside the loop. A layout whose capture fails is sampled eagerly from then on, with a
warning; a capture never blocks on anything but the GPU. At most `max_graphs` graphs are kept
(least recently used are dropped, with their memory).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from cachetools import LRUCache
import torch

from nag_model.track_batch import TrackBatch

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    batch: TrackBatch  # static inputs
    timesteps: torch.Tensor
    out: torch.Tensor  # static output (T, N, C)
    graph: torch.cuda.CUDAGraph
    capture_s: float


class GraphedSampler:
    """`sample(batch, timesteps)` like `batch.sample(timesteps)`, replaying a CUDA graph per layout."""

    def __init__(self, max_graphs: int = 8):
        self.max_graphs = max_graphs
        self._graphs: LRUCache[tuple, _Entry] = LRUCache(maxsize=max_graphs)  # least recently used dropped
        self._failed: set[tuple] = set()
        self.captures = 0
        self.replays = 0

    def _key(self, batch: TrackBatch, timesteps: torch.Tensor) -> tuple:
        return batch.signature, tuple(timesteps.shape), str(timesteps.device)

    def sample(self, batch: TrackBatch, timesteps: torch.Tensor) -> torch.Tensor:
        """x1 (T, N, C) float32 in batch order; the returned tensor is the caller's own (not the graph's)."""
        if batch.tensors["x0"].device.type != "cuda":
            return batch.sample(timesteps)
        key = self._key(batch, timesteps)
        entry = self._graphs.get(key)
        if entry is None and key not in self._failed:
            try:
                entry = self._capture(batch, timesteps)
            except Exception as exc:  # an op that cannot be captured: sample this layout eagerly
                log.warning("CUDA graph capture failed (%s: %s); sampling this batch layout eagerly",
                            type(exc).__name__, exc)
                self._failed.add(key)
                torch.cuda.synchronize()
            else:
                self._graphs[key] = entry
        if entry is None:
            return batch.sample(timesteps)
        entry.batch.copy_(batch)
        entry.timesteps.copy_(timesteps, non_blocking=True)
        entry.graph.replay()
        self.replays += 1
        return entry.out.clone()

    def _capture(self, batch: TrackBatch, timesteps: torch.Tensor) -> _Entry:
        start = time.perf_counter()
        static, grid = batch.clone(), timesteps.clone()
        # Warm up on a side stream: library handles, workspaces and cuDNN's algorithm choice are set
        # up outside the capture (one step runs every kernel the loop will run).
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            static.velocity(grid[0], static.tensors["x0"])
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: the host's other threads may synchronise or allocate while this one captures
        # (the generator prepares the next batch while its queue thread captures, `generator._queue_thread`).
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            out = static.sample(grid)
        self.captures += 1
        return _Entry(static, grid, out, graph, time.perf_counter() - start)

    def clear(self) -> None:
        self._graphs.clear()
        self._failed.clear()
