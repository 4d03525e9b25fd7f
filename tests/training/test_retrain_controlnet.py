"""`python -m training.retrain_controlnet`: a new ControlNet on a bundle's frozen base, the rest of the bundle kept."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from nag_model.bundle import DEMO_BUNDLE, load_bundle
from training import retrain_controlnet


def test_a_short_retrain_writes_the_bundle_with_a_new_controlnet_on_the_same_base(tmp_path, capsys):
    out = tmp_path / "bundle"
    retrain_controlnet.main(["--out", str(out), "--work", str(tmp_path / "work"), "--controlnet-steps", "2",
                             "--train-clips", "4", "--val-clips", "2", "--threads", "1"])
    committed, new = load_bundle(DEMO_BUNDLE), load_bundle(str(out))  # loading checks the ControlNet's base
    assert all(torch.equal(a, b) for a, b in zip(new.base.state_dict().values(), committed.base.state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(new.controlnet.state_dict().values(),
                                                     committed.controlnet.state_dict().values()))
    assert new.evaluator is not None  # the bundle's evaluators come along
    assert new.video_encoder.config == committed.video_encoder.config  # the same features
    record = json.loads((out / "training.json").read_text())["controlnet_retrain"]
    assert record["plan"]["controlnet_steps"] == 2 and record["training"]["steps"] == 2
    assert set(record["metrics"]) >= {"controlnet_val_loss", "controlnet_val_loss_wrong_reference"}
    assert json.loads(capsys.readouterr().out) == record


def test_the_plan_reads_the_bundles_video_options():
    committed = load_bundle(DEMO_BUNDLE).video_encoder.config
    plan = retrain_controlnet.plan_for(committed, controlnet_steps=5)
    assert (plan.sync_layout, plan.sync_grid, plan.motion_gain, plan.sync_features) == \
        ("aligned", 16, 4.0, "motion_energy")
    assert plan.controlnet_steps == 5
    # a card that leaves the sync grid implicit (v4's and earlier): the clip grid
    older = replace(committed, sync_layout="segments", sync_grid=None, sync_features="projected", sync_dim=64,
                    motion_gain=32.0)
    plan = retrain_controlnet.plan_for(older)
    assert (plan.sync_layout, plan.sync_grid, plan.motion_gain, plan.sync_features) == ("segments", 8, 32.0, "projected")


def test_it_refuses_to_write_over_its_input(tmp_path):
    with pytest.raises(SystemExit, match="must not be --bundle"):
        retrain_controlnet.main(["--bundle", DEMO_BUNDLE, "--out", DEMO_BUNDLE, "--work", str(tmp_path)])
