"""Training losses: the loss decreases, the base stays frozen while the ControlNet learns."""
import math

import pytest
import torch

from nag_model.controlnet import AudioControlNet
from nag_model.network import build_mmaudio
from nag_model.losses import base_loss, controlnet_loss, freeze, onset_weights


def _features(net, b, g):
    c, s = net.config, net.seq
    return (torch.randn(b, s.clip, c.clip_dim, generator=g), torch.randn(b, s.sync, c.sync_dim, generator=g),
            torch.randn(b, c.text_seq_len, c.text_dim, generator=g))


def test_base_loss_decreases_on_a_tiny_run():
    torch.manual_seed(0)
    net = build_mmaudio("tiny", duration=1.0)
    with torch.no_grad():
        net.latent_mean.zero_()
        net.latent_std.fill_(1)
    g = torch.Generator().manual_seed(0)
    clip, sync, text = _features(net, 4, g)
    x1 = torch.randn(4, net.seq.latent, net.config.latent_dim, generator=g) * 0.1 + 1.0
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(30):
        loss = base_loss(net, x1, clip, sync, text, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.75 * sum(losses[:5]) / 5, losses


def test_controlnet_trains_and_the_base_stays_frozen():
    torch.manual_seed(0)
    base = build_mmaudio("tiny", duration=1.0)
    with torch.no_grad():
        base.latent_mean.zero_()
        base.latent_std.fill_(1)
        for p in base.parameters():  # a non-trivial "pretrained" base
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    controlnet = AudioControlNet.from_base(base)
    g = torch.Generator().manual_seed(1)
    clip, sync, _ = _features(base, 4, g)
    x1 = torch.randn(4, base.seq.latent, base.config.latent_dim, generator=g)
    reference = x1.flip(1) + 0.1 * torch.randn(x1.shape, generator=g)  # another "segment" of the same clip
    with pytest.raises(ValueError, match="frozen"):
        controlnet_loss(base, controlnet, x1, reference, clip, sync)
    freeze(base)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    opt = torch.optim.AdamW(controlnet.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=1e-6)
    losses = []
    for _ in range(25):
        loss = controlnet_loss(base, controlnet, x1, reference, clip, sync, video_exist=torch.tensor([1, 1, 0, 0]),
                               generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.grad is None for p in base.parameters())
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    assert controlnet.blocks[0].out_proj.weight.abs().sum() > 0  # the zero projections learned
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5, losses


def _onset_frames(level_db: list[float], channels: int = 3) -> torch.Tensor:
    """log10-magnitude frames (1, N, C) whose power level is level_db in every channel."""
    return torch.tensor(level_db).div(20).view(1, -1, 1).expand(1, len(level_db), channels).clone()


def test_onset_weights_follow_the_rise_of_the_level_and_average_one():
    # steady at -60 dB, a 30-dB onset at frame 2, decay, a 10-dB rise at frame 5, a 60-dB rise (clipped) at 7
    frames = _onset_frames([-60, -60, -30, -40, -50, -40, -100, -40])
    w = onset_weights(frames, strength=3.0)
    raw = torch.tensor([1, 1, 1 + 3.0, 1, 1, 1 + 3.0 / 3, 1, 1 + 3.0])
    assert torch.allclose(w, (raw / raw.mean()).view(1, -1), atol=1e-5)
    assert w.shape == (1, 8) and math.isclose(w.mean().item(), 1.0, rel_tol=1e-6)


def test_onset_weights_are_uniform_without_onsets_or_strength():
    steady = _onset_frames([-20.0] * 6)
    falling = _onset_frames([-10.0, -20, -30, -40])
    assert torch.allclose(onset_weights(steady, 5.0), torch.ones(1, 6))
    assert torch.allclose(onset_weights(falling, 5.0), torch.ones(1, 4))
    assert torch.allclose(onset_weights(_onset_frames([-60.0, 0.0, -60.0]), 0.0), torch.ones(1, 3))
    with pytest.raises(ValueError, match="onset strength"):
        onset_weights(steady, -1.0)


def test_onset_weights_use_the_level_over_all_channels():
    frames = torch.full((1, 3, 2), -3.0)
    frames[0, 1, 0] = -1.0  # one channel rises by 40 dB at frame 1: the frame's mean power rises by ~37 dB
    w = onset_weights(frames, strength=1.0)
    assert w[0, 1] > w[0, 0] == w[0, 2]


def test_the_base_loss_weights_frames_when_asked():
    torch.manual_seed(0)
    net = build_mmaudio("tiny", duration=1.0)
    g = torch.Generator().manual_seed(0)
    clip, sync, text = _features(net, 2, g)
    x1 = torch.randn(2, net.seq.latent, net.config.latent_dim, generator=g)
    ones = torch.ones(2, net.seq.latent)
    first = torch.zeros(2, net.seq.latent)
    first[:, 0] = net.seq.latent  # all weight on frame 0

    def loss(weight):
        return base_loss(net, x1, clip, sync, text, generator=torch.Generator().manual_seed(3), frame_weight=weight)

    assert torch.equal(loss(None), loss(None))
    assert torch.allclose(loss(ones), loss(None), rtol=1e-5)
    assert not torch.allclose(loss(first), loss(None), rtol=1e-3)
