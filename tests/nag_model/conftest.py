"""Toy-size networks with non-trivial random weights, built after torch.manual_seed(0).

Each network is built once per process and each test gets its own deep copy with the global torch RNG as the build
left it: the same objects and state as building it in the test (a copy of the demo parts takes about 22 ms, a build
55 ms, measured on one thread), and a forked mutation-testing worker starts with them built (``FOLEY_TEST_WARMUP``)."""
import copy
import functools
import hashlib
import os

import pytest
import torch

from nag_model.codecs.demo_mel import MelCodec, MelCodecConfig
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


@functools.cache
def _built(name: str):
    """(the parts, the global RNG state after building them), built once per process."""
    torch.manual_seed(0)
    if name == "tiny":
        parts = randomize_parameters(build_mmaudio("tiny", duration=2.0)).eval()
    else:
        base = randomize_parameters(build_mmaudio("demo_16k", duration=2.0), seed=1, scale=0.5).eval()
        controlnet = randomize_parameters(AudioControlNet.from_base(base), seed=2, scale=0.5).eval()
        parts = base, controlnet, MelCodec(), HashingTextEncoder(base.config.text_seq_len, base.config.text_dim)
    return parts, torch.get_rng_state()


def _fresh(name: str):
    parts, rng = _built(name)
    torch.set_rng_state(rng)
    return copy.deepcopy(parts)


if os.environ.get("FOLEY_TEST_WARMUP"):  # scripts/mutation.py: built in mutmut's fork server, not in every mutant
    _built("tiny"), _built("demo")


@pytest.fixture
def tiny_base():
    return _fresh("tiny")


@pytest.fixture
def demo_parts():
    """A demo-shaped base (latent 20 = mel bands) over 2 s, a non-trivial ControlNet, codec, text encoder."""
    return _fresh("demo")


@pytest.fixture
def parts(demo_parts):
    """The demo parts with a 2-iteration Griffin-Lim, for tests of generation: decoding is not what they check."""
    base, controlnet, _, text = demo_parts
    return base, controlnet, MelCodec(MelCodecConfig(griffin_lim_iters=2)), text
