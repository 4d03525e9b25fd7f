"""The real MMAudio bundles, assembled from a folder (or bucket) of the official weight files.

`mmaudio-small-16k`, `mmaudio-small-44k`, `mmaudio-medium-44k` and `mmaudio-large-44k-v2` each
need five files (network, CLIP, Synchformer, VAE, vocoder), plus, for NAG, our ControlNet
(`controlnet_<network>.safetensors` + `.json`, as `save_controlnet` writes it). A file is looked
for at `<folder>/<name>`, then where the official repository keeps it (`weights/` for networks,
`ext_weights/` for the others). Every registered file is checked (exact size where known, then
its MD5 or SHA-256) before anything is read; `check_weights` reports the same without loading.

A bundle is addressed in the pipeline as one model string, ``"<bundle>:<folder or URL>"``
(`model_string`), so every task of a run loads the same files.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Iterable, Literal, Mapping

import fsspec

from nag_model.bundle import FoleyBundle
from nag_model.checkpoint import (OFFICIAL_WEIGHTS, ChecksumMismatch, WeightsNotFound, file_digest, load_controlnet,
                                  load_mmaudio)
from nag_model.codecs.mmaudio import CODEC_FILES, MMAudioCodecConfig, load_codec
from nag_model.config import PRESETS, MMAudioConfig
from nag_model.encoders.clip import get_clip_config, load_clip
from nag_model.encoders.mmaudio import CLIPTextEncoder, MMAudioVideoEncoder
from nag_model.encoders.synchformer import get_synchformer_config, load_synchformer

Status = Literal["ok", "missing", "corrupt", "unverified"]
ROLES = ("network", "clip", "synchformer", "vae", "vocoder")
CLIP_VOCAB = "bpe_simple_vocab_16e6.txt.gz"  # the CLIP tokenizer's vocabulary (optional in the folder)


@dataclass(frozen=True)
class RegisteredFile:
    """A weight file the bundles use: its name, checksum (`algorithm` md5 or sha256), size and source."""

    filename: str
    algorithm: str
    digest: str
    size: str
    url: str
    nbytes: int | None = None  # exact size in bytes, where known (a cheap first check)
    subdir: str = "ext_weights"  # where the official repository keeps it

    @property
    def checksum(self) -> str:
        return f"{self.algorithm} {self.digest}"


def _official(key: str, subdir: str) -> RegisteredFile:
    w = OFFICIAL_WEIGHTS[key]
    if getattr(w, "md5", None):
        return RegisteredFile(w.filename, "md5", w.md5, w.size, w.url, getattr(w, "nbytes", None), subdir)
    return RegisteredFile(w.filename, "sha256", w.sha256, w.size, w.url, getattr(w, "nbytes", None), subdir)


def _codec(mode: str, role: str) -> RegisteredFile:
    c = CODEC_FILES[(mode, role)]
    nbytes = 489_041_291 if c.filename == "bigvgan_generator.pt" else None
    return RegisteredFile(c.filename, c.algorithm, c.digest, c.size, c.url, nbytes)


#: Every file of every bundle, by key. Tests replace it (monkeypatch) with checksums of small files.
REGISTRY: dict[str, RegisteredFile] = {
    **{key: _official(key, "weights") for key in ("small_16k", "small_44k", "medium_44k", "large_44k_v2")},
    "clip": _official("clip", "ext_weights"),
    "synchformer": _official("synchformer", "ext_weights"),
    "vae_16k": _codec("16k", "vae"),
    "vae_44k": _codec("44k", "vae"),
    "bigvgan_16k": _codec("16k", "vocoder"),
    "bigvgan_v2_44k": _codec("44k", "vocoder"),
}


@dataclass(frozen=True)
class BundleSpec:
    """Which network and files make a bundle. `size="tiny"` builds every part at its tiny preset
    (the same code path with small widths: tests); its files are checked against `REGISTRY` all the same."""

    name: str
    network: str  # network preset and registry key
    mode: Literal["16k", "44k"]
    size: Literal["full", "tiny"] = "full"

    @property
    def files(self) -> dict[str, str]:
        """role -> registry key."""
        return {"network": self.network, "clip": "clip", "synchformer": "synchformer", "vae": f"vae_{self.mode}",
                "vocoder": "bigvgan_16k" if self.mode == "16k" else "bigvgan_v2_44k"}

    @property
    def controlnet_stem(self) -> str:
        """Our ControlNet for this network: `<stem>.safetensors` + `<stem>.json` in the weights folder."""
        return f"controlnet_{self.network}"


BUNDLES: dict[str, BundleSpec] = {spec.name: spec for spec in (
    BundleSpec("mmaudio-small-16k", "small_16k", "16k"),
    BundleSpec("mmaudio-small-44k", "small_44k", "44k"),
    BundleSpec("mmaudio-medium-44k", "medium_44k", "44k"),
    BundleSpec("mmaudio-large-44k-v2", "large_44k_v2", "44k"),
)}


def model_string(bundle: str, weights: str) -> str:
    """The pipeline's model string for a bundle in a weights folder: ``"<bundle>:<folder or URL>"``."""
    if bundle not in BUNDLES:
        raise ValueError(f"unknown MMAudio bundle {bundle!r}; known: {', '.join(BUNDLES)}")
    if not weights:
        raise ValueError(f"bundle {bundle!r} needs a weights folder or URL")
    return f"{bundle}:{weights}"


