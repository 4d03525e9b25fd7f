"""Probe and frame/audio decoding on real files written by PyAV (see conftest.py)."""
from __future__ import annotations

import io
import math
import uuid

import fsspec
import numpy as np
import pytest

from media.decode import FrameRequest, decode_audio, decode_frames
from media.errors import (
    CorruptMedia,
    EmptyMedia,
    MediaError,
    MediaUnreadable,
    NoAudioStream,
    NoVideoStream,
)
from media.probe import probe
from nag_model.config import CLIP_FPS, SYNC_FPS

# MMAudio's two visual streams (mmaudio-facts section 5): CLIP, 384x384 bicubic resize without keeping the
# aspect ratio; Synchformer, short side to 224 then a 224x224 centre crop.
CLIP_FRAMES = FrameRequest(fps=CLIP_FPS, size=(384, 384), fit="stretch")
SYNC_FRAMES = FrameRequest(fps=SYNC_FPS, size=(224, 224), fit="crop")
MODEL_FRAMES = (CLIP_FRAMES, SYNC_FRAMES)


def grey_level(i: int) -> int:
    return (i * 9) % 200 + 20  # conftest.frame_image


def centre_grey(frames: np.ndarray) -> np.ndarray:
    """Mean of the centre 8x8 patch of each (N, H, W, 3) frame."""
    h, w = frames.shape[1:3]
    return frames[:, h // 2 - 4 : h // 2 + 4, w // 2 - 4 : w // 2 + 4].reshape(len(frames), -1).mean(axis=1)


# --- probe -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, duration, fps, has_audio",
    [("v3_audio.mp4", 3.0, 25.0, True), ("v3_silent.mp4", 3.0, 25.0, False), ("v10_audio.mp4", 10.0, 25.0, True)],
)
def test_probe_values(media_dir, frame_size, name, duration, fps, has_audio):
    info = probe(media_dir / name)
    assert info.duration == pytest.approx(duration, abs=0.05)
    assert info.fps == pytest.approx(fps)
    assert (info.height, info.width) == frame_size
    assert info.has_video and info.has_audio == has_audio
    assert info.video_codec == "h264"
    assert (info.audio_sample_rate, info.audio_channels) == ((48_000, 2) if has_audio else (None, None))


def test_probe_variable_rate_and_audio_only(media_dir, vfr_pts_ms):
    vfr = probe(media_dir / "vfr12.mkv")
    assert vfr.has_video and not vfr.has_audio
    assert vfr.duration == pytest.approx(vfr_pts_ms[-1] / 1000, abs=0.15)
    assert 8 < vfr.fps < 16
    audio_only = probe(media_dir / "audio_only.m4a")
    assert not audio_only.has_video and audio_only.has_audio
    assert audio_only.width is None and audio_only.fps is None


def test_probe_accepts_bytes_file_like_and_fsspec_url(media_dir):
    data = (media_dir / "v3_audio.mp4").read_bytes()
    url = f"memory://probe-{uuid.uuid4().hex}/v.mp4"
    with fsspec.open(url, "wb") as f:
        f.write(data)
    try:
        expected = probe(media_dir / "v3_audio.mp4")
        assert probe(data) == expected
        assert probe(io.BytesIO(data)) == expected
        assert probe(url) == expected
        assert probe(f"file://{media_dir / 'v3_audio.mp4'}") == expected
    finally:
        fsspec.filesystem("memory").rm(url)


# --- frames ----------------------------------------------------------------------------------------


