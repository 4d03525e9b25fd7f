"""Features of real videos for training the audio ControlNet on a real MMAudio network.

    python -m training.features extract MANIFEST --model mmaudio-small-16k --weights DIR --out URI
    python -m training.features train URI --model mmaudio-small-16k --weights DIR --steps 20000 [--out DIR]
    torchrun --nproc-per-node 8 -m training.features train ...          # DDP, as training.loop supports

`extract` writes one safetensors file per manifest video, `<out>/<video id>.safetensors`, written
under a temporary name and then renamed (atomic), and skips the videos whose file exists: an
interrupted extraction resumes where it stopped. Each file holds, in float32 (the official
extraction's precision; no autocast):

    clip_f (64, Dc)        CLIP image features of the first 8 s at 8 fps
    sync_f (192, Ds)       Synchformer features of the first 8 s at 25 fps
    sync_half (2, 88, Ds)  Synchformer features of each 4-s half on its own (the 4-s sequence lengths)
    text_f (77, Dt)        CLIP text features of the video's first caption ("" when it has none)
    mean, std (2 N4, C)    the VAE posterior of the video's own audio (mono, peak-normalised to 0.95 as
                           MMAudio's training split is), 2 N4 latents, N4 = the 4-s latent length, so the
                           two 4-s halves never overlap (250 latents at 16 kHz, 346 at 44.1 kHz)

and the video id, caption, bundle and source in its metadata. Short videos repeat their last frame
and their audio is zero-padded (the pipeline does the same).

`train` trains the ControlNet with section 4.2 of the NAG paper, exactly as the demo does
(`training.objectives.ControlNetObjective`, `training.loop.train`): the base frozen at 4 s, the
target one 4-s half of a clip (its latent drawn from the stored posterior, as MMAudio trains) with
that half's video, the reference the other half, the text empty. It writes
`controlnet_<network>.safetensors/.json`, the file the bundle loads for NAG.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import fsspec
import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from tqdm.auto import tqdm

from media.decode import decode_audio, decode_frames
from nag_model.bundle import FoleyBundle, _fit
from nag_model.mmaudio_bundle import BUNDLES, load_bundle_network, load_mmaudio_bundle
from storage.manifest import load_manifest

HALF_SECONDS = 4.0
PEAK = 0.95  # MMAudio's training-split peak normalisation
FEATURE_KEYS = ("clip_f", "sync_f", "sync_half", "text_f", "mean", "std")


# ------------------------------------------------------------------------------------------- extraction
def _join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}"


def _write_atomic(uri: str, data: bytes) -> None:
    """Write under `<uri>.tmp`, then rename: readers never see a partial file."""
    fs, path = fsspec.core.url_to_fs(uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    tmp = path + ".tmp"
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, path)


def half_latents(bundle: FoleyBundle) -> int:
    """Latents of one 4-s half at the bundle's rate (125 at 16 kHz, 173 at 44.1 kHz)."""
    return bundle.base.config.seq_lengths(HALF_SECONDS).latent


@torch.inference_mode()
def video_features(bundle: FoleyBundle, video_uri: str, caption: str) -> dict[str, torch.Tensor]:
    """The training features of one video (see the module docstring); tensors without a batch dim."""
    enc, seq4 = bundle.video_encoder, bundle.base.config.seq_lengths(HALF_SECONDS)
    n4 = half_latents(bundle)
    spl, rate = bundle.codec.samples_per_latent, bundle.sample_rate
    seconds = max(2 * HALF_SECONDS, 2 * n4 * spl / rate)
    decoded = decode_frames(video_uri, _requests(enc), duration=2 * HALF_SECONDS)
    clip_frames, sync_frames = (s.frames for s in decoded.frame_sets)
    feats = bundle.video_features(clip_frames, sync_frames)  # (1, 64, Dc), (1, 192, Ds)
    half_frames = int(HALF_SECONDS * 25)
    sync = _fit(sync_frames, 2 * half_frames)
    sync_half = torch.stack([enc.encode_sync(sync[:half_frames])[0], enc.encode_sync(sync[half_frames:])[0]])
    if sync_half.shape[1] != seq4.sync:
        raise ValueError(f"4-s Synchformer features have {sync_half.shape[1]} tokens, the network expects {seq4.sync}")
    wav = decode_audio(video_uri, rate, duration=seconds)  # (L,) mono float32
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    if peak > 0:
        wav = wav * (PEAK / peak)
    target = 2 * n4 * spl
    wav = np.pad(wav[:target], (0, max(0, target - len(wav))))
    mean, std = bundle.codec.encode_distribution(torch.from_numpy(wav)[None].float())  # (1, 2 N4, C) each
    text = bundle.text_encoder([caption])  # (1, 77, Dt)
    return {"clip_f": feats.clip_f[0].float().contiguous(), "sync_f": feats.sync_f[0].float().contiguous(),
            "sync_half": sync_half.float().contiguous(), "text_f": text[0].float().contiguous(),
            "mean": mean[0].contiguous(), "std": std[0].contiguous()}


