"""A weights folder of tiny production-architecture MMAudio files, and the test-only registry and
bundle override that make `nag_model.mmaudio_bundle` load it (the same code path as full size).

Imported by tests in several folders (by file path), so it holds no fixtures, only functions.
"""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from pathlib import Path

import torch

import nag_model.mmaudio_bundle as mb
from nag_model.network import MMAudio

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def tiny_network(spec: mb.BundleSpec, seed: int = 0) -> MMAudio:
    """A random tiny network of the bundle's mode, initialised so its velocities are not all zero."""
    config = mb.network_config(spec)
    torch.manual_seed(seed)
    net = MMAudio(config, config.seq_lengths(8.0))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.latent_mean.normal_(0.0, 0.1, generator=g)
        net.latent_std.uniform_(0.5, 1.5, generator=g)
        net.empty_string_feat.normal_(0.0, 0.1, generator=g)
        for name, p in net.named_parameters():
            if p.requires_grad and ("adaLN" in name or "final_layer.conv" in name):
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
    return net.eval()


def write_tiny_weights(folder: Path, bundle: str = "mmaudio-small-16k", seed: int = 0) -> Path:
    """Official file names, tiny contents: network, CLIP, Synchformer, VAE and vocoder of `bundle`."""
    from nag_model.encoders.clip import build_clip

    spec = replace(mb.BUNDLES[bundle], size="tiny")
    folder.mkdir(parents=True, exist_ok=True)
    reg = mb.REGISTRY
    torch.save(tiny_network(spec, seed).state_dict(), folder / reg[spec.network].filename)
    torch.manual_seed(seed)
    torch.save(build_clip("tiny").state_dict(), folder / reg["clip"].filename)
    shutil.copy(FIXTURES / "synchformer" / "tiny_state_dict.pth", folder / reg["synchformer"].filename)
    shutil.copy(FIXTURES / "codec" / f"tiny_{spec.mode}_vae.pth", folder / reg[f"vae_{spec.mode}"].filename)
    vocoder = "bigvgan_16k" if spec.mode == "16k" else "bigvgan_v2_44k"
    shutil.copy(FIXTURES / "codec" / f"tiny_{spec.mode}_vocoder.pt", folder / reg[vocoder].filename)
    return folder


def use_tiny_weights(monkeypatch, folder: Path, bundles=("mmaudio-small-16k",)) -> None:
    """Test-only override: the registry holds the md5s of the files in `folder` (no exact sizes), and
    `bundles` build their parts at the tiny presets."""
    for key, known in list(mb.REGISTRY.items()):
        path = folder / known.filename
        if path.exists():
            digest = hashlib.md5(path.read_bytes()).hexdigest()
            monkeypatch.setitem(mb.REGISTRY, key, replace(known, algorithm="md5", digest=digest, nbytes=None))
    for name in bundles:
        monkeypatch.setitem(mb.BUNDLES, name, replace(mb.BUNDLES[name], size="tiny"))
