"""The batched torch Griffin-Lim (the mel codec's decoder on a GPU) against librosa's, on the CPU."""
import numpy as np
import pytest
import torch

from nag_model.codecs.demo_mel import MelCodec, MelCodecConfig
from nag_model.griffin_lim import griffin_lim


def test_device_decode_matches_the_librosa_decode():
    codec = MelCodec(MelCodecConfig(griffin_lim_iters=8))
    g = torch.Generator().manual_seed(0)
    n = 16000
    wav = 0.2 * torch.randn(3, n, generator=g) * torch.linspace(0, 1, n)
    wav[1] = 0.3 * torch.sin(torch.arange(n) * 2 * torch.pi * 440 / 16000)
    wav[2] = 0.0  # silence decodes to exact silence on both paths
    latent = codec.encode(wav)
    reference = codec.decode(latent).numpy()  # librosa, item by item
    batched = codec._decode_on_device(latent).numpy()  # the GPU path, run here on the CPU
    assert batched.shape == reference.shape
    for r, b in zip(reference[:2], batched[:2]):
        assert np.abs(r - b).max() < 1e-3 * np.abs(r).max()
    assert np.array_equal(batched[2], np.zeros_like(batched[2]))


def test_griffin_lim_checks_its_shapes():
    with pytest.raises(ValueError, match="magnitude must be"):
        griffin_lim(torch.ones(1, 10, 4), n_fft=16, hop_length=4, window=torch.ones(16), init_phase=torch.zeros(9, 4))
