"""Do the demo's sync features show when on-screen events happen? (issue 12, item 1)

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/sync_probe.py --train 300 --val 100
    python benchmarks/sync_probe.py --train 200 --val 80 --per-kind --sync-grid 16 --motion-gain 32
    python benchmarks/sync_probe.py --train 200 --val 80 --per-kind --sync-grid 8 16 --sync-features motion_energy
    python benchmarks/sync_probe.py --train 200 --val 80 --per-kind --skip-layouts --sync-grid 16 \
        --sync-features motion_energy motion_energy_rgb

A linear probe (logistic regression on a token's PixelVideoEncoder sync feature and its two
neighbours) predicts whether an on-screen, sounding source has an event (contact, step, knock, strike,
flap, drop, lamp switch-on) at a token's time. Trained on train-split clips, scored by ROC AUC on
val-split clips, for each sync layout (`PixelVideoEncoderConfig.sync_layout`) and two meanings of "a
token's time":
- content: the frames the token was computed from (the two frames of its place in its segment);
- nominal: the span of the clip whose latent frames read the token after MMAudio's upsampling
  (token i of Ls: [i, i + 1) x duration / Ls). This is what the network needs.
High AUC: the features carry the timing, and a model that does not follow it has not learned to read
it. AUC near 0.5: the encoder is the bottleneck. `--sync-grid` adds rows for other sync features
(`PixelVideoEncoderConfig.sync_grid`, `motion_gain`, `sync_features`), aligned.

The per-kind probes are also scored on the val clips where another event source is on screen
("crowded"): there a probe that finds every on-screen event, not the kind's own, loses AUC. That is
the binding a caption needs: which of the movements is its source's.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.stats import mannwhitneyu

from nag_model.config import SYNC_SEGMENT, SYNC_STEP, SYNC_TOKENS_PER_SEGMENT
from nag_model.encoders.demo import SYNC_FEATURES, PixelVideoEncoder, PixelVideoEncoderConfig, sync_feature_dim
from synthfoley.splits import split_seeds
from synthfoley.world import make_clip

EVENT_KINDS = ("ball", "bird", "walker", "door", "hammer", "drip", "lamp")


def token_frames(n_frames: int) -> list[tuple[int, int]]:
    """(first, last) frame of each sync token (segments of 16 frames, stride 8, 8 tokens of 2 frames)."""
    per = SYNC_SEGMENT // SYNC_TOKENS_PER_SEGMENT
    segments = (n_frames - SYNC_SEGMENT) // SYNC_STEP + 1
    return [(s * SYNC_STEP + i * per, s * SYNC_STEP + (i + 1) * per - 1)
            for s in range(segments) for i in range(SYNC_TOKENS_PER_SEGMENT)]


def nominal_spans(n_tokens: int, duration: float) -> list[tuple[float, float]]:
    """[start, end) seconds of the latent frames that read each token after nearest-exact upsampling."""
    return [(i * duration / n_tokens, (i + 1) * duration / n_tokens) for i in range(n_tokens)]


def clip_xy(encoder: PixelVideoEncoder, clip, timing: str, kinds=EVENT_KINDS) -> tuple[np.ndarray, np.ndarray]:
    feats = encoder.encode_sync(clip.frames)[0].numpy()  # (Ls, D)
    x = np.concatenate([np.roll(feats, 1, 0), feats, np.roll(feats, -1, 0)], 1)  # (Ls, 3D): token and neighbours
    on_screen = [i for i in clip.sources if i.on_screen and i.sounding and i.kind in kinds]
    if timing == "content":
        if encoder.config.sync_layout != "segments":
            raise ValueError("content timing is defined for the segments layout only")
        frames = {f for i in on_screen for f in i.event_frames}
        y = [any(a <= f <= b for f in frames) for a, b in token_frames(len(clip.frames))]
    else:
        times = [e for i in on_screen for e in i.event_times]
        y = [any(a <= e < b for e in times) for a, b in nominal_spans(len(feats), len(clip.frames) / clip.fps)]
    return x, np.array(y, np.float32)


def dataset(encoder: PixelVideoEncoder, clips, timing: str, kinds=EVENT_KINDS) -> tuple[torch.Tensor, torch.Tensor]:
    """clip_xy of every clip, concatenated."""
    xs, ys = zip(*(clip_xy(encoder, c, timing, kinds) for c in clips))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


class CachedSync:
    """An encoder whose sync features are computed once per clip's frames: the layout rows and the per-kind
    probes read the same clips again and again."""

    def __init__(self, encoder: PixelVideoEncoder):
        self.config, self._encoder, self._feats = encoder.config, encoder, {}

    def encode_sync(self, frames: np.ndarray) -> torch.Tensor:
        if id(frames) not in self._feats:  # the clips stay in memory for the whole run, so their ids are theirs
            self._feats[id(frames)] = self._encoder.encode_sync(frames)
        return self._feats[id(frames)]


def probe_auc(data: dict) -> dict[str, tuple[int, int, float]]:
    """Fit on data["train"] = (x, y); (tokens, event tokens, ROC AUC) per split."""
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
    out = {}
    for split, (xv, yv) in data.items():
        with torch.no_grad():
            s = ((xv - mean) / std @ w + b).numpy()
        pos, neg = s[yv.numpy() > 0], s[yv.numpy() == 0]
        out[split] = (len(yv), int(yv.sum()), mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg)))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=int, default=300)
    p.add_argument("--val", type=int, default=100)
    p.add_argument("--per-kind", action="store_true",
                   help="also one probe per event kind (aligned layout, nominal time), on the clips where it is on screen")
    p.add_argument("--sync-grid", type=int, nargs="*", default=[],
                   help="also probe the aligned features with these sync grids (cells a side; committed: 8)")
    p.add_argument("--motion-gain", type=float, default=PixelVideoEncoderConfig.motion_gain,
                   help="the motion term's weight for the --sync-grid rows (default: the committed one)")
    p.add_argument("--sync-features", choices=SYNC_FEATURES, nargs="+", default=[PixelVideoEncoderConfig.sync_features],
                   help="what a sync feature is in the --sync-grid rows (motion_energy: one dimension per cell; "
                        "motion_energy_rgb: three); several: a row for each")
    p.add_argument("--skip-layouts", action="store_true", help="only the --sync-grid rows, not the three layout rows")
    args = p.parse_args(argv)
    clips = {split: [make_clip(int(s)) for s in split_seeds(split, n, 0)]
             for split, n in (("train", args.train), ("val", args.val))}
    configs = {} if args.skip_layouts else {
        ("segments", "content"): PixelVideoEncoderConfig(sync_layout="segments"),
        ("segments", "nominal"): PixelVideoEncoderConfig(sync_layout="segments"),
        ("aligned", "nominal"): PixelVideoEncoderConfig(sync_layout="aligned")}
    for features in args.sync_features:
        for grid in args.sync_grid:
            dim = sync_feature_dim(features, grid)
            what = f"motion x{args.motion_gain:g}" if dim is None else features.replace("_", " ")
            configs[(f"aligned, grid {grid}, {what}", "nominal")] = PixelVideoEncoderConfig(
                sync_layout="aligned", sync_grid=grid, motion_gain=args.motion_gain, sync_features=features,
                sync_dim=dim or PixelVideoEncoderConfig.sync_dim)
    print("| sync features | token time | val tokens | event tokens | ROC AUC, train | ROC AUC, val |")
    print("|---|---|---|---|---|---|")
    encoders = {name: CachedSync(PixelVideoEncoder(config)) for (name, _), config in configs.items()}
    for name, timing in configs:
        enc = encoders[name]
        r = probe_auc({split: dataset(enc, cs, timing) for split, cs in clips.items()})
        print(f"| {name} | {timing} | {r['val'][0]} | {r['val'][1]} | {r['train'][2]:.3f} | {r['val'][2]:.3f} |",
              flush=True)
    if args.per_kind:
        aligned = {name: enc for name, enc in encoders.items() if name.startswith("aligned")}
        print(f"\n| kind (nominal time) | val clips | val event tokens | crowded val clips | "
              f"{' | '.join(f'ROC AUC val (crowded), {n}' for n in aligned)} |")
        print("|---|---|---|---|" + "---|" * len(aligned))
        for kind in EVENT_KINDS:
            shown = {split: [c for c in cs if any(i.on_screen and i.sounding and i.kind == kind for i in c.sources)]
                     for split, cs in clips.items()}
            if not all(shown.values()):
                print(f"| {kind} | {len(shown['val'])} | | | (on screen in no clip of a split) |", flush=True)
                continue
            crowded = [c for c in shown["val"] if _crowded(c, kind)]
            splits = {**shown, **({"crowded": crowded} if crowded else {})}
            aucs = [probe_auc({split: dataset(enc, cs, "nominal", (kind,)) for split, cs in splits.items()})
                    for enc in aligned.values()]
            cells = [f"{a['val'][2]:.3f} ({a['crowded'][2]:.3f})" if crowded else f"{a['val'][2]:.3f} (-)" for a in aucs]
            print(f"| {kind} | {len(shown['val'])} | {aucs[0]['val'][1]} | {len(crowded)} | {' | '.join(cells)} |",
                  flush=True)


def _crowded(clip, kind: str) -> bool:
    """Whether a sounding event source of another kind is on screen in the clip too."""
    return any(i.on_screen and i.sounding and i.kind in EVENT_KINDS and i.kind != kind for i in clip.sources)


if __name__ == "__main__":
    main()
