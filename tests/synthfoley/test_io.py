"""Clip files: the MP4 decodes with PyAV like any video, the WAVs read back, the sidecar round-trips."""
import json

import av
import numpy as np
import pytest
import soundfile as sf

from synthfoley import make_clip
from synthfoley.io import read_clip, read_video, write_clip, write_mp4


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    clip = make_clip(4)  # five sources: door, crowd, ball, hammer, walker
    return clip, write_clip(clip, tmp_path_factory.mktemp("clip"))


def test_mp4_streams_have_the_right_shape(written):
    clip, paths = written
    with av.open(str(paths["video"])) as c:
        vs, aus = c.streams.video[0], c.streams.audio[0]
        assert vs.codec_context.name == "h264" and vs.codec_context.pix_fmt == "yuv420p"
        assert (vs.width, vs.height) == (64, 64)
        assert vs.average_rate == 25 and vs.frames == 200
        assert float(vs.duration * vs.time_base) == pytest.approx(8.0, abs=1e-6)
        assert aus.codec_context.name == "aac" and aus.rate == 16_000 and aus.layout.nb_channels == 1
        assert float(aus.duration * aus.time_base) == pytest.approx(8.0, abs=0.07)


def test_mp4_decodes_to_the_clip(written):
    clip, paths = written
    frames, audio, fps, sr = read_video(paths["video"])
    assert frames.shape == clip.frames.shape and fps == 25.0 and sr == 16_000
    assert np.abs(frames.astype(int) - clip.frames).mean() < 6.0  # lossy H.264 + yuv420p
    assert abs(len(audio) - len(clip.mix)) <= 1024
    n = min(len(audio), len(clip.mix))
    assert np.corrcoef(audio[:n], clip.mix[:n])[0, 1] > 0.9  # AAC, aligned (priming trimmed)


def test_wavs_read_back_within_pcm16_tolerance(written):
    clip, paths = written
    mix, sr = sf.read(paths["mix"], dtype="float32")
    assert sr == 16_000 and sf.info(str(paths["mix"])).subtype == "PCM_16"
    np.testing.assert_allclose(mix, clip.mix, atol=1.01 / 32768)
    for k, stem in enumerate(clip.stems):
        assert paths[f"stem{k}"].name.endswith(f"-{clip.sources[k].kind}.wav")
        np.testing.assert_allclose(sf.read(paths[f"stem{k}"], dtype="float32")[0], stem, atol=1.01 / 32768)


def test_sidecar_and_read_clip_round_trip(written):
    clip, paths = written
    meta = json.loads(paths["meta"].read_text())
    assert meta["captions"] == list(clip.captions) and meta["label"] == clip.label
    assert meta["files"]["video"] == paths["video"].name
    back = read_clip(paths["meta"])
    assert back.sources == clip.sources and back.captions == clip.captions and back.label == clip.label
    np.testing.assert_allclose(back.stems, clip.stems, atol=1.01 / 32768)
    assert back.frames.shape == clip.frames.shape


def test_mp4_bytes_are_deterministic(tmp_path):
    clip = make_clip(9)
    write_mp4(tmp_path / "a.mp4", clip.frames, clip.mix, 25, 16_000)
    write_mp4(tmp_path / "b.mp4", clip.frames, clip.mix, 25, 16_000)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_write_refuses_a_clip_without_frames(tmp_path):
    with pytest.raises(ValueError, match="without frames"):
        write_clip(make_clip(1, with_frames=False), tmp_path)
