"""Step-by-step synthesis (section 5.1 of the NAG paper): one track per caption, in order, each pushed
away from the loudness-normalised mix of the tracks before it (or generated alone / with a negative
prompt, by method). Runs on the GPU: it holds one slot of a named global concurrency limit
(:mod:`pipeline.gpu_slot`) and has no retries (it is deterministic; rerunning it cannot fix an error).

Each stem is written atomically under ``storage.keys.track_key`` as soon as it is generated, cut to
the length of video it covers, and held under a -1 dBTP true-peak ceiling (one static gain, only when
the model's output would otherwise clip the 16/24-bit file; the gain is reported as a metric, and the
track row's ``gain_db``, its opposite, undoes it when tracks are mixed or used as NAG context). Seeds
are derived from the run seed, the video id, the track id and the track version, so a rerun
regenerates exactly the same stems at the same keys.
"""
from __future__ import annotations

import time

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from media.audio_io import resample
from nag_model.generator import Track
from audio.loudness import scale_under_true_peak, peak_limit_gain_db
from storage import keys
from storage.root import open_root
from pipeline.edit_plan import NewTrack
from pipeline.gpu_slot import GPU_SLOT, gpu_slot
from pipeline.handoffs import OrderedCaptions, PreparedVideo
from pipeline.models import load_model, video_features
from pipeline.objects import read_audio, write_audio
from pipeline.params import AudioOutput, TrackSettings
from pipeline.tracks import track_id_for, track_seed

STEM_CEILING_DB = -1.0


def deliverable(wav: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
    """The stem as stored: under the true-peak ceiling; and the static gain applied (0 dB when none)."""
    gain_db = peak_limit_gain_db(wav, sample_rate, STEM_CEILING_DB)
    return (scale_under_true_peak(wav, sample_rate, STEM_CEILING_DB) if gain_db < 0 else wav), gain_db


def _store(root, key: str, wav: np.ndarray, sample_rate: int, output: AudioOutput) -> dict:
    """Write the stem; ``gain_db`` (the row's column) is what the mix applies to it: the ceiling gain undone."""
    wav, ceiling_gain_db = deliverable(wav, sample_rate)
    return {**write_audio(root, key, wav, sample_rate, output), "gain_db": 0.0 - ceiling_gain_db,
            "limiter_gain_db": ceiling_gain_db}


def _track_row(run_id: str, video_id: str, track_id: str, version: int, supersedes: int | None, position: int,
               caption: str, seed: int, synthesis: TrackSettings, stored: dict, generation_s: float) -> dict:
    return {"run_id": run_id, "video_id": video_id, "track_id": track_id, "version": version,
            "supersedes": supersedes, "position": position, "caption": caption, "seed": seed,
            **synthesis.row_fields(), **stored, "generation_s": generation_s}


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
    n_samples = round(min(video.covered_s, bundle.duration) * bundle.sample_rate)
    rows: list[dict] = []
    clock = {"t": 0.0}

    def store(k: int, track: Track) -> None:  # called as soon as track k exists: objects first
        generation_s = time.perf_counter() - clock["t"]
        key = keys.track_key(run_id, video_id, track_ids[k], 1, output.audio_format)
        stored = _store(root, key, track.waveform[:n_samples], bundle.sample_rate, output)
        rows.append(_track_row(run_id, video_id, track_ids[k], 1, None, k, track.caption, track.seed, synthesis,
                               stored, generation_s))
        clock["t"] = time.perf_counter()

    with gpu_slot(gpu_slot_name):
        features = video_features(bundle, video.video_uri, video.sha256, duration)
        clock["t"] = time.perf_counter()
        bundle.generator().generate(features, captions, seeds, synthesis, on_track=store)
    return rows


def _context_tracks(root, rows: list[dict], sample_rate: int) -> list[Track]:
    """Stored stems as generator context, as the model made them: the stem's ceiling gain undone, and
    resampled back to the model's rate when delivered at 48 kHz."""
    out = []
    for row in rows:
        wav, rate = read_audio(root, row["uri"])
        wav = wav if wav.ndim == 1 else wav.mean(axis=0)
        wav = wav * np.float32(10.0 ** (float(row["gain_db"] or 0.0) / 20.0))
        if rate != sample_rate:
            wav = resample(wav, rate, sample_rate)
        out.append(Track(row["caption"], int(row["seed"]), None, np.asarray(wav, np.float32), sample_rate))  # type: ignore[arg-type]
    return out


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
    others = _context_tracks(root, context, bundle.sample_rate)
    n_samples = round(min(video.covered_s, bundle.duration) * bundle.sample_rate)
    with gpu_slot(gpu_slot_name):
        features = video_features(bundle, video.video_uri, video.sha256, duration)
        start = time.perf_counter()
        track = bundle.generator().generate_track(features, new.caption, new.seed, synthesis, context=others)
        generation_s = time.perf_counter() - start
    key = keys.track_key(run_id, video_id, new.track_id, new.version, output.audio_format)
    stored = _store(root, key, track.waveform[:n_samples], bundle.sample_rate, output)
    return _track_row(run_id, video_id, new.track_id, new.version, new.supersedes, new.position, new.caption,
                      new.seed, synthesis, stored, generation_s)

