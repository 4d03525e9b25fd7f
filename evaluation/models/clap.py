"""LAION-CLAP (Wu et al., 2023) as av-benchmark uses it: the paper's CLAP A-A and CLAP T-A embeddings.

av-benchmark builds ``laion_clap.CLAP_Module(enable_fusion=False, amodel="HTSAT-base")`` (the
``hkchengrex/CLAP`` fork), loads ``music_speech_audioset_epoch_15_esc_89.98.pt`` (a non-fusion
checkpoint, so there is no fusion branch here), embeds audio with
``get_audio_embedding_from_data(wav, use_tensor=True)`` and text with ``get_text_embedding([caption])``.
This module computes the same embeddings without laion_clap:

Audio (48 kHz, mono): DC removal (av-benchmark subtracts the file's mean before resampling; here the
mean of the waveform given, see ``embed_audio``), then the clip is brought to 10 s (480 000 samples)
the way ``get_audio_features(..., "rand_trunc", "repeatpad")`` does: a shorter clip is tiled
``480000 // L`` times and zero-padded at the end; a longer one is cropped at an offset drawn
as ``randint(0, L - 480000 + 1)`` (laion_clap draws it from numpy's global generator; here from the
``crop_rng`` given, or offset 0 without one). No int16 quantisation (``use_tensor=True``). Then
torchlibrosa's log-mel: centred reflect-padded STFT (n_fft 1024, hop 480, periodic Hann), power,
librosa's Slaney mel basis (64 bins, 50 Hz - 14 kHz), ``10 log10(max(x, 1e-10))``; 1001 frames.
HTSAT-base: batch norm over the mel bins, bicubic stretch (align_corners) of the time axis to 1024
frames, the 1024 x 64 image folded into 256 x 256 (four time chunks stacked along frequency), a
4 x 4 patch embedding, four Swin stages (depths 2, 2, 12, 2, windows of 8, shifted every other
block), final LayerNorm, mean over the 8 x 8 tokens (1024-d), then the audio projection
(Linear-ReLU-Linear to 512) and L2 normalisation.

Text: RoBERTa-base's byte-level BPE (``vocab.json`` and ``merges.txt`` of ``FacebookAI/roberta-base``)
padded and truncated to 77 tokens, ``RobertaModel`` (pooler output: tanh of a dense layer on the
``<s>`` token), the text projection (Linear-ReLU-Linear to 512) and L2 normalisation.

Checkpoint keys this module does not use are dropped on load (``UNUSED_KEYS``): the training-time
MLP heads and logit scales, HTSAT's AudioSet head, and torchlibrosa's STFT/mel matrices (recomputed
here from ``torch.stft`` and ``librosa.filters.mel``).
"""
from __future__ import annotations

import dataclasses
import json
import posixpath
from typing import Mapping, Sequence

import fsspec
import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

from common.presets import pick_preset
from nag_model.checkpoint import OFFICIAL_WEIGHTS, check_state_dict, read_bytes, read_weight_file

__all__ = ["ClapConfig", "ClapTokenizer", "LaionClap", "LogMel", "HTSAT", "fit_to_clip", "get_clap_config"]

# Checkpoint entries that are not part of the embedding path (dropped before the strict load).
UNUSED_KEYS = ("logit_scale_a", "logit_scale_t", "audio_transform.", "text_transform.", "audio_branch.tscam_conv.",
               "audio_branch.head.", "audio_branch.spectrogram_extractor.", "audio_branch.logmel_extractor.",
               "text_branch.embeddings.position_ids")


