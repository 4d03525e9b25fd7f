"""`python -m training.checkpoint_bundle`: a bundle from a run's EMA checkpoints, with the run's video options."""
from __future__ import annotations

import json

import pytest
import torch
from ema_pytorch import KarrasEMA

from nag_model.bundle import DEMO_BUNDLE, load_bundle
from nag_model.checkpoint import load_network
from nag_model.controlnet import AudioControlNet
from nag_model.network import MMAudio
from training import checkpoint_bundle
from training.demo import DemoPlan


def _checkpoint(module: torch.nn.Module, path, step: int) -> None:
    """A training.loop checkpoint's fields that the bundle reads: the step and the EMA's state."""
    path.parent.mkdir(parents=True)
    torch.save({"step": step, "ema": KarrasEMA(module, sigma_rel=0.05).state_dict()}, path)


@pytest.fixture
def run(tmp_path):
    base = load_network(f"{DEMO_BUNDLE}/base")
    with torch.no_grad():
        for p in base.parameters():
            p.add_(0.01)  # a base that is not the committed one
    _checkpoint(base, tmp_path / "work" / "base" / "last.pt", 7000)
    return tmp_path / "work", base


def test_the_bundle_holds_the_runs_weights_and_video_options(run, tmp_path, capsys):
    work, base = run
    base.set_duration(4.0)
    controlnet = AudioControlNet.from_base(base)
    with torch.no_grad():
        for p in controlnet.parameters():
            p.add_(0.02)
    _checkpoint(controlnet, work / "controlnet" / "last.pt", 2000)
    base.set_duration(8.0)
    out = tmp_path / "bundle"
    checkpoint_bundle.main(["--work", str(work), "--out", str(out), "--sync-layout", "aligned", "--sync-grid", "16",
                            "--motion-gain", "32"])
    assert "base at step 7000, controlnet at step 2000" in capsys.readouterr().out
    bundle = load_bundle(str(out))  # checks the ControlNet's base fingerprint
    assert all(torch.equal(a, b) for a, b in zip(bundle.base.state_dict().values(), base.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(bundle.controlnet.state_dict().values(),
                                                 controlnet.state_dict().values()))
    config = bundle.video_encoder.config
    assert (config.sync_layout, config.sync_grid, config.motion_gain) == ("aligned", 16, 32.0)
    assert bundle.evaluator is not None  # the committed evaluators come along


def test_without_a_controlnet_checkpoint_the_bundle_has_none(run, tmp_path):
    work, base = run
    out = tmp_path / "bundle"
    assert checkpoint_bundle.build(work, out, {"sync_layout": "aligned"}) == {"base": 7000}
    assert json.loads((out / "bundle.json").read_text())["controlnet"] is False
    assert load_bundle(str(out)).controlnet is None
    with pytest.raises(FileNotFoundError, match="no base or controlnet checkpoint"):
        checkpoint_bundle.build(tmp_path / "elsewhere", out, {})


def test_a_controlnet_only_run_keeps_the_template_base(tmp_path, capsys):
    """A run that trained only a ControlNet on the committed base (no base checkpoint)."""
    committed = load_bundle(DEMO_BUNDLE)
    base = committed.base
    base.set_duration(4.0)
    controlnet = AudioControlNet.from_base(base)
    with torch.no_grad():
        for p in controlnet.parameters():
            p.add_(0.02)
    _checkpoint(controlnet, tmp_path / "work" / "controlnet" / "last.pt", 6000)
    out = tmp_path / "bundle"
    checkpoint_bundle.main(["--work", str(tmp_path / "work"), "--out", str(out)])
    assert "controlnet at step 6000 (no base checkpoint: the template's base)" in capsys.readouterr().out
    bundle = load_bundle(str(out))
    assert all(torch.equal(a, b) for a, b in zip(bundle.base.state_dict().values(), base.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(bundle.controlnet.state_dict().values(),
                                                 controlnet.state_dict().values()))
    assert not any(torch.equal(a, b) for a, b in zip(bundle.controlnet.state_dict().values(),
                                                     committed.controlnet.state_dict().values()) if a.numel() > 1)


def test_a_motion_energy_run_gets_a_base_with_its_sync_dim(tmp_path, capsys):
    plan = DemoPlan(sync_layout="aligned", sync_grid=16, sync_features="motion_energy")
    config = plan.network_config()
    torch.manual_seed(0)
    base = MMAudio(config, config.seq_lengths(8.0))
    with torch.no_grad():  # set by the base stage from the data
        base.latent_mean.fill_(-2.0)
        base.latent_std.fill_(1.0)
    _checkpoint(base, tmp_path / "work" / "base" / "last.pt", 7000)
    out = tmp_path / "bundle"
    checkpoint_bundle.main(["--work", str(tmp_path / "work"), "--out", str(out), "--sync-layout", "aligned",
                            "--sync-grid", "16", "--sync-features", "motion_energy"])
    bundle = load_bundle(str(out))
    assert bundle.base.config.sync_dim == bundle.video_encoder.config.sync_dim == 256
    assert bundle.video_encoder.config.sync_features == "motion_energy"
    assert all(torch.equal(a, b) for a, b in zip(bundle.base.state_dict().values(), base.state_dict().values()))
