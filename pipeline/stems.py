"""Stems as stored, and back: the static gain each stem gets for storage, its ``tracks`` row, and the
stored stems turned back into generator context for an edit (library code; the tasks are in
:mod:`tasks.synthesis`).

A stem is cut to the length of video it covers and stored with one static gain: the one that brings it
to the mix's -20 LUFS, or less where its true peak would cross the -1 dBTP ceiling. The model's raw
output can be anywhere from clipping to -35 LUFS and below; stored as it came, a quiet stem wasted up to
28 dB of the 16-bit file's resolution, and the mix then raised that quantisation noise by the same
28 dB. The gain is static, so the track row's ``gain_db`` (its opposite) undoes it exactly when the
tracks are mixed or used as NAG context: the mix still sums the tracks as the model made them. The part
of the gain the ceiling forced (<= 0) is reported as the track's ``limiter_gain_db`` metric.
"""
from __future__ import annotations

import numpy as np

from audio.loudness import (DEFAULT_TARGET_LUFS, integrated_loudness, peak_limit_gain_db, scale_under_true_peak,
                            true_peak_db)
from media.audio_io import resample
from nag_model.generator import Track
from pipeline.objects import read_audio, write_audio
from pipeline.params import AudioOutput, TrackSettings
from storage.root import Root

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


def store_stem(root: Root, key: str, wav: np.ndarray, sample_rate: int, output: AudioOutput) -> dict:
    """Write the stem; ``gain_db`` (the row's column) is what the mix applies to it: the storage gain undone."""
    stored, gain = deliverable(wav, sample_rate)
    return {**write_audio(root, key, stored, sample_rate, output), "gain_db": 0.0 - gain,
            "limiter_gain_db": min(0.0, peak_limit_gain_db(wav, sample_rate, STEM_CEILING_DB))}


def track_row(run_id: str, video_id: str, track_id: str, version: int, supersedes: int | None, position: int,
               caption: str, seed: int, synthesis: TrackSettings, stored: dict, generation_s: float) -> dict:
    return {"run_id": run_id, "video_id": video_id, "track_id": track_id, "version": version,
            "supersedes": supersedes, "position": position, "caption": caption, "seed": seed,
            **synthesis.row_fields(), **stored, "generation_s": generation_s}


def context_tracks(root: Root, rows: list[dict], sample_rate: int) -> list[Track]:
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
