"""Retrain the embedded demo model from scratch, reproducibly from a seed.

    python -m training.demo --out nag_model/weights/demo --seed 0            # the committed weights (~2 h, 2 cores)
    python -m training.demo --out /tmp/demo --budget-minutes 5               # a quick end-to-end run

Stages: data (SynthFoley clips -> cached latents and features), base (MMAudio demo_16k), ControlNet
(base frozen, 4-s halves of one clip), evaluators (audio tagger + text tower, video tagger), then
the bundle and its model cards. Step counts follow from --budget-minutes through a fixed table (so
a budget always means the same run), and each can be overridden. Run under
`torchrun --nproc-per-node 2 -m training.demo ...` for DDP (gloo on CPU); rank 0 writes the files.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from nag_model.bundle import FoleyBundle, save_bundle
from nag_model.codecs.demo_mel import MelCodec
from nag_model.config import PRESETS, MMAudioConfig
from nag_model.controlnet import AudioControlNet
from nag_model.demo.evaluators import AudioTagger, EvaluatorConfig, VideoTagger, save_evaluators
from nag_model.encoders.demo import (SYNC_FEATURES, SYNC_LAYOUTS, HashTextEncoder, HashTextEncoderConfig,
                                     PixelVideoEncoder, PixelVideoEncoderConfig, sync_feature_dim)
from nag_model.network import MMAudio
from nag_model.losses import freeze
from synthfoley.captions import ADVERBS, LOUD_DB, PHRASES, SOFT_DB
from training.data import KIND_NAMES, FoleyData, latent_stats, prepare_data
from training.loop import TrainConfig, TrainResult, distributed, step_generator, train
from training.objectives import (BaseBatches, BaseObjective, ControlNetBatches, ControlNetObjective, TaggerBatches,
                                 TaggerObjective, VideoTaggerBatches, VideoTaggerObjective)

PRESET = "demo_16k"


BUDGET_MINUTES = 120.0  # the budget the default plan is sized for (DemoPlan.for_budget)


@dataclass(frozen=True)
class DemoPlan:
    """Everything that determines the trained weights."""

    seed: int = 0
    train_clips: int = 1000
    val_clips: int = 100
    base_steps: int = 7000  # the loss still falls at 3000 (val 0.108 there, 0.094 at 7000)
    controlnet_steps: int = 2000
    evaluator_steps: int = 3000  # the video tagger needs many passes over the clips (measured: F1 0.04 at 400 steps)
    batch_size: int = 16
    base_lr: float = 1e-3  # the paper's 1e-4 is for 600M-parameter networks; the 2M-parameter demo needs more
    controlnet_lr: float = 1e-3
    evaluator_lr: float = 2e-3
    # share of the base's stem rows that keep their clip's video (BaseBatches). Every one: these rows alone teach
    # the binding "this caption, this video, only this source" (docs/nag_effect.md, v9; 0.5 until v8)
    stem_video_fraction: float = 1.0
    caption_mix_fraction: float = 0.25  # share of the base's mix rows captioned by one of their sources (BaseBatches)
    onset_weight: float = 0.0  # extra loss weight of the base on sound onsets (BaseObjective); 0: uniform
    sync_layout: str = "aligned"  # PixelVideoEncoderConfig.sync_layout: where each sync token's frames come from
    sync_grid: int = 16  # PixelVideoEncoderConfig.sync_grid: cells a side of the sync features' pooled frames
    motion_gain: float = 4.0  # PixelVideoEncoderConfig.motion_gain: weight of the sync features' motion term
    sync_features: str = "motion_energy"  # PixelVideoEncoderConfig.sync_features: "motion_energy*" set the sync_dim

    def network_config(self) -> MMAudioConfig:
        """The demo preset, with the sync_dim of unprojected sync features (one or three per cell)."""
        cfg = PRESETS[PRESET]
        dim = sync_feature_dim(self.sync_features, self.sync_grid)
        return cfg if dim is None else replace(cfg, sync_dim=dim)

    def video_options(self) -> dict:
        """The PixelVideoEncoderConfig options the plan sets."""
        return {"sync_layout": self.sync_layout, "sync_grid": self.sync_grid, "motion_gain": self.motion_gain,
                "sync_features": self.sync_features, "sync_dim": self.network_config().sync_dim}

    @classmethod
    def for_budget(cls, minutes: float, seed: int = 0) -> "DemoPlan":
        """Step counts for a budget, scaled linearly from the default plan at 120 minutes (the default plan,
        which trained the committed weights, took 116 min on 2 CPU cores: 88 s of data, 0.76 s per base step
        and 0.37 s per ControlNet step at batch 16, 0.24 s per audio-tagger and 0.03 s per video-tagger step
        at batch 64)."""
        f = min(max(minutes / BUDGET_MINUTES, 0.01), 1.0) if minutes <= BUDGET_MINUTES else minutes / BUDGET_MINUTES
        d = cls()
        return cls(seed=seed, train_clips=max(int(d.train_clips * min(f, 1.0)), 48),
                   val_clips=max(int(d.val_clips * min(f, 1.0)), 24), base_steps=max(int(d.base_steps * f), 20),
                   controlnet_steps=max(int(d.controlnet_steps * f), 10),
                   evaluator_steps=max(int(d.evaluator_steps * f), 30))


def encoders(seed: int, **video) -> tuple[HashTextEncoder, PixelVideoEncoder, MelCodec]:
    """The demo's text encoder, video encoder (`video`: PixelVideoEncoderConfig options) and codec."""
    cfg = PRESETS[PRESET]
    return (HashTextEncoder(HashTextEncoderConfig(dim=cfg.text_dim, seq_len=cfg.text_seq_len, seed=seed)),
            PixelVideoEncoder(PixelVideoEncoderConfig(clip_dim=cfg.clip_dim, seed=seed, **{"sync_dim": cfg.sync_dim, **video})),
            MelCodec())


