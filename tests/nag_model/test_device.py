"""Device and precision names, weight casting, and a bundle moved to bf16 (on the CPU)."""
import numpy as np
import pytest
import torch

from nag_model.bundle import random_bundle
from nag_model.device import cast_weights, resolve_device, resolve_dtype
from nag_model.generator import TrackSettings, VideoFeatures


def test_device_and_precision_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == (torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu"))
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")
    assert resolve_dtype("bf16") == torch.bfloat16 and resolve_dtype("fp32", "cuda") == torch.float32
    assert resolve_dtype("auto", "cpu") == torch.float32 and resolve_dtype("auto", "cuda") == torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        resolve_dtype("fp16")


def test_cast_weights_keeps_the_latent_statistics_and_buffers_in_fp32(tiny_base):
    cast_weights(tiny_base, torch.bfloat16)
    assert tiny_base.dtype == torch.bfloat16
    assert tiny_base.latent_mean.dtype == tiny_base.latent_std.dtype == torch.float32
    assert tiny_base.latent_rot.dtype == torch.float32 and tiny_base.t_embed.freqs.dtype == torch.float32


def test_a_bf16_bundle_generates_with_an_fp32_sampler_state():
    bundle = random_bundle("tiny", duration=2.0).to("cpu", "bf16")
    assert bundle.dtype == torch.bfloat16 and bundle.controlnet.blocks[0].out_proj.weight.dtype == torch.bfloat16
    tracks = bundle.generator().generate(VideoFeatures.none(), ["A dog barks.", "Wind blows."], settings=TrackSettings(steps=2))
    assert all(t.waveform.dtype == np.float32 and np.isfinite(t.waveform).all() for t in tracks)
    assert bundle.to(dtype=torch.float32).dtype == torch.float32
