"""Probe, hash, decode and encode one video (library code; the task, the first stage of every video, is
:func:`tasks.prepare.prepare_video`).

The video must have a video stream with at least one decodable frame; audio is optional. Its whole
length gets a soundtrack (``duration`` is the model's window; a longer video is covered by overlapping
windows, see ``nag_model.long_form``), up to ``pipeline.models.MAX_VIDEO_S``: a longer one fails its row
(``VideoTooLong``). A video shorter than one window is fine: its frames are padded to the model's
lengths and its tracks are cut to the video's length. The features are
computed here and kept in this worker's feature cache (:func:`pipeline.models.video_features`); the
stage returns only a small description of the video.

A worker prepares a few videos at a time (the others wait; :func:`prepare_at_once`, sized by
:mod:`pipeline.host_work`): one while the model runs on the CPU, so that the first video of a catalog
is ready as soon as it can be and later ones are prepared while it runs; a few with the model on a GPU,
so that a batch of videos fills sooner. The decoded frames of a whole catalog are never in memory at once.
"""
from __future__ import annotations

import hashlib
import threading

import fsspec

from media.errors import EmptyMedia, MediaUnreadable, NoVideoStream, VideoTooLong
from media.probe import probe
from pipeline.handoffs import PreparedVideo
from pipeline.models import MAX_VIDEO_S, encode_video, load_model
from pipeline.objects import local_path, open_input
from storage.root import input_options

_CHUNK = 1 << 20
_preparing = threading.BoundedSemaphore(1)
_at_once = 1


def prepare_at_once(n: int) -> None:
    """Let ``n`` videos of this worker be prepared at the same time from now on."""
    global _preparing, _at_once
    if n < 1:
        raise ValueError(f"videos prepared at once must be >= 1, got {n}")
    if n != _at_once:
        _preparing, _at_once = threading.BoundedSemaphore(n), n


def preparing_at_once() -> int:
    return _at_once


def with_preparation_slot(fn, *args):
    """``fn(*args)`` once fewer than :func:`prepare_at_once` videos of this worker are being prepared (a
    function, so that the task itself holds no lock and pickles for Dask)."""
    slots = _preparing
    with slots:
        return fn(*args)


def file_sha256(uri: str) -> str:
    """SHA-256 of the whole file at a local path or fsspec URL.

    Raises:
        MediaUnreadable: the file cannot be read (its cause tells whether a retry could help).
    """
    local = local_path(uri)
    h = hashlib.sha256()
    try:
        with (open(local, "rb") if local is not None else fsspec.open(uri, "rb", **input_options(uri)).open()) as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except (OSError, ValueError) as exc:
        raise MediaUnreadable(f"cannot read {uri}: {exc}") from exc
    return h.hexdigest()


def describe_video(video_uri: str, model: str, duration: float, device: str = "cpu",
                   precision: str = "fp32") -> PreparedVideo:
    """Probe, hash, decode and encode (plain function; see the module docstring), with the model's encoders
    on ``device`` (``pipeline.models.load_model``; the features are kept on the host).

    Returns:
        The :class:`PreparedVideo`; its ``covered_s`` is the length of video the tracks will cover: the
        picture's whole length.

    Raises:
        media.errors: ``MediaUnreadable``, ``EmptyMedia`` (0 bytes, no frames), ``CorruptMedia``,
        ``NoVideoStream``, ``VideoTooLong``.
    """
    with open_input(video_uri) as source:
        info = probe(source)
    if not info.has_video:
        raise NoVideoStream(f"{video_uri}: no video stream (streams: audio={info.has_audio})")
    if info.duration is not None and info.duration <= 0:
        raise EmptyMedia(f"{video_uri}: zero-length video")
    if info.duration is not None and info.duration > MAX_VIDEO_S:
        raise VideoTooLong(f"{video_uri}: the video is {info.duration:.1f} s long; soundtracks are made for videos "
                           f"of up to {MAX_VIDEO_S:g} s (pipeline.models.MAX_VIDEO_S)")
    sha256 = file_sha256(video_uri)
    bundle = load_model(model, duration, device, precision)
    _, covered = encode_video(bundle, video_uri, sha256, duration)  # warms the cache
    if covered <= 0:
        raise EmptyMedia(f"{video_uri}: zero-length video (no frame before {duration} s)")
    return PreparedVideo(video_uri=video_uri, sha256=sha256, duration_s=info.duration, fps=info.fps,
                         width=info.width, height=info.height, has_audio=info.has_audio, covered_s=covered)
