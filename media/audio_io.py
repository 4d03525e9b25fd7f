"""WAV/FLAC encoding of generated tracks to bytes (the storage layer writes them atomically) and back.

Audio layout, as everywhere in this project: ``(samples,)`` or ``(channels, samples)`` float; soundfile's
``(frames, channels)`` layout stays inside this module.
"""
from __future__ import annotations

import io
from typing import Literal

import numpy as np
import soundfile
import soxr

from media.errors import CorruptMedia, EmptyMedia
from audio.loudness import as_float_audio

__all__ = ["DELIVERY_RATE", "resample", "audio_to_bytes", "audio_from_bytes"]

DELIVERY_RATE = 48_000  # Hz; the rate of the muxed AAC track and of optional delivery files

_SUBTYPES = {16: "PCM_16", 24: "PCM_24"}
_FORMATS = {"wav": "WAV", "flac": "FLAC"}


def resample(wav: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """Resample along the last axis with soxr (VHQ); the output length is round(n * target / source)."""
    x = as_float_audio(wav)
    if sample_rate <= 0 or target_rate <= 0:
        raise ValueError(f"sample rates must be positive; got {sample_rate} -> {target_rate}")
    if sample_rate == target_rate or x.shape[-1] == 0:
        return x.copy()
    y = soxr.resample(x.T.astype(np.float32), sample_rate, target_rate, quality="VHQ")  # soxr: (frames, ch)
    return np.ascontiguousarray(y.T, dtype=np.float32)


def audio_to_bytes(
    wav: np.ndarray,
    sample_rate: int,
    *,
    format: Literal["wav", "flac"] = "wav",
    bit_depth: Literal[16, 24] = 16,
    target_rate: int | None = None,
) -> bytes:
    """Encode audio as a complete WAV or FLAC file in memory.

    Args:
        wav: ``(samples,)`` or ``(channels, samples)``, float in [-1, 1] (integer PCM is scaled first).
        sample_rate: rate of ``wav`` in Hz (the model's rate, e.g. 16 000).
        format: ``"wav"`` or ``"flac"``.
        bit_depth: 16 or 24 bit integer PCM. Rounded without dither.
        target_rate: resample to this rate first (e.g. ``DELIVERY_RATE``); None keeps ``sample_rate``.

    Returns:
        The file's bytes. Samples beyond [-1, 1] are clipped (PCM cannot hold them); limit first (see
        ``media.mix``) if that matters.

    Raises:
        ValueError: NaN/inf samples, a bad shape, or an unsupported format/bit depth.
    """
    if format not in _FORMATS:
        raise ValueError(f"format must be one of {sorted(_FORMATS)}; got {format!r}")
    if bit_depth not in _SUBTYPES:
        raise ValueError(f"bit_depth must be 16 or 24; got {bit_depth!r}")
    x = as_float_audio(wav)
    rate = sample_rate
    if target_rate is not None and target_rate != sample_rate:
        x, rate = resample(x, sample_rate, target_rate), target_rate
    x = np.clip(x, -1.0, 1.0).astype(np.float32)
    buf = io.BytesIO()
    soundfile.write(buf, x.T, rate, format=_FORMATS[format], subtype=_SUBTYPES[bit_depth])
    return buf.getvalue()


def audio_from_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Decode WAV/FLAC (anything libsndfile reads) to float32 ``(samples,)`` if mono else ``(channels, samples)``.

    Raises:
        EmptyMedia: no bytes. CorruptMedia: not an audio file libsndfile can read.
    """
    if not data:
        raise EmptyMedia("no audio data (0 bytes)")
    try:
        x, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except soundfile.SoundFileError as exc:
        raise CorruptMedia(f"not a readable audio file: {exc}") from exc
    x = np.ascontiguousarray(x.T)  # (frames, ch) -> (ch, frames)
    return (x[0].copy() if x.shape[0] == 1 else x), int(rate)
