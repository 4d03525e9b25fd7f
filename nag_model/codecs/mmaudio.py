"""MMAudio's codec behind the :class:`~nag_model.codecs.base.AudioCodec` interface, and its loader.

waveform --mel converter--> log-mel (B, M, 2N) --VAE encoder--> posterior mean, std (B, N, C)
latent (B, N, C) --VAE decoder--> log-mel (B, M, 2N) --BigVGAN--> waveform (B, 2N * hop)

This is the path of the official ``FeaturesUtils.encode_audio`` (mel converter + VAE encode) and
``decode`` + ``vocode`` (VAE decode + vocoder), with the latents channels-last as the network
takes them. ``encode`` returns the posterior mean (the deterministic latent the generator needs as
a reference); ``encode_distribution`` returns mean and std, as the official training features do.

Weights are never downloaded: :func:`load_codec` takes local paths or fsspec URLs and checks each
file against :data:`CODEC_FILES` (MD5 for MMAudio's own files, SHA-256 for NVIDIA's BigVGAN-v2).
"""
from __future__ import annotations

import dataclasses
from typing import Literal, Mapping

import fsspec
import torch
from torch import Tensor, nn

from nag_model.checkpoint import (OFFICIAL_WEIGHTS, ChecksumMismatch, CorruptWeights, IncompatibleWeights,
                                  WeightsNotFound, check_state_dict, file_digest)
from nag_model.codecs.bigvgan import BigVGAN, BigVGANConfig, fold_weight_norm
from nag_model.codecs.mel import MelConfig, MelConverter
from nag_model.codecs.vae import VAE, VAEConfig, convert_raw_state_dict

__all__ = ["CODEC_FILES", "CodecFile", "CorruptWeights", "MMAudioCodec", "MMAudioCodecConfig", "load_codec"]

Mode = Literal["16k", "44k"]
Size = Literal["full", "tiny"]
_VAE_FACTOR = 2  # the VAE halves the mel frame rate


@dataclasses.dataclass(frozen=True)
class CodecFile:
    """A released codec weight file: name, checksum (``algorithm`` is ``md5`` or ``sha256``), size, source."""

    filename: str
    algorithm: str
    digest: str
    size: str
    url: str


def _from_registry(key: str) -> CodecFile:
    known = OFFICIAL_WEIGHTS[key]
    return CodecFile(known.filename, "md5", known.md5, known.size, known.url)


_BIGVGAN_V2_REPO = "https://huggingface.co/nvidia/bigvgan_v2_44khz_128band_512x"
_BIGVGAN_V2_REVISION = "95a9d1dcb12906c03edd938d77b9333d6ded7dfb"

#: The official files, by (mode, role). The BigVGAN-v2 SHA-256 is the Git LFS object id of the file at
#: the revision above, as recorded by several independent public projects (not computed here).
CODEC_FILES: dict[tuple[str, str], CodecFile] = {
    ("16k", "vae"): _from_registry("vae_16k"),
    ("44k", "vae"): _from_registry("vae_44k"),
    ("16k", "vocoder"): _from_registry("bigvgan_16k"),
    ("44k", "vocoder"): CodecFile(
        "bigvgan_generator.pt", "sha256", "d9fe7ec6bd0b44ed9d66973d5012d8181c1570b01e5c72df51973e241dccd357",
        "489M (489041291 bytes)", f"{_BIGVGAN_V2_REPO}/resolve/{_BIGVGAN_V2_REVISION}/bigvgan_generator.pt"),
}


@dataclasses.dataclass(frozen=True)
class MMAudioCodecConfig:
    """Mel front end, VAE and vocoder of one codec; they must agree on bands, hop and sample rate."""

    mode: str
    mel: MelConfig
    vae: VAEConfig
    vocoder: BigVGANConfig

    def __post_init__(self) -> None:
        if not self.mel.n_mels == self.vae.data_dim == self.vocoder.num_mels:
            raise ValueError(f"mel bands disagree: mel {self.mel.n_mels}, VAE {self.vae.data_dim}, "
                             f"vocoder {self.vocoder.num_mels}")
        if self.vocoder.hop_length != self.mel.hop_length or self.vocoder.sample_rate != self.mel.sample_rate:
            raise ValueError(f"vocoder (hop {self.vocoder.hop_length}, {self.vocoder.sample_rate} Hz) does not invert "
                             f"the mel front end (hop {self.mel.hop_length}, {self.mel.sample_rate} Hz)")

    @classmethod
    def preset(cls, mode: str, size: str = "full") -> "MMAudioCodecConfig":
        """MMAudio mode ``'16k'`` or ``'44k'``; ``size='full'`` is the official architecture, ``'tiny'``
        the same mel settings, hop and code path with small widths (tests)."""
        if size not in ("full", "tiny"):
            raise ValueError(f"unknown codec size {size!r}; expected 'full' or 'tiny'")
        mel = MelConfig.for_mode(mode)
        vae = VAEConfig.preset(f"{'mmaudio' if size == 'full' else 'tiny'}_{mode}")
        vocoder = BigVGANConfig.preset({"16k": "v1_16k", "44k": "v2_44k"}[mode] if size == "full" else f"tiny_{mode}")
        return cls(mode, mel, vae, vocoder)