def test_ten_second_video_gives_64_clip_and_200_sync_frames(media_dir):
    video = decode_frames(media_dir / "v10_audio.mp4", (CLIP_FRAMES, SYNC_FRAMES), duration=8.0)
    clip, sync = video.frame_sets
    assert video.duration == 8.0 and not video.is_short
    assert clip.frames.shape == (64, 384, 384, 3) and clip.frames.dtype == np.uint8
    assert sync.frames.shape == (200, 224, 224, 3)
    assert (clip.target_count, sync.target_count) == (64, 200)
    # first frame at or after k/8 s, with source frame i at i/25 s: i = ceil(25 k / 8) (exact, so 1.0 s -> 25)
    assert clip.source_indices.tolist() == [math.ceil(25 * k / 8) for k in range(64)]
    assert clip.source_indices[:10].tolist() == [0, 4, 7, 10, 13, 16, 19, 22, 25, 29]
    assert sync.source_indices.tolist() == list(range(200))
    np.testing.assert_allclose(clip.source_times, clip.source_indices / 25)
    # the pixels are those of the chosen frames, not just the bookkeeping
    expected = np.array([grey_level(i) for i in clip.source_indices])
    np.testing.assert_allclose(centre_grey(clip.frames), expected, atol=4)
    np.testing.assert_allclose(centre_grey(sync.frames), [grey_level(i) for i in range(200)], atol=4)


def test_stretch_keeps_the_whole_picture_and_crop_cuts_the_sides(media_dir):
    clip, sync = decode_frames(media_dir / "v3_audio.mp4", MODEL_FRAMES, duration=1.0).frame_sets
    red = lambda f: (f[..., 0] > 200) & (f[..., 1] < 60)  # noqa: E731  the left-edge stripe of conftest
    assert red(clip.frames[0][:, :10]).mean() > 0.9  # stretch: stripe squeezed but present on the left
    assert not red(sync.frames[0]).any()  # 64x48 -> 299x224 -> centre crop 224x224 drops 37 px per side


def test_short_video_returns_existing_frames_and_actual_duration(media_dir):
    video = decode_frames(media_dir / "v3_audio.mp4", MODEL_FRAMES)
    clip, sync = video.frame_sets
    assert video.is_short and video.duration == pytest.approx(3.0) and video.requested_duration == 8.0
    assert len(clip.frames) == 24 and clip.target_count == 64  # targets 0 .. 2.875 s
    assert len(sync.frames) == 75 and sync.target_count == 200
    assert sync.source_indices[-1] == 74


def test_duration_argument_and_custom_request(media_dir):
    video = decode_frames(media_dir / "v10_audio.mp4", [FrameRequest(fps=4, size=(32, 40))], duration=2.0)
    (only,) = video.frame_sets
    assert only.frames.shape == (8, 32, 40, 3)
    assert only.source_indices.tolist() == [0, 7, 13, 19, 25, 32, 38, 44]  # ceil(25 k / 4)


def test_variable_rate_input_follows_first_frame_at_or_after_rule(media_dir, vfr_pts_ms):
    video = decode_frames(media_dir / "vfr12.mkv", MODEL_FRAMES)
    times = vfr_pts_ms / 1000.0
    for frame_set in video.frame_sets:
        fps = frame_set.request.fps
        expected = []
        for k in range(frame_set.target_count):
            later = np.flatnonzero(times * fps >= k - 1e-9)  # times in ms are exact; k/fps compared exactly
            if later.size == 0:
                break
            expected.append(int(later[0]))
        assert frame_set.source_indices.tolist() == expected
        np.testing.assert_allclose(frame_set.source_times, times[expected])
    clip, sync = video.frame_sets
    assert np.any(np.diff(sync.source_indices) == 0)  # ~12 fps input repeats frames at 25 fps
    assert np.all(np.diff(clip.source_indices) > 0)  # and skips some at 8 fps
    assert video.is_short and video.duration == pytest.approx(times[-1] + 1 / 12, abs=0.05)


def test_times_are_measured_from_the_video_start(media_dir):
    video = decode_frames(media_dir / "offset.mkv", MODEL_FRAMES)  # first frame at 1.5 s, 25 fps, 75 frames
    clip, sync = video.frame_sets
    assert sync.source_indices.tolist() == list(range(75))
    assert clip.source_indices.tolist() == [math.ceil(25 * k / 8) for k in range(24)]
    assert sync.source_times[0] == 0.0 and video.duration == pytest.approx(3.0)
    # the audio track starts 1.5 s before the picture: that part is dropped to stay in sync
    wav = decode_audio(media_dir / "offset.mkv", 16_000, duration=None)
    assert len(wav) / 16_000 == pytest.approx(1.5, abs=0.03)


