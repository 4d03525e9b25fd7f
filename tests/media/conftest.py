"""Real, tiny media files written with PyAV into a temporary folder (built once per session)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

W, H = 64, 48  # not square, so that "stretch" and "crop" differ


def frame_image(i: int) -> np.ndarray:
    """A frame whose mean grey level encodes its index (survives lossy coding), plus a marker stripe."""
    img = np.full((H, W, 3), (i * 9) % 200 + 20, np.uint8)
    img[:, :4] = (255, 0, 0)  # red stripe on the left edge: visible after 'stretch', cropped by 'crop'
    return img


def write_video(
    path: Path,
    *,
    seconds: float = 3.0,
    fps: int = 25,
    audio: bool = True,
    container: str | None = None,
    pts_ms: np.ndarray | None = None,
    audio_rate: int = 48_000,
    tone_hz: float = 440.0,
) -> Path:
    """H.264 video (+ optional AAC tone). ``pts_ms`` gives variable frame times in milliseconds."""
    with av.open(str(path), "w", format=container) as out:
        vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "g": str(fps)})
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        st = out.add_stream("aac", rate=audio_rate, layout="stereo") if audio else None  # before any mux
        if pts_ms is not None:
            vs.codec_context.time_base = Fraction(1, 1000)
            vs.time_base = Fraction(1, 1000)
        times = pts_ms if pts_ms is not None else np.arange(round(seconds * fps))
        for i, t in enumerate(times):
            f = av.VideoFrame.from_ndarray(frame_image(i), format="rgb24")
            f.pts = int(t)
            if pts_ms is not None:
                f.time_base = Fraction(1, 1000)
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        if st is not None:
            write_tone(out, st, len(times) / fps if pts_ms is not None else seconds, audio_rate, tone_hz)
    return path


def write_tone(out, st, seconds: float, rate: int, tone_hz: float) -> None:
    t = np.arange(round(seconds * rate)) / rate
    x = (0.25 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
    x = np.stack([x, x])
    for s in range(0, x.shape[1], 1024):
        fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, s : s + 1024]), format="fltp", layout="stereo")
        fr.sample_rate, fr.pts = rate, s
        for p in st.encode(fr):
            out.mux(p)
    for p in st.encode():
        out.mux(p)


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    with av.open(str(path), "w") as out:
        st = out.add_stream("aac", rate=48_000, layout="stereo")
        write_tone(out, st, seconds, 48_000, 440.0)
    return path


# Variable frame rate around 12 fps: 36 frames with gaps of 60..109 ms (about 3 s).
VFR_PTS_MS = np.cumsum(np.r_[0, np.random.default_rng(1).integers(60, 110, 35)])


@pytest.fixture(scope="session")
def vfr_pts_ms() -> np.ndarray:
    return VFR_PTS_MS


@pytest.fixture(scope="session")
def frame_size() -> tuple[int, int]:
    return H, W


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("media")
    write_video(d / "v3_audio.mp4", seconds=3.0)
    write_video(d / "v3_silent.mp4", seconds=3.0, audio=False)
    write_video(d / "v10_audio.mp4", seconds=10.0)
    write_video(d / "v3_audio.mkv", seconds=3.0, container="matroska")
    write_video(d / "vfr12.mkv", pts_ms=VFR_PTS_MS, fps=12, audio=False, container="matroska")
    # timestamps start at 1.5 s (a cut from a longer stream); the audio starts at 0
    write_video(d / "offset.mkv", pts_ms=1500 + 40 * np.arange(75), fps=25, container="matroska")
    write_audio_only(d / "audio_only.m4a")
    (d / "random.mp4").write_bytes(np.random.default_rng(0).bytes(20_000))
    (d / "empty.mp4").write_bytes(b"")
    with av.open(str(d / "no_frames.mp4"), "w") as out:  # header and trailer, not a single frame
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        out.start_encoding()
    with av.open(str(d / "no_frames.mkv"), "w", format="matroska") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        out.start_encoding()
    return d
