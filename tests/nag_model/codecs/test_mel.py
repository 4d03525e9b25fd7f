"""MMAudio's mel converter against the official one, in both modes."""
import pytest
import torch

from nag_model.codecs.mel import MelConfig, MelConverter


@pytest.mark.parametrize("mode", ["16k", "44k"])
def test_mel_matches_the_official_converter(mode, official, max_rel):
    fx = official(mode)
    mel = MelConverter(MelConfig.for_mode(mode))
    # A clip a whole number of latents long, with samples beyond [-1, 1], and one that is not a hop multiple.
    assert max_rel(mel(fx["inputs"]["wav"]), fx["outputs"]["mel_of_wav"]) < 1e-5
    assert max_rel(mel(fx["inputs"]["wav_mel"]), fx["outputs"]["mel_only"]) < 1e-5


@pytest.mark.parametrize("mode, samples, frames, bands", [("16k", 128_000, 500, 80), ("44k", 353_280, 690, 128)])
def test_eight_seconds_give_the_official_frame_counts(mode, samples, frames, bands):
    cfg = MelConfig.for_mode(mode)
    assert cfg.num_frames(samples) == frames
    wav = 0.1 * torch.randn(1, samples, generator=torch.Generator().manual_seed(0))
    assert MelConverter(cfg)(wav).shape == (1, bands, frames)


def test_log_base_follows_the_mode():
    """16 kHz uses log10, 44.1 kHz the natural log; silence sits at the 1e-5 floor."""
    silence = torch.zeros(1, 4096)
    assert torch.allclose(MelConverter(MelConfig.mmaudio_16k())(silence), torch.tensor(-5.0), atol=1e-3)
    assert torch.allclose(MelConverter(MelConfig.mmaudio_44k())(silence), torch.log(torch.tensor(1e-5)), atol=1e-3)


def test_bad_inputs_are_refused():
    mel = MelConverter(MelConfig.mmaudio_16k())
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        mel(torch.zeros(4096))
    with pytest.raises(ValueError, match="too short"):
        mel(torch.zeros(1, 100))
    with pytest.raises(ValueError, match="unknown MMAudio mode"):
        MelConfig.for_mode("22k")
