"""Loading and saving weights: official MMAudio `.pth` files (checksum-verified, strict), and our
own safetensors + JSON files for the ControlNet and for networks we train.

Weights are never downloaded: every function takes a local path or an fsspec URL, and a missing
file raises `WeightsNotFound` saying what is missing and where to get it.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import struct
import zipfile
from dataclasses import dataclass
from typing import Mapping

import fsspec
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from nag_model.config import MMAudioConfig, get_config
from nag_model.controlnet import AudioControlNet, ControlNetConfig
from nag_model.network import MMAudio

# Buffers that older official checkpoints stored and the official loader drops before a strict load.
DROPPED_KEYS = ("t_embed.freqs", "latent_rot", "clip_rot")
_HF = "https://huggingface.co/hkchengrex/MMAudio/resolve/main/weights/"
_GH = "https://github.com/hkchengrex/MMAudio/releases/download/v0.1/"
_CLIP = "https://huggingface.co/apple/DFN5B-CLIP-ViT-H-14-384/resolve/main/open_clip_pytorch_model.bin"


@dataclass(frozen=True)
class WeightFile:
    """A production weight file: where it comes from and how to check it."""

    filename: str
    md5: str | None
    size: str
    url: str
    sha256: str | None = None
    nbytes: int | None = None  # exact size in bytes, where known


OFFICIAL_WEIGHTS: dict[str, WeightFile] = {
    "small_16k": WeightFile("mmaudio_small_16k.pth", "af93cde404179f58e3919ac085b8033b", "601M", _HF + "mmaudio_small_16k.pth"),
    "small_44k": WeightFile("mmaudio_small_44k.pth", "babd74c884783d13701ea2820a5f5b6d", "601M", _HF + "mmaudio_small_44k.pth"),
    "medium_44k": WeightFile("mmaudio_medium_44k.pth", "5a56b6665e45a1e65ada534defa903d0", "2.4G", _HF + "mmaudio_medium_44k.pth"),
    "large_44k": WeightFile("mmaudio_large_44k.pth", "fed96c325a6785b85ce75ae1aafd2673", "3.9G", _HF + "mmaudio_large_44k.pth"),
    "large_44k_v2": WeightFile("mmaudio_large_44k_v2.pth", "01ad4464f049b2d7efdaa4c1a59b8dfe", "3.9G", _HF + "mmaudio_large_44k_v2.pth"),
    "vae_16k": WeightFile("v1-16.pth", "69f56803f59a549a1a507c93859fd4d7", "655M", _GH + "v1-16.pth"),
    "vae_44k": WeightFile("v1-44.pth", "fab020275fa44c6589820ce025191600", "1.2G", _GH + "v1-44.pth"),
    "bigvgan_16k": WeightFile("best_netG.pt", "eeaf372a38a9c31c362120aba2dde292", "429M", _GH + "best_netG.pt"),
    "synchformer": WeightFile("synchformer_state_dict.pth", "5b2f5594b0730f70e41e549b7c94390c", "907M", _GH + "synchformer_state_dict.pth"),
    # open_clip's file of apple/DFN5B-CLIP-ViT-H-14-384 (renamed -378 on the hub); sha256 of the LFS object.
    "clip": WeightFile("open_clip_pytorch_model.bin", None, "3.9G", _CLIP,
                       sha256="c07a17b547d461c60a3cce5062b26bf8545b13de602c4c59d8490361eb716033", nbytes=3_947_081_637),
    # PANNs Cnn14 16 kHz (evaluation.models.panns; zenodo record 3987831): the md5 that public loaders of this
    # zenodo file check; exact byte size not published (81.0 M float32 parameters plus training metadata).
    "panns_cnn14_16k": WeightFile("Cnn14_16k_mAP=0.438.pth", "362fc5ff18f1d6ad2f6d464b45893f2c", "~325M",
                                  "https://zenodo.org/record/3987831/files/Cnn14_16k_mAP%3D0.438.pth"),
    # torchvggish's VGGish (evaluation.models.vggish): the file name carries the sha256 prefix torch.hub checks
    # (10086976); the full sha256 as published by users of the release; size not published (72.1 M float32).
    "vggish": WeightFile("vggish-10086976.pth", None, "~289M",
                         "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth",
                         sha256="10086976245803799d9194e9a73d9b6c1549c71d1b80106f5cade5608a561f4b"),
    # PaSST-S (AudioSet, SWA, mAP .476), hear21passt's default, used by av-benchmark for FD/KL_PaSST. The authors
    # publish no checksum; sha256 and size are the ones independent public projects pin for this release asset.
    "passt_s_swa_p16_128_ap476": WeightFile(
        "passt-s-f128-p16-s10-ap.476-swa.pt", None, "329M",
        "https://github.com/kkoutini/PaSST/releases/download/v0.0.1-audioset/passt-s-f128-p16-s10-ap.476-swa.pt",
        sha256="302903fa8c4aee817b11dc982da0b29aaf8d11a3e722420476d0a12c9db70c2c", nbytes=344_665_734),
    # ImageBind huge (evaluation.models.imagebind). Meta publishes no checksum: the sha256 and size are the
    # Git-LFS object of the identical copies on the HF hub (DAMO-NLP-SG/Video-LLaMA-2-*, vdo/Video-LLaMA-Series).
    "imagebind_huge": WeightFile("imagebind_huge.pth", None, "4.8G", "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth",
                                 sha256="d6f6c22bedcc90708448d5d2fbb7b2db9c73f505dc89bd0b2e09b23af1b62157", nbytes=4_803_584_173),
    # LAION-CLAP HTSAT-base (evaluation.models.clap), the checkpoint av-benchmark's LAION-CLAP score uses. No
    # checksum is published (searched the hub page references and public code); the size is the hub's rounded one.
    "laion_clap": WeightFile("music_speech_audioset_epoch_15_esc_89.98.pt", None, "2.35G",
                             "https://huggingface.co/lukewys/laion_clap/resolve/main/music_speech_audioset_epoch_15_esc_89.98.pt"),
    # RoBERTa-base's tokenizer files, read by evaluation.models.clap beside the CLAP weights; no checksum published.
    "roberta_base_vocab": WeightFile("vocab.json", None, "899K",
                                     "https://huggingface.co/FacebookAI/roberta-base/resolve/main/vocab.json"),
    "roberta_base_merges": WeightFile("merges.txt", None, "456K",
                                      "https://huggingface.co/FacebookAI/roberta-base/resolve/main/merges.txt"),
}


class WeightsNotFound(FileNotFoundError):
    """A weight file the user pointed to does not exist."""


class ChecksumMismatch(ValueError):
    """A weight file exists but is not the expected file."""


class IncompatibleWeights(ValueError):
    """A state dict does not fit the network (missing, unexpected or mis-shaped keys)."""


class CorruptWeights(ValueError):
    """A weight file exists but cannot be read (truncated, or not a checkpoint at all)."""


def _missing_message(path: str, what: str, known: WeightFile | None) -> str:
    msg = f"{what} not found at {path!r}."
    if known is not None:
        size = f"{known.size}, {known.nbytes} bytes" if known.nbytes else known.size
        sums = ", ".join(f"{name} {value}" for name, value in (("md5", known.md5), ("sha256", known.sha256)) if value)
        msg += (f" Download {known.filename} ({size}, {sums or 'checksum unknown'}) from {known.url} "
                f"and pass its local path or fsspec URL.")
    return msg


def file_digest(path: str, algorithm: str = "md5", storage_options: Mapping | None = None) -> str:
    """Hex digest of a local or fsspec file, streamed in 8 MiB chunks."""
    h = hashlib.new(algorithm)
    with fsspec.open(path, "rb", **(storage_options or {})) as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_bytes(path: str, what: str, known: WeightFile | None = None, storage_options: Mapping | None = None) -> bytes:
    fs, p = fsspec.core.url_to_fs(path, **(storage_options or {}))
    if not fs.exists(p):
        raise WeightsNotFound(_missing_message(path, what, known))
    return fs.cat_file(p)


def read_weight_file(path: str, what: str, known: WeightFile | None = None, *, verify_checksum: bool = True,
                     storage_options: Mapping | None = None) -> dict[str, torch.Tensor]:
    """Read a production `.pth`/`.pt` state dict (local path or fsspec URL), checked against its registry entry.

    Raises `WeightsNotFound` (what is missing and where to get it), `ChecksumMismatch` (wrong size, md5 or
    sha256; `verify_checksum=False` skips these checks, e.g. for fine-tuned files) or `CorruptWeights`
    (truncated, not a checkpoint, or not a mapping of tensors). A ``{"state_dict": ...}`` or
    ``{"model": ...}`` wrapper and a DDP ``module.`` prefix are unwrapped.
    """
    opts = dict(storage_options or {})
    fs, p = fsspec.core.url_to_fs(path, **opts)
    if not fs.exists(p):
        raise WeightsNotFound(_missing_message(path, what, known))
    size = fs.size(p)
    if verify_checksum and known is not None:
        source = f"{known.filename} ({known.size}); re-download it from {known.url}"
        if known.nbytes is not None and size != known.nbytes:
            why = "truncated (an interrupted download?)" if size < known.nbytes else "not that file"
            raise ChecksumMismatch(f"{path!r} has {size} bytes, expected {known.nbytes}: it is {why}. Expected {source}")
        for algorithm in ("md5", "sha256"):
            expected = getattr(known, algorithm)
            if expected and (digest := file_digest(path, algorithm, opts)) != expected:
                raise ChecksumMismatch(f"{path!r} ({size} bytes) has {algorithm} {digest}, expected {expected} "
                                       f"for {source}")
    try:
        with fs.open(p, "rb") as f:
            state = torch.load(f, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, ValueError, OSError, struct.error, pickle.UnpicklingError,
            zipfile.BadZipFile) as err:  # OSError: a file shorter than a zip directory (seek before its start)
        raise CorruptWeights(f"cannot read {what} {path!r} ({size} bytes): truncated or not a PyTorch checkpoint "
                             f"({type(err).__name__}: {err}). Re-download it.") from err
    for wrapper in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CorruptWeights(f"{path!r} does not hold a state dict of tensors ({what})")
    state = dict(state)
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def check_state_dict(net: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str = "weights") -> None:
    """Raise IncompatibleWeights naming every missing, unexpected and mis-shaped key."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [f"{k}: file {tuple(state_dict[k].shape)} vs network {tuple(v.shape)}"
              for k, v in expected.items() if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        def head(items):
            return ", ".join(items[:8]) + (f" ... (+{len(items) - 8} more)" if len(items) > 8 else "")
        parts = [f"{what} do not fit {getattr(getattr(net, 'config', None), 'name', type(net).__name__)}:"]
        if missing:
            parts.append(f"{len(missing)} missing keys: {head(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {head(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches: {head(shapes)}")
        raise IncompatibleWeights("\n  ".join(parts))


