"""Mix a video's tracks and deliver them: the mix file, the muxed video and the spectrograms (library
code; the task is :func:`tasks.mixing.mix_video`).

The mix is the paper's (sum of the tracks, loudness-normalised to -20 LUFS) held under a -1 dBTP
true-peak ceiling by a look-ahead limiter, so it never clips and still reaches -20 LUFS
(``media.mix.mix_tracks``). Stems are stored under their own ceiling (a static gain, see
:mod:`pipeline.stems`); each track row's ``gain_db`` undoes it in the mix, so the mix sums the
tracks as the model made them.

The mix row's ``loudness_status`` says whether the mix reached -20 LUFS (``below_target`` when its
peaks would have needed more than the limiter's 20 dB: a very impulsive mix; the run summary lists them).

The video is muxed with the mix as its default audio stream (and, with ``stems_in_video``, each stem
as an extra stream titled with its caption), the picture stream-copied; an MP4 that cannot hold the
picture's codec falls back to Matroska. Every muxed stream keeps the -1 dBTP ceiling as delivered (AAC
raises peaks; ``media.mux`` measures the decoded stream), and ``muxed_true_peak_db`` records the mix's. One spectrogram PNG per track version, and one grid PNG (all
tracks + the mix) per mix version.

The task runs :func:`mix_and_deliver` on a delivery thread or worker process
(:mod:`pipeline.delivery_workers`) and hands it only picklable arguments, so it runs on any task
runner, Dask workers in other processes included.
"""
from __future__ import annotations

import numpy as np

from media.errors import MuxError
from media.mix import mix_tracks
from media.mux import AudioTrack, audio_true_peaks_db, mux_audio
from media.spectrogram import spectrogram_grid_png, spectrogram_png
from storage import keys
from storage.root import Root, open_root
from pipeline.objects import open_input, read_audio, write_audio
from pipeline.params import AudioOutput

CEILING_DB = -1.0


def _mono(wav: np.ndarray) -> np.ndarray:
    return wav if wav.ndim == 1 else wav.mean(axis=0)


def _muxed(root: Root, run_id: str, video_id: str, version: int, video_uri: str, mix: AudioTrack,
           stems: list[AudioTrack]) -> tuple[str, float]:
    """Mux and store the video; MP4 first, Matroska when MP4 cannot carry the picture's codec. Returns its URI
    and the true peak of its mix stream as delivered (decoded)."""
    try:
        with open_input(video_uri) as source:
            data, ext = mux_audio(source, mix, stems, container="mp4"), "mp4"
    except MuxError:
        with open_input(video_uri) as source:
            data, ext = mux_audio(source, mix, stems, container="matroska"), "mkv"
    delivered_db = audio_true_peaks_db(data)[0]
    if delivered_db > CEILING_DB:  # media.mux guarantees it; a broken guarantee must not be delivered
        raise MuxError(f"{video_id}: the muxed mix peaks at {delivered_db:.2f} dBTP, over the {CEILING_DB} dBTP ceiling")
    key = keys.muxed_key(run_id, video_id, version, ext)
    root.put_atomic(key, data)
    return root.uri(key), delivered_db


def mix_and_deliver(storage_url: str, run_id: str, video_id: str, video_uri: str, tracks: list[dict],
                    output: AudioOutput, version: int, supersedes: int | None) -> dict:
    """Mix ``tracks`` (``tracks`` rows, each with its ``gain_db``), store the mix, the muxed video and the
    spectrograms; returns the ``mixes`` row."""
    root = open_root(storage_url)
    audio = [read_audio(root, t["uri"]) for t in tracks]
    rates = {rate for _, rate in audio}
    if len(rates) != 1:
        raise ValueError(f"{video_id}: tracks have different sample rates {sorted(rates)}")
    rate = rates.pop()
    waves = [_mono(w) for w, _ in audio]
    gains_db = [float(t["gain_db"] or 0.0) for t in tracks]  # each stem as the model made it
    mix, report = mix_tracks(waves, rate, gains_db=gains_db, ceiling_db=CEILING_DB)
    stored = write_audio(root, keys.mix_key(run_id, video_id, version, output.audio_format), mix, rate,
                         AudioOutput(output.audio_format, output.bit_depth, resample_48k=False))
    stems = ([AudioTrack(w, rate, t["caption"], ceiling_db=CEILING_DB) for w, t in zip(waves, tracks, strict=True)]
             if output.stems_in_video else [])
    muxed_uri, delivered_db = _muxed(root, run_id, video_id, version, video_uri,
                                     AudioTrack(mix, rate, "mix", ceiling_db=CEILING_DB), stems)
    for wave, t in zip(waves, tracks, strict=True):
        key = keys.spectrogram_key(run_id, video_id, t["version"], t["track_id"])
        if not root.exists(key):  # a track version's picture never changes
            root.put_atomic(key, spectrogram_png(wave, rate, title=t["caption"]))
    grid = spectrogram_grid_png([(t["caption"], w) for w, t in zip(waves, tracks, strict=True)], rate, mix=mix,
                                title=f"{video_id} (mix v{version})")
    root.put_atomic(keys.spectrogram_key(run_id, video_id, version), grid)
    return {"run_id": run_id, "video_id": video_id, "version": version, "supersedes": supersedes,
            "track_ids": [t["track_id"] for t in tracks], "track_versions": [t["version"] for t in tracks],
            "uri": stored["uri"], "sha256": stored["sha256"], "muxed_uri": muxed_uri,
            "lufs": report.lufs if np.isfinite(report.lufs) else None,
            "true_peak_db": report.true_peak_db if np.isfinite(report.true_peak_db) else None,
            "limiter_gain_db": report.limiter_gain_db, "loudness_status": report.loudness_status,
            "muxed_true_peak_db": delivered_db if np.isfinite(delivered_db) else None}
