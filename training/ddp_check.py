"""A tiny DDP run of the shared loop, for tests and for checking a torchrun setup:

    torchrun --nproc-per-node 2 -m training.ddp_check --out /tmp/ddp

Each rank trains the `tiny` MMAudio preset on a toy batch source for a few steps (gloo on CPU) and
writes its final weights and loss history to `<out>/rank<r>.pt`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.distributed as dist

from nag_model.network import build_mmaudio
from training.loop import TrainConfig, distributed, train
from training.objectives import BaseObjective


class ToyBatches:
    """Eight fixed random clips with the tiny preset's shapes; batches drawn with the loop's generator."""

    def __init__(self, net, n: int = 8, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        c, s = net.config, net.seq
        self.x1 = torch.randn(n, s.latent, c.latent_dim, generator=g) * 0.2 + 2.0
        self.clip = torch.randn(n, s.clip, c.clip_dim, generator=g)
        self.sync = torch.randn(n, s.sync, c.sync_dim, generator=g)
        self.text = torch.randn(n, c.text_seq_len, c.text_dim, generator=g)

    def __call__(self, batch_size: int, generator: torch.Generator) -> dict:
        i = torch.randint(len(self.x1), (batch_size,), generator=generator)
        return {"x1": self.x1[i], "clip_f": self.clip[i], "sync_f": self.sync[i], "text_f": self.text[i],
                "reference": self.x1[i].flip(1), "video_exist": torch.arange(batch_size) % 2 == 0}


def tiny_base(seed: int = 0):
    torch.manual_seed(seed)
    net = build_mmaudio("tiny", duration=1.0)
    with torch.no_grad():
        net.latent_mean.zero_()
        net.latent_std.fill_(1)
    return net


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=6)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rank, world = distributed()
    net = tiny_base()
    cfg = TrainConfig(steps=args.steps, batch_size=4, lr=3e-3, warmup_steps=2, checkpoint_every=3)
    result = train(BaseObjective(net), ToyBatches(net), cfg, Path(args.out) / "ckpt", progress=False)
    torch.save({"world": world, "online": net.state_dict(), "ema": result.model.state_dict(), "losses": result.losses},
               Path(args.out) / f"rank{rank}.pt")
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
