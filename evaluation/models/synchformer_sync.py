"""DeSync: the whole Synchformer (visual + audio branches, synchronisation transformer), as av-benchmark scores it.

DeSync measures how far a generated track is out of step with its video: Synchformer predicts the
audio-visual offset, one of 21 classes `linspace(-2, 2)` s, and DeSync is the mean |offset| in seconds.
It follows `hkchengrex/av-benchmark` (commit 050a5cd; `extract_video.py`, `av_bench/extract.py`,
`av_bench/evaluate.py`, `av_bench/synchformer/`) step by step:

- video: the first `duration` (8 s) of 25-fps frames (`video_fps`); shorter edge resized to 224 (bicubic,
  antialiased), centre crop, scaled to [-1, 1] (`nag_model.encoders.synchformer.preprocess_frames`);
  16-frame segments every 8 frames through the visual branch (the MotionFormer MMAudio also runs): (B, 24, 8, D).
- audio: the first `duration` of 16-kHz mono audio (no DC removal: av-benchmark's `SynchformerAudioDataset`
  does none); segments of 10240 samples every 5120; torchaudio's `MelSpectrogram(16000, n_fft=1024,
  win_length=400, hop_length=160, n_mels=128)` per segment (power 2, periodic Hann window, centred
  reflect-padded STFT, HTK mel scale without area normalisation), log(x + 1e-6), padded with zeros or
  cut to 66 frames, normalised as (x + 4.2677393) / (2 * 4.5689974); then the audio branch, an AST
  (16x16 patches every 10 bins and frames: 12 x 6 patches) whose tokens a CLS layer pools over frequency:
  (B, 24, 6, D).
- scoring: the sync transformer compares the first 14 and the last 14 segments (4.8 s each):
  both streams go through their bridge (`vproj`, `aproj`), then [OFF, video tokens, MOD, audio tokens]
  (198 tokens) through 3 blocks; the OFF token's 21 logits; argmax; the class's offset in seconds.
  DeSync of a clip is the mean |offset| over the two windows (av-benchmark averages over windows and
  clips alike, so the mean of our per-clip values is its number).

Where this differs from av-benchmark: it runs on whatever device the module is on (av-benchmark on CUDA,
with `torch.compile` for the video); an argmax between near-tied logits may then pick another class.
Decoding and resampling are the caller's (av-benchmark decodes at 25 fps with torio and resamples
with torchaudio's default `Resample`). The mel filters come from librosa (`htk=True, norm=None`),
equal to torchaudio's `melscale_fbanks` up to float rounding; the STFT is `torch.stft` with torchaudio's
arguments. The AST is written here rather than taken from transformers, whose module names (and so
state-dict keys) change between releases; this one has the file's layout.

The official file `synchformer_state_dict.pth` loads strictly: every entry is used, except the visual
branch's 2-D patch embedding, which the official code builds only to count patches (it is checked and
dropped, as in `nag_model.encoders.synchformer`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Mapping, Sequence

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.presets import pick_preset
from nag_model.checkpoint import OFFICIAL_WEIGHTS, IncompatibleWeights, check_state_dict, read_weight_file
from nag_model.encoders.synchformer import (SYNCHFORMER_PRESETS, VISUAL_PREFIX, CLSPooling, MotionFormer,
                                            SynchformerConfig, preprocess_frames, split_segments, unused_keys)


@dataclass(frozen=True)
class SyncConfig:
    """Synchformer's audio branch and sync transformer, and av-benchmark's DeSync preprocessing."""

    name: str = "synchformer"
    visual: SynchformerConfig = SYNCHFORMER_PRESETS["synchformer"]  # the MotionFormer (shared with MMAudio)
    dim: int = 768  # width of the audio branch and of the sync transformer (= visual.embed_dim)
    # audio branch: an AST over (n_mels x spec_frames) log-mel segments
    n_mels: int = 128
    spec_frames: int = 66
    audio_patch: int = 16
    audio_stride: int = 10  # along frequency and time
    audio_depth: int = 12
    audio_heads: int = 12
    audio_ff: int = 3072  # AST MLP width, also the frequency pooling layer's
    audio_eps: float = 1e-12  # AST LayerNorms (transformers' ASTConfig default)
    pool_eps: float = 1e-6  # frequency CLS pooling layer
    # synchronisation transformer and its offset classes
    sync_depth: int = 3
    sync_heads: int = 8
    window_segments: int = 14  # segments compared at once (4.8 s)
    num_offsets: int = 21
    max_offset: float = 2.0  # classes linspace(-max_offset, max_offset, num_offsets) seconds
    # av-benchmark's inputs
    sample_rate: int = 16000
    video_fps: int = 25
    duration: float = 8.0  # seconds of audio and video scored (av-benchmark's audio_length)
    segment_samples: int = 10240  # 0.64 s, the span of 16 frames
    segment_step: int = 5120  # 0.32 s, the step of 8 frames
    n_fft: int = 1024
    win_length: int = 400
    hop_length: int = 160
    log_eps: float = 1e-6
    mel_mean: float = -4.2677393
    mel_std: float = 4.5689974  # normalised as (x - mean) / (2 * std)

    def __post_init__(self):
        if self.visual.embed_dim != self.dim:
            raise ValueError(f"{self.name}: visual.embed_dim {self.visual.embed_dim} != dim {self.dim}")
        for heads in (self.audio_heads, self.sync_heads):
            if self.dim % heads:
                raise ValueError(f"{self.name}: dim {self.dim} is not divisible by {heads} heads")
        if self.segment_samples * self.video_fps != self.visual.segment_frames * self.sample_rate or \
                self.segment_step * self.video_fps != self.visual.segment_step * self.sample_rate:
            raise ValueError(f"{self.name}: audio and video segments must span the same time")

    @property
    def audio_grid(self) -> tuple[int, int]:
        """AST patches along frequency and time: (12, 6)."""
        def n(size: int) -> int:
            return (size - self.audio_patch) // self.audio_stride + 1
        return n(self.n_mels), n(self.spec_frames)

    @property
    def sync_positions(self) -> int:
        """Tokens the sync transformer sees: OFF + video + MOD + audio = 198."""
        per_segment = self.visual.tokens_per_segment + self.audio_grid[1]
        return 2 + self.window_segments * per_segment

    @property
    def num_samples(self) -> int:
        return round(self.duration * self.sample_rate)

    @property
    def num_frames(self) -> int:
        return round(self.duration * self.video_fps)

    @property
    def offset_grid(self) -> np.ndarray:
        """The offset of each class in seconds, float32 as av-benchmark's `make_class_grid`."""
        return np.linspace(-self.max_offset, self.max_offset, self.num_offsets).astype(np.float32)


