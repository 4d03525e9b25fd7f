"""Decode the first seconds of a video into RGB frames at fixed rates, and its audio to mono float.

Frame selection follows MMAudio's demo (``read_frames`` in ``mmaudio/data/av_utils.py``): for each target
time ``k / fps`` (k = 0, 1, ...), take the first decoded frame whose presentation time is at or after
it; a low-fps source therefore repeats frames. Times are compared as exact fractions (pts x time_base
against k/fps), so a source frame at exactly 1.0 s is chosen for the 1.0 s target, which float
accumulation of 1/fps can miss. Times are measured from the video stream's start time, so containers
that do not start at zero (cut transport streams) behave like those that do.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, Sequence

import av
import numpy as np
import soxr
from av.video.reformatter import VideoReformatter

from media.errors import EmptyMedia, NoAudioStream, NoVideoStream
from media.source import MediaSource, describe_source, open_media

__all__ = [
    "DEFAULT_DURATION",
    "FrameRequest",
    "FrameSet",
    "DecodedVideo",
    "decode_frames",
    "decode_audio",
]

DEFAULT_DURATION = 8.0  # seconds; the paper generates audio for the first 8 s of each video


@dataclass(frozen=True)
class FrameRequest:
    """One frame rate and output size to sample a video at.

    ``fit="stretch"`` resizes to ``size`` ignoring the aspect ratio; ``fit="crop"`` scales so the frame
    covers ``size`` (short side to the target) and crops the centre.
    """

    fps: float
    size: tuple[int, int]  # (height, width) of the output frames
    fit: Literal["stretch", "crop"] = "stretch"

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"fps must be positive; got {self.fps}")
        if len(self.size) != 2 or min(self.size) <= 0:
            raise ValueError(f"size must be (height, width) > 0; got {self.size}")
        if self.fit not in ("stretch", "crop"):
            raise ValueError(f"fit must be 'stretch' or 'crop'; got {self.fit!r}")


@dataclass(frozen=True)
class FrameSet:
    """Frames sampled for one request. Index k is the frame for target time k / fps."""

    request: FrameRequest
    frames: np.ndarray  # (N, H, W, 3) uint8 RGB
    source_indices: np.ndarray  # (N,) int64: index of the chosen frame in presentation order
    source_times: np.ndarray  # (N,) float64: its presentation time in seconds from the video start
    target_count: int  # frames a long enough video gives: ceil(duration * fps); N < target_count when short


@dataclass(frozen=True)
class DecodedVideo:
    """Frames for every request plus the stretch of video they cover."""

    frame_sets: tuple[FrameSet, ...]
    duration: float  # seconds of video actually covered: min(requested duration, video length)
    requested_duration: float

    @property
    def is_short(self) -> bool:
        """True when the video ended before the requested duration."""
        return self.duration < self.requested_duration


def _exact(value: float) -> Fraction:
    return Fraction(value).limit_denominator(1_000_000)


def _target_count(duration: Fraction, fps: Fraction) -> int:
    return math.ceil(duration * fps)  # targets k/fps < duration: 64 at 8 fps and 200 at 25 fps for 8 s


def _to_rgb(frame: av.VideoFrame, request: FrameRequest, scaler: VideoReformatter) -> np.ndarray:
    """Resize (bicubic, swscale) and convert one frame to (H, W, 3) uint8 RGB."""
    out_h, out_w = request.size
    if request.fit == "stretch":
        out = scaler.reformat(frame, width=out_w, height=out_h, format="rgb24", interpolation="BICUBIC")
        return out.to_ndarray()
    scale = max(out_h / frame.height, out_w / frame.width)
    mid_h, mid_w = max(out_h, round(frame.height * scale)), max(out_w, round(frame.width * scale))
    rgb = scaler.reformat(frame, width=mid_w, height=mid_h, format="rgb24", interpolation="BICUBIC").to_ndarray()
    top, left = (mid_h - out_h) // 2, (mid_w - out_w) // 2
    return np.ascontiguousarray(rgb[top : top + out_h, left : left + out_w])


def decode_frames(
    source: MediaSource,
    requests: Sequence[FrameRequest],
    *,
    duration: float = DEFAULT_DURATION,
) -> DecodedVideo:
    """Decode the first ``duration`` seconds once and sample it at every requested rate.

    Args:
        source: local path, fsspec URL, bytes or binary file-like object.
        requests: rates and sizes (the model's: ``pipeline.models.frame_requests``).
        duration: seconds from the start of the video.

    Returns:
        DecodedVideo with one FrameSet per request, in order. A video shorter than ``duration`` gives
        fewer frames (those whose target time has a frame at or after it) and ``duration`` set to the
        video's length; the caller pads. Decoding stops as soon as every target is filled.

    Raises:
        NoVideoStream, EmptyMedia (no frame), CorruptMedia, MediaUnreadable.
    """
    if not duration > 0:
        raise ValueError(f"duration must be positive; got {duration}")
    if not requests:
        raise ValueError("at least one FrameRequest is needed")
    want = _exact(duration)
    rates = [_exact(r.fps) for r in requests]
    counts = [_target_count(want, r) for r in rates]
    chosen: list[list[tuple[int, Fraction, np.ndarray]]] = [[] for _ in requests]
    scalers = [VideoReformatter() for _ in requests]  # one each: a reformatter caches its swscale context

    with open_media(source) as container:
        if not container.streams.video:
            raise NoVideoStream(f"{describe_source(source)}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = stream.time_base
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        origin = Fraction(stream.start_time) * time_base if stream.start_time is not None else None
        index, last_time, last_length = -1, Fraction(0), Fraction(0)
        for frame in container.decode(stream):
            index += 1
            if frame.pts is None or time_base is None:  # raw bitstreams: fall back to the nominal rate
                t = index / rate
            else:
                t = Fraction(frame.pts) * time_base
                if origin is None:
                    origin = t
                t -= origin
            last_time = t
            last_length = Fraction(frame.duration) * time_base if frame.duration and time_base else 1 / rate
            converted: dict[int, np.ndarray] = {}
            for i, (req, fps) in enumerate(zip(requests, rates)):
                while len(chosen[i]) < counts[i] and t >= Fraction(len(chosen[i])) / fps:
                    if i not in converted:
                        converted[i] = _to_rgb(frame, req, scalers[i])
                    chosen[i].append((index, t, converted[i]))
            if all(len(c) == n for c, n in zip(chosen, counts)):
                break
        if index < 0:
            raise EmptyMedia(f"{describe_source(source)}: video stream has no decodable frames")

    complete = all(len(c) == n for c, n in zip(chosen, counts))
    covered = want if complete else min(want, last_time + last_length)
    sets = []
    for req, picks, n in zip(requests, chosen, counts):
        h, w = req.size
        sets.append(
            FrameSet(
                request=req,
                frames=np.stack([p[2] for p in picks]) if picks else np.zeros((0, h, w, 3), np.uint8),
                source_indices=np.array([p[0] for p in picks], dtype=np.int64),
                source_times=np.array([float(p[1]) for p in picks], dtype=np.float64),
                target_count=n,
            )
        )
    return DecodedVideo(frame_sets=tuple(sets), duration=float(covered), requested_duration=float(want))


def decode_audio(
    source: MediaSource,
    sample_rate: int,
    *,
    duration: float | None = DEFAULT_DURATION,
) -> np.ndarray:
    """Decode the first audio stream to mono float32 at ``sample_rate`` (channel mean, soxr VHQ resampling).

    The result starts at the video's start time (a late audio start is zero-filled, an early one
    trimmed) so that it lines up with :func:`decode_frames`; it is cut to ``duration`` seconds (None:
    everything) and may be shorter when the stream ends first. Gaps inside the stream are not filled.

    Returns:
        ``(samples,)`` float32.

    Raises:
        NoAudioStream, CorruptMedia, MediaUnreadable, EmptyMedia.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive; got {sample_rate}")
    if duration is not None and not duration > 0:
        raise ValueError(f"duration must be positive or None; got {duration}")
    with open_media(source) as container:
        if not container.streams.audio:
            raise NoAudioStream(f"{describe_source(source)}: no audio stream")
        stream = container.streams.audio[0]
        ref = container.streams.video[0] if container.streams.video else stream
        origin = Fraction(ref.start_time) * ref.time_base if ref.start_time is not None else Fraction(0)
        # Only the sample format changes here (to planar float); rate and channels stay as decoded.
        to_float = av.AudioResampler(format="fltp")
        chunks: list[np.ndarray] = []
        native_rate = stream.codec_context.sample_rate
        needed: int | None = None  # samples to decode: duration plus 0.1 s so the resampler's tail is real audio
        have, offset = 0, None
        for frame in container.decode(stream):
            if offset is None:
                native_rate = frame.sample_rate
                start = Fraction(frame.pts) * frame.time_base if frame.pts is not None else origin
                offset = round((start - origin) * native_rate)  # > 0: audio starts late; < 0: early
                if duration is not None:
                    needed = math.ceil(duration * native_rate) + native_rate // 10
            for f in to_float.resample(frame):
                mono = f.to_ndarray().astype(np.float32).mean(axis=0)  # (channels, samples) -> (samples,)
                chunks.append(mono)
                have += mono.shape[0]
            if needed is not None and have + offset >= needed:  # final length is have + offset
                break
        for f in to_float.resample(None):
            chunks.append(f.to_ndarray().astype(np.float32).mean(axis=0))
    if offset is None:
        raise EmptyMedia(f"{describe_source(source)}: audio stream has no decodable frames")
    wav = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    wav = np.concatenate([np.zeros(offset, np.float32), wav]) if offset > 0 else wav[-offset:]
    if native_rate != sample_rate and wav.size:
        wav = soxr.resample(wav, native_rate, sample_rate, quality="VHQ").astype(np.float32)
    if duration is not None:
        wav = wav[: round(duration * sample_rate)]
    return np.ascontiguousarray(wav, dtype=np.float32)
