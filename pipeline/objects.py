"""Objects in the store and inputs anywhere: write a waveform as WAV/FLAC under a key, read one back
by its URI, and open an input (manifest, video) at any fsspec URL.

Keys come from :mod:`storage.keys`; this module only encodes, decodes and maps a stored URI back to
its key under the root. Inputs on S3 are opened with the same credentials and endpoint as the
storage root (``storage.root.s3_options``: ``FOLEY_S3_ENDPOINT_URL`` etc.).
"""
from __future__ import annotations

import contextlib
import os
from typing import BinaryIO, Iterator

import fsspec
import numpy as np

from media.audio_io import DELIVERY_RATE, audio_from_bytes, audio_to_bytes
from media.errors import MediaUnreadable
from storage import keys
from storage.root import Root, input_options
from pipeline.params import AudioOutput


def local_path(uri: str) -> str | None:
    """The local path of a plain path or ``file://`` URL; None for other URLs."""
    if uri.startswith("file://"):
        return uri[len("file://"):]
    return None if "://" in uri else os.fspath(uri)


@contextlib.contextmanager
def open_input(uri: str) -> Iterator[str | BinaryIO]:
    """A local path as is (FFmpeg reads it directly), or a seekable file object for a remote URL.

    Raises:
        MediaUnreadable: the remote object cannot be opened (the cause says whether a retry can help).
    """
    path = local_path(uri)
    if path is not None:
        yield path
        return
    try:
        f = fsspec.open(uri, "rb", **input_options(uri)).open()
    except (OSError, ValueError) as exc:
        raise MediaUnreadable(f"cannot open {uri}: {exc}") from exc
    try:
        yield f
    finally:
        f.close()


def key_of(root: Root, uri: str) -> str:
    """The key of an object URI written under ``root`` (``root.uri(key)`` backwards)."""
    return keys.key_of(root.url, uri)


def write_audio(root: Root, key: str, wav: np.ndarray, sample_rate: int, output: AudioOutput) -> dict:
    """Encode and store ``wav`` atomically; returns uri, sha256, the file's sample rate and duration."""
    target = DELIVERY_RATE if output.resample_48k else None
    data = audio_to_bytes(wav, sample_rate, format=output.audio_format, bit_depth=output.bit_depth,  # type: ignore[arg-type]
                          target_rate=target)
    digest = root.put_atomic(key, data)
    rate = target or sample_rate
    samples = round(np.shape(wav)[-1] * rate / sample_rate)
    return {"uri": root.uri(key), "sha256": digest, "sample_rate": int(rate), "duration_s": samples / rate}


def read_audio(root: Root, uri: str) -> tuple[np.ndarray, int]:
    """Decode a stored WAV/FLAC object: ``(samples,)`` float32 and its sample rate."""
    return audio_from_bytes(root.read_bytes(key_of(root, uri)))
