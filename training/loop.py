"""One training loop for every stage and scale (the demo base, the ControlNet, the evaluators, and
later the ControlNet on real MMAudio features).

- AdamW (betas 0.9/0.95, weight decay 1e-6), linear warm-up, then x0.1 at 80% and again at 90% of
  the steps (appendix D of the NAG paper), gradient-norm clipping at 1.0.
- EMA: the power-function EMA of Karras et al. (EDM2) with sigma_rel 0.05, tracked directly with
  ema-pytorch's `KarrasEMA`. `PostHocEMA` stores snapshots so that sigma_rel can be chosen after
  training; since we always use 0.05 we track that one profile online, which is the model
  `PostHocEMA.synthesize_ema_model(sigma_rel=0.05)` approximates.
- Determinism: the batch and the noise of step s on rank r come from generators seeded with
  (seed, s, r), so a run resumed from its checkpoint takes exactly the steps an uninterrupted run
  takes.
- One process, or DDP under torchrun (gloo on CPU, nccl on GPU): each rank draws its share of the
  global batch; gradients are averaged by DistributedDataParallel.
- A checkpoint (`last.pt`: model, optimizer, scheduler, EMA, loss history) every
  `checkpoint_every` steps and at the end; `train` resumes from it when it exists.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import torch
import torch.distributed as dist
from ema_pytorch import KarrasEMA
from torch import nn
from tqdm.auto import tqdm


class Objective(Protocol):
    """An nn.Module whose forward(batch, generator) returns the scalar loss; `trainable` is what the
    optimizer and the EMA see (the frozen parts of the objective stay out of both)."""

    trainable: nn.Module

    def __call__(self, batch: dict, generator: torch.Generator) -> torch.Tensor: ...


class BatchSource(Protocol):
    """Draws a batch (a dict of tensors) of the given size with the given generator."""

    def __call__(self, batch_size: int, generator: torch.Generator) -> dict: ...


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch_size: int = 16  # global batch: split over the DDP ranks
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 1e-6
    warmup_steps: int = 100
    lr_drops: tuple[float, ...] = (0.8, 0.9)  # x0.1 at each of these fractions of the steps
    clip_grad: float = 1.0
    ema_sigma_rel: float = 0.05
    checkpoint_every: int = 100
    seed: int = 0
    log_every: int = 10


@dataclass
class TrainResult:
    model: nn.Module  # the EMA weights (a copy of the trainable module)
    losses: list[float] = field(default_factory=list)  # mean loss over ranks, per step
    steps: int = 0
    seconds: float = 0.0  # training time over all invocations (checkpoints carry it)
    resumed_from: int = 0

    def summary(self, window: int = 50) -> dict:
        tail = self.losses[-window:]
        head = self.losses[:window]
        return {"steps": self.steps, "seconds": round(self.seconds, 1), "resumed_from": self.resumed_from,
                "loss_first": round(sum(head) / max(len(head), 1), 5), "loss_last": round(sum(tail) / max(len(tail), 1), 5)}


def lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up over warmup_steps, then x0.1 at each fraction in lr_drops (appendix D)."""
    f = min(1.0, (step + 1) / max(config.warmup_steps, 1))
    for frac in config.lr_drops:
        if step >= math.floor(frac * config.steps):
            f *= 0.1
    return f


def distributed() -> tuple[int, int]:
    """(rank, world size); initialises the gloo/nccl process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def step_generator(seed: int, step: int, rank: int, stream: int) -> torch.Generator:
    """The generator of one (step, rank, stream): independent of where training resumed."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 131 + rank) * 7 + stream)


def train(objective: nn.Module, batches: BatchSource, config: TrainConfig, checkpoint_dir: str | Path | None, *,
          desc: str = "train", progress: bool = True, stop_after: int | None = None) -> TrainResult:
    """Train `objective.trainable` for config.steps steps (resuming from `checkpoint_dir/last.pt`).

    stop_after: stop (with a checkpoint) once this many steps are done, as if interrupted.
    Returns the EMA model and the loss history; in DDP every rank returns the same result.
    """
    rank, world = distributed()
    if config.batch_size % world:
        raise ValueError(f"batch size {config.batch_size} does not split over {world} ranks")
    module = objective.trainable
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    ema = KarrasEMA(module, sigma_rel=config.ema_sigma_rel, update_every=1)
    losses: list[float] = []
    start, prior_seconds = 0, 0.0
    ckpt = Path(checkpoint_dir) / "last.pt" if checkpoint_dir is not None else None
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if state["config"] != asdict(config):
            raise ValueError(f"{ckpt} was written with another TrainConfig: {state['config']} vs {asdict(config)}")
        module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        ema.load_state_dict(state["ema"])
        losses, start, prior_seconds = state["losses"], state["step"], state.get("seconds", 0.0)
    runner = objective
    if world > 1:
        runner = nn.parallel.DistributedDataParallel(objective, find_unused_parameters=True)
    module.train()
    per_rank = config.batch_size // world
    end = config.steps if stop_after is None else min(config.steps, stop_after)
    bar = tqdm(total=config.steps, initial=start, desc=desc, disable=not progress or rank != 0, mininterval=2)
    t0 = time.time()

    def save(step: int) -> None:
        if ckpt is None or rank != 0:
            return
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"step": step, "config": asdict(config), "model": module.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "ema": ema.state_dict(), "losses": losses, "seconds": prior_seconds + time.time() - t0}, tmp)
        os.replace(tmp, ckpt)

    for step in range(start, end):
        batch = batches(per_rank, step_generator(config.seed, step, rank, 0))
        loss = runner(batch, step_generator(config.seed, step, rank, 1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.clip_grad)
        optimizer.step()
        scheduler.step()
        ema.update()
        value = loss.detach().clone()
        if world > 1:
            dist.all_reduce(value)
            value /= world
        losses.append(float(value))
        bar.update()
        if (step + 1) % config.log_every == 0:
            bar.set_postfix(loss=f"{sum(losses[-config.log_every:]) / config.log_every:.4f}",
                            lr=f"{scheduler.get_last_lr()[0]:.2e}")
        if (step + 1) % config.checkpoint_every == 0 and step + 1 < end:
            save(step + 1)
    save(end)
    bar.close()
    if world > 1:
        dist.barrier()
    return TrainResult(ema.ema_model.eval(), losses, end, prior_seconds + time.time() - t0, start)


EMA_PREFIX = "ema_model."  # ema-pytorch's KarrasEMA keeps the averaged module under this name


def ema_weights(checkpoint: str | Path) -> tuple[int, dict[str, torch.Tensor]]:
    """(step, the averaged module's state dict) of a checkpoint that `train` wrote."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    return state["step"], {k[len(EMA_PREFIX):]: v for k, v in state["ema"].items() if k.startswith(EMA_PREFIX)}
