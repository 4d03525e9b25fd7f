"""Step-by-step generation (section 5.1 of the NAG paper): one track per caption, each pushed away
from the loudness-normalised (-20 LUFS) mix of the tracks made before it.

The mix is formed in the waveform domain and encoded back to the model's latent through an
`AudioCodec`, so MMAudio's VAE + vocoder and the demo mel codec plug in the same way. Every
track keeps its own seed and settings; `generate_track` makes (or remakes) any single track
against any set of other tracks, which is how a track is added, regenerated or removed later.
"""
from __future__ import annotations

import functools
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from nag_model.codecs.base import AudioCodec
from nag_model.controlnet import AudioControlNet, ReferenceTokens
from nag_model.encoders.base import TextEncoder
from nag_model.flow_matching import euler, time_grid
from nag_model.guidance import NEGATIVE, REFERENCE, ConditionSet
from audio.loudness import DEFAULT_TARGET_LUFS, normalize_loudness
from nag_model.network import MMAudio, PreprocessedConditions
from nag_model.settings import METHODS, Method, TrackSettings  # noqa: F401  (re-exported)
from nag_model.track_batch import PreparedTrack, TrackBatch, host_tensor
from nag_model.velocity import GuidedVelocity

BatchMode = Literal["auto", "fused", "exact"]
DEFAULT_MAX_BATCH = {"cuda": 128, "cpu": 8}  # tracks per guided forward, by device type


@functools.cache
def _mix_pool() -> ThreadPoolExecutor:
    """The threads that make a batch's condition mixes in parallel (numpy and scipy release the GIL)."""
    return ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="nag-mix")


