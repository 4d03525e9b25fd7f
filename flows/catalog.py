"""Catalog run: step-by-step Foley with Negative Audio Guidance for every video of a catalog.

For each video (section 5.1 of the NAG paper): take the first ``duration`` seconds and encode the
picture; take its captions (the manifest's, else the captioner's) and order them, by default with
the core event first (descending text-video score); generate one track per caption, each pushed
away from the loudness-normalised mix of the tracks before it (Eq. 7; or independently, or with
negative prompts); mix the tracks (sum, -20 LUFS, true-peak ceiling), mux the mix into the video,
draw spectrograms; score every track and the mix; record rows. Videos run in parallel; only the
synthesis holds the GPU slot.

Failures are data: a video that cannot be processed gets a ``videos`` row with its error and the
rest of the catalog goes on. A run id can be run again: finished videos are skipped and unfinished
ones start clean (:mod:`storage.cleanup`), so a killed run resumes without duplicate rows or orphaned
objects.

The tasks run on this process's threads by default, or on a Dask cluster (:mod:`flows.dask_cluster`);
they pass URIs, ids and small parameters only, and a video's record is submitted with the plain
outcomes of its stages (Prefect's ``allow_failure`` wrapper does not survive Dask's serialisation).
"""
from __future__ import annotations

import contextlib
import os
import secrets
from datetime import UTC, datetime
from typing import Any, Callable, Iterator

import torch
from prefect import flow
from prefect import get_run_logger
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, as_completed, wait
from prefect.task_runners import ThreadPoolTaskRunner

from captioning.captioner import CaptionerSettings
from evaluation.registry import SET, parse_eval_weights, plan_eval_models
from nag_model.settings import DEFAULTS
from pipeline import host_work
from pipeline.gpu_slot import GPU_SLOT, RESERVE_S, release_gpu_slots
from pipeline.models import check_method, check_placement_names
from pipeline.params import AudioOutput, TrackSettings, check_order, check_run_id
from pipeline.synthesis_batch import check_batch_videos, default_batch_videos
from storage.manifest import ManifestEntry
from storage.root import open_root
from tasks.captions import DEFAULT_MAX_CAPTION_CHARS, resolve_captions
from tasks.gpu_slot import ensure_gpu_slots
from tasks.manifest import read_manifest
from tasks.mixing import mix_video
from tasks.model_info import describe_model
from tasks.ordering import order_captions
from tasks.prepare import prepare_video
from tasks.record import record_rejected, record_video
from tasks.report import publish_report
from tasks.reset import reset_video
from tasks.run_log import begin_run, finish_run, finished_videos, name_flow_run
from tasks.run_scoring import score_run
from tasks.scoring import score_video
from tasks.synthesis import synthesize_tracks

MAX_WORKERS = 32  # task threads per flow run: about four videos in flight, ~8 tasks each
TASKS_PER_VIDEO = 8  # each submitted task holds a thread while it waits for its upstream stages


def task_threads(batch_videos: int) -> int:
    """Task threads a run on this process's threads needs for ``batch_videos`` syntheses to wait together (a
    batch, :mod:`pipeline.synthesis_batch`) while about three more videos go through the other stages."""
    return max(MAX_WORKERS, TASKS_PER_VIDEO * (batch_videos + 3))


# Sized for the default batch of this machine's default device: 32 threads on the CPU, 280 with a GPU.
DEFAULT_THREADS = task_threads(default_batch_videos("cuda" if torch.cuda.is_available() else "cpu"))


_listeners: list[Callable[[], None]] = []  # on_video_done listeners of this process


