"""Synthesis batched across videos: the videos whose synthesis waits at the same time share one
``StepByStepGenerator.generate_videos`` call (library code; the task is :func:`tasks.synthesis.synthesize_tracks`).

Videos become ready at different times: their prepare, captions and ordering tasks run in parallel on
the task runner's threads. Each synthesis hands its :class:`~nag_model.generator.VideoJob` (its own
features, captions, seeds, method and settings) to this process's :class:`VideoBatcher` of its model and
waits. A runner thread takes up to ``max_videos`` waiting jobs (after a short gather window,
:data:`GATHER_S`, when fewer are there), runs one ``generate_videos`` call for them, and passes every
track to the synthesis it belongs to as soon as it exists: that synthesis stores its stem in its own
thread while the runner goes on (round k makes track k of every video of the batch). Videos with
different numbers of tracks, methods or settings mix in one batch; on the CPU the generator makes each
track in its own forward (``batch_mode="auto"``: exact), so a batched video gets the same bits as alone.

A video longer than the model's window (``nag_model.long_form``: window after window, each track against
the earlier tracks over the same window) is made alone, under the slot's exclusive lock
(:func:`generate_video`); a video of one window is generated exactly as ``LongFormGenerator`` would.

Errors stay with their video: if ``generate_videos`` raises for a batch, each of its videos is generated
again alone, so only the culprit fails; its tracks are delivered again from the first (same keys: a
stem already stored is written again). A synthesis whose own storing fails still waits for its batch to
end before it fails, so the GPU slot stays held under the runner.

The GPU slot (:mod:`pipeline.gpu_slot`): each waiting synthesis holds it shared
(``gpu_slot(name, exclusive=False)``), and the runner runs each batch under the slot's exclusive lock,
so a batch never overlaps an unbatched synthesis (an edit) of this process, and the slot is held for as
long as any video of a batch waits.

``max_videos`` (``--batch-videos``) defaults by device (:data:`DEFAULT_BATCH_VIDEOS`): 1 on the CPU,
where the exact batch mode makes one track per forward anyway, so batching would only hold finished
videos back from mixing while their batch mates finish; 32 on CUDA, where the catalog benchmark gives
34.2 tracks/s at 32 videos per batch against 27.7 at 8 and 34.6 at 128 (docs/benchmarks.md, H200), and a
catalog fills a batch of 32 quickly while a larger one mostly waits for videos still being prepared.
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from nag_model.bundle import FoleyBundle
from nag_model.generator import Track, TrackSettings, VideoFeatures, VideoJob
from nag_model.long_form import LongFormGenerator
from pipeline.gpu_slot import exclusive

GATHER_S = 0.2  # an idle runner waits this long for more videos before it starts a batch of fewer than max
DEFAULT_BATCH_VIDEOS = {"cpu": 1, "cuda": 32}

log = logging.getLogger(__name__)


def default_batch_videos(device: torch.device | str) -> int:
    """Videos per batch by device type (module docstring)."""
    return DEFAULT_BATCH_VIDEOS.get(torch.device(device).type, 1)


def check_batch_videos(batch_videos: int | None) -> None:
    """None (the device's default) or a positive whole number.

    Raises:
        ValueError: anything else.
    """
    if batch_videos is not None and (isinstance(batch_videos, bool) or not isinstance(batch_videos, int)
                                     or batch_videos < 1):
        raise ValueError(f"batch_videos must be a whole number >= 1 (or unset: the device's default), "
                         f"got {batch_videos!r}")


@dataclass
class _Member:
    """One waiting video: its job, and the events the runner sends it (track k, done, error)."""

    job: VideoJob
    events: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)


class VideoBatcher:
    """Batches the videos of one bundle and GPU slot in this process (module docstring).

    Args:
        bundle: the model (on its device and in its precision).
        max_videos: videos per ``generate_videos`` call.
        slot: the GPU slot whose exclusive lock a batch runs under (None: none).
        gather_s: how long an idle runner waits for more videos (default :data:`GATHER_S`).
    """

    def __init__(self, bundle: FoleyBundle, max_videos: int, slot: str | None, gather_s: float | None = None):
        check_batch_videos(max_videos)
        self.bundle, self.max_videos, self.slot = bundle, max_videos, slot
        self.gather_s = GATHER_S if gather_s is None else gather_s
        self._cv = threading.Condition()
        self._pending: list[_Member] = []
        self._running = False
        self.batches: list[int] = []  # videos per generate_videos call, in order (what ran; tests, logs)

    def generate(self, job: VideoJob, on_track: Callable[[int, Track], None] | None = None,
                 on_start: Callable[[], None] | None = None) -> list[Track]:
        """The tracks of ``job``, made in a batch with whatever other videos wait now; ``on_track(k, track)``
        runs in this thread as each track is done (again from k = 0 if the batch is retried video by video),
        ``on_start()`` when its batch starts.

        Raises:
            What generating this video alone raised, or what ``on_track`` raised (after the batch ended).
        """
        member = _Member(job)
        with self._cv:
            self._pending.append(member)
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="synthesis-batch", daemon=True).start()
            self._cv.notify_all()
        failure: BaseException | None = None
        while True:
            kind, *payload = member.events.get()
            if kind == "start":
                if on_start is not None:
                    on_start()
            elif kind == "track":
                if failure is None and on_track is not None:
                    try:
                        on_track(*payload)
                    except BaseException as exc:  # noqa: BLE001 - raised once the batch is over
                        failure = exc
            elif kind == "done":
                if failure is not None:
                    raise failure
                return payload[0]
            else:
                raise failure if failure is not None else payload[0]

    def _run(self) -> None:
        """Take batches of waiting videos until none waits."""
        while True:
            with self._cv:
                if len(self._pending) < self.max_videos and self.gather_s > 0:
                    self._cv.wait_for(lambda: len(self._pending) >= self.max_videos, timeout=self.gather_s)
                batch, self._pending = self._pending[: self.max_videos], self._pending[self.max_videos:]
                if not batch:
                    self._running = False
                    return
            try:
                self._generate(batch)
            except BaseException as exc:  # noqa: BLE001 - no video may wait forever
                for member in batch:
                    member.events.put(("error", exc))

    def _generate(self, batch: Sequence[_Member]) -> None:
        def deliver(v: int, k: int, track: Track) -> None:
            batch[v].events.put(("track", k, track))

        with exclusive(self.slot):
            try:
                self.batches.append(len(batch))
                for member in batch:
                    member.events.put(("start",))
                tracks = self.bundle.generator().generate_videos([m.job for m in batch], on_track=deliver)
            except Exception as exc:  # noqa: BLE001 - isolated below
                if len(batch) == 1:
                    batch[0].events.put(("error", exc))
                    return
                log.warning("a batch of %d videos failed (%s: %s); generating each alone", len(batch),
                            type(exc).__name__, exc)
                tracks = None
        if tracks is None:
            for member in batch:
                self._generate([member])
            return
        for member, made in zip(batch, tracks):
            member.events.put(("done", made))


_batchers: dict[tuple[int, str | None, int], VideoBatcher] = {}
_batchers_lock = threading.Lock()


def batcher(bundle: FoleyBundle, max_videos: int, slot: str | None) -> VideoBatcher:
    """This process's batcher of ``bundle`` under ``slot`` taking ``max_videos`` videos per batch."""
    key = (id(bundle), slot, max_videos)
    with _batchers_lock:
        if key not in _batchers or _batchers[key].bundle is not bundle:
            _batchers[key] = VideoBatcher(bundle, max_videos, slot)
        return _batchers[key]


def clear() -> None:
    """Forget the batchers (tests)."""
    with _batchers_lock:
        _batchers.clear()



def generate_video(bundle: FoleyBundle, windows: Sequence[VideoFeatures], n_samples: int, captions: Sequence[str],
                   seeds: Sequence[int], settings: TrackSettings, *, batch_videos: int | None, slot: str | None,
                   on_track: Callable[[int, Track], None], on_start: Callable[[], None] | None = None) -> list[Track]:
    """The tracks of one video, step by step: batched with the other videos waiting in this process when it
    is one window long (``batch_videos`` at most; None: :func:`default_batch_videos`), else alone, window
    after window (``nag_model.long_form.LongFormGenerator`` over ``n_samples``). The caller holds the slot
    (``gpu_slot(slot, exclusive=False)``)."""
    if len(windows) == 1:
        job = VideoJob(windows[0], tuple(captions), tuple(seeds), settings)
        size = batch_videos or default_batch_videos(bundle.device)
        return batcher(bundle, size, slot).generate(job, on_track=on_track, on_start=on_start)
    with exclusive(slot):
        if on_start is not None:
            on_start()
        return LongFormGenerator(bundle.generator()).generate(windows, n_samples, captions, seeds, settings,
                                                              on_track=on_track)
