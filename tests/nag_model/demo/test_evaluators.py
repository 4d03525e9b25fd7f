"""Demo evaluators: shapes, level invariance, the protocols of nag_model.bundle, save/load."""
import numpy as np
import pytest
import torch

from nag_model.bundle import AudioEvaluator, Captioner, CaptionScorer
from nag_model.codecs.demo_mel import MelCodec
from nag_model.demo.evaluators import (AudioTagger, DemoAudioEvaluator, DemoCaptioner, DemoCaptionScorer, EvaluatorConfig,
                                  VideoTagger, load_evaluators, relative_log_mel, save_evaluators)
from nag_model.encoders.demo import HashTextEncoder

LABELS = ("ball", "lamp", "fan")


@pytest.fixture
def parts():
    torch.manual_seed(0)
    config = EvaluatorConfig(labels=LABELS, width=16, embed_dim=8, phrases={k: f"The {k} sounds" for k in LABELS},
                             adverbs={"loud": "loudly", "moderate": "steadily", "soft": "softly"})
    audio, video = AudioTagger(config).eval(), VideoTagger(config).eval()
    evaluator = DemoAudioEvaluator(audio, MelCodec(), HashTextEncoder())
    return config, audio, video, evaluator


def test_shapes_and_protocols(parts):
    config, audio, video, evaluator = parts
    wavs = np.random.default_rng(0).standard_normal((2, 16000)).astype(np.float32) * 0.1
    assert evaluator.embed_audio(wavs).shape == (2, 8)
    assert np.allclose(np.linalg.norm(evaluator.embed_text(["The ball sounds loudly.", "x"]), axis=1), 1, atol=1e-5)
    tags = evaluator.tag(wavs)
    assert tags.shape == (2, 3) and ((tags >= 0) & (tags <= 1)).all()
    assert set(evaluator.labels_of("The ball sounds loudly.")) <= set(LABELS)
    logits, gain = video(torch.randn(4, 64, 64))
    assert logits.shape == gain.shape == (4, 3)
    scorer, captioner = DemoCaptionScorer(video, evaluator), DemoCaptioner(video, threshold=0.0)
    for obj, proto in ((evaluator, AudioEvaluator), (scorer, CaptionScorer), (captioner, Captioner)):
        assert all(hasattr(obj, m) for m in proto.__dict__ if not m.startswith("_") and callable(getattr(proto, m)))
    assert len(scorer.score(torch.randn(1, 64, 64), ["The ball sounds loudly.", "The fan sounds softly."])) == 2
    proposals = captioner.propose(torch.randn(1, 64, 64), torch.randn(1, 192, 64), max_captions=2)
    assert len(proposals) == 2 and all(p.startswith("The ") and p.endswith("ly.") for p in proposals)
    with pytest.raises(ValueError, match="log-mel"):
        audio.embed_log_mel(torch.randn(1, 10, 7))


def test_audio_tower_ignores_the_level(parts):
    _, audio, _, _ = parts
    x = torch.randn(2, 50, 20) - 2
    assert torch.allclose(relative_log_mel(x, 80), relative_log_mel(x + 0.7, 80))
    assert torch.allclose(audio.embed_log_mel(x), audio.embed_log_mel(x - 0.5), atol=1e-5)


def test_captions_follow_the_gain_classes(parts):
    _, _, video, _ = parts
    c = DemoCaptioner(video)
    assert c.caption_for("ball", 0.0) == "The ball sounds loudly."
    assert c.caption_for("fan", -10.0) == "The fan sounds steadily."
    assert c.caption_for("lamp", -20.0) == "The lamp sounds softly."


def test_save_and_load_round_trip(parts, tmp_path):
    config, audio, video, _ = parts
    save_evaluators(audio, video, str(tmp_path / "ev"), metadata={"steps": 1})
    a2, v2 = load_evaluators(str(tmp_path / "ev"))
    assert a2.config == config
    x = torch.randn(1, 30, 20)
    assert torch.equal(a2.embed_log_mel(x), audio.embed_log_mel(x))
    clip = torch.randn(1, 64, 64)
    assert torch.equal(v2(clip)[0], video(clip)[0])
