"""The committed demo bundle: small enough, loads by name with its evaluators, generates an 8-s track."""
from pathlib import Path

import numpy as np

from nag_model.bundle import DEMO_BUNDLE, load_bundle
from nag_model.generator import TrackSettings, VideoFeatures
from synthfoley import make_clip


def test_committed_weights_fit_the_budget():
    files = [p for p in Path(DEMO_BUNDLE).iterdir() if p.is_file()]
    assert {"bundle.json", "base.safetensors", "controlnet.safetensors", "evaluators.safetensors",
            "MODEL_CARD.md", "training.json"} <= {p.name for p in files}
    assert sum(p.stat().st_size for p in files) <= 25 * 2 ** 20


def test_demo_loads_and_generates_an_8s_track():
    bundle = load_bundle("demo")
    assert bundle.controlnet is not None and bundle.evaluator is not None
    assert bundle.scorer is not None and bundle.captioner is not None
    assert bundle.duration == 8.0 and bundle.card["kind"] == "demo"
    clip = make_clip(10_100_003)
    video = bundle.video_features(clip.frames[::3][:64], clip.frames)
    generator = bundle.generator()
    settings = TrackSettings(steps=2)
    first = generator.generate_track(video, clip.captions[0], seed=0, settings=settings)
    assert first.waveform.shape == (128_000,) and np.isfinite(first.waveform).all()
    second = generator.generate_track(VideoFeatures.none(), "Rain falls softly.", seed=1, settings=settings,
                                      context=[first])
    assert second.against == (clip.captions[0],)
    assert bundle.evaluator.tag(first.waveform[None]).shape == (1, len(bundle.evaluator.labels))
    assert len(bundle.captioner.propose(video.clip_f, video.sync_f)) >= 1