def parse_model_string(model: str) -> tuple[str, str] | None:
    """(bundle, weights) of a model string made by `model_string`; None for other models."""
    name, sep, weights = model.partition(":")
    if name in BUNDLES:
        if not sep or not weights:
            raise ValueError(f"model {name!r} needs its weights folder: '{name}:<folder or URL>' "
                             f"(on the command line: --model {name} --weights DIR)")
        return name, weights
    return None


# ------------------------------------------------------------------------------------------- checking
@dataclass(frozen=True)
class FileStatus:
    """One file of one bundle in a weights folder."""

    bundle: str
    role: str
    filename: str
    path: str  # where it was found, or where it was looked for first
    status: Status
    nbytes: int | None  # size of the file found
    expected: str  # "<algorithm> <digest>" from the registry ("" when not registered)
    actual: str  # the digest computed ("" when not computed)
    note: str = ""


_digests: dict[tuple[str, int, str], str] = {}  # (url, size, mtime or etag + algorithm) -> digest, per process
_digest_lock = threading.Lock()


def _digest(fs, path: str, url: str, algorithm: str, storage_options: Mapping | None) -> str:
    info = fs.info(path)
    stamp = str(info.get("mtime") or info.get("LastModified") or info.get("ETag") or info.get("created") or "")
    key = (url, int(info.get("size") or 0), stamp + algorithm)
    with _digest_lock:
        if key in _digests:
            return _digests[key]
    digest = file_digest(url, algorithm, storage_options)
    with _digest_lock:
        _digests[key] = digest
    return digest


def _join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}"


def locate(weights: str, known: RegisteredFile, storage_options: Mapping | None = None) -> str | None:
    """The file's URL under `weights` (flat, then the official subfolder), or None."""
    fs, _ = fsspec.core.url_to_fs(weights, **dict(storage_options or {}))
    for candidate in (_join(weights, known.filename), _join(weights, f"{known.subdir}/{known.filename}")):
        if fs.exists(fsspec.core.url_to_fs(candidate, **dict(storage_options or {}))[1]):
            return candidate
    return None


