"""Network behaviour beyond parity: durations, dtypes, shape errors, training utilities."""
import pytest
import torch

from nag_model.config import PRESETS, SeqLengths, get_config
from nag_model.flow_matching import drop_conditions, flow_matching_loss, interpolate, sample_logit_normal
from nag_model.network import build_mmaudio


def test_official_sequence_arithmetic():
    assert get_config("small_16k").seq_lengths() == SeqLengths(250, 64, 192)
    assert get_config("large_44k").seq_lengths() == SeqLengths(345, 64, 192)
    assert get_config("small_16k").seq_lengths(4.0) == SeqLengths(125, 32, 88)


def test_other_durations_without_mutating_the_config(tiny_base):
    before = PRESETS["tiny"]
    net = build_mmaudio("tiny", duration=4.0)
    assert net.seq.latent == 125 and net.latent_rot.shape[1] == 125 and net.clip_rot.shape[1] == 32
    net.set_duration(2.0)
    assert net.seq == get_config("tiny").seq_lengths(2.0) and net.latent_rot.shape[1] == net.seq.latent
    assert PRESETS["tiny"] is before and PRESETS["tiny"].duration == 8.0


def _inputs(net, b=2, dtype=torch.float32):
    c, s = net.config, net.seq
    g = torch.Generator().manual_seed(0)
    mk = lambda *shape: torch.randn(*shape, generator=g).to(dtype)  # noqa: E731
    return (mk(b, s.latent, c.latent_dim), mk(b, s.clip, c.clip_dim), mk(b, s.sync, c.sync_dim),
            mk(b, c.text_seq_len, c.text_dim), torch.rand(b, generator=g).to(dtype))


@torch.no_grad()
def test_bf16_forward_tracks_fp32(tiny_base):
    x = _inputs(tiny_base)
    ref = tiny_base(*x)
    out = tiny_base.to(torch.bfloat16)(*(v.to(torch.bfloat16) for v in x))
    assert out.dtype == torch.bfloat16
    rel = (out.float() - ref).norm() / ref.norm()
    assert rel < 0.05, rel


@torch.no_grad()
def test_shape_errors_show_actual_shapes(tiny_base):
    latent, clip, sync, text, t = _inputs(tiny_base)
    with pytest.raises(ValueError, match=r"sync_f must have shape \(B, 40, 24\).*got \(2, 16, 24\)"):
        tiny_base(latent, clip, sync[:, :16], text, t)
    with pytest.raises(ValueError, match=r"latent must have shape \(B, 63, 8\).*got \(2, 62, 8\)"):
        tiny_base(latent[:, :62], clip, sync, text, t)
    with pytest.raises(ValueError, match=r"t must be a scalar or shape \(2,\)"):
        tiny_base(latent, clip, sync, text, torch.rand(3))
    with pytest.raises(ValueError, match="batch sizes differ"):
        tiny_base(latent, clip, sync, text[:1], t)
    with pytest.raises(KeyError, match="known presets: small_16k"):
        build_mmaudio("huge_16k")
    with pytest.raises(ValueError, match="fewer than one segment"):
        get_config("tiny").seq_lengths(0.5)


def test_flow_matching_training_pieces(tiny_base):
    g = torch.Generator().manual_seed(0)
    t = sample_logit_normal(10_000, generator=g)
    assert 0 < t.min() and t.max() < 1 and abs(t.mean().item() - 0.5) < 0.02
    x0, x1 = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    assert torch.allclose(interpolate(x0, x1, torch.tensor([0.0, 1.0]))[0], x0[0])
    assert torch.allclose(interpolate(x0, x1, torch.tensor([0.0, 1.0]))[1], x1[1])
    assert flow_matching_loss(x1 - x0, x0, x1) == 0
    _, clip, sync, text, _ = _inputs(tiny_base)
    kept = drop_conditions(tiny_base, clip, sync, text, p=0.0)
    assert all(torch.equal(a, b) for a, b in zip(kept, (clip, sync, text)))
    c2, s2, t2 = drop_conditions(tiny_base, clip, sync, text, p=1.0, generator=g)
    assert torch.equal(c2[0, 3], tiny_base.empty_clip_feat[0]) and torch.equal(s2[1, 5], tiny_base.empty_sync_feat[0])
    assert torch.equal(t2[0], tiny_base.empty_string_feat)
    c3, _, t3 = drop_conditions(tiny_base, clip, sync, text, p=0.0, video_exist=torch.tensor([False, True]))
    assert torch.equal(c3[0, 0], tiny_base.empty_clip_feat[0]) and torch.equal(c3[1], clip[1]) and torch.equal(t3, text)
    frac = drop_conditions(tiny_base, clip[:1].expand(4000, -1, -1), sync[:1].expand(4000, -1, -1), text[:1].expand(4000, -1, -1),
                           p=0.1, generator=g)[0][:, 0, 0].ne(clip[0, 0, 0]).float().mean()
    assert 0.08 < frac < 0.12