def test_sources_give_identical_frames(media_dir):
    path = media_dir / "v3_audio.mkv"
    a = decode_frames(path, MODEL_FRAMES, duration=1.0)
    b = decode_frames(io.BytesIO(path.read_bytes()), MODEL_FRAMES, duration=1.0)
    for x, y in zip(a.frame_sets, b.frame_sets):
        np.testing.assert_array_equal(x.frames, y.frames)


# --- audio -----------------------------------------------------------------------------------------


def dominant_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)])


def test_decode_audio_mono_resampled_and_cut(media_dir):
    wav = decode_audio(media_dir / "v10_audio.mp4", 16_000)
    assert wav.shape == (128_000,) and wav.dtype == np.float32
    assert dominant_hz(wav, 16_000) == pytest.approx(440.0, abs=1.0)
    assert np.abs(wav[8000:-8000]).max() == pytest.approx(0.25, abs=0.02)  # channel mean of two equal channels
    full = decode_audio(media_dir / "v10_audio.mp4", 16_000, duration=None)
    assert 10.0 <= len(full) / 16_000 < 10.05
    short = decode_audio(media_dir / "v3_audio.mkv", 22_050)
    assert 3.0 <= len(short) / 22_050 < 3.05  # shorter than requested: what exists


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, error",
    [
        ("random.mp4", CorruptMedia),
        ("audio_only.m4a", NoVideoStream),
        ("empty.mp4", EmptyMedia),
        ("no_frames.mp4", EmptyMedia),
        ("no_frames.mkv", EmptyMedia),
        ("does_not_exist.mp4", MediaUnreadable),
    ],
)
def test_decode_frames_errors(media_dir, name, error):
    with pytest.raises(error):
        decode_frames(media_dir / name, MODEL_FRAMES)


@pytest.mark.parametrize(
    "name, error",
    [("random.mp4", CorruptMedia), ("empty.mp4", EmptyMedia), ("does_not_exist.mp4", MediaUnreadable)],
)
def test_probe_errors(media_dir, name, error):
    with pytest.raises(error) as info:
        probe(media_dir / name)
    assert isinstance(info.value, MediaError)
    assert name in str(info.value)


def test_truncated_and_in_memory_errors(media_dir):
    data = (media_dir / "v3_audio.mp4").read_bytes()
    with pytest.raises(CorruptMedia):  # moov atom at the end is cut away
        decode_frames(data[: len(data) // 2], MODEL_FRAMES)
    with pytest.raises(EmptyMedia):
        probe(b"")
    with pytest.raises(MediaUnreadable):
        probe(f"memory://nothing-{uuid.uuid4().hex}/missing.mp4")
    with pytest.raises(MediaUnreadable):
        probe(media_dir)  # a directory
    with pytest.raises(NoAudioStream):
        decode_audio(media_dir / "v3_silent.mp4", 16_000)


def test_unreadable_is_an_os_error_for_retry_policies(media_dir):
    with pytest.raises(OSError):
        probe(media_dir / "does_not_exist.mp4")


def test_s3_sources_are_opened_with_the_storage_credentials_which_errors_never_show(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTESTFOLEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-never-shown")
    monkeypatch.setenv("FOLEY_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    seen = {}

    def fake_open(url, mode, **options):
        seen.update(options, url=url)
        raise PermissionError(f"403 Forbidden reading {url}")

    monkeypatch.setattr(fsspec, "open", fake_open)
    with pytest.raises(MediaUnreadable) as error:
        decode_frames("s3://studio/clips/a.mp4", MODEL_FRAMES)
    assert seen["url"] == "s3://studio/clips/a.mp4" and seen["endpoint_url"] == "http://127.0.0.1:9"
    assert (seen["key"], seen["secret"]) == ("AKIDTESTFOLEY", "s3cr3t-never-shown")
    assert "s3cr3t" not in str(error.value) and "AKIDTESTFOLEY" not in str(error.value)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    with pytest.raises(MediaUnreadable, match="the key \\(AWS_ACCESS_KEY_ID\\) is missing"):
        probe("s3://studio/clips/a.mp4")