def check_file(weights: str, bundle: str, role: str, known: RegisteredFile,
               storage_options: Mapping | None = None) -> FileStatus:
    """Present and matching its checksum ("ok"), absent ("missing"), or another file ("corrupt")."""
    url = locate(weights, known, storage_options)
    if url is None:
        return FileStatus(bundle, role, known.filename, _join(weights, known.filename), "missing", None,
                          known.checksum, "", f"get it from {known.url}")
    fs, p = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    size = int(fs.size(p))
    if known.nbytes is not None and size != known.nbytes:
        what = "truncated" if size < known.nbytes else "too large"
        return FileStatus(bundle, role, known.filename, url, "corrupt", size, known.checksum, "",
                          f"{what}: {size} bytes, expected {known.nbytes}")
    digest = _digest(fs, p, url, known.algorithm, storage_options)
    if digest != known.digest:
        return FileStatus(bundle, role, known.filename, url, "corrupt", size, known.checksum, f"{known.algorithm} {digest}",
                          f"checksum differs: not {known.filename}, or incomplete; re-download from {known.url}")
    return FileStatus(bundle, role, known.filename, url, "ok", size, known.checksum, f"{known.algorithm} {digest}")


def _optional(weights: str, bundle: str, role: str, name: str, note: str,
              storage_options: Mapping | None) -> FileStatus:
    fs, p = fsspec.core.url_to_fs(_join(weights, name), **dict(storage_options or {}))
    if not fs.exists(p):
        return FileStatus(bundle, role, name, _join(weights, name), "missing", None, "", "", note)
    digest = _digest(fs, p, _join(weights, name), "sha256", storage_options)
    return FileStatus(bundle, role, name, _join(weights, name), "unverified", int(fs.size(p)), "",
                      f"sha256 {digest}", "our file: not in the registry")


def check_weights(weights: str, bundles: Iterable[str] | None = None, *,
                  storage_options: Mapping | None = None) -> list[FileStatus]:
    """Every file of each bundle (all by default) in `weights`: the five registered files, then the
    optional ControlNet (NAG) and CLIP vocabulary. A file shared by several bundles is hashed once."""
    rows = []
    for name in bundles or BUNDLES:
        if name not in BUNDLES:
            raise ValueError(f"unknown MMAudio bundle {name!r}; known: {', '.join(BUNDLES)}")
        spec = BUNDLES[name]
        rows += [check_file(weights, name, role, REGISTRY[key], storage_options) for role, key in spec.files.items()]
        rows.append(_optional(weights, name, "controlnet (NAG)", f"{spec.controlnet_stem}.safetensors",
                              "NAG is refused without it; the other methods run", storage_options))
        rows.append(_optional(weights, name, "clip vocabulary", CLIP_VOCAB,
                              "optional: the copy in an installed package is used", storage_options))
    return rows


def bundle_complete(rows: Iterable[FileStatus], bundle: str) -> bool:
    """All five registered files of `bundle` present and matching."""
    return all(r.status == "ok" for r in rows if r.bundle == bundle and r.role in ROLES)


def _require(weights: str, spec: BundleSpec, storage_options: Mapping | None) -> dict[str, str]:
    """role -> URL of each checked file; raises naming every missing file, then every corrupt one."""
    rows = [check_file(weights, spec.name, role, REGISTRY[key], storage_options) for role, key in spec.files.items()]
    missing = [r for r in rows if r.status == "missing"]
    if missing:
        raise WeightsNotFound(f"{spec.name}: {len(missing)} weight file(s) missing in {weights!r}:\n" + "\n".join(
            f"  {r.role}: {r.filename} ({REGISTRY[spec.files[r.role]].size}, {r.expected}) from "
            f"{REGISTRY[spec.files[r.role]].url}" for r in missing))
    corrupt = [r for r in rows if r.status == "corrupt"]
    if corrupt:
        raise ChecksumMismatch(f"{spec.name}: {len(corrupt)} weight file(s) in {weights!r} are not the expected ones:\n"
                               + "\n".join(f"  {r.role}: {r.path} ({r.nbytes} bytes) has {r.actual or '?'}, expected "
                                           f"{r.expected}: {r.note}" for r in corrupt))
    return {r.role: r.path for r in rows}


