"""Probe, hash, decode and encode one video: the first stage of every video.

The video must have a video stream with at least one decodable frame; audio is optional. Only the
first ``duration`` seconds are used (the paper's first 8 s); a shorter video is fine: its frames are
padded to the model's lengths and its tracks are cut to the video's length. The features are
computed here and kept in this worker's feature cache (:func:`pipeline.models.video_features`); the
task returns only a small description of the video.

A worker prepares one video at a time (the others wait): the first video of a catalog is then ready
for the GPU as soon as it can be, later ones are prepared while it runs, and the decoded frames of
a whole catalog are never in memory at once.
"""
from __future__ import annotations

import hashlib
import os
import threading
import fsspec
from prefect import task
from prefect.cache_policies import NO_CACHE

from media.errors import EmptyMedia, MediaUnreadable, NoVideoStream
from media.probe import probe
from pipeline.handoffs import PreparedVideo
from pipeline.models import encode_video, load_model
from pipeline.objects import local_path, open_input
from storage.root import input_options
from tasks.retry_policy import IO_RETRY

_CHUNK = 1 << 20
_preparing = threading.Lock()


def _one_at_a_time(fn, *args):
    """``fn(*args)`` while no other video of this worker is prepared (a function, so that the task
    itself holds no lock and pickles for Dask)."""
    with _preparing:
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


def describe_video(video_uri: str, model: str, duration: float) -> PreparedVideo:
    """Probe, hash, decode and encode (plain function; see the module docstring).

    Returns:
        The :class:`PreparedVideo`; its ``covered_s`` is the length of video the tracks will cover
        (<= ``duration``).

    Raises:
        media.errors: ``MediaUnreadable``, ``EmptyMedia`` (0 bytes, no frames), ``CorruptMedia``,
        ``NoVideoStream``.
    """
    with open_input(video_uri) as source:
        info = probe(source)
    if not info.has_video:
        raise NoVideoStream(f"{video_uri}: no video stream (streams: audio={info.has_audio})")
    if info.duration is not None and info.duration <= 0:
        raise EmptyMedia(f"{video_uri}: zero-length video")
    sha256 = file_sha256(video_uri)
    _, covered = encode_video(load_model(model, duration), video_uri, sha256, duration)  # warms the cache
    if covered <= 0:
        raise EmptyMedia(f"{video_uri}: zero-length video (no frame before {duration} s)")
    return PreparedVideo(video_uri=video_uri, sha256=sha256, duration_s=info.duration, fps=info.fps,
                         width=info.width, height=info.height, has_audio=info.has_audio, covered_s=covered)


@task(name="prepare-video", cache_policy=NO_CACHE, task_run_name="prepare-{video_uri}", **IO_RETRY)
def prepare_video(video_uri: str, model: str, duration: float) -> PreparedVideo:
    """Probe + sha256 + frames + features of one video (see :func:`describe_video`)."""
    if not os.fspath(video_uri):
        raise MediaUnreadable("no video URI")
    return _one_at_a_time(describe_video, video_uri, model, duration)
