"""The scoring stage with evaluation models: CLAP rows from the demo evaluator, IB-score and DeSync rows from
models loaded through the registry (frames decoded at their rates and sizes), and nothing without them."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from evaluation import registry
from evaluation.registry import EVAL_MODELS, EvalModelSpec
from pipeline.handoffs import OrderedCaptions
from pipeline.models import DEMO_MODEL_DIR
from pipeline.params import AudioOutput
from storage import tables
from tasks.mixing import mix_video
from tasks.scoring import score_video

ORDERED = OrderedCaptions(("A motor hums steadily.", "A lamp beeps softly."), (2.0, 1.0), "descending", "descending")
SEEN: dict[str, list] = {}


class VideoAudioCosine:
    """An ``ib`` model: the video's mean colour and the audio's band energies in one 3-d space."""

    name, sample_rate, video_fps = "test-ib", 16000, 0.5

    @classmethod
    def from_file(cls, path, preset=None, **_):
        return cls()

    def embed_video(self, frames):
        SEEN.setdefault("ib", []).extend(f.shape for f in frames)
        return np.stack([f.reshape(-1, 3).mean(0) + 1.0 for f in frames])

    def embed_audio(self, wavs):
        spec = np.abs(np.fft.rfft(wavs, axis=-1)) ** 2
        return np.stack([b.sum(-1) for b in np.array_split(spec, 3, axis=-1)], -1) + 1e-6


class LoudnessSync:
    """A ``sync`` model: the absolute mean of the waveform, as seconds."""

    name, sample_rate = "test-sync", 16000

    @classmethod
    def from_file(cls, path, preset=None, **_):
        return cls()

    def desync(self, frames, wavs):
        SEEN.setdefault("sync", []).extend(f.shape for f in frames)
        SEEN.setdefault("sync_audio", []).append(wavs.shape)
        return np.abs(wavs).mean(-1)


@pytest.fixture(scope="module")
def made(h, demo_video):
    root, video, tracks = h.demo_stems("memory://eval-scoring", ORDERED, demo_video)
    mix = mix_video.fn(root.url, "r", "v", video, tracks, AudioOutput())
    return root, video, tracks, mix


@pytest.fixture
def test_models(monkeypatch, tmp_path):
    module = types.ModuleType("foley_test_eval_models")
    module.VideoAudioCosine, module.LoudnessSync = VideoAudioCosine, LoudnessSync
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(EVAL_MODELS, "imagebind", EvalModelSpec("imagebind", f"{module.__name__}:VideoAudioCosine",
                                                                None, ("ib",), "IB-score", ("ib_score",)))
    monkeypatch.setitem(EVAL_MODELS, "desync", EvalModelSpec("desync", f"{module.__name__}:LoudnessSync", None,
                                                             ("sync",), "DeSync", ("desync",)))
    (tmp_path / "w").write_bytes(b"x")
    SEEN.clear()
    yield [f"imagebind={tmp_path / 'w'}", f"desync={tmp_path / 'w'}"]
    registry.clear_loaded()


def test_clap_rows_from_the_demo_evaluator(made, h):
    root, video, tracks, mix = made
    rows = score_video.fn(root.url, "r", "v", tracks, mix, h.MODEL, h.DURATION, ORDERED, video=video,
                          eval_weights=[f"demo={DEMO_MODEL_DIR}"])
    demo = {(r["track_id"], r["metric"]): r["value"] for r in rows if r["model"] == "demo-tagger"}
    assert set(demo) == {("t0", "ta_similarity"), ("t1", "ta_similarity"), (None, "aa_similarity_mean"),
                         (None, "aa_similarity_max")}
    assert demo[(None, "aa_similarity_mean")] == demo[(None, "aa_similarity_max")]  # one pair of tracks
    assert all(-1.0 <= v <= 1.0 for v in demo.values())
    tables.to_arrow("metrics", "r", rows)
    plain = score_video.fn(root.url, "r", "v", tracks, mix, h.MODEL, h.DURATION, ORDERED, video=video)
    assert not any(r["model"] == "demo-tagger" for r in plain) and len(plain) == len(rows) - 4


def test_ib_score_per_track_and_mix_and_desync_per_mix(made, h, test_models):
    root, video, tracks, mix = made
    rows = score_video.fn(root.url, "r", "v", tracks, mix, h.MODEL, h.DURATION, ORDERED, video=video,
                          eval_weights=test_models)
    ib = {r["track_id"]: r["value"] for r in rows if r["model"] == "test-ib"}
    sync = [r for r in rows if r["model"] == "test-sync"]
    assert set(ib) == {"t0", "t1", None} and all(0 < v <= 1 for v in ib.values())
    assert [(r["track_id"], r["metric"], r["version"]) for r in sync] == [(None, "desync", 1)]
    h_w = (video.height, video.width)  # the source size: the modules resize and crop as av-benchmark
    assert SEEN["ib"] == [(4, *h_w, 3)]  # 8 s at 0.5 fps
    assert SEEN["sync"] == [(200, *h_w, 3)] and SEEN["sync_audio"] == [(1, 8 * 16000)]  # 25 fps; 8 s at 16 kHz
    assert all(r["metric"] == "ib_score" for r in rows if r["model"] == "test-ib")
    class Window:
        num_frames = 201  # longer than the 8-s video: no DeSync row
    LoudnessSync.config = Window()
    try:
        short = score_video.fn(root.url, "r", "v", tracks, mix, h.MODEL, h.DURATION, ORDERED, video=video,
                               eval_weights=test_models)
    finally:
        del LoudnessSync.config
    assert not any(r["model"] == "test-sync" for r in short) and any(r["model"] == "test-ib" for r in short)
    no_video = score_video.fn(root.url, "r", "v", tracks, mix, h.MODEL, h.DURATION, ORDERED, eval_weights=test_models)
    assert not any(r["model"] in ("test-ib", "test-sync") for r in no_video)  # no frames: nothing faked