# ------------------------------------------------------------------------------------------- loading
def network_config(spec: BundleSpec) -> MMAudioConfig:
    """The network preset of a bundle; at `size="tiny"` a small network whose feature widths match the
    tiny CLIP, Synchformer and codec (the official sequence arithmetic of the bundle's mode)."""
    if spec.size == "full":
        return PRESETS[spec.network]
    clip, codec = get_clip_config("tiny"), MMAudioCodecConfig.preset(spec.mode, "tiny")
    full = PRESETS[spec.network]
    return replace(PRESETS["tiny"], name=f"tiny_{spec.mode}", latent_dim=codec.vae.embed_dim, clip_dim=clip.embed_dim,
                   sync_dim=get_synchformer_config("tiny").embed_dim, text_dim=clip.text_width,
                   text_seq_len=clip.context_length, sample_rate=full.sample_rate,
                   samples_per_latent=full.samples_per_latent, v2=full.v2)


def load_mmaudio_bundle(name: str, weights: str, *, duration: float = 8.0, controlnet: bool = True,
                        storage_options: Mapping | None = None) -> FoleyBundle:
    """Assemble bundle `name` from the files in `weights` (local folder or fsspec URL).

    Every registered file is checked first (all missing ones named at once, with size, checksum and
    source; then every corrupt one). The ControlNet is loaded when `controlnet_<network>.*` is there
    (and must have been trained on this very network); without it NAG is refused, other methods run.

    Raises:
        WeightsNotFound, ChecksumMismatch, CorruptWeights, IncompatibleWeights (`nag_model.checkpoint`).
    """
    if name not in BUNDLES:
        raise ValueError(f"unknown MMAudio bundle {name!r}; known: {', '.join(BUNDLES)}")
    spec = BUNDLES[name]
    files = _require(weights, spec, storage_options)
    opts = dict(storage_options or {})
    tiny = spec.size == "tiny"
    base = load_mmaudio(files["network"], network_config(spec), verify_checksum=False, storage_options=opts,
                        duration=duration)
    clip = load_clip(files["clip"], "tiny" if tiny else "dfn5b_vit_h_14_384", verify_checksum=False,
                     storage_options=opts)
    sync = load_synchformer(files["synchformer"], "tiny" if tiny else "synchformer", verify_checksum=False,
                            storage_options=opts)
    codec = load_codec(spec.mode, vae=files["vae"], vocoder=files["vocoder"], size=spec.size, verify_checksum=False,
                       storage_options=opts)
    net = None
    stem = _join(weights, spec.controlnet_stem)
    fs, p = fsspec.core.url_to_fs(stem + ".json", **opts)
    if controlnet and fs.exists(p):
        net = load_controlnet(stem, base, storage_options=opts)
    weights_id = ",".join(REGISTRY[spec.files[r]].digest[:12] for r in ("clip", "synchformer"))
    card = {"kind": "mmaudio", "bundle": name, "weights": weights, "network": base.config.name, "mode": spec.mode,
            "size": spec.size, "files": {role: REGISTRY[key].checksum for role, key in spec.files.items()},
            "controlnet": net is not None}
    return FoleyBundle(name, base, codec, CLIPTextEncoder(clip), MMAudioVideoEncoder(clip, sync, weights_id=weights_id),
                       net, card=card)


def load_bundle_network(name: str, weights: str, *, duration: float = 8.0,
                        storage_options: Mapping | None = None):
    """Only the (checked) network of bundle `name`: what training a ControlNet on extracted features needs."""
    if name not in BUNDLES:
        raise ValueError(f"unknown MMAudio bundle {name!r}; known: {', '.join(BUNDLES)}")
    spec = BUNDLES[name]
    row = check_file(weights, name, "network", REGISTRY[spec.network], storage_options)
    if row.status == "missing":
        known = REGISTRY[spec.network]
        raise WeightsNotFound(f"{name}: network weights {known.filename} ({known.size}, {known.checksum}) missing in "
                              f"{weights!r}; get it from {known.url}")
    if row.status == "corrupt":
        raise ChecksumMismatch(f"{name}: {row.path} ({row.nbytes} bytes) has {row.actual or '?'}, expected {row.expected}: "
                               f"{row.note}")
    return load_mmaudio(row.path, network_config(spec), verify_checksum=False, storage_options=dict(storage_options or {}),
                        duration=duration)
