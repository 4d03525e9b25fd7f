"""Exceptions of the media package: one base class, one subclass per way a video can be unusable.

Data errors (``CorruptMedia``, ``EmptyMedia``, ``MissingStream``) are permanent: retrying will not help,
the batch should record them as a failed row and go on. ``MediaUnreadable`` is an I/O failure (missing
path, permission, network) and is also an ``OSError``, so I/O retry policies catch it.
"""
from __future__ import annotations

__all__ = [
    "MediaError",
    "MediaUnreadable",
    "CorruptMedia",
    "EmptyMedia",
    "MissingStream",
    "NoVideoStream",
    "NoAudioStream",
    "MuxError",
    "VideoTooLong",
]


class MediaError(Exception):
    """Base class: a media file could not be read, decoded or written."""


class MediaUnreadable(MediaError, OSError):
    """The bytes could not be read at all: missing path, permission denied, network or filesystem error."""


class CorruptMedia(MediaError):
    """The bytes were read but are not a decodable media file (bad container or bitstream)."""


class EmptyMedia(MediaError):
    """The file is empty, or its container holds no streams or its video stream no frames."""


class MissingStream(MediaError):
    """The container is valid but lacks a stream of the kind the operation needs."""


class NoVideoStream(MissingStream):
    """The container has no video stream (for example an audio-only file)."""


class NoAudioStream(MissingStream):
    """The container has no audio stream."""


class MuxError(MediaError):
    """The output could not be written, e.g. the video codec cannot be stream-copied into the container."""


class VideoTooLong(MediaError):
    """The video is longer than the pipeline makes soundtracks for."""
