"""Step-by-step synthesis (section 5.1 of the NAG paper): one track per caption, in order, each pushed
away from the loudness-normalised mix of the tracks before it (or generated alone / with a negative
prompt, by method). Runs on the GPU: it holds one slot of a named global concurrency limit
(:mod:`pipeline.gpu_slot`) and has no retries (it is deterministic; rerunning it cannot fix an error).

Each stem is written atomically under ``storage.keys.track_key`` as soon as it is generated, with its
storage gain (:mod:`pipeline.stems`). Seeds are derived from the run seed, the video id, the track id
and the track version (:mod:`pipeline.tracks`), so a rerun regenerates exactly the same stems at the
same keys.
"""
from __future__ import annotations

import time

from prefect import task
from prefect.cache_policies import NO_CACHE

from nag_model.generator import Track
from nag_model.long_form import LongFormGenerator
from pipeline.edit_plan import NewTrack
from pipeline.gpu_slot import GPU_SLOT, gpu_slot
from pipeline.handoffs import OrderedCaptions, PreparedVideo
from pipeline.models import load_model, video_windows
from pipeline.params import AudioOutput, TrackSettings
from pipeline.stems import context_tracks, store_stem, track_row
from pipeline.tracks import track_id_for, track_seed
from storage import keys
from storage.root import open_root


@task(name="synthesize-tracks", cache_policy=NO_CACHE, retries=0, task_run_name="synthesize-{video_id}")
def synthesize_tracks(storage_url: str, run_id: str, video_id: str, video: PreparedVideo, ordered: OrderedCaptions,
                      model: str,
                      duration: float, synthesis: TrackSettings, output: AudioOutput, seed: int,
                      gpu_slot_name: str | None = GPU_SLOT) -> list[dict]:
    """Generate and store every track of one video, version 1, in the order of ``ordered.captions``.

    Args:
        video: :func:`tasks.prepare.prepare_video`'s description; ``ordered``: :func:`tasks.ordering.order_captions`.
        gpu_slot_name: the global concurrency limit to hold; None runs without one (notebooks, unit tests).

    Returns:
        One ``tracks`` row per caption (``gain_db`` included), plus ``generation_s`` (seconds spent
        generating it) and ``limiter_gain_db`` (the stem's ceiling gain).
    """
    root = open_root(storage_url)
    bundle = load_model(model, duration)
    captions = list(ordered.captions)
    track_ids = [track_id_for(k) for k in range(len(captions))]
    seeds = [track_seed(seed, video_id, t) for t in track_ids]
    n_samples = round(video.covered_s * bundle.sample_rate)  # the whole video
    rows: list[dict] = []
    clock = {"t": 0.0}

    def store(k: int, track: Track) -> None:  # called as soon as track k exists: objects first
        generation_s = time.perf_counter() - clock["t"]
        key = keys.track_key(run_id, video_id, track_ids[k], 1, output.audio_format)
        stored = store_stem(root, key, track.waveform[:n_samples], bundle.sample_rate, output)
        rows.append(track_row(run_id, video_id, track_ids[k], 1, None, k, track.caption, track.seed, synthesis,
                              stored, generation_s))
        clock["t"] = time.perf_counter()

    with gpu_slot(gpu_slot_name):
        windows = video_windows(bundle, video.video_uri, video.sha256, duration)
        clock["t"] = time.perf_counter()
        LongFormGenerator(bundle.generator()).generate(windows, n_samples, captions, seeds, synthesis,
                                                       on_track=store)
    return rows


@task(name="synthesize-track", cache_policy=NO_CACHE, retries=0, task_run_name="synthesize-{video_id}-{new.track_id}")
def synthesize_track(storage_url: str, run_id: str, video_id: str, video: PreparedVideo, new: NewTrack,
                     context: list[dict], *, model: str, duration: float, synthesis: TrackSettings,
                     output: AudioOutput, gpu_slot_name: str | None = GPU_SLOT) -> dict:
    """Generate the track ``new`` against ``context`` (the ``tracks`` rows of the other tracks) and store it.

    This is the Foley artist's edit: a new track against the existing mix, or a redo against the others.
    Returns its ``tracks`` row (plus ``generation_s`` and ``limiter_gain_db``).
    """
    root = open_root(storage_url)
    bundle = load_model(model, duration)
    others = context_tracks(root, context, bundle.sample_rate)
    n_samples = round(video.covered_s * bundle.sample_rate)
    with gpu_slot(gpu_slot_name):
        windows = video_windows(bundle, video.video_uri, video.sha256, duration)
        start = time.perf_counter()
        track = LongFormGenerator(bundle.generator()).generate_track(windows, n_samples, new.caption, new.seed,
                                                                     synthesis, context=others)
        generation_s = time.perf_counter() - start
    key = keys.track_key(run_id, video_id, new.track_id, new.version, output.audio_format)
    stored = store_stem(root, key, track.waveform[:n_samples], bundle.sample_rate, output)
    return track_row(run_id, video_id, new.track_id, new.version, new.supersedes, new.position, new.caption,
                      new.seed, synthesis, stored, generation_s)

