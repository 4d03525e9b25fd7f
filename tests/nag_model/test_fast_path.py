"""The CUDA formulations of the layers (convolutions as matrix products, complex RoPE, fused
multiply-adds, contiguous q/k/v) compute the same function as the reference ones; run on the CPU
by switching `layers.fast_path` on."""
import pytest
import torch

from nag_model import layers
from nag_model.controlnet import AudioControlNet
from nag_model.layers import ChannelLastConv1d, apply_rope, rope_table


@pytest.mark.parametrize("cin,cout,k", [(8, 24, 3), (24, 8, 3), (5, 16, 7), (16, 16, 1), (40, 12, 5)])
def test_gemm_convolution_equals_conv1d(monkeypatch, cin, cout, k):
    torch.manual_seed(0)
    conv = ChannelLastConv1d(cin, cout, kernel_size=k, padding=k // 2)
    x = torch.randn(3, 17, cin)
    reference = conv(x)
    monkeypatch.setattr(layers, "fast_path", lambda x: True)
    assert torch.allclose(conv(x), reference, atol=1e-5, rtol=1e-5)


def test_complex_rope_equals_the_rotation_table(monkeypatch):
    table = rope_table(11, 16, freq_scale=0.7)
    x = torch.randn(2, 3, 11, 16)
    reference = apply_rope(x, table)
    monkeypatch.setattr(layers, "fast_path", lambda x: True)
    assert torch.allclose(apply_rope(x, table), reference, atol=1e-6)


@torch.inference_mode()
def test_network_and_controlnet_agree_on_both_paths(tiny_base, randomize, monkeypatch):
    controlnet = randomize(AudioControlNet.from_base(tiny_base), seed=3)
    c, s = tiny_base.config, tiny_base.seq
    g = torch.Generator().manual_seed(0)
    clip, sync = torch.randn(2, s.clip, c.clip_dim, generator=g), torch.randn(2, s.sync, c.sync_dim, generator=g)
    text, x = torch.randn(2, c.text_seq_len, c.text_dim, generator=g), torch.randn(2, s.latent, c.latent_dim, generator=g)
    t = torch.tensor([0.3, 0.8])

    def run():
        cond = tiny_base.preprocess_conditions(clip, sync, text)
        ref = controlnet.preprocess_reference(torch.randn(2, s.latent, c.latent_dim, generator=torch.Generator().manual_seed(1)))
        return tiny_base.predict_flow(x, t, cond), controlnet.predict_flow(tiny_base, x, t, cond, ref)

    reference = run()
    monkeypatch.setattr(layers, "fast_path", lambda x: True)
    for a, b in zip(run(), reference):
        assert torch.allclose(a, b, atol=1e-5 * float(b.abs().max()), rtol=0)