def _requests(encoder):
    from media.decode import FrameRequest

    return (FrameRequest(8, tuple(encoder.clip_size), getattr(encoder, "clip_fit", "stretch")),
            FrameRequest(25, tuple(encoder.sync_size), getattr(encoder, "sync_fit", "stretch")))


@dataclass
class ExtractSummary:
    done: list[str]
    skipped: list[str]
    failed: dict[str, str]


def extract(manifest_uri: str, bundle: FoleyBundle, out_uri: str, *, progress: bool = True,
            stop_after: int | None = None) -> ExtractSummary:
    """Features of every video of the manifest into `out_uri` (one file per video; done ones skipped).

    stop_after: stop after extracting this many videos, as if interrupted (tests).
    A video that cannot be used (unreadable, no audio) is reported in `failed` and retried next time.
    """
    entries = [e for e in load_manifest(manifest_uri) if e.error is None]
    fs, root = fsspec.core.url_to_fs(out_uri)
    summary = ExtractSummary([], [], {})
    bar = tqdm(entries, desc="features", unit="video", disable=not progress)
    for entry in bar:
        target = _join(out_uri, f"{entry.video_id}.safetensors")
        if fs.exists(_join(root, f"{entry.video_id}.safetensors")):
            summary.skipped.append(entry.video_id)
            continue
        if stop_after is not None and len(summary.done) >= stop_after:
            break
        caption = entry.captions[0] if entry.captions else ""
        try:
            feats = video_features(bundle, entry.video_uri, caption)
        except Exception as exc:  # noqa: BLE001 - one bad video must not stop a catalog; it is reported
            summary.failed[entry.video_id] = f"{type(exc).__name__}: {exc}"
            continue
        meta = {"video_id": entry.video_id, "video_uri": entry.video_uri, "caption": caption, "bundle": bundle.name,
                "network": bundle.base.config.name}
        _write_atomic(target, st_save(feats, metadata=meta))
        summary.done.append(entry.video_id)
        bar.set_postfix(done=len(summary.done), skipped=len(summary.skipped), failed=len(summary.failed))
    return summary


# ------------------------------------------------------------------------------------------- training data
@dataclass
class FeatureSet:
    """All extracted videos, stacked: clip_f (M, 64, Dc), sync_half (M, 2, 88, Ds), mean/std (M, 2 N4, C)."""

    ids: list[str]
    clip_f: torch.Tensor
    sync_half: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def load(cls, uri: str, storage_options: Mapping | None = None) -> "FeatureSet":
        fs, root = fsspec.core.url_to_fs(uri, **dict(storage_options or {}))
        paths = sorted(p for p in fs.ls(root, detail=False) if p.endswith(".safetensors"))
        if not paths:
            raise FileNotFoundError(f"no feature files (*.safetensors) in {uri!r}: run `python -m training.features "
                                    f"extract` first")
        items = [st_load(fs.cat_file(p)) for p in paths]
        ids = [Path(p).name.removesuffix(".safetensors") for p in paths]
        return cls(ids, *(torch.stack([it[k] for it in items]) for k in ("clip_f", "sync_half", "mean", "std")))


