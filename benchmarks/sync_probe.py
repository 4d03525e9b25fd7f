"""Do the demo's sync features show when on-screen events happen? (issue 12, item 1)

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/sync_probe.py --train 300 --val 100

A linear probe (logistic regression on a token's PixelVideoEncoder sync feature and its two
neighbours) predicts whether an on-screen, sounding source has an event (contact, step, knock, strike,
flap, drop, lamp switch-on) in the two frames a sync token covers. Trained on train-split clips,
scored by ROC AUC on val-split clips. High AUC: the features carry the timing, and a model that does
not follow it has not learned to read it. AUC near 0.5: the encoder is the bottleneck.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.stats import mannwhitneyu

from nag_model.config import SYNC_SEGMENT, SYNC_STEP, SYNC_TOKENS_PER_SEGMENT
from nag_model.encoders.demo import PixelVideoEncoder
from synthfoley.splits import split_seeds
from synthfoley.world import make_clip

EVENT_KINDS = ("ball", "bird", "walker", "door", "hammer", "drip", "lamp")


def token_frames(n_frames: int) -> list[tuple[int, int]]:
    """(first, last) frame of each sync token (segments of 16 frames, stride 8, 8 tokens of 2 frames)."""
    per = SYNC_SEGMENT // SYNC_TOKENS_PER_SEGMENT
    segments = (n_frames - SYNC_SEGMENT) // SYNC_STEP + 1
    return [(s * SYNC_STEP + i * per, s * SYNC_STEP + (i + 1) * per - 1)
            for s in range(segments) for i in range(SYNC_TOKENS_PER_SEGMENT)]


def clip_xy(encoder: PixelVideoEncoder, seed: int) -> tuple[np.ndarray, np.ndarray]:
    clip = make_clip(seed)
    feats = encoder.encode_sync(clip.frames)[0].numpy()  # (T, D)
    x = np.concatenate([np.roll(feats, 1, 0), feats, np.roll(feats, -1, 0)], 1)  # (T, 3D): token and neighbours
    frames = {f for i in clip.sources if i.on_screen and i.sounding and i.kind in EVENT_KINDS for f in i.event_frames}
    y = np.array([any(a <= f <= b for f in frames) for a, b in token_frames(len(clip.frames))], np.float32)
    return x, y


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=int, default=300)
    p.add_argument("--val", type=int, default=100)
    args = p.parse_args(argv)
    enc = PixelVideoEncoder()
    data = {}
    for split, n in (("train", args.train), ("val", args.val)):
        xs, ys = zip(*(clip_xy(enc, int(s)) for s in split_seeds(split, n, 0)))
        data[split] = (torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)))
    x, y = data["train"]
    mean, std = x.mean(0), x.std(0) + 1e-6
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits((x - mean) / std @ w + b, y) + 1e-3 * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    for split, (xv, yv) in data.items():
        with torch.no_grad():
            s = ((xv - mean) / std @ w + b).numpy()
        pos, neg = s[yv.numpy() > 0], s[yv.numpy() == 0]
        auc = mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg))
        print(f"{split}: tokens {len(yv)}, event tokens {int(yv.sum())} ({yv.mean():.3f}), ROC AUC {auc:.3f}")


if __name__ == "__main__":
    main()
