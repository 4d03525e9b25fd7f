"""An evaluation bundle from a demo training run's checkpoints, while the run goes on or after it was stopped.

    python -m training.checkpoint_bundle --work W --out B [--sync-layout segments --sync-grid 8 --motion-gain 32
        --sync-features projected]          # the run's video options; the defaults are the default plan's

It copies the committed demo bundle (codec, text encoder, evaluators: the judges' tagger stays the same, so
bundles are compared alike), replaces the base and the ControlNet with the EMA weights of the run's last
checkpoints (`W/base/last.pt`, `W/controlnet/last.pt`) and sets the run's video-encoder options. Without a
ControlNet checkpoint the bundle has none (independent generation only: `presence_diagnosis.py`). Without a base
checkpoint the template's base stays: a run that trained only a ControlNet on the committed base.
"""
from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path

from nag_model.bundle import DEMO_BUNDLE
from nag_model.checkpoint import load_network, save_controlnet, save_network
from nag_model.controlnet import AudioControlNet
from nag_model.encoders.demo import SYNC_FEATURES, SYNC_LAYOUTS
from nag_model.network import MMAudio
from training.demo import DemoPlan
from training.loop import ema_weights


def build(work: Path, out: Path, video: dict, template: Path = Path(DEMO_BUNDLE)) -> dict[str, int]:
    """Write the bundle to `out` (replaced if it exists); returns the step of each stage taken."""
    has_base, has_controlnet = ((work / stage / "last.pt").exists() for stage in ("base", "controlnet"))
    if not (has_base or has_controlnet):
        raise FileNotFoundError(f"no base or controlnet checkpoint (last.pt) in {work}: is --work the run's work folder?")
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(template, out)
    steps = {}
    base = load_network(str(out / "base"))
    if has_base:  # the run's network: the template's, with the run's sync input (motion energy: a dim per cell)
        config = replace(base.config, sync_dim=video.get("sync_dim", base.config.sync_dim))
        base = MMAudio(config, config.seq_lengths(8.0))
        steps["base"], weights = ema_weights(work / "base" / "last.pt")
        base.load_state_dict(weights, strict=True)
        save_network(base, str(out / "base"))
    card = json.loads((out / "bundle.json").read_text())
    card["video_encoder"].update(video)
    if has_controlnet:
        base.set_duration(4.0)  # the ControlNet stage's length; the saved weights do not depend on it
        controlnet = AudioControlNet.from_base(base)
        steps["controlnet"], weights = ema_weights(work / "controlnet" / "last.pt")
        controlnet.load_state_dict(weights, strict=True)
        save_controlnet(controlnet, base, str(out / "controlnet"))
    else:
        for name in ("controlnet.json", "controlnet.safetensors"):
            (out / name).unlink(missing_ok=True)
        card["controlnet"] = False
    (out / "bundle.json").write_text(json.dumps(card, indent=2))
    return steps


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True, help="the run's --work folder (base/last.pt, controlnet/last.pt)")
    p.add_argument("--out", required=True, help="the bundle folder to write (replaced)")
    plan = DemoPlan()  # the run's video options, as `python -m training.demo` takes them (default: the plan's)
    p.add_argument("--sync-layout", choices=SYNC_LAYOUTS, default=plan.sync_layout)
    p.add_argument("--sync-grid", type=int, default=plan.sync_grid)
    p.add_argument("--motion-gain", type=float, default=plan.motion_gain)
    p.add_argument("--sync-features", choices=SYNC_FEATURES, default=plan.sync_features)
    args = p.parse_args(argv)
    run = replace(plan, sync_layout=args.sync_layout, sync_grid=args.sync_grid, motion_gain=args.motion_gain,
                  sync_features=args.sync_features)
    steps = build(Path(args.work), Path(args.out), run.video_options())
    print(f"{args.out}: " + ", ".join(f"{stage} at step {step}" for stage, step in steps.items())
          + ("" if "base" in steps else " (no base checkpoint: the template's base)")
          + ("" if "controlnet" in steps else " (no ControlNet checkpoint: independent generation only)"))


if __name__ == "__main__":
    main()
