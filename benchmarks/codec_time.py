"""Time of MMAudio's codec stages for one 8-s clip with full-size random weights on this machine.

    python benchmarks/codec_time.py [--modes 16k 44k] [--repeats 1] [--threads N] [--device cpu]

Prints seconds per stage: mel converter, VAE encode (mel -> posterior), VAE decode (latent -> mel)
and the vocoder (mel -> waveform), and the 1-minute load average before and after, which the
numbers depend on when the machine is shared.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from nag_model.codecs.mmaudio import MMAudioCodec, MMAudioCodecConfig

CLIP_SECONDS = 8.0


def timed(fn, repeats: int, device: torch.device) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` runs (after one untimed warm-up on a GPU)."""
    if device.type == "cuda":
        fn()
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=["16k", "44k"], choices=["16k", "44k"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, load average before {os.getloadavg()[0]:.2f}")
    print(f"{'mode':5s} {'stage':12s} {'seconds':>8s}  shape")
    for mode in args.modes:
        torch.manual_seed(0)
        codec = MMAudioCodec(MMAudioCodecConfig.preset(mode, "full")).to(device)
        n = round(CLIP_SECONDS * codec.sample_rate)
        wav = (0.1 * torch.randn(1, n)).to(device)
        with torch.inference_mode():
            padded = codec.pad_waveform(wav)
            mel = codec.mel(padded)
            latent = codec.encode(wav)
            stages = {
                "mel": (lambda: codec.mel(padded), tuple(mel.shape)),
                "vae_encode": (lambda: codec.vae.encode(mel), tuple(latent.shape)),
                "vae_decode": (lambda: codec.decode_mel(latent), tuple(mel.shape)),
                "vocoder": (lambda: codec.vocode(mel), (1, mel.shape[-1] * codec.config.mel.hop_length)),
            }
            for name, (fn, shape) in stages.items():
                print(f"{mode:5s} {name:12s} {timed(fn, args.repeats, device):8.2f}  {shape}", flush=True)
        del codec
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