SYNC_PRESETS: dict[str, SyncConfig] = {
    "synchformer": SyncConfig(),
    # Tests: the same code path at toy width (32-px frames, 2 AST layers, 2 sync blocks), real inputs and windows.
    "tiny": SyncConfig(name="tiny", visual=SYNCHFORMER_PRESETS["tiny"], dim=32, audio_depth=2, audio_heads=4,
                       audio_ff=64, sync_depth=2, sync_heads=4),
}


def get_sync_config(preset: str | SyncConfig) -> SyncConfig:
    return pick_preset(preset, SYNC_PRESETS, SyncConfig, "Synchformer (DeSync)", KeyError)


# ---------------------------------------------------------------------------------------- audio front end
@functools.lru_cache(maxsize=8)
def mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) triangular HTK mel filters without area normalisation: torchaudio's defaults."""
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=sample_rate / 2,
                               htk=True, norm=None).T


def log_mel_segments(wavs: torch.Tensor, config: SyncConfig) -> torch.Tensor:
    """av-benchmark's `encode_audio_with_sync` front end: (B, L) 16-kHz audio -> (B, S, n_mels, spec_frames).

    S = (L - 10240) // 5120 + 1 segments (24 for 8 s), each a normalised log-mel spectrogram.
    """
    if wavs.shape[-1] < config.segment_samples:
        raise ValueError(f"audio needs at least {config.segment_samples} samples (one segment), got {wavs.shape[-1]}")
    segments = wavs.unfold(-1, config.segment_samples, config.segment_step)  # (B, S, samples)
    b, s, n = segments.shape
    window = torch.hann_window(config.win_length, device=wavs.device, dtype=wavs.dtype)
    spec = torch.stft(segments.reshape(b * s, n), config.n_fft, config.hop_length, config.win_length, window,
                      center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    power = spec.abs().pow(2.0)  # (B*S, n_fft // 2 + 1, frames)
    fb = torch.as_tensor(mel_filters(config.sample_rate, config.n_fft, config.n_mels), device=wavs.device,
                         dtype=wavs.dtype)
    mel = torch.matmul(power.transpose(-1, -2), fb).transpose(-1, -2)  # (B*S, n_mels, frames)
    x = torch.log(mel + config.log_eps)
    pad = config.spec_frames - x.shape[-1]  # 65 frames per segment: one zero column
    x = F.pad(x, (0, pad)) if pad > 0 else x[..., :config.spec_frames]
    x = (x - config.mel_mean) / (2 * config.mel_std)
    return x.reshape(b, s, config.n_mels, config.spec_frames)


# ------------------------------------------------------------------------------------------ audio branch
def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Multi-head softmax attention over (B, L, D) projections -> (B, L, D)."""
    b, length, dim = q.shape
    q, k, v = (t.view(b, length, heads, dim // heads).transpose(1, 2) for t in (q, k, v))  # (B, H, L, d)
    return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, length, dim)


class _Dense(nn.Module):
    """One linear layer under the name `dense` (the official file's AST layout)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)


class _QKV(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)


class _ASTAttention(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.attention = _QKV(dim)
        self.output = _Dense(dim, dim)


class ASTLayer(nn.Module):
    """A pre-norm ViT layer: attention, then a GELU MLP, each residual."""

    def __init__(self, config: SyncConfig):
        super().__init__()
        dim = config.dim
        self.heads = config.audio_heads
        self.attention = _ASTAttention(dim)
        self.intermediate = _Dense(dim, config.audio_ff)
        self.output = _Dense(config.audio_ff, dim)
        self.layernorm_before = nn.LayerNorm(dim, eps=config.audio_eps)
        self.layernorm_after = nn.LayerNorm(dim, eps=config.audio_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D)
        h, qkv = self.layernorm_before(x), self.attention.attention
        x = x + self.attention.output.dense(_attend(qkv.query(h), qkv.key(h), qkv.value(h), self.heads))
        return x + self.output.dense(F.gelu(self.intermediate.dense(self.layernorm_after(x))))


class _PatchProjection(nn.Module):
    def __init__(self, config: SyncConfig):
        super().__init__()
        self.projection = nn.Conv2d(1, config.dim, config.audio_patch, stride=config.audio_stride)


class ASTEmbeddings(nn.Module):
    """16x16 spectrogram patches (frequency-major) after a CLS and a distillation token, plus positions."""

    def __init__(self, config: SyncConfig):
        super().__init__()
        f, t = config.audio_grid
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.dim))
        self.distillation_token = nn.Parameter(torch.zeros(1, 1, config.dim))
        self.position_embeddings = nn.Parameter(torch.zeros(1, 2 + f * t, config.dim))
        self.patch_embeddings = _PatchProjection(config)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:  # (N, n_mels, frames) -> (N, 2 + f*t, D)
        x = self.patch_embeddings.projection(spec.unsqueeze(1)).flatten(2).transpose(1, 2)  # (N, f*t, D)
        aux = torch.cat([self.cls_token, self.distillation_token], dim=1).expand(x.shape[0], -1, -1)
        return torch.cat([aux, x], dim=1) + self.position_embeddings


class _ASTEncoder(nn.Module):
    def __init__(self, config: SyncConfig):
        super().__init__()
        self.layer = nn.ModuleList(ASTLayer(config) for _ in range(config.audio_depth))


class AST(nn.Module):
    """The Audio Spectrogram Transformer body (no classifier): (N, n_mels, frames) -> normed tokens (N, 2 + f*t, D)."""

    def __init__(self, config: SyncConfig):
        super().__init__()
        self.embeddings = ASTEmbeddings(config)
        self.encoder = _ASTEncoder(config)
        self.layernorm = nn.LayerNorm(config.dim, eps=config.audio_eps)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(spec)
        for layer in self.encoder.layer:
            x = layer(x)
        return self.layernorm(x)


class AudioFeatureExtractor(nn.Module):
    """Synchformer's audio branch: a log-mel segment -> one token per time patch, pooled over frequency."""

    def __init__(self, config: SyncConfig):
        super().__init__()
        self.config = config
        self.ast = AST(config)
        self.freq_attn_agg = CLSPooling(config.dim, config.audio_heads, config.audio_ff, config.pool_eps)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:  # (N, n_mels, frames) -> (N, t, D)
        f, t = self.config.audio_grid
        tokens = self.ast(spec)[:, 2:]  # (N, f*t, D), CLS and distillation tokens dropped
        n, dim = tokens.shape[0], tokens.shape[-1]
        by_time = tokens.view(n, f, t, dim).transpose(1, 2).reshape(n * t, f, dim)  # (N*t, f, D)
        return self.freq_attn_agg(by_time).view(n, t, dim)


# ------------------------------------------------------------------------------------ sync transformer
class _SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.key, self.query, self.value, self.proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(_attend(self.query(x), self.key(x), self.value(x), self.heads))


class SyncBlock(nn.Module):
    """A pre-norm transformer block (minGPT's, without a causal mask)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = _SelfAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class _Positions(nn.Module):
    def __init__(self, length: int, dim: int):
        super().__init__()
        self.pos_emb = nn.Parameter(torch.zeros(1, length, dim))


class SyncTransformer(nn.Module):
    """[OFF, video tokens, MOD, audio tokens] -> 21 offset logits read from the OFF token."""

    def __init__(self, config: SyncConfig):
        super().__init__()
        dim = config.dim
        self.OFF_tok = nn.Parameter(torch.zeros(1, 1, dim))
        self.MOD_tok = nn.Parameter(torch.zeros(1, 1, dim))
        self.vis_in_lnorm, self.aud_in_lnorm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.pos_emb_cfg = _Positions(config.sync_positions, dim)
        self.blocks = nn.Sequential(*(SyncBlock(dim, config.sync_heads) for _ in range(config.sync_depth)))
        self.ln_f = nn.LayerNorm(dim)
        self.off_head = nn.Linear(dim, config.num_offsets)

    def forward(self, vis: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:  # (B, Lv, D), (B, La, D) -> (B, 21)
        b = vis.shape[0]
        x = torch.cat([self.OFF_tok.expand(b, -1, -1), self.vis_in_lnorm(vis),
                       self.MOD_tok.expand(b, -1, -1), self.aud_in_lnorm(aud)], dim=1)  # (B, 198, D)
        x = self.blocks(x + self.pos_emb_cfg.pos_emb)
        return self.off_head(self.ln_f(x)[:, 0])


# ------------------------------------------------------------------------------------------------ model
class SynchformerSync(nn.Module):
    """The whole Synchformer for DeSync. State-dict keys are the official file's, less the unused 2-D patch embedding."""

    sample_rate = 16000
    video_fps = 25

    def __init__(self, config: SyncConfig | str = "synchformer"):
        super().__init__()
        self.config = get_sync_config(config)
        if (self.config.sample_rate, self.config.video_fps) != (self.sample_rate, self.video_fps):
            raise ValueError(f"{self.config.name}: DeSync takes {self.sample_rate}-Hz audio and {self.video_fps}-fps video")
        self.name = f"synchformer-desync-{self.config.name}" if self.config.name != "synchformer" else "synchformer-desync"
        self.vfeat_extractor = MotionFormer(self.config.visual)
        self.afeat_extractor = AudioFeatureExtractor(self.config)
        self.vproj = nn.Linear(self.config.dim, self.config.dim)
        self.aproj = nn.Linear(self.config.dim, self.config.dim)
        self.transformer = SyncTransformer(self.config)

    @classmethod
    def from_file(cls, path: str, preset: str | SyncConfig = "synchformer", *, verify_checksum: bool = True,
                  storage_options: Mapping | None = None) -> "SynchformerSync":
        """Load `synchformer_state_dict.pth` (local path or fsspec URL), checked against its MD5 for the official preset."""
        return load_synchformer_sync(path, preset, verify_checksum=verify_checksum, storage_options=storage_options)

    # ----------------------------------------------------------------------------------- features
    def _param(self) -> torch.Tensor:
        return next(self.parameters())

    @torch.inference_mode()
    def video_features(self, frames: Sequence[np.ndarray] | np.ndarray | torch.Tensor,
                       batch_size: int = 8) -> torch.Tensor:
        """Decoded 25-fps clips -> visual tokens per segment.

        Args:
            frames: B clips of uint8 RGB frames (T, H, W, 3), any size, T >= duration * 25 (200); a
                sequence of arrays or one (B, T, H, W, 3) array. Frames past `duration` are ignored.
            batch_size: segments per forward pass; does not change the result.
        Returns:
            (B, S, 8, D) with S = 24 for 8 s.
        """
        cfg, param = self.config, self._param()
        clips = []
        for i, clip in enumerate(frames):
            if clip.ndim != 4 or clip.shape[0] < cfg.num_frames:
                raise ValueError(f"clip {i}: needs (T, H, W, 3) frames with T >= {cfg.num_frames} "
                                 f"({cfg.duration} s at {cfg.video_fps} fps), got {tuple(clip.shape)}")
            clips.append(preprocess_frames(clip[:cfg.num_frames], cfg.visual.image_size))
        if not clips:
            raise ValueError("no clips given")
        x = torch.stack(clips).to(device=param.device, dtype=param.dtype)  # (B, T, 3, H, W)
        segments = split_segments(x, cfg.visual.segment_frames, cfg.visual.segment_step)  # (B, S, 16, 3, H, W)
        b, s = segments.shape[:2]
        segments = segments.flatten(0, 1).transpose(1, 2)  # (B*S, 3, 16, H, W)
        tokens = torch.cat([self.vfeat_extractor(segments[i:i + batch_size])
                            for i in range(0, len(segments), batch_size)])  # (B*S, 8, D)
        return tokens.view(b, s, cfg.visual.tokens_per_segment, cfg.dim)

    def _wavs(self, wavs: Sequence[np.ndarray] | np.ndarray | torch.Tensor) -> torch.Tensor:
        cfg, param = self.config, self._param()
        if isinstance(wavs, (list, tuple)):
            wavs = [torch.as_tensor(w) for w in wavs]
            if any(w.ndim != 1 or w.shape[0] < cfg.num_samples for w in wavs):
                raise ValueError(f"each waveform must be 1-D (mono) with at least {cfg.num_samples} samples "
                                 f"({cfg.duration} s), got shapes {[tuple(w.shape) for w in wavs]}")
            wavs = torch.stack([w[:cfg.num_samples] for w in wavs])
        wavs = torch.as_tensor(wavs)
        if wavs.ndim != 2 or wavs.shape[1] < cfg.num_samples:
            raise ValueError(f"wavs must be (B, L) mono audio at {cfg.sample_rate} Hz with L >= {cfg.num_samples} "
                             f"({cfg.duration} s), got {tuple(wavs.shape)}")
        return wavs[:, :cfg.num_samples].to(device=param.device, dtype=torch.float32)

    @torch.inference_mode()
    def log_mel(self, wavs: Sequence[np.ndarray] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B, L) 16-kHz audio -> the audio branch's input (B, S, 128, 66) for its first `duration` seconds."""
        return log_mel_segments(self._wavs(wavs), self.config)

    @torch.inference_mode()
    def audio_features(self, wavs: Sequence[np.ndarray] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B, L) 16-kHz mono audio in [-1, 1], L >= duration * 16000 -> audio tokens per segment (B, S, 6, D)."""
        spec = self.log_mel(wavs).to(self._param().dtype)
        b, s = spec.shape[:2]
        return self.afeat_extractor(spec.flatten(0, 1)).view(b, s, self.config.audio_grid[1], self.config.dim)

    @torch.inference_mode()
    def sync_logits(self, vis: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:
        """Synchformer's `compare_v_a`: (B, 14, 8, D) video and (B, 14, 6, D) audio tokens -> (B, 21) offset logits."""
        cfg = self.config
        if vis.shape[1] != cfg.window_segments or aud.shape[1] != cfg.window_segments:
            raise ValueError(f"sync_logits compares {cfg.window_segments} segments, got {vis.shape[1]} video "
                             f"and {aud.shape[1]} audio")
        vis, aud = self.vproj(vis), self.aproj(aud)
        return self.transformer(vis.flatten(1, 2), aud.flatten(1, 2))

    # ----------------------------------------------------------------------------------- scores
    @torch.inference_mode()
    def feature_logits(self, vis: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:
        """Offset logits of the first and the last 14 segments, from features: (B, 2, 21).

        Args:
            vis: (B, S, 8, D) from `video_features`, or (1, S, 8, D) for one video scored against B tracks
                (the video features do not depend on the audio: compute them once per video).
            aud: (B, S, 6, D) from `audio_features`, the same S >= 14.
        """
        w = self.config.window_segments
        if vis.shape[0] == 1 < aud.shape[0]:
            vis = vis.expand(aud.shape[0], -1, -1, -1)
        if vis.shape[0] != aud.shape[0]:
            raise ValueError(f"{vis.shape[0]} videos but {aud.shape[0]} waveforms")
        if vis.shape[1] != aud.shape[1] or vis.shape[1] < w:
            raise ValueError(f"need the same number (>= {w}) of video and audio segments, got {vis.shape[1]} "
                             f"and {aud.shape[1]}")
        return torch.stack([self.sync_logits(vis[:, :w], aud[:, :w]),
                            self.sync_logits(vis[:, -w:], aud[:, -w:])], dim=1)

    def window_logits(self, frames, wavs) -> torch.Tensor:
        """Offset logits of the first and the last 14 segments of clips: (B, 2, 21)."""
        wavs = self._wavs(wavs)  # checked before the costly video branch runs
        if len(frames) != len(wavs):
            raise ValueError(f"{len(frames)} videos but {len(wavs)} waveforms")
        return self.feature_logits(self.video_features(frames), self.audio_features(wavs))

    def offsets_from_features(self, vis: torch.Tensor, aud: torch.Tensor) -> np.ndarray:
        """`offsets` from `video_features` and `audio_features` (see `feature_logits`): (B, 2) seconds."""
        classes = self.feature_logits(vis, aud).argmax(dim=-1).cpu().numpy()  # (B, 2)
        return self.config.offset_grid[classes]

    def offsets(self, frames, wavs) -> np.ndarray:
        """Predicted audio-visual offsets in seconds, (B, 2): the first and the last 4.8-s windows.

        Args:
            frames: B clips of uint8 RGB frames (T, H, W, 3) at 25 fps, any size (see `video_features`).
            wavs: (B, L) mono audio at 16 kHz in [-1, 1] (numpy or torch), or a list of 1-D waveforms.
        """
        classes = self.window_logits(frames, wavs).argmax(dim=-1).cpu().numpy()  # (B, 2)
        return self.config.offset_grid[classes]

    def desync(self, frames, wavs) -> np.ndarray:
        """DeSync per clip, (B,): mean |offset| in seconds over the two windows (lower is better)."""
        return desync_of(self.offsets(frames, wavs))


def desync_of(offsets: np.ndarray) -> np.ndarray:
    """DeSync per clip from `offsets` (B, 2): the mean |offset| over the two windows, in seconds."""
    return np.abs(np.asarray(offsets, dtype=np.float64)).mean(axis=-1)


# ----------------------------------------------------------------------------------------------- loading
def patch_embed_2d_keys(config: SyncConfig) -> dict[str, tuple[int, ...]]:
    """The visual branch's 2-D patch embedding: in the file, never run by the official forward pass."""
    return {k: s for k, s in unused_keys(config.visual).items() if k.startswith(VISUAL_PREFIX)}


def synchformer_sync_from_state_dict(state: Mapping[str, torch.Tensor], config: SyncConfig | str = "synchformer",
                                     what: str = "Synchformer weights") -> SynchformerSync:
    """Strict load of a whole official Synchformer state dict (input untouched)."""
    config = get_sync_config(config)
    with torch.device("meta"):
        model = SynchformerSync(config)
    unused = patch_embed_2d_keys(config)
    bad = [f"{k}: missing" if k not in state else f"{k}: file {tuple(state[k].shape)} vs expected {s}"
           for k, s in unused.items() if k not in state or tuple(state[k].shape) != s]
    if bad:
        raise IncompatibleWeights(f"{what} do not fit Synchformer preset {config.name!r}: " + ", ".join(bad))
    state = {k: v for k, v in state.items() if k not in unused}
    check_state_dict(model, state, what)
    model.load_state_dict(state, strict=True, assign=True)
    return model.float().eval()


def load_synchformer_sync(path: str, preset: str | SyncConfig = "synchformer", *, verify_checksum: bool = True,
                          storage_options: Mapping | None = None) -> SynchformerSync:
    """Load the official `synchformer_state_dict.pth` (local path or fsspec URL) whole, for DeSync.

    The file's MD5 must match the official one for the full-size preset (`verify_checksum=False` skips it).
    """
    config = get_sync_config(preset)
    known = OFFICIAL_WEIGHTS.get("synchformer") if config.name == "synchformer" else None
    state = read_weight_file(path, f"Synchformer weights ({config.name})", known, verify_checksum=verify_checksum,
                             storage_options=storage_options)
    return synchformer_sync_from_state_dict(state, config, what=f"weights in {path!r}")
