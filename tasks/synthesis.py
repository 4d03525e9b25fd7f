"""Step-by-step synthesis (section 5.1 of the NAG paper): one track per caption, in order, each pushed
away from the loudness-normalised mix of the tracks before it (or generated alone / with a negative
prompt, by method). Runs on the GPU: it holds one slot of a named global concurrency limit
(:mod:`pipeline.gpu_slot`) and has no retries (it is deterministic; rerunning it cannot fix an error).

Each stem is written atomically under ``storage.keys.track_key`` as soon as it is generated, cut to
the length of video it covers, with one static gain: the one that brings it to the mix's -20 LUFS, or
less where its true peak would cross the -1 dBTP ceiling. The model's raw output can be anywhere from
clipping to -35 LUFS and below; stored as it came, a quiet stem wasted up to 28 dB of the 16-bit file's
resolution, and the mix then raised that quantisation noise by the same 28 dB. The gain is static, so
the track row's ``gain_db`` (its opposite) undoes it exactly when the tracks are mixed or used as NAG
context: the mix still sums the tracks as the model made them. The part of the gain the ceiling forced
(<= 0) is reported as the track's ``limiter_gain_db`` metric. Seeds are derived from the run seed, the
video id, the track id and the track version, so a rerun regenerates exactly the same stems at the
same keys.
"""
from __future__ import annotations

import time

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from media.audio_io import resample
from nag_model.generator import Track
from audio.loudness import (DEFAULT_TARGET_LUFS, integrated_loudness, peak_limit_gain_db, scale_under_true_peak,
                            true_peak_db)
from nag_model.long_form import LongFormGenerator
from storage import keys
from storage.root import open_root
from pipeline.edit_plan import NewTrack
from pipeline.gpu_slot import GPU_SLOT, gpu_slot
from pipeline.handoffs import OrderedCaptions, PreparedVideo
from pipeline.models import load_model, video_windows
from pipeline.objects import read_audio, write_audio
from pipeline.params import AudioOutput, TrackSettings
from pipeline.tracks import track_id_for, track_seed

STEM_CEILING_DB = -1.0


def deliverable(wav: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
    """The stem as stored (module docstring) and the static gain applied to it: toward -20 LUFS, at most up
    to the -1 dBTP ceiling (a stem under the loudness gate gets only what the ceiling asks; silence, 0 dB)."""
    peak_db = true_peak_db(wav, sample_rate)
    if not np.isfinite(peak_db):
        return wav, 0.0
    gain_db = STEM_CEILING_DB - peak_db - 1e-3  # the most it can take: its true peak at the ceiling
    lufs = integrated_loudness(wav, sample_rate)
    gain_db = min(gain_db, DEFAULT_TARGET_LUFS - lufs if np.isfinite(lufs) else 0.0)
    scaled = (np.asarray(wav, np.float64) * 10.0 ** (gain_db / 20.0)).astype(np.float32)
    return scale_under_true_peak(scaled, sample_rate, STEM_CEILING_DB), gain_db  # only absorbs float rounding


def _store(root, key: str, wav: np.ndarray, sample_rate: int, output: AudioOutput) -> dict:
    """Write the stem; ``gain_db`` (the row's column) is what the mix applies to it: the storage gain undone."""
    stored, gain = deliverable(wav, sample_rate)
    return {**write_audio(root, key, stored, sample_rate, output), "gain_db": 0.0 - gain,
            "limiter_gain_db": min(0.0, peak_limit_gain_db(wav, sample_rate, STEM_CEILING_DB))}


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
    n_samples = round(video.covered_s * bundle.sample_rate)  # the whole video
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
        windows = video_windows(bundle, video.video_uri, video.sha256, duration)
        clock["t"] = time.perf_counter()
        LongFormGenerator(bundle.generator()).generate(windows, n_samples, captions, seeds, synthesis,
                                                       on_track=store)
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
    n_samples = round(video.covered_s * bundle.sample_rate)
    with gpu_slot(gpu_slot_name):
        windows = video_windows(bundle, video.video_uri, video.sha256, duration)
        start = time.perf_counter()
        track = LongFormGenerator(bundle.generator()).generate_track(windows, n_samples, new.caption, new.seed,
                                                                     synthesis, context=others)
        generation_s = time.perf_counter() - start
    key = keys.track_key(run_id, video_id, new.track_id, new.version, output.audio_format)
    stored = _store(root, key, track.waveform[:n_samples], bundle.sample_rate, output)
    return _track_row(run_id, video_id, new.track_id, new.version, new.supersedes, new.position, new.caption,
                      new.seed, synthesis, stored, generation_s)