def load_official_state(net: MMAudio, state_dict: Mapping[str, torch.Tensor]) -> MMAudio:
    """Strict-load an official state dict after dropping the known non-persistent keys (input untouched)."""
    state = {k: v for k, v in state_dict.items() if k not in DROPPED_KEYS}
    check_state_dict(net, state, "official MMAudio weights")
    net.load_state_dict(state, strict=True)
    return net


def load_mmaudio(path: str, preset: str | MMAudioConfig = "small_16k", *, verify_checksum: bool = True,
                 storage_options: Mapping | None = None, duration: float | None = None) -> MMAudio:
    """Build `preset` and load an official MMAudio `.pth` (local path or fsspec URL).

    The file's MD5 must match the official one for named presets (`verify_checksum=False` skips it,
    e.g. for fine-tuned files).
    """
    config = get_config(preset)
    known = OFFICIAL_WEIGHTS.get(config.name)
    opts = dict(storage_options or {})
    fs, p = fsspec.core.url_to_fs(path, **opts)
    if not fs.exists(p):
        raise WeightsNotFound(_missing_message(path, f"MMAudio weights for {config.name}", known))
    if verify_checksum and known is not None and known.md5:
        digest = file_digest(path, "md5", opts)
        if digest != known.md5:
            raise ChecksumMismatch(f"{path!r} has md5 {digest}, expected {known.md5} for {known.filename} "
                                   f"({config.name}); re-download it from {known.url}")
    with fs.open(p, "rb") as f:
        state = torch.load(f, map_location="cpu", weights_only=True)
    return load_official_state(MMAudio(config, config.seq_lengths(duration)), state).eval()


