"""The committed demo bundle: small enough, loads by name with its evaluators, generates an 8-s track."""
from pathlib import Path

import numpy as np

from nag_model.bundle import DEMO_BUNDLE, load_bundle
from nag_model.controlnet import AudioControlNet
from nag_model.demo.evaluators import DemoAudioEvaluator, DemoCaptioner, DemoCaptionScorer
from nag_model.generator import TrackSettings, VideoFeatures
from synthfoley import make_clip


def test_committed_weights_fit_the_budget():
    files = [p for p in Path(DEMO_BUNDLE).iterdir() if p.is_file()]
    assert {"bundle.json", "base.safetensors", "controlnet.safetensors", "evaluators.safetensors",
            "MODEL_CARD.md", "training.json"} <= {p.name for p in files}
    assert sum(p.stat().st_size for p in files) <= 25 * 2 ** 20


def test_demo_loads_and_generates_an_8s_track():
    bundle = load_bundle("demo")
    assert isinstance(bundle.controlnet, AudioControlNet) and isinstance(bundle.evaluator, DemoAudioEvaluator)
    assert isinstance(bundle.scorer, DemoCaptionScorer) and isinstance(bundle.captioner, DemoCaptioner)
    # Trained: its zero-initialised output projections have moved (an untrained ControlNet is a no-op).
    assert all(block.out_proj.weight.abs().max() > 1e-3 for block in bundle.controlnet.blocks)
    assert bundle.duration == 8.0 and bundle.card["kind"] == "demo"
    clip = make_clip(10_100_003)  # a ball and a lamp
    video = bundle.video_features(clip.frames[::3][:64], clip.frames)
    generator = bundle.generator()
    settings = TrackSettings()  # the default 25 steps: at 2, the tagger hears several kinds at probability 1
    first = generator.generate_track(video, clip.captions[0], seed=0, settings=settings)
    assert first.waveform.shape == (128_000,) and np.isfinite(first.waveform).all()
    # The evaluator hears what the caption asked for, louder than anything else.
    evaluator = bundle.evaluator
    tags = evaluator.tag(first.waveform[None])
    assert tags.shape == (1, len(evaluator.labels)) and ((tags >= 0) & (tags <= 1)).all()
    assert evaluator.labels[int(tags.argmax())] in evaluator.labels_of(clip.captions[0]) == ("ball",)
    # NAG against the first track: the trained ControlNet changes the track made from the same seed.
    second = generator.generate_track(VideoFeatures.none(), "Rain falls softly.", seed=1, settings=settings,
                                      context=[first])
    assert second.against == (clip.captions[0],)
    alone = generator.generate_track(VideoFeatures.none(), "Rain falls softly.", seed=1,
                                     settings=TrackSettings(method="independent"))
    assert not np.allclose(second.waveform, alone.waveform, atol=1e-3)
    # The scorer gives log-probabilities per caption; the captioner names only what the clip holds.
    scores = bundle.scorer.score(video.clip_f, clip.captions)
    assert len(scores) == 2 and all(s <= 0.0 for s in scores)
    proposed = bundle.captioner.propose(video.clip_f, video.sync_f)
    in_clip = {label for c in clip.captions for label in evaluator.labels_of(c)}
    assert proposed and all(set(evaluator.labels_of(p)) <= in_clip for p in proposed), proposed