class MMAudioCodec(nn.Module):
    """MMAudio's mel + VAE + BigVGAN codec; implements :class:`~nag_model.codecs.base.AudioCodec`.

    Built with random weights; :func:`load_codec` loads the official files. Parameters are frozen.
    ``codec.to(device, torch.bfloat16)`` runs the VAE and the vocoder in bf16 (as the official demo
    does on a GPU); the mel front end always computes in float32 and waveforms come back float32.
    """

    def __init__(self, config: MMAudioCodecConfig) -> None:
        super().__init__()
        self.config = config
        self.mel = MelConverter(config.mel)
        self.vae = VAE(config.vae)
        self.vocoder = BigVGAN(config.vocoder)
        self.requires_grad_(False)
        self.eval()

    @property
    def mode(self) -> str:
        return self.config.mode

    @property
    def sample_rate(self) -> int:
        return self.config.mel.sample_rate

    @property
    def latent_dim(self) -> int:
        return self.config.vae.embed_dim

    @property
    def samples_per_latent(self) -> int:
        return self.config.mel.hop_length * _VAE_FACTOR

    def pad_waveform(self, wav: Tensor) -> Tensor:
        """(B, L) float32 waveform zero-padded at the end to N * samples_per_latent, N = ceil(L / samples_per_latent)."""
        if wav.dim() != 2 or wav.shape[1] == 0 or not wav.is_floating_point():
            raise ValueError(f"expected a (B, L) float waveform with L >= 1, got {tuple(wav.shape)} {wav.dtype}")
        n = -(-wav.shape[1] // self.samples_per_latent)
        return nn.functional.pad(wav.float(), (0, n * self.samples_per_latent - wav.shape[1]))  # (B, N * spl)

    def encode_distribution(self, wav: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior of a waveform: the official ``encode_audio``, channels-last.

        Args:
            wav: (B, L) float waveform in [-1, 1] (clamped); zero-padded at the end to
                N * samples_per_latent samples, N = ceil(L / samples_per_latent).

        Returns:
            mean, std: each (B, N, C) float32, on the codec's device. The mel is computed in float32,
            the VAE runs in the codec's dtype.
        """
        mel = self.mel(self.pad_waveform(wav)).to(self.vae.data_mean.dtype)  # (B, n_mels, 2N)
        mean, std = self.vae.encode(mel)  # (B, C, N) each
        return mean.transpose(1, 2).float(), std.transpose(1, 2).float()

    def encode(self, wav: Tensor) -> Tensor:
        """Raw latents (B, N, C): the posterior mean (see :meth:`encode_distribution`)."""
        return self.encode_distribution(wav)[0]

    def decode_mel(self, latent: Tensor) -> Tensor:
        """Log-mel (B, n_mels, 2N) of raw latents (B, N, C): the official ``decode``."""
        if latent.dim() != 3 or latent.shape[2] != self.latent_dim or latent.shape[1] == 0:
            raise ValueError(f"expected a (B, N, {self.latent_dim}) latent with N >= 1, got {tuple(latent.shape)}")
        return self.vae.decode(latent.to(self.vae.data_mean.device, self.vae.data_mean.dtype).transpose(1, 2))

    def vocode(self, mel: Tensor) -> Tensor:
        """Waveform (B, T * hop) float32 of a log-mel (B, n_mels, T): the official ``vocode``."""
        return self.vocoder(mel.to(self.vocoder.conv_pre.weight.dtype)).squeeze(1).float()

    def decode(self, latent: Tensor) -> Tensor:
        """Waveform (B, N * samples_per_latent) float32 of raw latents (B, N, C), on the codec's device."""
        return self.vocode(self.decode_mel(latent))


def _describe(known: CodecFile) -> str:
    return f"{known.filename} ({known.size}, {known.algorithm} {known.digest}) from {known.url}"


def _check_files(files: list[tuple[str, str, CodecFile | None]], verify_checksum: bool,
                 storage_options: Mapping | None) -> None:
    """Fail before loading anything: first on every missing file (all named at once), then on checksums."""
    opts = dict(storage_options or {})
    missing = []
    for path, what, known in files:
        fs, p = fsspec.core.url_to_fs(path, **opts)
        if not fs.exists(p):
            hint = f" Download {_describe(known)} and pass its local path or fsspec URL." if known is not None else ""
            missing.append(f"{what} not found at {path!r}.{hint}")
    if missing:
        raise WeightsNotFound("\n".join(missing))
    for path, what, known in files:
        if verify_checksum and known is not None:
            digest = file_digest(path, known.algorithm, opts)
            if digest != known.digest:
                fs, p = fsspec.core.url_to_fs(path, **opts)
                raise ChecksumMismatch(
                    f"{what} at {path!r} ({fs.size(p)} bytes) has {known.algorithm} {digest}, expected "
                    f"{known.digest}: it is not {known.filename} or it is incomplete. Download {_describe(known)}.")


def _read_state(path: str, what: str, known: CodecFile | None, storage_options: Mapping | None) -> Mapping[str, Tensor]:
    """``torch.load`` a checked file on the CPU (weights only)."""
    fs, p = fsspec.core.url_to_fs(path, **dict(storage_options or {}))
    try:
        with fs.open(p, "rb") as f:
            state = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for damaged archives and pickles
        hint = f" Expected {_describe(known)}." if known is not None else ""
        raise CorruptWeights(f"{what} at {path!r} ({fs.size(p)} bytes) is not a readable PyTorch checkpoint; "
                             f"it may be truncated ({type(err).__name__}: {err}).{hint}") from err
    if not isinstance(state, Mapping):
        raise IncompatibleWeights(f"{what} at {path!r} holds a {type(state).__name__}, not a state dict")
    return state


def load_codec(mode: str, vae: str, vocoder: str, *, size: str = "full", verify_checksum: bool = True,
               storage_options: Mapping | None = None) -> MMAudioCodec:
    """Build MMAudio's codec for ``mode`` and load the official VAE and vocoder files.

    Args:
        mode: ``'16k'`` (``v1-16.pth`` + BigVGAN ``best_netG.pt``) or ``'44k'`` (``v1-44.pth`` +
            BigVGAN-v2 ``bigvgan_generator.pt``).
        vae: local path or fsspec URL of the VAE file (raw weights; converted once here).
        vocoder: local path or fsspec URL of the vocoder file (a dict with a ``'generator'`` state
            dict, weight norm folded here), or of a bare generator state dict.
        size: ``'full'`` (official files) or ``'tiny'`` (test files); checksums apply to ``'full'`` only.
        verify_checksum: check each file against :data:`CODEC_FILES` (``False`` for fine-tuned files).
        storage_options: fsspec options for both paths.

    Raises:
        WeightsNotFound: a file is missing (the message names it, its size, checksum and source).
        ChecksumMismatch: a file is not the official one.
        CorruptWeights: a file cannot be read (e.g. truncated).
        IncompatibleWeights: a state dict does not fit the mode (missing, unexpected and mis-shaped keys).
    """
    config = MMAudioCodecConfig.preset(mode, size)
    official = size == "full"
    vae_file = (vae, f"MMAudio VAE weights for mode {mode}", CODEC_FILES[(mode, "vae")] if official else None)
    voc_file = (vocoder, f"BigVGAN vocoder weights for mode {mode}",
                CODEC_FILES[(mode, "vocoder")] if official else None)
    _check_files([vae_file, voc_file], verify_checksum, storage_options)
    with torch.device("meta"):  # no random init of weights that are overwritten; the files are assigned
        codec = MMAudioCodec(config)
    codec.mel = MelConverter(config.mel)  # its buffers come from the config, not from a file

    vae_state = convert_raw_state_dict(_read_state(*vae_file, storage_options))
    check_state_dict(codec.vae, vae_state, f"VAE weights in {vae}")
    codec.vae.load_state_dict(vae_state, strict=True, assign=True)

    voc = _read_state(*voc_file, storage_options)
    generator = voc.get("generator", voc)
    if not isinstance(generator, Mapping):
        raise IncompatibleWeights(f"the 'generator' entry of {vocoder} is a {type(generator).__name__}, not a state dict")
    try:
        voc_state = fold_weight_norm(generator)
    except KeyError as err:
        raise IncompatibleWeights(f"vocoder weights in {vocoder}: {err.args[0]}") from err
    check_state_dict(codec.vocoder, voc_state, f"vocoder weights in {vocoder}")
    codec.vocoder.load_state_dict(voc_state, strict=True, assign=True)
    return codec.requires_grad_(False).eval()
