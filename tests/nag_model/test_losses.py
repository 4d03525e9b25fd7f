"""Training losses: the loss decreases, the base stays frozen while the ControlNet learns."""
import pytest
import torch

from nag_model.controlnet import AudioControlNet
from nag_model.network import build_mmaudio
from nag_model.losses import base_loss, controlnet_loss, freeze


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
