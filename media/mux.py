"""Put the generated mix (and optionally each stem) next to the original picture, without re-encoding it.

The first video stream is stream-copied packet by packet (``add_stream_from_template``), so the picture is
bit-identical and keeps its full duration even though the audio covers only the first 8 s. Other
streams of the input (its own audio, subtitles) are dropped. Each audio track is resampled to 48 kHz
with soxr and encoded as AAC (FFmpeg's native encoder), starting at the video's start time; the mix is
the default stream and the stems follow with ``title`` (and, in MP4, ``handler_name``) set to the caption.

MP4 output is written to a temporary local file with ``+faststart`` (moov in front for streaming; the
MP4 muxer cannot do this on an in-memory buffer) and then read back or moved into place atomically.

A track with a ``ceiling_db`` keeps its true peak under that ceiling in what is delivered, the decoded
AAC stream, not only in its source: AAC's quantisation raises peaks (a mix limited to -1 dBTP came back
at up to +1.4 dBTP). The track is encoded and decoded once to measure; when the decoded peak is over,
the 48 kHz source goes through the true-peak limiter (``media.mix.limit_true_peak``) with the ceiling
lowered by the overshoot, and is measured again (FFmpeg's AAC encoder is deterministic, so the stream
muxed afterwards is the one measured). :func:`audio_true_peaks_db` measures a muxed file.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal, Sequence

import av
import av.error
import numpy as np

from media.audio_io import DELIVERY_RATE, resample
from media.errors import MuxError, NoVideoStream
from media.mix import limit_true_peak
from media.source import MediaSource, describe_source, open_media
from audio.loudness import as_float_audio, true_peak_db

__all__ = ["AudioTrack", "mux_audio", "mux_audio_to_path", "stream_title", "audio_true_peaks_db"]

Container = Literal["mp4", "matroska"]
_AAC_FRAME = 1024  # samples per AAC frame: feed whole frames so PyAV does not re-chunk
_CEILING_ROUNDS = 6  # encode-measure rounds before a last static gain (2 are usually enough)
_CEILING_MARGIN_DB = 0.05  # aimed below the ceiling on each retry


@dataclass(frozen=True)
class AudioTrack:
    """One audio stream to add: ``audio`` is ``(samples,)`` or ``(channels<=2, samples)`` float."""

    audio: np.ndarray
    sample_rate: int
    title: str  # shown by players as the track name: "mix" or the caption of a stem
    language: str = "und"  # ISO 639-2 code; "und" = undetermined ("zxx" = no linguistic content)
    ceiling_db: float | None = None  # dBTP the decoded AAC stream must stay under (None: as it comes)


def stream_title(stream: av.stream.Stream) -> str | None:
    """The title of a stream as muxed here: MP4 stores it as ``name`` (udta), Matroska as ``title``."""
    md = stream.metadata
    return md.get("title") or md.get("name") or md.get("handler_name")


def _planar_48k(track: AudioTrack) -> np.ndarray:
    x = as_float_audio(track.audio)
    x = x[None, :] if x.ndim == 1 else x
    if x.shape[0] > 2:
        raise ValueError(f"track {track.title!r}: only mono or stereo can be muxed; got shape {x.shape}")
    return resample(x, track.sample_rate, DELIVERY_RATE).astype(np.float32)  # (C, N) at 48 kHz


def _aac_encoder(channels: int, bit_rate: int) -> av.audio.codeccontext.AudioCodecContext:
    enc = av.CodecContext.create("aac", "w")
    enc.sample_rate, enc.layout, enc.format = DELIVERY_RATE, "mono" if channels == 1 else "stereo", "fltp"
    enc.bit_rate, enc.time_base = bit_rate, Fraction(1, DELIVERY_RATE)
    return enc


def _aac_round_trip(x: np.ndarray, bit_rate: int) -> np.ndarray:
    """(C, N) float32 at 48 kHz encoded to AAC as :func:`_encode` does and decoded back: (C, M)."""
    enc = _aac_encoder(x.shape[0], bit_rate)
    enc.open()
    packets = []
    for s in range(0, x.shape[1], _AAC_FRAME):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, s : s + _AAC_FRAME]), format="fltp",
                                           layout=enc.layout.name)
        frame.sample_rate, frame.pts, frame.time_base = DELIVERY_RATE, s, Fraction(1, DELIVERY_RATE)
        packets += enc.encode(frame)
    packets += enc.encode(None)
    dec = av.CodecContext.create("aac", "r")
    dec.extradata = enc.extradata
    out = [f.to_ndarray() for p in packets for f in dec.decode(p)]
    out += [f.to_ndarray() for f in dec.decode(None)]
    return np.concatenate(out, axis=-1) if out else np.zeros((x.shape[0], 0), np.float32)


def _under_ceiling(x: np.ndarray, ceiling_db: float, bit_rate: int) -> np.ndarray:
    """``x`` (C, N) at 48 kHz, limited so that its AAC encoding decodes at or under ``ceiling_db`` dBTP."""
    y, target = x, ceiling_db
    for _ in range(_CEILING_ROUNDS):
        overshoot = true_peak_db(_aac_round_trip(y, bit_rate), DELIVERY_RATE) - ceiling_db
        if overshoot <= 0:
            return y
        target -= overshoot + _CEILING_MARGIN_DB
        y = limit_true_peak(x, DELIVERY_RATE, target)[0]
    while (overshoot := true_peak_db(_aac_round_trip(y, bit_rate), DELIVERY_RATE) - ceiling_db) > 0:
        y = (y * np.float32(10.0 ** (-(overshoot + _CEILING_MARGIN_DB) / 20.0))).astype(np.float32)
    return y


def audio_true_peaks_db(source: MediaSource) -> list[float]:
    """The true peak (dBTP, 4x oversampled) of every audio stream of a media file, decoded, in stream order."""
    with open_media(source) as container:
        streams = list(container.streams.audio)
        position = {stream.index: i for i, stream in enumerate(streams)}
        decoded: list[list[np.ndarray]] = [[] for _ in streams]
        for packet in container.demux(*streams):
            decoded[position[packet.stream.index]] += [frame.to_ndarray() for frame in packet.decode()]
    peaks = []
    for stream, chunks in zip(streams, decoded):
        audio = np.concatenate(chunks, axis=-1) if chunks else np.zeros((1, 0), np.float32)
        peaks.append(true_peak_db(audio, stream.codec_context.sample_rate))
    return peaks


def _encode(stream: av.audio.stream.AudioStream, x: np.ndarray, start: int) -> list[av.Packet]:
    """Encode (C, N) float32 at 48 kHz into AAC packets; the first sample is at ``start`` (1/48000 units)."""
    layout = "mono" if x.shape[0] == 1 else "stereo"
    packets: list[av.Packet] = []
    for s in range(0, x.shape[1], _AAC_FRAME):
        chunk = np.ascontiguousarray(x[:, s : s + _AAC_FRAME])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate = DELIVERY_RATE
        frame.pts = start + s
        frame.time_base = Fraction(1, DELIVERY_RATE)
        packets += stream.encode(frame)
    packets += stream.encode(None)
    return packets


def _seconds(packet: av.Packet) -> Fraction:
    ts = packet.dts if packet.dts is not None else packet.pts
    return Fraction(ts) * packet.time_base if ts is not None else Fraction(0)


def _mux_file(
    video: MediaSource, tracks: Sequence[AudioTrack], path: str, container: Container, bit_rate: int
) -> None:
    if container not in ("mp4", "matroska"):
        raise ValueError(f"container must be 'mp4' or 'matroska'; got {container!r}")
    audio = [_planar_48k(t) for t in tracks]  # validate before touching any file
    audio = [x if t.ceiling_db is None else _under_ceiling(x, t.ceiling_db, bit_rate) for t, x in zip(tracks, audio)]
    options = {"movflags": "+faststart"} if container == "mp4" else {}
    with open_media(video) as inp:
        if not inp.streams.video:
            raise NoVideoStream(f"{describe_source(video)}: no video stream to mux the audio with")
        iv = inp.streams.video[0]
        start = round((iv.start_time or 0) * iv.time_base * DELIVERY_RATE) if iv.time_base else 0
        try:
            out = av.open(path, "w", format=container, options=options)
        except av.error.FFmpegError as exc:
            raise MuxError(f"cannot open output {path}: {exc}") from exc
        failed = True
        try:
            _write_streams(inp, iv, out, tracks, audio, start, bit_rate)
            _checked(out.close)
            failed = False
        finally:
            if failed:
                try:
                    out.close()
                except av.error.FFmpegError:
                    pass  # already failing; the first error is the one that matters


def _checked(op, *args):
    """Run an output-side PyAV call, turning FFmpeg errors into MuxError (input errors keep their own types)."""
    try:
        return op(*args)
    except av.error.FFmpegError as exc:
        raise MuxError(f"writing the output failed: {exc}") from exc


def _write_streams(inp, iv, out, tracks, audio, start: int, bit_rate: int) -> None:
    """Add the copied video and the AAC streams, then mux everything in time order."""
    try:
        ov = out.add_stream_from_template(iv)
    except (av.error.FFmpegError, ValueError) as exc:  # PyAV checks codec/container support itself (ValueError)
        raise MuxError(f"cannot stream-copy {iv.codec_context.name} video into {out.format.name}: {exc}") from exc
    pending: list[av.Packet] = []
    for i, (track, x) in enumerate(zip(tracks, audio)):
        st = out.add_stream("aac", rate=DELIVERY_RATE, layout="mono" if x.shape[0] == 1 else "stereo")
        st.bit_rate = bit_rate
        st.metadata["title"] = track.title
        st.metadata["handler_name"] = track.title  # MP4 players show the handler name as the track name
        st.metadata["language"] = track.language
        st.disposition = av.stream.Disposition.default if i == 0 else 0
        pending += _checked(_encode, st, x, start)
    pending.sort(key=_seconds)  # stable: per-stream order is kept
    next_audio = 0
    for packet in inp.demux(iv):
        if packet.dts is None:  # the demuxer's empty flush packet
            continue
        t = _seconds(packet)
        while next_audio < len(pending) and _seconds(pending[next_audio]) <= t:
            _checked(out.mux, pending[next_audio])
            next_audio += 1
        packet.stream = ov
        try:
            out.mux(packet)
        except av.error.FFmpegError as exc:
            raise MuxError(
                f"cannot stream-copy {iv.codec_context.name} video into {out.format.name}: {exc}"
            ) from exc
    for packet in pending[next_audio:]:
        _checked(out.mux, packet)


def mux_audio(
    video: MediaSource,
    mix: AudioTrack,
    stems: Sequence[AudioTrack] = (),
    *,
    container: Container = "mp4",
    bit_rate: int = 128_000,
) -> bytes:
    """Return the video with ``mix`` (default stream) and ``stems`` as AAC 48 kHz audio streams, as file bytes.

    Args:
        video: source of the picture (path, fsspec URL, bytes or file-like); its first video stream is copied.
        mix: the composite track, typically ``media.mix.mix_tracks`` output at the model's rate.
        stems: one track per caption, added after the mix in this order.
        container: ``"mp4"`` (H.264/HEVC/AV1/VP9 pictures) or ``"matroska"`` (any codec).
        bit_rate: AAC bit rate per stream in bit/s.

    Raises:
        NoVideoStream, CorruptMedia, EmptyMedia, MediaUnreadable (input); MuxError (output, e.g. a codec the
        container cannot hold); ValueError (bad audio).
    """
    with tempfile.TemporaryDirectory(prefix="mux-") as tmp:
        path = os.path.join(tmp, "out.mp4" if container == "mp4" else "out.mkv")
        _mux_file(video, [mix, *stems], path, container, bit_rate)
        return Path(path).read_bytes()


def mux_audio_to_path(
    path: str | os.PathLike,
    video: MediaSource,
    mix: AudioTrack,
    stems: Sequence[AudioTrack] = (),
    *,
    container: Container = "mp4",
    bit_rate: int = 128_000,
) -> Path:
    """Like :func:`mux_audio` but written to a local ``path`` atomically (temporary file + rename)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        _mux_file(video, [mix, *stems], tmp, container, bit_rate)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