@functools.cache
def _queue_thread() -> ThreadPoolExecutor:
    """The one thread that queues batches' device work (sampling, decoding), in submission order.

    On CUDA, launching a batch's Euler loop (a graph of some 20 000 kernels) returns only once most of
    it has run: the driver's command buffer fills and the launching thread waits for room. A host
    that prepared the next batch on that same thread left the GPU idle while it did (about 0.5 s per
    batch of 128 NAG tracks on an H100: 8 idle gaps in a 256-video catalog). With the launch on this
    thread, the next batch's mixes and conditions are made while the GPU works."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="nag-queue")


@dataclass(frozen=True)
class VideoFeatures:
    """Per-clip visual features: clip_f (1, Lc, clip_dim) at 8 fps and sync_f (1, Ls, sync_dim) at 25 fps.
    `VideoFeatures.none()` means no video (the learned null tokens: text-to-audio)."""

    clip_f: torch.Tensor | None
    sync_f: torch.Tensor | None

    @classmethod
    def none(cls) -> "VideoFeatures":
        return cls(None, None)


@dataclass(frozen=True)
class Track:
    """One generated track: its waveform (L,) float32 at `sample_rate`, and how it was made."""

    caption: str
    seed: int
    settings: TrackSettings
    waveform: np.ndarray = field(repr=False)
    sample_rate: int
    against: tuple[str, ...] = ()  # captions of the tracks it was pushed away from

    def record(self) -> dict:
        """Everything needed to regenerate this track, without the audio."""
        return {"caption": self.caption, "seed": self.seed, "against": list(self.against), **asdict(self.settings)}


@dataclass(frozen=True)
class TrackRequest:
    """One track to make: a video's features, the caption, its seed and settings, and the other
    tracks it is pushed away from (the earlier tracks in step-by-step order, or all others on a redo)."""

    video: VideoFeatures
    caption: str
    seed: int
    settings: TrackSettings = TrackSettings()
    context: tuple[Track, ...] = ()


@dataclass(frozen=True)
class VideoJob:
    """The tracks of one video, made step by step: one per caption, in order (seeds default to 0, 1, ...)."""

    video: VideoFeatures
    captions: tuple[str, ...]
    seeds: tuple[int, ...] | None = None
    settings: TrackSettings = TrackSettings()

    def seed_list(self) -> list[int]:
        seeds = list(range(len(self.captions))) if self.seeds is None else list(self.seeds)
        if len(seeds) != len(self.captions):
            raise ValueError(f"got {len(self.captions)} captions but {len(seeds)} seeds")
        return seeds


class StepByStepGenerator:
    """Generates tracks with a frozen base MMAudio, an optional audio ControlNet (needed for NAG),
    a codec and a text encoder. Works in eval mode under `torch.inference_mode`.

    Args:
        batched: evaluate the guidance branches of a track in one forward (False: one by one).
        batch_mode: how the tracks of `generate_tracks` share forwards. "fused": up to `max_batch`
            tracks (of any videos, methods and settings with the same step count) in one guided
            forward. "exact": one track per forward, so every track is bit-identical to generating it
            alone (the CPU's matrix kernels round differently at different row counts and thread
            splits, so a fused batch is not). "auto": exact on the CPU, fused elsewhere.
        max_batch: tracks per fused forward (default: 128 on CUDA, 8 on the CPU).
        sampler: how a batch is integrated; default `GraphedSampler` on CUDA (one CUDA graph per
            batch layout, eager fallback), plain eager Euler elsewhere. Share one between generators
            of the same model to reuse its graphs.
        queue_thread: queue each batch's sampling and decoding on a thread of its own (`_queue_thread`)
            while this thread prepares the next batch; None: on CUDA only. The audio is the same.
        prep_stream: on CUDA, prepare each batch's conditions on a CUDA stream of their own, so their
            kernels and copies do not queue behind the batch being sampled on the default stream
            (the sampling waits for them by an event); None: on CUDA with the queue thread. The
            audio is the same.
    """

    def __init__(self, base: MMAudio, codec: AudioCodec, text_encoder: TextEncoder, *,
                 controlnet: AudioControlNet | None = None, batched: bool = True, progress: bool = False,
                 batch_mode: BatchMode = "auto", max_batch: int | None = None, sampler=None,
                 queue_thread: bool | None = None, prep_stream: bool | None = None):
        if codec.samples_per_latent != base.config.samples_per_latent or codec.latent_dim != base.config.latent_dim:
            raise ValueError(f"codec ({codec.latent_dim} channels, {codec.samples_per_latent} samples/latent) does not "
                             f"match {base.config.name} ({base.config.latent_dim}, {base.config.samples_per_latent})")
        if batch_mode not in ("auto", "fused", "exact"):
            raise ValueError(f"batch_mode must be 'auto', 'fused' or 'exact', got {batch_mode!r}")
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.base, self.codec, self.text_encoder, self.controlnet = base.eval(), codec, text_encoder, controlnet
        if controlnet is not None:
            controlnet.eval()
        self.batched, self.progress = batched, progress
        self.batch_mode, self._max_batch, self._sampler = batch_mode, max_batch, sampler
        self._use_queue_thread, self._use_prep_stream = queue_thread, prep_stream
        self._prep: torch.cuda.Stream | None = None
        self._empty: PreprocessedConditions | None = None

    @property
    def fused(self) -> bool:
        """Whether several tracks share a forward (batch_mode, resolved for this device)."""
        return self.batch_mode == "fused" or (self.batch_mode == "auto" and self.device.type != "cpu")

    @property
    def queue_thread(self) -> bool:
        """Whether batches' device work is queued on `_queue_thread` (the constructor's choice, resolved)."""
        return self.device.type == "cuda" if self._use_queue_thread is None else self._use_queue_thread

    @property
    def prep_stream(self) -> bool:
        """Whether conditions are prepared on a CUDA stream of their own (the constructor's choice, resolved)."""
        if self.device.type != "cuda":
            return False
        return self.queue_thread if self._use_prep_stream is None else self._use_prep_stream

    @property
    def max_batch(self) -> int:
        if not self.fused:
            return 1
        return self._max_batch or DEFAULT_MAX_BATCH.get(self.device.type, DEFAULT_MAX_BATCH["cpu"])

    @property
    def sampler(self):
        if self._sampler is None and self.device.type == "cuda":
            from nag_model.cuda_graphs import GraphedSampler

            self._sampler = GraphedSampler()
        return self._sampler

    def _to_device(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Move a host tensor to the model's device without waiting for the GPU's queued work."""
        if x.device == self.device:
            return x if dtype is None else x.to(dtype)
        # Reached only on a GPU (tests/nag_model/test_gpu.py), so not mutated: no CPU test can tell these lines' mutants.
        pinned = self.device.type == "cuda" and x.device.type == "cpu"  # pragma: no mutate
        if pinned:  # pragma: no mutate
            x = x.pin_memory()  # pragma: no mutate
        return x.to(self.device, dtype, non_blocking=pinned)  # pragma: no mutate

    @property
    def device(self) -> torch.device:
        return self.base.latent_mean.device

    @property
    def num_samples(self) -> int:
        return self.base.seq.latent * self.codec.samples_per_latent

    # ------------------------------------------------------------ conditions
    def _video(self, video: VideoFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        seq, base = self.base.seq, self.base
        if video.clip_f is None or video.sync_f is None:
            return base.empty_clip_feat.expand(seq.clip, -1)[None], base.empty_sync_feat.expand(seq.sync, -1)[None]
        return self._to_device(video.clip_f), self._to_device(video.sync_f)

    def _conditions(self, video: VideoFeatures, text_f: torch.Tensor) -> PreprocessedConditions:
        clip_f, sync_f = self._video(video)
        return self.base.preprocess_conditions(clip_f, sync_f, self._to_device(text_f))

    def _empty_conditions(self) -> PreprocessedConditions:
        """u(empty, empty)'s conditions (batch 1): computed once per `generate_tracks` call."""
        return self._empty if self._empty is not None else self.base.get_empty_conditions(1)

    def mix_condition(self, waveforms: Sequence[np.ndarray], target_lufs: float = DEFAULT_TARGET_LUFS) -> np.ndarray:
        """normalize(sum of the tracks) at target_lufs: the NAG condition audio (section 5.1)."""
        total = np.zeros(self.num_samples)  # float64: each waveform is converted exactly as it is added
        for w in waveforms:
            w = np.ravel(w)[: self.num_samples]
            total[: len(w)] += w
        return normalize_loudness(total, self.codec.sample_rate, target_lufs).astype(np.float32)

    def _needs_mix(self, settings: TrackSettings, context: Sequence[Track]) -> bool:
        return REFERENCE in settings.guidance().needs(has_context=bool(context))

    def condition_set(self, video: VideoFeatures, caption: str, settings: TrackSettings,
                      context: Sequence[Track] = (), mix: np.ndarray | None = None) -> ConditionSet:
        """Preprocess the conditions this track's guidance component declares it needs, once (`mix`:
        the context's `mix_condition`, when already made)."""
        needs = settings.guidance().needs(has_context=bool(context))
        full = self._conditions(video, self.text_encoder([caption]))
        empty = self._empty_conditions()
        negative = video_only = reference = None
        if NEGATIVE in needs:
            negative_text = self._to_device(self.text_encoder([" ".join(t.caption for t in context)]))
            negative = self.base.get_empty_conditions(negative_text_features=negative_text)
        if REFERENCE in needs:
            if self.controlnet is None:
                raise ValueError("method 'nag' needs an AudioControlNet; pass controlnet= or use method 'independent'")
            if mix is None:
                mix = self.mix_condition([t.waveform for t in context], settings.target_lufs)
            mix = torch.from_numpy(mix)
            ref_latent = self.base.normalize(self.codec.encode(self._to_device(mix[None])))  # (1, N, C)
            video_only = self._conditions(video, self.base.empty_string_feat[None])
            reference = self.controlnet.preprocess_reference(ref_latent)
        return ConditionSet(full=full, empty=empty, video_only=video_only, negative=negative, reference=reference)

    def condition_sets(self, requests: Sequence["TrackRequest"],
                       mixes: Sequence[np.ndarray | None] | None = None) -> list[ConditionSet]:
        """`condition_set` of many requests at once, with one preprocessing call per kind of condition
        (full, negative prompt, video only, reference) instead of one per request.

        For fused batches: the values differ from one request at a time only by the rounding of
        larger matrix products (within the fused tolerance); exact batches use `condition_set`.
        """
        n, base = len(requests), self.base
        mixes = list(mixes) if mixes is not None else [None] * n
        clips, syncs = zip(*(self._video(r.video) for r in requests))
        clip, sync = torch.cat(clips), torch.cat(syncs)  # (n, Lc, Dc), (n, Ls, Ds)
        full = base.preprocess_conditions(clip, sync, self._to_device(self.text_encoder([r.caption for r in requests])))
        empty = self._empty_conditions()
        needs = [r.settings.guidance().needs(has_context=bool(r.context)) for r in requests]
        negative_rows = [i for i, need in enumerate(needs) if NEGATIVE in need]
        reference_rows = [i for i, need in enumerate(needs) if REFERENCE in need]
        negative = video_only = reference = None
        if negative_rows:
            texts = self.text_encoder([" ".join(t.caption for t in requests[i].context) for i in negative_rows])
            negative = base.get_empty_conditions(negative_text_features=self._to_device(texts))  # one row per text
        if reference_rows:
            if self.controlnet is None:
                raise ValueError("method 'nag' needs an AudioControlNet; pass controlnet= or use method 'independent'")
            mix = np.stack([mixes[i] if mixes[i] is not None else
                            self.mix_condition([t.waveform for t in requests[i].context], requests[i].settings.target_lufs)
                            for i in reference_rows])
            ref_latent = base.normalize(self.codec.encode(self._to_device(torch.from_numpy(mix))))  # (r, N, C)
            rows = host_tensor(self.device, reference_rows, torch.long)
            empty_text = base.empty_string_feat[None].expand(len(reference_rows), -1, -1)
            video_only = base.preprocess_conditions(clip.index_select(0, rows), sync.index_select(0, rows), empty_text)
            reference = self.controlnet.preprocess_reference(ref_latent)
        sets = []
        for i in range(n):
            if i in reference_rows:
                j = reference_rows.index(i)
                sets.append(ConditionSet(full=full.row(i), empty=empty, video_only=video_only.row(j),
                                         reference=ReferenceTokens(tuple(k[j:j + 1] for k in reference.keys),
                                                                   tuple(v[j:j + 1] for v in reference.values))))
            elif i in negative_rows:
                sets.append(ConditionSet(full=full.row(i), empty=empty, negative=negative.row(negative_rows.index(i))))
            else:
                sets.append(ConditionSet(full=full.row(i), empty=empty))
        return sets

    # ------------------------------------------------------------ generation
    def initial_noise(self, seed: int) -> torch.Tensor:
        """x0 (1, N, C) from the track's own seed, drawn on the CPU so every device agrees."""
        g = torch.Generator().manual_seed(seed)
        shape = (1, self.base.seq.latent, self.base.config.latent_dim)
        return self._to_device(torch.randn(shape, generator=g), self.base.latent_mean.dtype)

    def _initial_noises(self, seeds: Sequence[int]) -> torch.Tensor:
        """`initial_noise` of each seed, (n, N, C), moved to the device in one copy."""
        shape = (1, self.base.seq.latent, self.base.config.latent_dim)
        noise = torch.cat([torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seeds])
        return self._to_device(noise, self.base.latent_mean.dtype)

    def generate_track(self, video: VideoFeatures, caption: str, seed: int, settings: TrackSettings = TrackSettings(),
                       context: Sequence[Track] = ()) -> Track:
        """One track for `caption`, pushed away from `context` (the earlier tracks, or all others on a redo)."""
        with torch.inference_mode():  # a block, not a decorator: mutmut mutates undecorated functions only
            return self.generate_tracks([TrackRequest(video, caption, seed, settings, tuple(context))])[0]

    def generate_tracks(self, requests: Sequence[TrackRequest],
                        on_track: Callable[[int, Track], None] | None = None) -> list[Track]:
        """One track per request, any mix of videos, methods, settings and contexts.

        Requests with the same number of steps share guided forwards (up to `max_batch` tracks each,
        see `batch_mode`); each keeps its own seed, conditions and strengths. `on_track(i, track)` is
        called for request i as soon as its batch is done. While the GPU samples one batch, the next
        batch's conditions are prepared on the host.

        Returns:
            The tracks in request order.
        """
        with torch.inference_mode():  # a block, not a decorator: mutmut mutates undecorated functions only
            for r in requests:
                if not r.caption or not r.caption.strip():
                    raise ValueError("caption must be a non-empty string")
            by_steps: dict[int, list[int]] = {}
            for i, r in enumerate(requests):
                by_steps.setdefault(r.settings.steps, []).append(i)
            size = self.max_batch
            chunks = [idx[j:j + size] for idx in by_steps.values() for j in range(0, len(idx), size)]
            results: list[Track | None] = [None] * len(requests)
            pending = None
            self._begin()
            try:
                for chunk in chunks:  # launch batch j, then finish batch j - 1 while the device works on j
                    launched = (chunk, self._launch([requests[i] for i in chunk]))
                    if pending is not None:
                        self._finish(*pending, requests, results, on_track)
                    pending = launched
                if pending is not None:
                    self._finish(*pending, requests, results, on_track)
            finally:
                self._empty = None
            return results  # type: ignore[return-value]

    def _begin(self) -> None:
        """Set up a `generate_*` call: u(empty, empty) once, made on the current stream, which the
        preparation stream waits for here (and only here: later it never waits for sampling)."""
        self._empty = self.base.get_empty_conditions(1)
        if self.prep_stream:
            if self._prep is None:
                self._prep = torch.cuda.Stream(self.device)
            self._prep.wait_stream(torch.cuda.current_stream(self.device))

    def _launch(self, requests: Sequence[TrackRequest]):
        """Prepare the requests' conditions, queue their sampling and decoding; nothing waits for the device.

        Its stages are methods of their own (`_mixes`, `_prepare`, `_sample`, the codec's `decode`),
        so a benchmark can time each (benchmarks/gpu_synthesis.py, `host_timers`)."""
        mixes = self._mixes(requests)
        ready = None
        if self.prep_stream:
            with torch.cuda.stream(self._prep):
                sets = self._prepare(requests, mixes)
            ready = self._prep.record_event()
        else:
            sets = self._prepare(requests, mixes)
        against = [tuple(t.caption for t in r.context) if c.reference is not None or c.negative is not None else ()
                   for r, c in zip(requests, sets)]
        if self.queue_thread:
            return _queue_thread().submit(self._queue_device_work, requests, sets, ready), against
        return self._queue_device_work(requests, sets, ready), against

    def _prepare(self, requests: Sequence[TrackRequest], mixes: Sequence[np.ndarray | None]) -> list[ConditionSet]:
        """The requests' conditions: `condition_sets` for a fused batch, else `condition_set` one by one."""
        if self.fused and self.batched and len(requests) > 1:
            return self.condition_sets(requests, mixes)
        return [self.condition_set(r.video, r.caption, r.settings, r.context, mix=m) for r, m in zip(requests, mixes)]

    def _queue_device_work(self, requests: Sequence[TrackRequest], sets: Sequence[ConditionSet],
                           ready: torch.cuda.Event | None = None):
        """Queue the sampling and decoding of prepared requests: ((T, L) waveforms in batch order, the
        request index of each row). `ready`: the event after which conditions made on the preparation
        stream may be read."""
        with torch.inference_mode():  # per thread: this may run on `_queue_thread`
            if ready is not None:  # Reached only on a GPU (tests/nag_model/test_gpu.py).
                stream = torch.cuda.current_stream(self.device)  # pragma: no mutate
                stream.wait_event(ready)  # pragma: no mutate
                for t in _condition_tensors(sets):  # pragma: no mutate
                    # made on the preparation stream, read on this one: not reused before this stream is done
                    t.record_stream(stream)  # pragma: no mutate
            x1, order = self._sample(requests, sets)
            waves = self.codec.decode(self.base.unnormalize(x1))[:, : self.num_samples]
        return waves, order

    def _mixes(self, requests: Sequence[TrackRequest]) -> list[np.ndarray | None]:
        """The NAG condition audio of the requests that need one, made on the pool when several do
        (None where not made here: `condition_set` makes a lone one itself)."""
        mixes: list[np.ndarray | None] = [None] * len(requests)
        need = [i for i, r in enumerate(requests) if self._needs_mix(r.settings, r.context)]
        if len(need) > 1:
            made = _mix_pool().map(lambda i: self.mix_condition([t.waveform for t in requests[i].context],
                                                                requests[i].settings.target_lufs), need)
            for i, m in zip(need, made):
                mixes[i] = m
        return mixes

    def _sample(self, requests: Sequence[TrackRequest], sets: Sequence[ConditionSet]) -> tuple[torch.Tensor, list[int]]:
        """Queue the Euler loop of every request: x1 (T, N, C) and the request index of each row."""
        steps = requests[0].settings.steps
        grid = self._to_device(time_grid(steps))
        if not self.batched:  # branches one by one: the reference path of GuidedVelocity
            x1 = torch.cat([euler(GuidedVelocity(self.base, r.settings.guidance(), c, controlnet=self.controlnet,
                                                 batched=False), self.initial_noise(r.seed), grid)
                            for r, c in zip(requests, sets)])
            return x1, list(range(len(requests)))
        noise = self._initial_noises([r.seed for r in requests])
        prepared = [PreparedTrack.from_condition_set(r.settings.guidance(), c, noise[i:i + 1])
                    for i, (r, c) in enumerate(zip(requests, sets))]
        batch = TrackBatch(self.base, self.controlnet, prepared)
        if self.sampler is not None:
            return self.sampler.sample(batch, grid), batch.order
        bar = tqdm(total=steps, desc=requests[0].caption[:40], leave=False, disable=not self.progress)
        x1 = euler(batch.velocity, batch.tensors["x0"], grid, callback=lambda *_: bar.update())
        bar.close()
        return x1, batch.order

    def _finish(self, chunk: list[int], launched, requests, results: list, on_track) -> None:
        queued, against = launched
        waves, order = queued.result() if isinstance(queued, Future) else queued
        waves = waves.float().cpu().numpy()  # the one wait for the device
        for position, j in enumerate(order):
            i, r = chunk[j], requests[chunk[j]]
            results[i] = Track(r.caption, r.seed, r.settings, waves[position].copy(), self.codec.sample_rate, against[j])
            if on_track is not None:
                on_track(i, results[i])

    def generate_videos(self, jobs: Sequence[VideoJob],
                        on_track: Callable[[int, int, Track], None] | None = None) -> list[list[Track]]:
        """Step-by-step generation for many videos: round k makes track k of every video that has a
        k-th caption, batched across videos (`generate_tracks`); track k of a video is conditioned on
        its tracks 1..k-1. Videos may have different numbers of captions, methods and settings.

        `on_track(video_index, k, track)` is called as each track is done. Returns each video's tracks.
        """
        with torch.inference_mode():  # a block, not a decorator: mutmut mutates undecorated functions only
            seeds = [job.seed_list() for job in jobs]
            for job in jobs:
                if any(not c or not c.strip() for c in job.captions):
                    raise ValueError("caption must be a non-empty string")
            tracks: list[list[Track]] = [[] for _ in jobs]
            by_steps: dict[int, list[int]] = {}
            for v, job in enumerate(jobs):
                if job.captions:
                    by_steps.setdefault(job.settings.steps, []).append(v)
            size = self.max_batch
            # Groups of videos that advance together, one round (track k) per batch. Two batches are in
            # flight: while the device samples one group's batch, the host finishes the other group's
            # previous batch and prepares its next one (a group's round k + 1 needs its round k).
            waiting = deque(idx[j:j + size] for idx in by_steps.values() for j in range(0, len(idx), size))
            in_flight: deque = deque()
            self._begin()
            try:
                while waiting or in_flight:
                    if waiting:
                        group = waiting.popleft()
                        requests = [TrackRequest(jobs[v].video, jobs[v].captions[len(tracks[v])], seeds[v][len(tracks[v])],
                                                 jobs[v].settings, tuple(tracks[v])) for v in group]
                        in_flight.append((group, requests, self._launch(requests)))
                    if len(in_flight) >= 2 or (in_flight and not waiting):
                        group, requests, launched = in_flight.popleft()
                        made: list[Track | None] = [None] * len(requests)
                        self._finish(list(range(len(requests))), launched, requests, made, None)
                        for v, track in zip(group, made):
                            tracks[v].append(track)
                            if on_track is not None:
                                on_track(v, len(tracks[v]) - 1, track)
                        remaining = [v for v in group if len(tracks[v]) < len(jobs[v].captions)]
                        if remaining:
                            waiting.append(remaining)
            finally:
                self._empty = None
            return tracks

    def generate(self, video: VideoFeatures, captions: Sequence[str], seeds: Sequence[int] | None = None,
                 settings: TrackSettings = TrackSettings(),
                 on_track: Callable[[int, Track], None] | None = None) -> list[Track]:
        """Tracks for `captions` in order; track k is conditioned on the mix of tracks 1..k-1."""
        return step_by_step(lambda caption, seed, context: self.generate_track(video, caption, seed, settings,
                                                                               context=context),
                            captions, seeds, on_track)


def step_by_step(make_track: Callable[[str, int, list[Track]], Track], captions: Sequence[str],
                 seeds: Sequence[int] | None = None, on_track: Callable[[int, Track], None] | None = None) -> list[Track]:
    """One track per caption in order, track k made by `make_track(caption, seed, tracks 1..k-1)`; seeds
    default to 0, 1, ...; `on_track(k, track)` as each is done."""
    seeds = list(range(len(captions))) if seeds is None else list(seeds)
    if len(seeds) != len(captions):
        raise ValueError(f"got {len(captions)} captions but {len(seeds)} seeds")
    tracks: list[Track] = []
    for k, (caption, seed) in enumerate(zip(captions, seeds)):
        tracks.append(make_track(caption, seed, tracks))
        if on_track is not None:
            on_track(k, tracks[-1])
    return tracks


def _condition_tensors(sets: Sequence[ConditionSet]):
    """Every tensor of the condition sets, except the shared u(empty, empty)."""
    for s in sets:
        for c in (s.full, s.video_only, s.negative):
            if c is not None:
                yield from c.tensors()
        if s.reference is not None:
            yield from (*s.reference.keys, *s.reference.values)
