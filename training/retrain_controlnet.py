"""Retrain only a demo bundle's ControlNet, on its frozen base, by the plan's own ControlNet stage.

    python -m training.retrain_controlnet --bundle nag_model/weights/demo --out B --work W --controlnet-steps 6000 --threads 1

The data (the plan's train and val clips, through the bundle's own encoders), the ControlNet stage
(`training.demo.train_controlnet`) and its held-out losses are those of `python -m training.demo`; only the
base stage is skipped: the bundle's base is the one the ControlNet is trained on. The bundle written to
`--out` is the input bundle with the new ControlNet (`training.checkpoint_bundle`), and its `training.json`
records the retrain under `controlnet_retrain`. An interrupted run continues from `--work`'s checkpoint.
A 6000-step ControlNet on the committed base was trained by this path (not committed: docs/nag_effect.md,
"A longer ControlNet").
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from nag_model.bundle import DEMO_BUNDLE, load_bundle
from nag_model.encoders.demo import PixelVideoEncoderConfig
from training import checkpoint_bundle
from training.demo import DemoPlan, encoders, load_or_prepare, train_controlnet, validation_losses


def plan_for(video: PixelVideoEncoderConfig, **overrides) -> DemoPlan:
    """The default plan with a bundle's video-encoder options (the data must be encoded as the base reads it)."""
    return replace(DemoPlan(), sync_layout=video.sync_layout, sync_grid=video.sync_grid or video.grid,
                   motion_gain=video.motion_gain, sync_features=video.sync_features, **overrides)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default=DEMO_BUNDLE, help="the bundle whose base the ControlNet is trained on")
    p.add_argument("--out", required=True, help="the bundle folder to write (replaced; not --bundle itself)")
    p.add_argument("--work", required=True, help="cached data and the ControlNet's checkpoints")
    p.add_argument("--seed", type=int, default=0)
    plan = DemoPlan()
    p.add_argument("--controlnet-steps", type=int, default=plan.controlnet_steps)
    p.add_argument("--train-clips", type=int, default=plan.train_clips)
    p.add_argument("--val-clips", type=int, default=plan.val_clips)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    bundle, out, work = Path(args.bundle), Path(args.out), Path(args.work)
    if out.resolve() == bundle.resolve():
        raise SystemExit("--out must not be --bundle: the bundle is copied to --out with the new ControlNet")
    if args.threads:
        torch.set_num_threads(args.threads)
    source = load_bundle(str(bundle))
    plan = plan_for(source.video_encoder.config, seed=args.seed, controlnet_steps=args.controlnet_steps,
                    train_clips=args.train_clips, val_clips=args.val_clips)
    enc = encoders(plan.seed, **plan.video_options())
    data = load_or_prepare(work / f"train-{plan.train_clips}.pt", plan.train_clips, "train", plan.seed, enc, 0)
    val = load_or_prepare(work / f"val-{plan.val_clips}.pt", plan.val_clips, "val", plan.seed, enc, 0)
    base = source.base
    t = time.time()
    controlnet, result = train_controlnet(base, data, plan, work)
    seconds = round(time.time() - t, 1)
    metrics = validation_losses(base, controlnet, val, plan.seed)
    checkpoint_bundle.build(work, out, plan.video_options(), template=bundle)
    record = json.loads((out / "training.json").read_text()) if (out / "training.json").exists() else {}
    record["controlnet_retrain"] = {"command": "python -m training.retrain_controlnet " + " ".join(
        argv if argv is not None else sys.argv[1:]), "plan": {"seed": plan.seed, "controlnet_steps": plan.controlnet_steps,
        "train_clips": plan.train_clips, "val_clips": plan.val_clips}, "seconds": seconds,
        "training": result.summary(), "metrics": metrics, "torch": torch.__version__}
    (out / "training.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record["controlnet_retrain"], indent=2))


if __name__ == "__main__":
    main()