class FeatureControlNetBatches:
    """Section 4.2 on real features: target and reference are the two non-overlapping 4-s halves of one
    clip (which is which is random), each latent drawn from its stored VAE posterior; the target half's
    video; the text is always empty (the objective never reads it)."""

    def __init__(self, data: FeatureSet, half_latents: int, half_clip: int = 32):
        if data.mean.shape[1] < 2 * half_latents:
            raise ValueError(f"features hold {data.mean.shape[1]} latents, two 4-s halves need {2 * half_latents}")
        self.data, self.n4, self.c4 = data, half_latents, half_clip

    def __call__(self, batch_size: int, generator: torch.Generator) -> dict:
        d, n4 = self.data, self.n4
        clips = torch.randint(len(d), (batch_size,), generator=generator)
        half = torch.randint(2, (batch_size,), generator=generator)  # which half is the target
        mean, std = d.mean[clips, : 2 * n4], d.std[clips, : 2 * n4]  # (B, 2 N4, C)
        latent = mean + std * torch.randn(mean.shape, generator=generator)
        idx = torch.arange(batch_size)
        halves = latent.view(batch_size, 2, n4, -1)
        clip_halves = d.clip_f[clips, : 2 * self.c4].reshape(batch_size, 2, self.c4, -1)
        return {"x1": halves[idx, half], "reference": halves[idx, 1 - half], "clip_f": clip_halves[idx, half],
                "sync_f": d.sync_half[clips, half], "video_exist": torch.ones(batch_size, dtype=torch.bool)}


def train_controlnet(features_uri: str, model: str, weights: str, out: str, *, steps: int, batch_size: int = 16,
                     lr: float = 1e-4, seed: int = 0, work: str | None = None, checkpoint_every: int = 100,
                     progress: bool = True, stop_after: int | None = None):
    """Train the ControlNet of bundle `model` on extracted features; writes `<out>/controlnet_<network>.*`
    (rank 0 under DDP). Resumes from `<work>/last.pt` (default `<out>/.controlnet-work`)."""
    from nag_model.checkpoint import save_controlnet
    from nag_model.controlnet import AudioControlNet
    from nag_model.losses import freeze
    from training.loop import TrainConfig, distributed, train
    from training.objectives import ControlNetObjective

    rank, _ = distributed()
    base = load_bundle_network(model, weights, duration=8.0)
    freeze(base)
    n4 = base.config.seq_lengths(HALF_SECONDS).latent
    data = FeatureSet.load(features_uri)
    base.set_duration(HALF_SECONDS)
    torch.manual_seed(seed)
    controlnet = AudioControlNet.from_base(base)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, warmup_steps=max(min(1000, steps // 20), 1),
                      checkpoint_every=checkpoint_every)
    result = train(ControlNetObjective(base, controlnet), FeatureControlNetBatches(data, n4), cfg,
                   work or _join(out, ".controlnet-work"), desc="controlnet", progress=progress, stop_after=stop_after)
    base.set_duration(2 * HALF_SECONDS)
    stem = _join(out, f"controlnet_{BUNDLES[model].network}")
    if rank == 0 and result.steps >= steps:
        save_controlnet(result.model, base, stem, metadata={"training": {**result.summary(), "features": features_uri,
                                                                           "clips": len(data)}})
    return result, stem


# ------------------------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("extract", help="features of a manifest's videos (resumable)")
    ex.add_argument("manifest")
    ex.add_argument("--out", required=True, help="folder or fsspec URL for the feature files")
    tr = sub.add_parser("train", help="train the ControlNet on extracted features")
    tr.add_argument("features", help="folder or URL written by `extract`")
    tr.add_argument("--out", default=None, help="where controlnet_<network>.* goes (default: the weights folder)")
    tr.add_argument("--steps", type=int, required=True)
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--lr", type=float, default=1e-4)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--work", default=None, help="checkpoint folder (resumes from last.pt)")
    for sp in (ex, tr):
        sp.add_argument("--model", required=True, choices=sorted(BUNDLES))
        sp.add_argument("--weights", required=True, help="folder or fsspec URL of the official weight files")
        sp.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.command == "extract":
        bundle = load_mmaudio_bundle(args.model, args.weights, controlnet=False)
        s = extract(args.manifest, bundle, args.out)
        print(json.dumps({"done": len(s.done), "skipped": len(s.skipped), "failed": s.failed}, indent=2))
        if s.failed:
            sys.exit(1)
    else:
        result, stem = train_controlnet(args.features, args.model, args.weights, args.out or args.weights,
                                        steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                        work=args.work)
        print(json.dumps({**result.summary(), "controlnet": stem}, indent=2))


if __name__ == "__main__":
    main()