def load_or_prepare(path: Path, n: int, split: str, seed: int, enc, rank: int) -> FoleyData:
    """Cached data (rank 0 renders, the other ranks wait and read)."""
    text, video, codec = enc
    if rank == 0 and not path.exists():
        data = prepare_data(n, split=split, seed=seed, text_encoder=text, video_encoder=video, codec=codec)
        path.parent.mkdir(parents=True, exist_ok=True)
        data.save(str(path) + ".tmp")
        Path(str(path) + ".tmp").replace(path)
    if dist.is_initialized():
        dist.barrier()
    return FoleyData.load(str(path))


def train_base(data: FoleyData, plan: DemoPlan, text: HashTextEncoder, work: Path) -> tuple[MMAudio, TrainResult]:
    torch.manual_seed(plan.seed)
    config = plan.network_config()
    net = MMAudio(config, config.seq_lengths(8.0))
    mean, std = latent_stats(data)
    with torch.no_grad():
        net.latent_mean.copy_(mean)
        net.latent_std.copy_(std)
        net.empty_string_feat.copy_(text([""])[0])
    cfg = TrainConfig(steps=plan.base_steps, batch_size=plan.batch_size, lr=plan.base_lr, seed=plan.seed,
                      warmup_steps=max(plan.base_steps // 20, 1), checkpoint_every=100)
    batches = BaseBatches(data, stem_video_fraction=plan.stem_video_fraction,
                          caption_mix_fraction=plan.caption_mix_fraction)
    result = train(BaseObjective(net, onset_weight=plan.onset_weight), batches, cfg, work / "base", desc="base")
    return result.model.eval(), result


def train_controlnet(base: MMAudio, data: FoleyData, plan: DemoPlan, work: Path) -> tuple[AudioControlNet, TrainResult]:
    freeze(base)
    base.set_duration(4.0)
    torch.manual_seed(plan.seed + 1)
    controlnet = AudioControlNet.from_base(base)
    cfg = TrainConfig(steps=plan.controlnet_steps, batch_size=plan.batch_size, lr=plan.controlnet_lr, seed=plan.seed + 1,
                      warmup_steps=max(plan.controlnet_steps // 20, 1), checkpoint_every=100)
    result = train(ControlNetObjective(base, controlnet), ControlNetBatches(data), cfg, work / "controlnet",
                   desc="controlnet")
    base.set_duration(8.0)
    return result.model.eval(), result


def evaluator_config(text: HashTextEncoder) -> EvaluatorConfig:
    cfg = PRESETS[PRESET]
    return EvaluatorConfig(labels=KIND_NAMES, n_mels=cfg.latent_dim, text_dim=cfg.text_dim, clip_dim=cfg.clip_dim,
                           phrases={k: PHRASES[k][0] for k in KIND_NAMES},
                           adverbs={k: v[0] for k, v in ADVERBS.items()}, loud_db=LOUD_DB, soft_db=SOFT_DB)


def train_evaluators(data: FoleyData, plan: DemoPlan, text: HashTextEncoder, work: Path):
    torch.manual_seed(plan.seed + 2)
    config = evaluator_config(text)
    audio, video = AudioTagger(config), VideoTagger(config)
    common = dict(steps=plan.evaluator_steps, batch_size=64, lr=plan.evaluator_lr, seed=plan.seed + 2,
                  warmup_steps=max(plan.evaluator_steps // 20, 1), checkpoint_every=200)
    ra = train(TaggerObjective(audio), TaggerBatches(data), TrainConfig(**common), work / "audio_tagger", desc="tagger")
    rv = train(VideoTaggerObjective(video), VideoTaggerBatches(data), TrainConfig(**common), work / "video_tagger",
               desc="video tagger")
    return ra.model.eval(), rv.model.eval(), ra, rv


@torch.no_grad()
def validation_losses(base: MMAudio, controlnet: AudioControlNet, val: FoleyData, seed: int) -> dict:
    """Flow-matching losses on held-out clips with fixed noise (64 samples each), base with and without
    dropout-free conditions and the ControlNet with its reference vs a reference from another clip."""
    g = step_generator(seed, 0, 0, 7)
    base_batch = BaseBatches(val)(64, g)
    bo = BaseObjective(base, p_drop=0.0)
    out = {"base_val_loss": float(bo(base_batch, step_generator(seed, 0, 0, 8)))}
    base.set_duration(4.0)
    co = ControlNetObjective(base, controlnet).eval()
    cb = ControlNetBatches(val)(64, step_generator(seed, 0, 0, 9))
    out["controlnet_val_loss"] = float(co(cb, step_generator(seed, 0, 0, 10)))
    shuffled = {**cb, "reference": cb["reference"].roll(1, 0)}
    out["controlnet_val_loss_wrong_reference"] = float(co(shuffled, step_generator(seed, 0, 0, 10)))
    zero = AudioControlNet.from_base(base).eval()
    out["base_only_val_loss_4s_empty_text"] = float(ControlNetObjective(base, zero)(cb, step_generator(seed, 0, 0, 10)))
    base.set_duration(8.0)
    return {k: round(v, 5) for k, v in out.items()}


@torch.no_grad()
def evaluator_metrics(audio: AudioTagger, video: VideoTagger, val: FoleyData) -> dict:
    """Held-out accuracy of the evaluators (on the val split's cached latents and features)."""
    k = len(KIND_NAMES)
    stem_p = torch.sigmoid(audio.head(audio.embed_log_mel(val.stems)))
    mix_p = torch.sigmoid(audio.head(audio.embed_log_mel(val.mix)))
    mix_pred = mix_p >= 0.5
    tp = (mix_pred & (val.sounding > 0)).sum().item()
    f1 = 2 * tp / max(mix_pred.sum().item() + val.sounding.sum().item(), 1)
    kinds = val.caption_kinds()
    caption_rows = [i for i, c in enumerate(val.captions) if c]
    text_p = audio.head(audio.embed_text_features(val.text[caption_rows])).argmax(-1)
    a = F.normalize(audio.embed_log_mel(val.stems), dim=-1)
    protos = F.normalize(audio.embed_text_features(val.text[val.stem_text]), dim=-1)
    retrieval = (a @ protos.T).argmax(-1)  # text-audio: does a stem's best caption name its kind?
    v_logits, v_gain = video(val.clip_f)
    v_pred = torch.sigmoid(v_logits) >= 0.5
    vis_heard = (val.sounding > 0) & (val.visible > 0)
    v_tp = (v_pred & (val.sounding > 0)).sum().item()
    return {
        "audio_tagger_stem_top1": round((stem_p.argmax(-1) == val.stem_kind).float().mean().item(), 4),
        "audio_tagger_mix_micro_f1": round(f1, 4),
        "audio_tagger_mix_exact_match": round((mix_pred == (val.sounding > 0)).all(-1).float().mean().item(), 4),
        "text_tower_caption_top1": round((text_p == kinds[caption_rows]).float().mean().item(), 4),
        "text_audio_retrieval_kind_top1": round((val.stem_kind[retrieval] == val.stem_kind).float().mean().item(), 4),
        "video_tagger_heard_micro_f1": round(2 * v_tp / max(v_pred.sum().item() + val.sounding.sum().item(), 1), 4),
        "video_tagger_recall_visible_heard": round(((v_pred & vis_heard).sum() / vis_heard.sum().clamp(min=1)).item(), 4),
        "video_tagger_gain_mae_db": round(((v_gain - val.gain_db).abs() * val.sounding).sum().item() / val.sounding.sum().item(), 2),
        "num_labels": k,
    }


def write_cards(out: Path, plan: DemoPlan, results: dict, metrics: dict, timings: dict, command: str) -> None:
    card = {"plan": asdict(plan), "command": command, "timings_s": timings, "metrics": metrics,
            "training": {k: v.summary() for k, v in results.items()},
            "data": {"world": "synthfoley", "train_split": "train", "val_split": "val", "data_seed": plan.seed,
                     "train_clips": plan.train_clips, "val_clips": plan.val_clips, "mix_lufs": -20.0},
            "hardware": "CPU", "torch": torch.__version__}
    (out / "training.json").write_text(json.dumps(card, indent=2))
    lines = ["# Demo model card", "", f"Trained from scratch by `{command}`.", "",
             "Everything below was measured by that run (see `training.json` for the full record).", "",
             "| stage | steps | seconds | resumed from step | loss (first 50) | loss (last 50) |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        s = r.summary()
        lines.append(f"| {name} | {s['steps']} | {s['seconds']} | {s['resumed_from']} | {s['loss_first']} | {s['loss_last']} |")
    lines += ["", "| metric | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in metrics.items()]
    lines += ["", f"Data: {plan.train_clips} SynthFoley train clips, {plan.val_clips} val clips, seed {plan.seed}.",
              "Intended use: the embedded default of the product and NAG-effect checks in the SynthFoley world; "
              "it knows only the 12 SynthFoley kinds."]
    (out / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")


COUNT_OVERRIDES = ("train-clips", "val-clips", "base-steps", "controlnet-steps", "evaluator-steps")
INT_OVERRIDES = {
    "sync-grid": "cells a side of the frames the demo sync features pool (default: the plan's)",
}
FLOAT_OVERRIDES = {
    "stem-video-fraction": "share of the base's stem rows trained with their clip's video (default: the plan's)",
    "caption-mix-fraction": "share of the base's mix rows trained with one source's caption instead of the clip's "
                            "label (default: the plan's)",
    "onset-weight": "extra weight of the base's loss on sound onsets: a frame rising by 30 dB or more weighs "
                    "1 + this before each sample's weights are rescaled to mean 1 (default: the plan's)",
    "motion-gain": "weight of the demo sync features' motion term, the frame-to-frame change (default: the plan's)",
}
CHOICE_OVERRIDES = {
    "sync-layout": (SYNC_LAYOUTS, "where each demo sync token's frames come from: Synchformer's segments, or aligned "
                                  "with the time MMAudio's upsampling gives the token (default: the plan's)"),
    "sync-features": (SYNC_FEATURES, "what a demo sync feature is: a random projection of the pooled frame and its "
                                     "motion, or each cell's motion energy, the mean over RGB or each channel's (the "
                                     "network's sync_dim becomes the sync grid squared, or three times that; "
                                     "default: the plan's)"),
}
# the plan's fields a command line may set
OVERRIDES = COUNT_OVERRIDES + tuple(INT_OVERRIDES) + tuple(FLOAT_OVERRIDES) + tuple(CHOICE_OVERRIDES)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="nag_model/weights/demo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget-minutes", type=float, default=BUDGET_MINUTES)
    p.add_argument("--work", default=None, help="cache and checkpoints (default: .cache/demo-<hash of the plan>)")
    for name in COUNT_OVERRIDES:
        p.add_argument(f"--{name}", type=int, default=None)
    for name, meaning in INT_OVERRIDES.items():
        p.add_argument(f"--{name}", type=int, default=None, help=meaning)
    for name, meaning in FLOAT_OVERRIDES.items():
        p.add_argument(f"--{name}", type=float, default=None, help=meaning)
    for name, (choices, meaning) in CHOICE_OVERRIDES.items():
        p.add_argument(f"--{name}", choices=choices, default=None, help=meaning)
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args(argv)


def plan_from_args(args: argparse.Namespace) -> DemoPlan:
    """The budget's plan with the explicit overrides applied."""
    plan = DemoPlan.for_budget(args.budget_minutes, args.seed)
    fields = {k.replace("-", "_") for k in OVERRIDES}
    return replace(plan, **{k: getattr(args, k) for k in sorted(fields) if getattr(args, k) is not None})


def plan_id(plan: DemoPlan) -> str:
    """The plan's cache folder name: resume never mixes plans."""
    return hashlib.sha256(json.dumps(asdict(plan), sort_keys=True).encode()).hexdigest()[:10]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    plan = plan_from_args(args)
    rank, world = distributed()
    work = Path(args.work or f".cache/demo-{plan_id(plan)}")
    out = Path(args.out)
    command = "python -m training.demo " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
    enc = encoders(args.seed, **plan.video_options())
    timings: dict[str, float] = {}

    t = time.time()
    data = load_or_prepare(work / f"train-{plan.train_clips}.pt", plan.train_clips, "train", plan.seed, enc, rank)
    val = load_or_prepare(work / f"val-{plan.val_clips}.pt", plan.val_clips, "val", plan.seed, enc, rank)
    timings["data"] = round(time.time() - t, 1)

    t = time.time()
    base, r_base = train_base(data, plan, enc[0], work)
    timings["base"] = round(time.time() - t, 1)
    t = time.time()
    controlnet, r_cn = train_controlnet(base, data, plan, work)
    timings["controlnet"] = round(time.time() - t, 1)
    t = time.time()
    audio, video, r_a, r_v = train_evaluators(data, plan, enc[0], work)
    timings["evaluators"] = round(time.time() - t, 1)
    if rank != 0:
        return
    t = time.time()
    metrics = {**validation_losses(base, controlnet, val, plan.seed), **evaluator_metrics(audio, video, val)}
    timings["evaluation"] = round(time.time() - t, 1)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    bundle = FoleyBundle("demo", base, enc[2], enc[0], enc[1], controlnet,
                         card={"kind": "demo", "preset": PRESET, "seed": plan.seed, "evaluators": "evaluators"})
    save_bundle(bundle, str(out))
    save_evaluators(audio, video, str(out / "evaluators"), metadata={"training": {"audio": r_a.summary(), "video": r_v.summary()}})
    write_cards(out, plan, {"base": r_base, "controlnet": r_cn, "audio_tagger": r_a, "video_tagger": r_v},
                metrics, timings, command)
    print(json.dumps({"timings_s": timings, "metrics": metrics}, indent=2))


if __name__ == "__main__":
    main()
