"""The shared training loop: loss decreases, the base stays frozen in the ControlNet stage, EMA,
resume (same result as an uninterrupted run) and the learning-rate schedule."""
import torch

from nag_model.controlnet import AudioControlNet
from training.ddp_check import ToyBatches as FixedBatches
from training.ddp_check import tiny_base
from training.loop import TrainConfig, lr_factor, train
from training.objectives import BaseObjective, ControlNetObjective


def config(steps, **kw):
    return TrainConfig(steps=steps, batch_size=4, lr=3e-3, warmup_steps=2, checkpoint_every=3, **kw)


def test_loss_decreases_on_a_tiny_run(tmp_path):
    net = tiny_base()
    result = train(BaseObjective(net), FixedBatches(net), config(20), tmp_path, progress=False)
    assert len(result.losses) == 20
    first, last = sorted(result.losses[:5]), sorted(result.losses[-6:])
    assert last[3] < 0.6 * first[2], result.losses  # medians: robust to the odd hard batch (t near 0 or 1)
    assert (tmp_path / "last.pt").exists()


def test_ema_is_a_separate_smoothed_copy():
    net = tiny_base()
    one = train(BaseObjective(net), FixedBatches(net), config(1), None, progress=False)
    # after one update the power-function EMA equals the online weights (its first beta is 0)
    assert one.model is not net
    assert all(torch.equal(a, b) for a, b in zip(one.model.parameters(), net.parameters()))
    net = tiny_base()
    result = train(BaseObjective(net), FixedBatches(net), config(5), None, progress=False)
    online = dict(net.named_parameters())
    diffs = [(p - online[k]).abs().max().item() for k, p in result.model.named_parameters() if online[k].requires_grad]
    assert max(diffs) > 0  # averaged weights, not the last iterate


def test_resume_matches_an_uninterrupted_run(tmp_path):
    full = train(BaseObjective(tiny_base()), FixedBatches(tiny_base()), config(6), tmp_path / "a", progress=False)
    first = train(BaseObjective(tiny_base()), FixedBatches(tiny_base()), config(6), tmp_path / "b", progress=False,
                  stop_after=4)
    assert first.steps == 4
    resumed = train(BaseObjective(tiny_base()), FixedBatches(tiny_base()), config(6), tmp_path / "b", progress=False)
    assert resumed.resumed_from == 4
    assert torch.allclose(torch.tensor(resumed.losses), torch.tensor(full.losses), atol=1e-5)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), k


def test_controlnet_stage_keeps_the_base_frozen(tmp_path):
    base = tiny_base()
    with torch.no_grad():
        for p in base.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    before = {k: v.clone() for k, v in base.state_dict().items()}
    controlnet = AudioControlNet.from_base(base)
    objective = ControlNetObjective(base, controlnet)
    result = train(objective, FixedBatches(base), config(4), tmp_path, progress=False)
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    assert not base.training
    # the zero-initialised output projections have moved: the ControlNet learned something
    assert any(b.out_proj.weight.abs().sum() > 0 for b in result.model.blocks)


def test_lr_schedule_warms_up_then_drops_twice():
    c = TrainConfig(steps=100, warmup_steps=10)
    assert lr_factor(0, c) == 0.1 and lr_factor(9, c) == 1.0 and lr_factor(79, c) == 1.0
    assert abs(lr_factor(80, c) - 0.1) < 1e-12 and abs(lr_factor(95, c) - 0.01) < 1e-12
