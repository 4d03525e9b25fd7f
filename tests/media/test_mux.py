"""Muxing: the picture is stream-copied bit for bit, the audio streams are AAC 48 kHz with titles."""
from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest

from media.errors import CorruptMedia, MuxError, NoVideoStream
from media.mux import AudioTrack, mux_audio, mux_audio_to_path, stream_title

SR = 16_000


def tone(freq: float, seconds: float, amplitude: float = 0.3) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(round(seconds * SR)) / SR)).astype(np.float32)


def video_packets(source) -> list[tuple[bytes, float | None, bool]]:
    """(payload, pts in seconds, keyframe) of every video packet, flush packets skipped."""
    with av.open(source) as c:
        vs = c.streams.video[0]
        return [
            (bytes(p), float(p.pts * p.time_base) if p.pts is not None else None, p.is_keyframe)
            for p in c.demux(vs)
            if p.dts is not None
        ]


def decoded_audio(data: bytes, index: int) -> np.ndarray:
    with av.open(io.BytesIO(data)) as c:
        return np.concatenate([f.to_ndarray().mean(axis=0) for f in c.decode(c.streams.audio[index])])


def dominant_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)])


@pytest.fixture(scope="module")
def muxed(media_dir) -> bytes:
    mix = AudioTrack(tone(440, 8.0) + tone(1500, 8.0, 0.1), SR, "mix")
    stems = [
        AudioTrack(tone(440, 8.0), SR, "a dog barks twice", language="eng"),
        AudioTrack(tone(1500, 8.0, 0.1), SR, "rain on a tin roof", language="eng"),
    ]
    return mux_audio(media_dir / "v10_audio.mp4", mix, stems)


def test_video_packets_are_bit_identical_and_full_length(media_dir, muxed):
    assert muxed.find(b"moov") < muxed.find(b"mdat")  # +faststart: the index comes first
    original = video_packets(str(media_dir / "v10_audio.mp4"))
    copied = video_packets(io.BytesIO(muxed))
    assert len(copied) == len(original) == 250
    assert [p[0] for p in copied] == [p[0] for p in original]  # payload bytes
    assert [p[1] for p in copied] == pytest.approx([p[1] for p in original])  # presentation times
    assert [p[2] for p in copied] == [p[2] for p in original]  # keyframe flags
    with av.open(io.BytesIO(muxed)) as c:
        assert c.duration / av.time_base == pytest.approx(10.0, abs=0.05)  # the video's, not the audio's 8 s
        assert float(c.streams.video[0].duration * c.streams.video[0].time_base) == pytest.approx(10.0, abs=0.05)


def test_audio_streams_are_aac_48k_with_titles(muxed):
    with av.open(io.BytesIO(muxed)) as c:
        audio = list(c.streams.audio)
        assert len(audio) == 3
        assert [s.codec_context.name for s in audio] == ["aac"] * 3
        assert [s.codec_context.sample_rate for s in audio] == [48_000] * 3
        assert [stream_title(s) for s in audio] == ["mix", "a dog barks twice", "rain on a tin roof"]
        assert [s.metadata.get("language") for s in audio] == ["und", "eng", "eng"]
        assert [bool(s.disposition & av.stream.Disposition.default) for s in audio] == [True, False, False]
        for s in audio:
            assert float(s.duration * s.time_base) == pytest.approx(8.0, abs=0.03)
            assert (s.start_time or 0) == 0
    for index, freq in [(0, 440.0), (1, 440.0), (2, 1500.0)]:
        x = decoded_audio(muxed, index)
        assert len(x) == pytest.approx(8 * 48_000, abs=1024)
        assert dominant_hz(x, 48_000) == pytest.approx(freq, abs=1.0)
    stem = decoded_audio(muxed, 1)
    assert np.max(np.abs(stem[48_000:-48_000])) == pytest.approx(0.3, abs=0.03)  # level survives AAC


def test_matroska_output_to_path_from_bytes_input(media_dir, tmp_path):
    data = (media_dir / "v3_audio.mkv").read_bytes()
    target = tmp_path / "out.mkv"
    stereo = np.stack([tone(440, 3.0), tone(880, 3.0)])
    stem = AudioTrack(tone(440, 3.0), SR, "a dog barks")
    mux_audio_to_path(target, data, AudioTrack(stereo, SR, "mix"), [stem], container="matroska")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv"]  # no temporary file left behind
    assert [p[0] for p in video_packets(str(target))] == [p[0] for p in video_packets(io.BytesIO(data))]
    with av.open(str(target)) as c:
        a, b = c.streams.audio
        assert (a.codec_context.name, a.codec_context.channels, stream_title(a)) == ("aac", 2, "mix")
        assert (b.codec_context.channels, stream_title(b)) == (1, "a dog barks")
        assert bool(a.disposition & av.stream.Disposition.default) and not b.disposition & av.stream.Disposition.default
        assert c.format.name.startswith("matroska")


def test_audio_longer_than_video_is_kept_and_short_video_keeps_its_length(media_dir):
    out = mux_audio(media_dir / "v3_audio.mp4", AudioTrack(tone(440, 8.0), SR, "mix"))
    with av.open(io.BytesIO(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert float(v.duration * v.time_base) == pytest.approx(3.0, abs=0.05)
        assert float(a.duration * a.time_base) == pytest.approx(8.0, abs=0.03)


def test_mux_errors(media_dir, tmp_path):
    mix = AudioTrack(tone(440, 1.0), SR, "mix")
    with pytest.raises(NoVideoStream):
        mux_audio(media_dir / "audio_only.m4a", mix)
    with pytest.raises(CorruptMedia):
        mux_audio(media_dir / "random.mp4", mix)
    with pytest.raises(ValueError, match="mono or stereo"):
        mux_audio(media_dir / "v3_audio.mp4", AudioTrack(np.zeros((3, SR), np.float32), SR, "5ch"))
    # VP8 cannot be stream-copied into MP4
    vp8 = tmp_path / "vp8.webm"
    with av.open(str(vp8), "w") as out:
        vs = out.add_stream("libvpx", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    with pytest.raises(MuxError, match="vp8"):
        mux_audio(vp8, mix)
    assert len(mux_audio(vp8, mix, container="matroska")) > 0
