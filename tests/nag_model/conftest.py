"""Toy-size networks with non-trivial random weights, built after torch.manual_seed(0)."""
import hashlib

import pytest
import torch

from nag_model.codecs.demo_mel import MelCodec
from nag_model.controlnet import AudioControlNet
from nag_model.network import build_mmaudio


def randomize_parameters(module: torch.nn.Module, seed: int = 0, scale: float = 1.0) -> torch.nn.Module:
    """Overwrite every parameter (zero-initialised layers included) with scaled normals."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name in ("latent_mean",):
                p.zero_()
            elif name == "latent_std":
                p.fill_(1.0)
            elif name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel() if p.ndim > 1 else 1
                p.copy_(scale * torch.randn(p.shape, generator=g) / fan_in ** 0.5 * (1 if p.ndim > 1 else 0.1))
    return module


class HashingTextEncoder:
    """Deterministic toy text features: each word hashes to a fixed random vector (tests only)."""

    def __init__(self, seq_len: int, dim: int):
        self.seq_len, self.dim = seq_len, dim

    def __call__(self, captions):
        out = torch.zeros(len(captions), self.seq_len, self.dim)
        for b, caption in enumerate(captions):
            for i, word in enumerate(caption.lower().split()[: self.seq_len]):
                seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
                out[b, i] = torch.randn(self.dim, generator=torch.Generator().manual_seed(seed))
        return out


@pytest.fixture
def randomize():
    return randomize_parameters


@pytest.fixture
def text_encoder_cls():
    return HashingTextEncoder


@pytest.fixture
def tiny_base():
    torch.manual_seed(0)
    return randomize_parameters(build_mmaudio("tiny", duration=2.0)).eval()


@pytest.fixture
def demo_parts():
    """A demo-shaped base (latent 20 = mel bands) over 2 s, a non-trivial ControlNet, codec, text encoder."""
    torch.manual_seed(0)
    base = randomize_parameters(build_mmaudio("demo_16k", duration=2.0), seed=1, scale=0.5).eval()
    controlnet = randomize_parameters(AudioControlNet.from_base(base), seed=2, scale=0.5).eval()
    codec = MelCodec()
    text = HashingTextEncoder(base.config.text_seq_len, base.config.text_dim)
    return base, controlnet, codec, text