@dataclasses.dataclass(frozen=True)
class ClapConfig:
    """LAION-CLAP sizes; ``htsat-base`` is the checkpoint av-benchmark uses, ``tiny`` is for tests.

    Attributes:
        name: preset name.
        sample_rate, clip_samples: input rate (Hz) and the fixed clip length (10 s).
        n_fft, hop_length, n_mels, f_min, f_max: the log-mel front end (window = n_fft, periodic Hann).
        spec_size, patch_size: HTSAT's square input image and its patch size (= stride).
        audio_width, depths, heads, window, mlp_ratio: the Swin stages.
        vocab_size, text_width, text_layers, text_heads, text_ffn, max_positions, context_length: RoBERTa.
        joint_dim: the shared embedding size.
    """

    name: str
    sample_rate: int = 48_000
    clip_samples: int = 480_000
    n_fft: int = 1024
    hop_length: int = 480
    n_mels: int = 64
    f_min: float = 50.0
    f_max: float = 14_000.0
    spec_size: int = 256
    patch_size: int = 4
    audio_width: int = 128
    depths: tuple[int, ...] = (2, 2, 12, 2)
    heads: tuple[int, ...] = (4, 8, 16, 32)
    window: int = 8
    mlp_ratio: float = 4.0
    vocab_size: int = 50_265
    text_width: int = 768
    text_layers: int = 12
    text_heads: int = 12
    text_ffn: int = 3072
    max_positions: int = 514
    context_length: int = 77
    joint_dim: int = 512

    def __post_init__(self) -> None:
        if self.spec_size % self.n_mels or len(self.depths) != len(self.heads):
            raise ValueError(f"need n_mels | spec_size and one head count per stage: {self}")
        if self.clip_samples // self.hop_length + 1 > self.time_frames:
            raise ValueError(f"{self.clip_samples} samples give more frames than HTSAT's {self.time_frames}: {self}")

    @property
    def freq_ratio(self) -> int:
        """Time chunks stacked along the frequency axis of HTSAT's square image."""
        return self.spec_size // self.n_mels

    @property
    def time_frames(self) -> int:
        """Frames after the bicubic stretch (1024 for the official sizes)."""
        return self.spec_size * self.freq_ratio

    @property
    def audio_features(self) -> int:
        return self.audio_width * 2 ** (len(self.depths) - 1)


PRESETS: dict[str, ClapConfig] = {
    "htsat-base": ClapConfig("htsat-base"),
    "tiny": ClapConfig("tiny", audio_width=8, depths=(2, 2, 2, 2), heads=(1, 2, 2, 4), vocab_size=283, text_width=32,
                       text_layers=2, text_heads=2, text_ffn=64, max_positions=80, joint_dim=24),
}


def get_clap_config(preset: str | ClapConfig) -> ClapConfig:
    return pick_preset(preset, PRESETS, ClapConfig, "LAION-CLAP")


# ---------------------------------------------------------------------------------------------------
# Waveform preparation and the log-mel front end


def fit_to_clip(wav: torch.Tensor, clip_samples: int, rng: np.random.RandomState | None = None) -> torch.Tensor:
    """laion_clap's "repeatpad" / "rand_trunc": (L,) -> (clip_samples,)."""
    n = wav.shape[-1]
    if n == 0:
        raise ValueError("cannot embed an empty waveform")
    if n > clip_samples:
        start = int(rng.randint(0, n - clip_samples + 1)) if rng is not None else 0
        return wav[start:start + clip_samples]
    tiled = wav.repeat(clip_samples // n)
    return F.pad(tiled, (0, clip_samples - tiled.shape[-1]))


class LogMel(nn.Module):
    """torchlibrosa's ``Spectrogram`` + ``LogmelFilterBank`` (power, ref 1, amin 1e-10, no top_db)."""

    def __init__(self, config: ClapConfig):
        super().__init__()
        self.n_fft, self.hop_length = config.n_fft, config.hop_length
        window = torch.hann_window(config.n_fft, periodic=True, dtype=torch.float64).float()
        basis = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels,
                                    fmin=config.f_min, fmax=config.f_max)  # (M, F) Slaney scale and norm
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("mel_basis", torch.from_numpy(basis).T.contiguous(), persistent=False)  # (F, M)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, T, M), T = L // hop + 1
        spec = torch.stft(wav, self.n_fft, self.hop_length, window=self.window, center=True, pad_mode="reflect",
                          return_complex=True)  # (B, F, T)
        power = spec.real.square() + spec.imag.square()
        mel = power.transpose(1, 2) @ self.mel_basis
        return 10.0 * torch.log10(mel.clamp(min=1e-10))


# ---------------------------------------------------------------------------------------------------
# HTSAT: the Swin-transformer audio encoder