@contextlib.contextmanager
def on_video_done(listener: Callable[[], None]) -> Iterator[None]:
    """Call ``listener()`` once per video of the catalog runs started in this process (the flow runs here
    even when its tasks run on Dask) as soon as it is done: skipped as already finished, rejected by the
    manifest, or all its stages over (its row is written next). The CLI's progress bar."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def _video_done() -> None:
    for listener in list(_listeners):
        listener()


def new_run_id() -> str:
    """``run-<UTC time>-<6 hex>``."""
    return f"run-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def absolute_uri(uri: str) -> str:
    """A local path made absolute (workers may run elsewhere); URLs unchanged."""
    if uri.startswith("file://"):
        return "file://" + os.path.abspath(uri[len("file://"):])
    return uri if "://" in uri else os.path.abspath(uri)


def outcome(stage: PrefectFuture | dict) -> Any:
    """What a finished stage delivered: its result, its exception, or None when it never ran (an earlier
    stage of the video failed). :func:`tasks.record.record_video` takes these. A dict is a stage that
    needed no task."""
    if not isinstance(stage, PrefectFuture):
        return stage
    stage.wait()
    if stage.state.is_completed():
        return stage.result()
    return stage.state.result(raise_on_failure=False) if stage.state.is_failed() or stage.state.is_crashed() else None


def soundtrack(entry: ManifestEntry, *, storage_url: str, run_id: str, model: str, duration: float, order: str,
               seed: int, synthesis: TrackSettings, output: AudioOutput, max_caption_chars: int,
               gpu_slot: str | None, resumed: bool, captioner: CaptionerSettings | None = None,
               device: str = "cpu", precision: str = "fp32", batch_videos: int | None = None,
               eval_weights: list[str] | None = None) -> tuple[PrefectFuture | dict, ...]:
    """Submit the stages of one video, in :data:`pipeline.outcomes.STAGES` order (the last depends on all).

    Only a resumed run can have left something of a video behind (a new run id has nothing stored yet),
    so only a resumed run resets videos first."""
    vid = entry.video_id
    reset = (reset_video.submit(storage_url, run_id, vid, committed=0) if resumed  # start clean (after a kill)
             else {"committed_version": 0, "removed": []})
    video = prepare_video.submit(entry.video_uri, model, duration, device, precision,  # frames encoded on the device
                                 wait_for=[reset] if resumed else None)
    captions = resolve_captions.submit(entry, video, model, duration, max_caption_chars, captioner)
    ordered = order_captions.submit(captions, video, model, duration, order, seed, vid,  # core event first
                                    eval_weights=eval_weights or None)  # ImageBind ranks when configured
    tracks = synthesize_tracks.submit(storage_url, run_id, vid, video, ordered, model, duration, synthesis, output,
                                      seed, gpu_slot, device, precision, batch_videos)  # track k pushed away
    # from tracks 1..k-1 (Eq. 7), batched with the other videos whose synthesis waits at the same time
    mix = mix_video.submit(storage_url, run_id, vid, video, tracks, output)  # sum, -20 LUFS, ceiling; mux
    metrics = score_video.submit(storage_url, run_id, vid, tracks, mix, model, duration, ordered, video=video,
                                 eval_weights=eval_weights or None)  # levels, evaluator, CLAP/IB/DeSync rows
    return reset, video, captions, ordered, tracks, mix, metrics


def _score_run(storage_url: str, run_id: str, plan, duration: float, method: str,
               reference_manifest: str | None) -> list[dict]:
    """The run-level set metrics of the set models (none configured: nothing); a failure is logged with its
    reason and leaves the run completed (its videos are done), with no rows."""
    if not plan.with_role(SET):
        return []
    state = score_run(storage_url, run_id, plan.entries(), duration, method, reference_manifest, return_state=True)
    if state.is_completed():
        return state.result()
    get_run_logger().warning(f"set metrics (FD, KL, IS) not computed: {state.message}")
    return []


def _report(storage_url: str, run_id: str) -> str | None:
    """Publish the run report; a report that cannot be written is logged, not a failed run."""
    state = publish_report(storage_url, run_id, return_state=True)
    return state.result()["report_uri"] if state.is_completed() else None


@flow(name="catalog-run", task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_THREADS),
      on_completion=[release_gpu_slots], on_failure=[release_gpu_slots], on_crashed=[release_gpu_slots])
def catalog_run(
    manifest_uri: str,
    storage_url: str = "file://./foley-out",
    run_id: str | None = None,
    model: str = "demo",
    method: str = DEFAULTS.method,
    alpha: float = DEFAULTS.alpha,
    beta: float = DEFAULTS.beta,
    steps: int = DEFAULTS.steps,
    order: str = "descending",
    seed: int = 0,
    duration: float = 8.0,
    audio_format: str = "flac",
    bit_depth: int = 16,
    resample_48k: bool = False,
    stems_in_video: bool = False,
    max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS,
    compact: bool = True,
    gpu_slot: str | None = GPU_SLOT,
    captioner: CaptionerSettings | None = None,
    report: bool = True,
    device: str = "auto",
    precision: str = "auto",
    batch_videos: int | None = None,
    eval_weights: list[str] | None = None,
    reference_manifest: str | None = None,
) -> dict[str, Any]:
    """Generate, mix, score and record Foley for every video of a manifest.

    Args:
        manifest_uri: CSV, JSONL or Parquet at any fsspec URL (columns id, video_uri[, captions]).
        storage_url: where outputs and tables go (``file://``, ``s3://``, ``memory://``).
        run_id: a new id by default; an existing one resumes that run (same settings required). It names
            the Prefect flow run too, and must be a name like a video id (``pipeline.params.check_run_id``).
        model: ``"demo"``, a bundle folder/URL, or ``"random:<preset>"``.
        method, alpha, beta, steps: ``nag`` (Eq. 7), ``independent`` (CFG) or ``negative-prompt``.
        order: ``descending`` (scorer; falls back to ``given`` without one), ``ascending``, ``random``, ``given``.
        seed: run seed; each track's seed derives from it, the video id and the track.
        duration: seconds of one generation window (the paper's 8); a longer video is covered to its end by
            overlapping windows (``nag_model.long_form``), so every soundtrack is as long as its video.
        audio_format, bit_depth, resample_48k: stem and mix files (FLAC/WAV, 16/24 bit, model rate or 48 kHz).
        stems_in_video: also mux every stem into the video as an extra audio stream.
        max_caption_chars: longer captions fail their video (see :mod:`tasks.captions`).
        compact: merge the run's small Parquet files when it completes.
        gpu_slot: the global concurrency limit the synthesis holds (created with 1 slot if missing).
        captioner: who proposes captions for videos without any (default: the model's own; see :mod:`captioning`).
        report: write the HTML run report when the run ends and publish a Markdown artifact pointing to it.
        device: where the synthesis runs: ``auto`` (the first GPU if any, else the CPU), ``cpu``, ``cuda``,
            ``cuda:N``; resolved where the model loads (the run fails early when CUDA is asked for and absent).
        precision: ``auto`` (bf16 on CUDA, fp32 on the CPU), ``bf16`` or ``fp32``; the device and precision
            used are recorded in the run's model info.
        batch_videos: videos generated together at most (None: 1 on the CPU, 32 on CUDA;
            :mod:`pipeline.synthesis_batch`). Every submitted task holds a task thread while it waits, so
            a batch of B videos needs ~8 (B + 3) threads (:func:`task_threads`). The flow has enough for
            the default batch of this machine's default device (:data:`DEFAULT_THREADS`); for another
            size, give it ``task_runner=ThreadPoolTaskRunner(max_workers=task_threads(B))`` (the CLI does).
        eval_weights: the paper's evaluation models to score with (``evaluation.registry``: ``NAME=PATH``,
            ``NAME:PRESET=PATH`` or a folder of official files): CLAP, ImageBind and DeSync rows per track and
            mix, FD/KL/IS per run (``run_metrics``). A metric whose model is not configured or not usable is
            skipped with one logged line (``eval_skipped`` in the result).
        reference_manifest: the reference set of FD and KL (``id, video_uri``; default: the source videos'
            own audio).

    Returns:
        ``{"run_id", "storage_url", "status", "n_videos", "n_ok", "n_failed", "n_skipped", "model_id"}``,
        ``report_uri`` (None without ``report``), ``eval_skipped`` (one line per skipped paper metric) and
        ``run_metrics`` (the run-level rows, empty without a set model).
    """
    synthesis = TrackSettings(method, alpha, beta, steps)
    output = AudioOutput(audio_format, bit_depth, resample_48k, stems_in_video)
    check_order(order)
    check_placement_names(device, precision)
    check_batch_videos(batch_videos)
    storage_url = open_root(storage_url).url
    manifest_uri = absolute_uri(manifest_uri)
    run_id = check_run_id(run_id) if run_id is not None else new_run_id()
    eval_plan = plan_eval_models(parse_eval_weights(eval_weights))
    name_flow_run(run_id)
    params = {"manifest_uri": manifest_uri, "storage_url": storage_url, "run_id": run_id, "model": model,
              "method": method, "alpha": alpha, "beta": beta, "steps": steps, "order": order, "seed": seed,
              "duration": duration, **output.to_dict(), "max_caption_chars": max_caption_chars, "compact": compact,
              "gpu_slot": gpu_slot, "captioner": captioner.to_dict() if captioner is not None else None,
              "report": report, "device": device, "precision": precision,
              "batch_videos": batch_videos, "eval_weights": eval_plan.entries(),
              "reference_manifest": reference_manifest}
    # stored in the runs row; a resume compares run_log.OUTPUT_PARAMS

    in_process = isinstance(FlowRunContext.get().task_runner, ThreadPoolTaskRunner)  # tasks on this process's threads
    if gpu_slot:  # reserved early only where the syntheses run: this process's threads
        ensure_gpu_slots(gpu_slot, reserve_s=RESERVE_S if in_process else 0.0)
    model_info = describe_model(model, duration, device, precision)  # the placement, resolved there
    check_method(model_info, method)
    if in_process:  # preparation slots and delivery workers sized for where the model runs
        host_work.configure(model_info["device"])
    log = get_run_logger()
    for line in eval_plan.notice():  # once per run, not per video
        log.info(line)
    resumed = begin_run(storage_url, run_id, params, manifest_uri, model_info)["resumed"]
    try:
        entries = [ManifestEntry.from_dict(e) for e in read_manifest(manifest_uri)]
        finished = set(finished_videos(storage_url, run_id)) if resumed else set()
        records, videos = [], {}
        for entry in entries:
            if entry.video_id in finished:
                _video_done()
                continue
            if entry.error:
                records.append(record_rejected.submit(storage_url, run_id, entry))
                _video_done()
                continue
            stages = soundtrack(entry, storage_url=storage_url, run_id=run_id, model=model, duration=duration,
                                order=order, seed=seed, synthesis=synthesis, output=output,
                                max_caption_chars=max_caption_chars, gpu_slot=gpu_slot, resumed=resumed,
                                captioner=captioner, device=device, precision=precision,
                                batch_videos=batch_videos, eval_weights=eval_plan.entries())
            videos[stages[-1]] = (entry, stages)
        for last in as_completed(list(videos)):  # record each video as soon as all its stages are done
            entry, stages = videos[last]
            records.append(record_video.submit(storage_url, run_id, entry, *map(outcome, stages)))
            _video_done()
        wait(records)
        set_rows = _score_run(storage_url, run_id, eval_plan, duration, method, reference_manifest)
        summary = finish_run(storage_url, run_id, "completed", compact)
    except Exception:
        with contextlib.suppress(Exception):  # the first error is the one to report
            finish_run(storage_url, run_id, "failed", compact=False)
        raise
    skipped = sum(1 for e in entries if e.video_id in finished)
    report_uri = _report(storage_url, run_id) if report else None
    return {**summary, "storage_url": storage_url, "n_skipped": skipped, "model_id": model_info["model_id"],
            "report_uri": report_uri, "eval_skipped": list(eval_plan.skipped), "run_metrics": set_rows}