def state_fingerprint(module: nn.Module) -> str:
    """sha256 over the module's state dict (names, dtypes, shapes and values): the identity of a base."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _write(path: str, data: bytes, storage_options: Mapping | None) -> None:
    with fsspec.open(path, "wb", **(storage_options or {})) as f:
        f.write(data)


def save_network(net: MMAudio, path: str, *, storage_options: Mapping | None = None, metadata: Mapping | None = None) -> None:
    """Save `<path>.safetensors` and `<path>.json` (config and metadata travel with the weights)."""
    _write(path + ".safetensors", st_save({k: v.contiguous() for k, v in net.state_dict().items()}), storage_options)
    card = {"kind": "mmaudio", "config": net.config.to_dict(), "fingerprint": state_fingerprint(net), **(metadata or {})}
    _write(path + ".json", json.dumps(card, indent=2).encode(), storage_options)


def load_network(path: str, *, storage_options: Mapping | None = None, duration: float | None = None) -> MMAudio:
    """Load a network saved by `save_network` (strict)."""
    card = json.loads(read_bytes(path + ".json", "network config", storage_options=storage_options))
    config = MMAudioConfig.from_dict(card["config"])
    net = MMAudio(config, config.seq_lengths(duration))
    state = st_load(read_bytes(path + ".safetensors", "network weights", storage_options=storage_options))
    check_state_dict(net, state, f"weights in {path}.safetensors")
    net.load_state_dict(state, strict=True)
    return net.eval()


def save_controlnet(controlnet: AudioControlNet, base: MMAudio, path: str, *, storage_options: Mapping | None = None,
                    metadata: Mapping | None = None) -> None:
    """Save `<path>.safetensors` and `<path>.json`, recording the base's config and fingerprint."""
    _write(path + ".safetensors", st_save({k: v.contiguous() for k, v in controlnet.state_dict().items()}), storage_options)
    card = {"kind": "audio_controlnet", "config": controlnet.config.to_dict(), "base_config": base.config.to_dict(),
            "base_fingerprint": state_fingerprint(base), **(metadata or {})}
    _write(path + ".json", json.dumps(card, indent=2).encode(), storage_options)


