"""Time per sampling step of CFG and NAG with small_16k-shaped random weights on this machine.

    python benchmarks/nag_step_time.py [--batch 1 8] [--repeats 5] [--ffn-kernel 3]

Prints a table (median seconds per Euler step) and the NAG/CFG ratio. NAG evaluates three
velocity branches plus a ControlNet pass; CFG two branches.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from nag_model.controlnet import AudioControlNet, ControlNetConfig
from nag_model.guidance import ClassifierFreeGuidance, ConditionSet, NegativeAudioGuidance
from nag_model.settings import DEFAULTS
from nag_model.network import build_mmaudio
from nag_model.velocity import GuidedVelocity


def conditions(base, controlnet, batch):
    c, s = base.config, base.seq
    clip, sync = torch.randn(batch, s.clip, c.clip_dim), torch.randn(batch, s.sync, c.sync_dim)
    full = base.preprocess_conditions(clip, sync, torch.randn(batch, c.text_seq_len, c.text_dim))
    video_only = base.preprocess_conditions(clip, sync, base.empty_string_feat[None].expand(batch, -1, -1))
    ref = controlnet.preprocess_reference(torch.randn(batch, s.latent, c.latent_dim))
    return ConditionSet(full=full, empty=base.get_empty_conditions(batch), video_only=video_only, reference=ref)


def time_steps(velocities: dict, x, repeats: int) -> dict[str, float]:
    """Median seconds per Euler step for each velocity; the methods alternate so load drift hits both."""
    t = torch.tensor(0.5)
    for v in velocities.values():
        v(t, x)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in velocities}
    for _ in range(repeats):
        for name, v in velocities.items():
            start = time.perf_counter()
            _ = x + 0.04 * v(t, x)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ffn-kernel", type=int, default=None, help="ControlNet FFN kernel (default: the config's)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = build_mmaudio("small_16k").eval()
    with torch.no_grad():
        base.latent_mean.zero_()
        base.latent_std.fill_(1)
    cn_config = ControlNetConfig.for_base(base.config, **({} if args.ffn_kernel is None else {"ffn_kernel_size": args.ffn_kernel}))
    controlnet = AudioControlNet.from_base(base, cn_config).eval()
    print(f"torch {torch.__version__}, {args.threads} threads; small_16k {sum(p.numel() for p in base.parameters()) / 1e6:.2f}M "
          f"params; ControlNet {sum(p.numel() for p in controlnet.parameters()) / 1e6:.2f}M params "
          f"({cn_config.num_blocks} blocks, ffn kernel {cn_config.ffn_kernel_size})")
    print(f"{'batch':>5} | {'CFG s/step':>10} | {'NAG s/step':>10} | {'NAG/CFG':>7}")
    for batch in args.batch:
        cs = conditions(base, controlnet, batch)
        x = torch.randn(batch, base.seq.latent, base.config.latent_dim)
        med = time_steps({"cfg": GuidedVelocity(base, ClassifierFreeGuidance(DEFAULTS.alpha), cs),
                          "nag": GuidedVelocity(base, NegativeAudioGuidance(DEFAULTS.alpha, DEFAULTS.beta), cs,
                                                controlnet=controlnet)},
                         x, args.repeats)
        cfg, nag = med["cfg"], med["nag"]
        print(f"{batch:>5} | {cfg:>10.3f} | {nag:>10.3f} | {nag / cfg:>7.2f}")


if __name__ == "__main__":
    main()
