"""Time of each stage of real MMAudio for one 8-s video, with random weights at full size (or tiny).

    python benchmarks/mmaudio_stages.py [--bundle mmaudio-small-16k] [--size full|tiny] [--device cpu|cuda]
                                        [--steps 25] [--tracks 5] [--threads N] [--dtype float32|bfloat16]

Stages: CLIP image tower (64 frames at 384x384), Synchformer (200 frames at 224x224), CLIP text
tower (5 captions), VAE encode (waveform -> posterior), VAE decode (latent -> mel), vocoder
(mel -> waveform), the first track (CFG, no context) and a NAG track (the ControlNet on the mix of
the tracks before it) of `--steps` Euler steps. Then the share of each in a `--tracks`-track video:
CLIP + Synchformer once, the first track once, a NAG track for each other track; the text encoder,
the VAE encode of the reference mix and the decode + vocoder of each track run inside the tracks, so
the network's own share is the tracks' time minus theirs. The 1-minute load average is printed
before and after: on a shared machine the numbers depend on it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from nag_model.bundle import FoleyBundle
from nag_model.codecs.mmaudio import MMAudioCodec, MMAudioCodecConfig
from nag_model.controlnet import AudioControlNet
from nag_model.encoders.clip import build_clip
from nag_model.encoders.clip_tokenizer import CLIPTokenizer
from nag_model.encoders.mmaudio import CLIPTextEncoder, MMAudioVideoEncoder
from nag_model.encoders.synchformer import SynchformerEncoder
from nag_model.generator import Track
from nag_model.mmaudio_bundle import BUNDLES, network_config
from nag_model.network import MMAudio
from nag_model.settings import TrackSettings

CAPTIONS = ["A dog barks twice.", "Rain falls on a tin roof.", "A car passes by.", "Birds sing in the trees.",
            "A door creaks open."]


def random_real_bundle(name: str, size: str, device: torch.device, dtype: torch.dtype) -> FoleyBundle:
    """Bundle `name` with random weights at `size`: the same modules `load_mmaudio_bundle` builds."""
    from dataclasses import replace

    spec = replace(BUNDLES[name], size=size)
    tiny = size == "tiny"
    torch.manual_seed(0)
    config = network_config(spec)
    base = MMAudio(config, config.seq_lengths(8.0)).eval()
    with torch.no_grad():  # a loaded file sets these; random weights need finite ones
        base.latent_mean.fill_(0.0)
        base.latent_std.fill_(1.0)
    clip = build_clip("tiny" if tiny else "dfn5b_vit_h_14_384", tokenizer=CLIPTokenizer())
    sync = SynchformerEncoder("tiny" if tiny else "synchformer").eval().requires_grad_(False)
    codec = MMAudioCodec(MMAudioCodecConfig.preset(spec.mode, size))
    controlnet = AudioControlNet.from_base(base).eval()
    for module in (base, clip, sync, codec, controlnet):
        module.to(device)
    if dtype != torch.float32:  # the encoders and codec in low precision; the network stays float32
        for module in (clip, sync, codec):
            module.to(dtype)
    return FoleyBundle(name, base, codec, CLIPTextEncoder(clip), MMAudioVideoEncoder(clip, sync), controlnet)


def timed(fn, device: torch.device, repeats: int = 1):
    """(median seconds, last result) of `fn()` over `repeats` runs, after a warm-up run on a GPU."""
    if device.type == "cuda":
        fn()
        torch.cuda.synchronize()
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default="mmaudio-small-16k", choices=sorted(BUNDLES))
    p.add_argument("--size", default="full", choices=["full", "tiny"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--tracks", type=int, default=5)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    print(f"{args.bundle} ({args.size}), device {device} "
          f"({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{os.cpu_count()} CPUs'}), "
          f"{args.dtype}, torch threads {torch.get_num_threads()}, load average before {os.getloadavg()[0]:.2f}")
    t0 = time.perf_counter()
    b = random_real_bundle(args.bundle, args.size, device, dtype)
    print(f"built in {time.perf_counter() - t0:.1f} s; network {sum(x.numel() for x in b.base.parameters()) / 1e6:.1f} M "
          f"parameters")
    rng = np.random.default_rng(0)
    enc = b.video_encoder
    clip_frames = rng.integers(0, 256, (64, *enc.clip_size, 3), dtype=np.uint8)
    sync_frames = rng.integers(0, 256, (200, *enc.sync_size, 3), dtype=np.uint8)
    wav = (0.1 * torch.randn(1, round(8.0 * b.sample_rate))).to(device)
    gen = b.generator()
    t: dict[str, float] = {}
    with torch.inference_mode():
        t["clip (64 frames)"], clip_f = timed(lambda: enc.encode_clip(clip_frames), device, args.repeats)
        t["synchformer (200 frames)"], sync_f = timed(lambda: enc.encode_sync(sync_frames), device, args.repeats)
        t["text (5 captions)"], _ = timed(lambda: b.text_encoder(CAPTIONS), device, args.repeats)
    video = b.video_features(clip_frames, sync_frames)
    settings = TrackSettings("nag", steps=args.steps)
    t["first track (CFG)"], first = timed(lambda: gen.generate_track(video, CAPTIONS[0], 0, settings), device,
                                          args.repeats)
    t[f"NAG track ({args.steps} steps)"], _ = timed(
        lambda: gen.generate_track(video, CAPTIONS[1], 1, settings, context=[first]), device, args.repeats)
    with torch.inference_mode():  # after the tracks, which have run the codec once (first-call costs paid)
        t["vae encode"], latent = timed(lambda: b.codec.encode(wav), device, args.repeats)
        t["vae decode"], mel = timed(lambda: b.codec.decode_mel(latent), device, args.repeats)
        t["vocoder"], _ = timed(lambda: b.codec.vocode(mel), device, args.repeats)
    assert clip_f.shape[1] == 64 and sync_f.shape[1] == 192 and isinstance(first, Track)

    n = args.tracks
    nag = t[f"NAG track ({args.steps} steps)"]
    tracks_total = t["first track (CFG)"] + (n - 1) * nag
    inside = {"text (5 captions)": 1, "vae encode": n - 1, "vae decode": n, "vocoder": n}
    total = t["clip (64 frames)"] + t["synchformer (200 frames)"] + tracks_total
    network = tracks_total - sum(t[k] * c for k, c in inside.items())
    print(f"\n{'stage':28s} {'seconds':>9s}   {'x per video':>11s} {'share of a ' + str(n) + '-track video':>26s}")
    counts = {"clip (64 frames)": 1, "synchformer (200 frames)": 1, **inside}
    for k, v in t.items():
        c = counts.get(k)
        share = f"{100 * v * c / total:5.1f} %" if c else ""
        print(f"{k:28s} {v:9.3f}   {c if c else '':>11} {share:>26s}")
    print(f"{'network + guidance (rest)':28s} {'':9s}   {'':>11} {100 * network / total:24.1f} %")
    print(f"\n{n}-track video total: {total:.1f} s; load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