def _windows(x: torch.Tensor, w: int) -> torch.Tensor:  # (B, H, W, C) -> (B * nW, w * w, C)
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def _unwindows(x: torch.Tensor, w: int, h: int, wd: int) -> torch.Tensor:  # (B * nW, w * w, C) -> (B, H, W, C)
    c = x.shape[-1]
    x = x.view(-1, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, wd, c)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a learned relative-position bias."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads = heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = coords[:, :, None] - coords[:, None, :] + window - 1  # (2, N, N), N = window^2
        self.register_buffer("relative_position_index", rel[0] * (2 * window - 1) + rel[1])
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:  # (B * nW, N, C)
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)  # (B*nW, h, N, d)
        bias = self.relative_position_bias_table[self.relative_position_index].permute(2, 0, 1)  # (h, N, N)
        if mask is not None:  # (nW, N, N): windows repeat per batch item
            bias = (bias[None] + mask[:, None]).repeat(bw // mask.shape[0], 1, 1, 1)  # (B*nW, h, N, N)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    """Pre-norm Swin block; odd blocks cyclically shift by half a window (and mask across the seams)."""

    def __init__(self, dim: int, heads: int, resolution: int, window: int, shift: int, mlp_ratio: float):
        super().__init__()
        if resolution <= window:  # one window covers the map: no shift
            window, shift = resolution, 0
        self.resolution, self.window, self.shift = resolution, window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.register_buffer("attn_mask", self._shift_mask() if shift else None)

    def _shift_mask(self) -> torch.Tensor:  # (nW, N, N): -100 between tokens from different regions
        r, w, s = self.resolution, self.window, self.shift
        idx = torch.arange(r)
        band = (idx >= r - w).long() + (idx >= r - s).long()  # 0, 1, 2: regions along each axis
        region = (band[:, None] * 3 + band[None, :]).float()[None, :, :, None]  # (1, r, r, 1)
        ids = _windows(region, w).squeeze(-1)  # (nW, N)
        return torch.where(ids[:, None, :] == ids[:, :, None], 0.0, -100.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, r*r, C)
        b, _, c = x.shape
        r = self.resolution
        h = self.norm1(x).view(b, r, r, c)
        if self.shift:
            h = torch.roll(h, (-self.shift, -self.shift), dims=(1, 2))
        h = _unwindows(self.attn(_windows(h, self.window), self.attn_mask), self.window, r, r)
        if self.shift:
            h = torch.roll(h, (self.shift, self.shift), dims=(1, 2))
        x = x + h.reshape(b, r * r, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2 x 2 neighbours concatenated, normalised and projected: (B, r*r, C) -> (B, r*r/4, 2C)."""

    def __init__(self, dim: int, resolution: int):
        super().__init__()
        self.resolution = resolution
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        x = x.view(b, self.resolution, self.resolution, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinStage(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, resolution: int, config: ClapConfig, merge: bool):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, heads, resolution, config.window, (i % 2) * (config.window // 2), config.mlp_ratio)
            for i in range(depth))
        self.downsample = PatchMerging(dim, resolution) if merge else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    def __init__(self, width: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(1, width, patch, stride=patch)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, S, S) -> (B, (S/p)^2, C)
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class HTSAT(nn.Module):
    """HTSAT's embedding path: log-mel (B, T, M) -> the mean of its last Swin tokens (B, D)."""

    def __init__(self, config: ClapConfig):
        super().__init__()
        self.config = config
        self.bn0 = nn.BatchNorm2d(config.n_mels)
        self.patch_embed = PatchEmbed(config.audio_width, config.patch_size)
        grid = config.spec_size // config.patch_size
        self.layers = nn.ModuleList(
            SwinStage(config.audio_width * 2 ** i, depth, heads, grid // 2 ** i, config, i < len(config.depths) - 1)
            for i, (depth, heads) in enumerate(zip(config.depths, config.heads)))
        self.norm = nn.LayerNorm(config.audio_features)

    def to_image(self, logmel: torch.Tensor) -> torch.Tensor:  # (B, T, M) -> (B, 1, S, S)
        """Batch norm per mel bin, bicubic stretch to ``time_frames``, time chunks stacked along frequency."""
        cfg = self.config
        b, t, m = logmel.shape
        if t > cfg.time_frames or m != cfg.n_mels:
            raise ValueError(f"log-mel of shape {tuple(logmel.shape)} does not fit HTSAT ({cfg.time_frames}, {cfg.n_mels})")
        x = self.bn0(logmel.transpose(1, 2)[..., None])[..., 0].transpose(1, 2)[:, None]  # (B, 1, T, M)
        if t < cfg.time_frames:
            x = F.interpolate(x, (cfg.time_frames, m), mode="bicubic", align_corners=True)
        x = x.view(b, cfg.freq_ratio, cfg.spec_size, m)  # (B, R, S, M): R time chunks of S frames
        return x.permute(0, 1, 3, 2).reshape(b, 1, cfg.freq_ratio * m, cfg.spec_size)  # rows: chunk-major mel

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(self.to_image(logmel))  # (B, N, C)
        for stage in self.layers:
            x = stage(x)
        return self.norm(x).mean(dim=1)  # (B, D)


# ---------------------------------------------------------------------------------------------------
# Text: RoBERTa's tokenizer, read from local files


class ClapTokenizer:
    """RoBERTa-base's byte-level BPE from its ``vocab.json`` and ``merges.txt``, padded/truncated to 77."""

    def __init__(self, vocab: Mapping[str, int], merges: Sequence[tuple[str, str]], context_length: int = 77):
        self.context_length = context_length
        self._tok = RobertaTokenizer(vocab=dict(vocab), merges=list(merges))

    @classmethod
    def from_dir(cls, folder: str, *, context_length: int = 77,
                 storage_options: Mapping | None = None) -> "ClapTokenizer":
        """Read ``vocab.json`` and ``merges.txt`` from ``folder`` (local path or fsspec URL)."""
        vocab_path, merges_path = posixpath.join(folder, "vocab.json"), posixpath.join(folder, "merges.txt")
        vocab = json.loads(read_bytes(vocab_path, "RoBERTa-base vocab.json (LAION-CLAP's tokenizer)",
                                      OFFICIAL_WEIGHTS["roberta_base_vocab"], storage_options))
        text = read_bytes(merges_path, "RoBERTa-base merges.txt (LAION-CLAP's tokenizer)",
                          OFFICIAL_WEIGHTS["roberta_base_merges"], storage_options).decode("utf-8")
        merges = [tuple(line.split(" ")) for line in text.splitlines() if line and not line.startswith("#version")]
        return cls(vocab, merges, context_length)

    def __call__(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask), each (B, context_length) int64."""
        out = self._tok(list(captions), padding="max_length", truncation=True, max_length=self.context_length,
                        return_tensors="pt")
        return out["input_ids"], out["attention_mask"]


def _roberta_config(config: ClapConfig) -> RobertaConfig:
    """RoBERTa-base's config.json (dropout is inactive in eval mode)."""
    return RobertaConfig(vocab_size=config.vocab_size, hidden_size=config.text_width,
                         num_hidden_layers=config.text_layers, num_attention_heads=config.text_heads,
                         intermediate_size=config.text_ffn, max_position_embeddings=config.max_positions,
                         type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2)


def _projection(dim: int, joint: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, joint), nn.ReLU(), nn.Linear(joint, joint))


def _as_clips(wavs) -> list[torch.Tensor]:
    if isinstance(wavs, (np.ndarray, torch.Tensor)):
        if wavs.ndim != 2:
            raise ValueError(f"expected mono waveforms (B, L), got shape {tuple(wavs.shape)}")
        wavs = list(wavs)
    clips = [torch.as_tensor(np.asarray(w, dtype=np.float32) if not isinstance(w, torch.Tensor) else w).float()
             for w in wavs]
    for c in clips:
        if c.ndim != 1:
            raise ValueError(f"expected 1-D mono waveforms, got one of shape {tuple(c.shape)}")
    return clips


class LaionClap(nn.Module):
    """LAION-CLAP audio and text towers; ``embed_audio`` / ``embed_text`` give L2-normalised (B, 512) arrays.

    Submodule names follow laion_clap's ``CLAP`` so that official checkpoints load strictly.
    """

    def __init__(self, config: ClapConfig | str = "htsat-base", tokenizer: ClapTokenizer | None = None):
        super().__init__()
        self.config = get_clap_config(config)
        self.name = f"laion-clap-{self.config.name}"
        self.sample_rate = self.config.sample_rate
        self.tokenizer = tokenizer
        self.logmel = LogMel(self.config)
        self.audio_branch = HTSAT(self.config)
        self.audio_projection = _projection(self.config.audio_features, self.config.joint_dim)
        self.text_branch = RobertaModel(_roberta_config(self.config), add_pooling_layer=True)
        self.text_projection = _projection(self.config.text_width, self.config.joint_dim)

    @classmethod
    def from_file(cls, path: str, preset: str | ClapConfig = "htsat-base", *, tokenizer_dir: str | None = None,
                  verify_checksum: bool = True, storage_options: Mapping | None = None) -> "LaionClap":
        """Load ``music_speech_audioset_epoch_15_esc_89.98.pt`` (local path or fsspec URL), in eval mode.

        The tokenizer files ``vocab.json`` and ``merges.txt`` of RoBERTa-base are read from
        ``tokenizer_dir``, by default the folder holding the weights.
        """
        config = get_clap_config(preset)
        known = OFFICIAL_WEIGHTS["laion_clap"] if config.name == "htsat-base" else None
        state = read_weight_file(path, f"LAION-CLAP weights ({config.name})", known, verify_checksum=verify_checksum,
                                 storage_options=storage_options)
        folder = tokenizer_dir if tokenizer_dir is not None else posixpath.dirname(path.rstrip("/"))
        tokenizer = ClapTokenizer.from_dir(folder or ".", context_length=config.context_length,
                                           storage_options=storage_options)
        return cls(config, tokenizer).load_official_state(state).eval()

    def load_official_state(self, state: Mapping[str, torch.Tensor]) -> "LaionClap":
        """Strict-load a laion_clap ``CLAP`` state dict, less ``UNUSED_KEYS`` (input untouched)."""
        kept = {k: v for k, v in state.items() if not k.startswith(UNUSED_KEYS)}
        check_state_dict(self, kept, "LAION-CLAP weights")
        self.load_state_dict(kept, strict=True)
        return self

    @property
    def device(self) -> torch.device:
        return self.audio_projection[0].weight.device

    @torch.inference_mode()
    def embed_audio(self, wavs, *, remove_dc: bool = True, crop_rng: np.random.RandomState | None = None,
                    batch_size: int = 16) -> np.ndarray:
        """L2-normalised audio embeddings.

        Args:
            wavs: (B, L) float waveforms at 48 kHz in [-1, 1] (numpy or torch), or a list of 1-D clips of
                any lengths.
            remove_dc: subtract each clip's mean first, as av-benchmark's loader does (it takes the mean
                of the whole file at its own rate, before resampling and cutting to 8 s).
            crop_rng: the generator a clip longer than 10 s is cropped with (laion_clap uses numpy's
                global one); without it the crop starts at 0.
            batch_size: clips per forward pass.

        Returns:
            (B, joint_dim) float32 array.
        """
        clips = []
        for wav in _as_clips(wavs):
            wav = wav - wav.mean() if remove_dc else wav
            clips.append(fit_to_clip(wav, self.config.clip_samples, crop_rng))
        out = []
        for start in range(0, len(clips), batch_size):
            batch = torch.stack(clips[start:start + batch_size]).to(self.device)  # (b, clip_samples)
            emb = self.audio_projection(self.audio_branch(self.logmel(batch)))
            out.append(F.normalize(emb, dim=-1).float().cpu())
        return torch.cat(out).numpy()

    @torch.inference_mode()
    def embed_text(self, captions: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """L2-normalised text embeddings (B, joint_dim) float32 for a list of captions."""
        if self.tokenizer is None:
            raise RuntimeError("this LaionClap has no tokenizer: build it with from_file or pass a ClapTokenizer")
        if isinstance(captions, str):
            raise TypeError("embed_text takes a list of captions, not one string")
        out = []
        for start in range(0, len(captions), batch_size):
            ids, mask = self.tokenizer(captions[start:start + batch_size])
            pooled = self.text_branch(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).pooler_output
            out.append(F.normalize(self.text_projection(pooled), dim=-1).float().cpu())
        return torch.cat(out).numpy()
