"""Probe a video: duration, frame rate, size and which streams it has."""
from __future__ import annotations

from dataclasses import dataclass

import av

from media.errors import EmptyMedia
from media.source import MediaSource, describe_source, open_media

__all__ = ["VideoInfo", "probe"]


@dataclass(frozen=True)
class VideoInfo:
    """What a container holds. Video fields are None when there is no video stream."""

    duration: float | None  # seconds, container duration (None when the container does not say)
    fps: float | None  # average frame rate of the first video stream (guessed rate as a fallback)
    width: int | None
    height: int | None
    has_video: bool
    has_audio: bool
    video_codec: str | None = None
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    format_name: str = ""


def _duration(container: av.container.InputContainer) -> float | None:
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    lengths = [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base is not None]
    return max(lengths) if lengths else None


def probe(source: MediaSource) -> VideoInfo:
    """Read the container header and decode the first video frame to prove the video is usable.

    Args:
        source: local path, fsspec URL, bytes or binary file-like object.

    Returns:
        VideoInfo. An audio-only file is reported (``has_video=False``), not rejected.

    Raises:
        MediaUnreadable: missing/unreadable path. EmptyMedia: no data, no streams, or a video stream that
        yields no frame. CorruptMedia: not a media file, or the first video frame does not decode.
    """
    with open_media(source) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is not None:
            video.thread_type = "AUTO"
            first = next(iter(container.decode(video)), None)
            if first is None:
                raise EmptyMedia(f"{describe_source(source)}: video stream has no decodable frames")
        rate = (video.average_rate or video.guessed_rate) if video is not None else None
        return VideoInfo(
            duration=_duration(container),
            fps=float(rate) if rate else None,
            width=(video.codec_context.width or None) if video is not None else None,
            height=(video.codec_context.height or None) if video is not None else None,
            has_video=video is not None,
            has_audio=audio is not None,
            video_codec=video.codec_context.name if video is not None else None,
            audio_codec=audio.codec_context.name if audio is not None else None,
            audio_sample_rate=audio.codec_context.sample_rate if audio is not None else None,
            audio_channels=audio.codec_context.channels if audio is not None else None,
            format_name=container.format.name,
        )
