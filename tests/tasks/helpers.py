"""Test helpers shared by tests/tasks and tests/flows (loaded by path from both conftests):
small real media files written with PyAV, and deterministic stand-ins for the bundle's optional
scorer, captioner and audio evaluator (they follow the protocols in nag_model/bundle.py).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = ROOT / "synthfoley" / "demo_catalog"
DEMO_VIDEOS = {  # id -> (file, captions) of the bundled demo catalog
    "sf-10109180": "sf-10109180.mp4",
    "sf-10161943": "sf-10161943.mp4",
    "sf-10170532": "sf-10170532.mp4",
    "sf-10125107": "sf-10125107.mp4",
}
MODEL = "random:tiny"
DURATION = 8.0  # the paper's window: each 8-s demo video is one window, as in production
STEPS = 2


def demo_stems(root_url: str, ordered, video_path: str) -> tuple:
    """(root, video, track rows): the stems of a demo video for ``ordered``'s captions, synthesized with the
    test model in ``STEPS`` steps into the fresh root ``root_url``; for module fixtures that only read them."""
    from pipeline.params import AudioOutput, TrackSettings
    from pipeline.videos import describe_video
    from storage.root import open_root
    from tasks.synthesis import synthesize_tracks

    root = open_root(root_url)
    video = describe_video(video_path, MODEL, DURATION)
    tracks = synthesize_tracks.fn(root.url, "r", "v", video, ordered, MODEL, DURATION, TrackSettings(steps=STEPS),
                                  AudioOutput(), 0, gpu_slot_name=None)
    return root, video, tracks


def write_video(path: Path, seconds: float, *, fps: int = 25, size: int = 64, audio: bool = False) -> Path:
    """An H.264 MP4 (moving gradient), optionally with an AAC tone."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        vs.width = vs.height = size
        vs.pix_fmt = "yuv420p"
        st = out.add_stream("aac", rate=16000, layout="mono") if audio else None
        for i in range(max(1, round(seconds * fps))):
            img = np.zeros((size, size, 3), np.uint8)
            img[..., 0] = (np.arange(size)[None, :] * 4 + i * 8) % 256
            img[..., 1] = 90
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        if st is not None:
            _tone(out, st, seconds, 16000)
    return path


def _tone(out, st, seconds: float, rate: int) -> None:
    x = (0.2 * np.sin(2 * np.pi * 440 * np.arange(round(seconds * rate)) / rate)).astype(np.float32)[None]
    for s in range(0, x.shape[1], 1024):
        fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, s:s + 1024]), format="fltp", layout="mono")
        fr.sample_rate, fr.pts = rate, s
        for p in st.encode(fr):
            out.mux(p)
    for p in st.encode():
        out.mux(p)


def write_media_cases(d: Path) -> dict[str, Path]:
    """The files of the failure cases (and one short, valid clip)."""
    d.mkdir(parents=True, exist_ok=True)
    cases = {"short": write_video(d / "short.mp4", 0.6)}
    with av.open(str(d / "audio_only.m4a"), "w") as out:
        _tone(out, out.add_stream("aac", rate=16000, layout="mono"), 1.0, 16000)
    cases["audio_only"] = d / "audio_only.m4a"
    cases["corrupt"] = d / "corrupt.mp4"
    cases["corrupt"].write_bytes(np.random.default_rng(0).bytes(20_000))
    cases["empty"] = d / "empty.mp4"
    cases["empty"].write_bytes(b"")
    with av.open(str(d / "no_frames.mp4"), "w") as out:  # a header and a trailer, no frame
        vs = out.add_stream("libx264", rate=25)
        vs.width = vs.height = 64
        vs.pix_fmt = "yuv420p"
        out.start_encoding()
    cases["no_frames"] = d / "no_frames.mp4"
    cases["missing"] = d / "does-not-exist.mp4"
    return cases


# ------------------------------------------------------------------ protocol stand-ins
def _bands(wavs: np.ndarray, n: int = 8) -> np.ndarray:
    spec = np.abs(np.fft.rfft(np.asarray(wavs, np.float64), axis=-1)) ** 2  # (B, F)
    return np.stack([b.sum(-1) for b in np.array_split(spec, n, axis=-1)], -1) + 1e-12  # (B, n)


class StubEvaluator:
    """AudioEvaluator: band-energy embeddings, word-hash text embeddings, a two-label tagger."""

    name = "stub-evaluator"
    sample_rate = 16000
    labels = ("low", "high")

    def embed_audio(self, wavs: np.ndarray) -> np.ndarray:
        e = np.log(_bands(wavs))
        return e - e.mean(-1, keepdims=True)

    def embed_text(self, captions: Sequence[str]) -> np.ndarray:
        out = []
        for c in captions:
            seed = int.from_bytes(hashlib.sha256(c.encode()).digest()[:4], "little")
            out.append(np.random.default_rng(seed).normal(size=8))
        return np.stack(out)

    def tag(self, wavs: np.ndarray) -> np.ndarray:
        b = _bands(wavs)
        low = b[:, :4].sum(-1) / b.sum(-1)
        return np.stack([low, 1 - low], -1)

    def labels_of(self, caption: str) -> tuple[str, ...]:
        words = caption.lower()
        return tuple(l for l, keys in (("low", ("hum", "drone", "rumble")), ("high", ("beep", "tweet"))) if
                     any(k in words for k in keys))


class StubScorer:
    """CaptionScorer: the longer the caption, the higher its score (a known order for tests)."""

    name = "stub-scorer"

    def score(self, clip_f: torch.Tensor, captions: Sequence[str]) -> list[float]:
        assert clip_f.ndim == 3, clip_f.shape
        return [float(len(c)) for c in captions]


class StubCaptioner:
    """Captioner: two fixed captions."""

    def propose(self, clip_f, sync_f, max_captions: int = 5) -> list[str]:
        return ["A motor hums steadily.", "A lamp beeps softly."][:max_captions]


def evaluated_bundle():
    """A random tiny bundle (2 s) with the stand-ins plugged in."""
    from nag_model.bundle import random_bundle

    bundle = random_bundle("tiny", seed=0, duration=DURATION)
    bundle.scorer, bundle.captioner, bundle.evaluator = StubScorer(), StubCaptioner(), StubEvaluator()
    bundle.name = "random-tiny-evaluated"
    return bundle