def load_controlnet(path: str, base: MMAudio, *, storage_options: Mapping | None = None,
                    check_base: bool = True) -> AudioControlNet:
    """Load a ControlNet saved by `save_controlnet`; by default the base must be the one it was trained on."""
    card = json.loads(read_bytes(path + ".json", "ControlNet config", storage_options=storage_options))
    if card.get("kind") != "audio_controlnet":
        raise IncompatibleWeights(f"{path}.json is not an audio ControlNet card (kind={card.get('kind')!r})")
    if MMAudioConfig.from_dict(card["base_config"]) != base.config:
        raise IncompatibleWeights(f"ControlNet {path} was trained on base {card['base_config']['name']}, "
                                  f"not {base.config.name}")
    if check_base and card["base_fingerprint"] != state_fingerprint(base):
        raise IncompatibleWeights(f"ControlNet {path} was trained on a base with fingerprint "
                                  f"{card['base_fingerprint'][:12]}..., this base has {state_fingerprint(base)[:12]}...")
    net = AudioControlNet(base.config, ControlNetConfig(**card["config"]))
    state = st_load(read_bytes(path + ".safetensors", "ControlNet weights", storage_options=storage_options))
    check_state_dict(net, state, f"weights in {path}.safetensors")
    net.load_state_dict(state, strict=True)
    return net.eval()
