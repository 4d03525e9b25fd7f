"""`python -m training.demo` options: the plan they give, its cache folder, and the base's batches."""
from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from training import demo
from training.demo import DemoPlan, parse_args, plan_from_args, plan_id


def test_the_default_plan_is_the_committed_weights_recipe():
    assert plan_from_args(parse_args([])) == DemoPlan() == DemoPlan.for_budget(demo.BUDGET_MINUTES)
    plan = DemoPlan()
    assert (plan.base_steps, plan.controlnet_steps, plan.evaluator_steps) == (7000, 2000, 3000)
    assert plan.stem_video_fraction == 1.0 and plan.caption_mix_fraction == 0.25 and plan.onset_weight == 0.0
    assert (plan.sync_layout, plan.sync_grid, plan.sync_features) == ("aligned", 16, "motion_energy")


def test_the_committed_weights_were_trained_by_the_default_plan():
    """training.json records the plan the committed bundle was trained with."""
    record = json.loads((Path(demo.__file__).parents[1] / "nag_model/weights/demo/training.json").read_text())
    assert record["plan"] == asdict(DemoPlan())


def test_a_budget_scales_the_steps_and_keeps_the_recipe():
    quick = DemoPlan.for_budget(demo.BUDGET_MINUTES / 10)
    assert (quick.base_steps, quick.controlnet_steps, quick.evaluator_steps) == (700, 200, 300)
    assert {k: v for k, v in asdict(quick).items() if not k.endswith(("_steps", "_clips"))} == \
        {k: v for k, v in asdict(DemoPlan()).items() if not k.endswith(("_steps", "_clips"))}


def test_overrides_replace_only_their_fields():
    plan = plan_from_args(parse_args(["--stem-video-fraction", "0.5", "--base-steps", "3000", "--seed", "3",
                                      "--caption-mix-fraction", "0.5", "--onset-weight", "6", "--sync-layout", "segments",
                                      "--sync-grid", "8", "--motion-gain", "32", "--sync-features", "projected"]))
    assert plan == replace(DemoPlan(seed=3), stem_video_fraction=0.5, base_steps=3000, caption_mix_fraction=0.5,
                           onset_weight=6.0, sync_layout="segments", sync_grid=8, motion_gain=32.0,
                           sync_features="projected")
    with pytest.raises(SystemExit):
        parse_args(["--sync-layout", "diagonal"])
    with pytest.raises(SystemExit):
        parse_args(["--sync-grid", "1.5"])


def test_a_different_fraction_is_a_different_cache_folder():
    assert plan_id(DemoPlan()) != plan_id(replace(DemoPlan(), stem_video_fraction=0.5))
    assert plan_id(DemoPlan()) != plan_id(replace(DemoPlan(), caption_mix_fraction=0.0))
    assert plan_id(DemoPlan()) != plan_id(replace(DemoPlan(), onset_weight=6.0))
    assert plan_id(DemoPlan()) != plan_id(replace(DemoPlan(), sync_layout="segments"))
    assert plan_id(DemoPlan()) != plan_id(replace(DemoPlan(), sync_grid=8))
    assert plan_id(DemoPlan()) != plan_id(replace(DemoPlan(), sync_features="projected"))
    assert plan_id(DemoPlan()) != plan_id(replace(DemoPlan(), motion_gain=32.0))
    assert plan_id(DemoPlan()) == plan_id(DemoPlan())


@pytest.mark.parametrize("fraction", [0.0, 0.5])
def test_the_base_is_trained_on_the_plans_stem_video_fraction_and_onset_weight(monkeypatch, tmp_path, tiny_foley_data, fraction):
    seen = {}

    def fake_train(objective, batches, cfg, work, desc):
        seen.update(objective=objective, batches=batches, steps=cfg.steps)
        raise StopIteration

    monkeypatch.setattr(demo, "train", fake_train)
    plan = replace(DemoPlan(), stem_video_fraction=fraction, base_steps=7, onset_weight=fraction * 4)
    with pytest.raises(StopIteration):
        demo.train_base(tiny_foley_data(), plan, demo.encoders(0)[0], tmp_path)
    assert seen["batches"].stem_video_fraction == fraction and seen["steps"] == 7
    assert seen["batches"].caption_mix_fraction == 0.25
    assert seen["objective"].onset_weight == fraction * 4


def test_the_plans_video_options_reach_the_video_encoder():
    config = demo.encoders(0, **DemoPlan().video_options())[1].config
    assert (config.sync_layout, config.sync_grid, config.motion_gain, config.sync_features) == \
        ("aligned", 16, 4.0, "motion_energy")
    plan = replace(DemoPlan(), sync_layout="segments", sync_grid=8, motion_gain=32.0, sync_features="projected")
    config = demo.encoders(0, **plan.video_options())[1].config
    assert (config.sync_layout, config.sync_grid, config.motion_gain, config.sync_features) == \
        ("segments", 8, 32.0, "projected")


def test_a_motion_energy_plan_gives_the_network_one_sync_dimension_per_cell(monkeypatch, tmp_path, tiny_foley_data):
    plan = replace(DemoPlan(), base_steps=3)
    assert replace(DemoPlan(), sync_features="projected").network_config() == demo.PRESETS[demo.PRESET]
    assert plan.network_config() == replace(demo.PRESETS[demo.PRESET], sync_dim=256)
    config = demo.encoders(0, **plan.video_options())[1].config
    assert (config.sync_features, config.sync_dim, config.sync_grid) == ("motion_energy", 256, 16)
    seen = {}

    def fake_train(objective, batches, cfg, work, desc):
        seen["sync_dim"] = objective.net.config.sync_dim
        raise StopIteration

    monkeypatch.setattr(demo, "train", fake_train)
    with pytest.raises(StopIteration):
        demo.train_base(tiny_foley_data(), plan, demo.encoders(0)[0], tmp_path)
    assert seen["sync_dim"] == 256
    assert demo.plan_from_args(demo.parse_args(["--sync-features", "motion_energy", "--sync-grid", "16"])).network_config().sync_dim == 256
    rgb = demo.plan_from_args(demo.parse_args(["--sync-features", "motion_energy_rgb", "--sync-grid", "16"]))
    assert rgb.network_config().sync_dim == rgb.video_options()["sync_dim"] == 3 * 256
    assert demo.encoders(0, **rgb.video_options())[1].config.sync_features == "motion_energy_rgb"
