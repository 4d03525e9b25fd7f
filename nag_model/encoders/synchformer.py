"""Synchformer's visual encoder as MMAudio uses it: the `sync_f` features of 25-fps video.

MMAudio cuts the 224x224, 25-fps frames (values in [-1, 1]) into 16-frame segments every 8 frames and
encodes each segment with Synchformer's visual branch, a MotionFormer: a ViT-B/16 with divided
space-time attention over 2-frame x 16x16 patches, then a pre-norm transformer layer per time step
that pools the 14x14 patches into a CLS token. Each segment gives 8 tokens, so 8 s (200 frames, 24
segments) give `sync_f` of shape (B, 192, 768).

The official weight file `synchformer_state_dict.pth` holds the whole Synchformer: the visual branch
(`vfeat_extractor.*`), which runs here, and parts MMAudio never runs (the 2-D patch embedding that the
official code keeps only to count patches, the audio branch, the two bridges and the synchronisation
transformer). Those are not built here: `unused_keys` lists each with its shape, the loader
checks that the file holds exactly these plus the visual branch, then drops them. The whole model, for the
DeSync metric, is `evaluation.models.synchformer_sync` (it reuses this visual branch).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Literal, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.presets import pick_preset
from nag_model.checkpoint import OFFICIAL_WEIGHTS, IncompatibleWeights, read_weight_file

VISUAL_PREFIX = "vfeat_extractor."


@dataclass(frozen=True)
class SynchformerConfig:
    """MotionFormer hyper-parameters and MMAudio's segmenting (16 frames every 8)."""

    name: str = "synchformer"
    image_size: int = 224
    patch_size: int = 16
    temporal_patch: int = 2  # frames per patch along time
    segment_frames: int = 16
    segment_step: int = 8
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: int = 4
    in_channels: int = 3
    norm_eps: float = 1e-6

    def __post_init__(self):
        if self.image_size % self.patch_size or self.segment_frames % self.temporal_patch:
            raise ValueError(f"{self.name}: image_size must be a multiple of patch_size and segment_frames "
                             f"a multiple of temporal_patch")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"{self.name}: embed_dim {self.embed_dim} is not divisible by {self.num_heads} heads")

    @property
    def grid(self) -> int:
        """Patches per side of a frame."""
        return self.image_size // self.patch_size

    @property
    def tokens_per_segment(self) -> int:
        """Temporal tokens per segment (8 for 16 frames with temporal patch 2)."""
        return self.segment_frames // self.temporal_patch

    def num_segments(self, num_frames: int) -> int:
        """Segments MMAudio takes from `num_frames` frames; trailing frames that fill no segment are dropped."""
        if num_frames < self.segment_frames:
            raise ValueError(f"Synchformer needs at least {self.segment_frames} frames (one segment), got {num_frames}")
        return (num_frames - self.segment_frames) // self.segment_step + 1


SYNCHFORMER_PRESETS: dict[str, SynchformerConfig] = {
    "synchformer": SynchformerConfig(),
    # Tests: the same code path at toy size (32 px frames, 4x4 patches, 2 blocks).
    "tiny": replace(SynchformerConfig(), name="tiny", image_size=32, patch_size=8, embed_dim=32, depth=2,
                    num_heads=4),
}


def get_synchformer_config(preset: str | SynchformerConfig) -> SynchformerConfig:
    return pick_preset(preset, SYNCHFORMER_PRESETS, SynchformerConfig, "Synchformer", KeyError)


class DividedAttention(nn.Module):
    """Multi-head self-attention along one axis of a (frames x patches) token grid, plus a CLS token.

    The CLS query attends to every token. A patch query attends to the CLS token and to the patches
    it shares a frame with (`axis="space"`) or a grid position with (`axis="time"`)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)  # output channels [q | k | v], each (heads, head_dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, frames: int, axis: Literal["space", "time"]) -> torch.Tensor:
        b, length, dim = x.shape  # (B, 1 + F*N, D)
        h, d = self.num_heads, dim // self.num_heads
        patches = (length - 1) // frames
        q, k, v = self.qkv(x).view(b, length, 3, h, d).permute(2, 0, 3, 1, 4)  # each (B, H, L, d)
        cls_out = F.scaled_dot_product_attention(q[:, :, :1], k, v)  # (B, H, 1, d)

        def groups(t: torch.Tensor) -> torch.Tensor:
            # (B, H, F*N, d) -> (B*G, H, S, d): G groups attended separately, S tokens in each
            t = t.reshape(b, h, frames, patches, d)
            if axis == "time":
                t = t.transpose(2, 3)
            return t.transpose(1, 2).reshape(-1, h, t.shape[3], d)

        n_groups = frames if axis == "space" else patches

        def with_cls(t: torch.Tensor) -> torch.Tensor:
            cls = t[:, :, :1].unsqueeze(1).expand(b, n_groups, h, 1, d).reshape(b * n_groups, h, 1, d)
            return torch.cat([cls, groups(t[:, :, 1:])], dim=2)  # (B*G, H, 1+S, d)

        out = F.scaled_dot_product_attention(groups(q[:, :, 1:]), with_cls(k), with_cls(v))  # (B*G, H, S, d)
        out = out.reshape(b, n_groups, h, -1, d).transpose(1, 2)  # (B, H, G, S, d)
        if axis == "time":
            out = out.transpose(2, 3)
        out = torch.cat([cls_out, out.reshape(b, h, -1, d)], dim=2)  # (B, H, L, d)
        return self.proj(out.transpose(1, 2).reshape(b, length, dim))


class DividedSpaceTimeBlock(nn.Module):
    """Time attention, then space attention, then the MLP, each pre-norm and residual (TimeSformer order)."""

    def __init__(self, config: SynchformerConfig):
        super().__init__()
        dim, eps = config.embed_dim, config.norm_eps
        self.norm3 = nn.LayerNorm(dim, eps=eps)
        self.timeattn = DividedAttention(dim, config.num_heads)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = DividedAttention(dim, config.num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = nn.Sequential(OrderedDict(fc1=nn.Linear(dim, config.mlp_ratio * dim), act=nn.GELU(),
                                             fc2=nn.Linear(config.mlp_ratio * dim, dim)))

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:  # (B, 1 + F*N, D)
        x = x + self.timeattn(self.norm3(x), frames, "time")
        x = x + self.attn(self.norm1(x), frames, "space")
        return x + self.mlp(self.norm2(x))


class CLSPooling(nn.TransformerEncoderLayer):
    """A pre-norm transformer encoder layer over [CLS, tokens] that returns the CLS output."""

    def __init__(self, dim: int, num_heads: int, ff_dim: int, eps: float):
        super().__init__(dim, num_heads, dim_feedforward=ff_dim, dropout=0.0, activation="gelu",
                         layer_norm_eps=eps, batch_first=True, norm_first=True)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, D)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return super().forward(x)[:, 0]


class PatchEmbed3d(nn.Module):
    """Non-overlapping (temporal_patch x patch x patch) patches -> tokens, frame-major: (B, F*N, D)."""

    def __init__(self, config: SynchformerConfig):
        super().__init__()
        size = (config.temporal_patch, config.patch_size, config.patch_size)
        self.proj = nn.Conv3d(config.in_channels, config.embed_dim, kernel_size=size, stride=size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        return self.proj(x).flatten(2).transpose(1, 2)


class MotionFormer(nn.Module):
    """Synchformer's visual feature extractor: a segment (B, C, 16, H, W) -> 8 tokens (B, 8, D)."""

    def __init__(self, config: SynchformerConfig):
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.patch_embed_3d = PatchEmbed3d(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + config.grid ** 2, dim))  # CLS + one per grid position
        self.temp_embed = nn.Parameter(torch.zeros(1, config.tokens_per_segment, dim))  # one per temporal token
        self.blocks = nn.ModuleList(DividedSpaceTimeBlock(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(dim, eps=config.norm_eps)
        self.spatial_attn_agg = CLSPooling(dim, config.num_heads, config.mlp_ratio * dim, config.norm_eps)
        for p in (self.cls_token, self.pos_embed, self.temp_embed, self.spatial_attn_agg.cls_token):
            nn.init.trunc_normal_(p, std=0.02)

    def patch_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> normed patch tokens after the transformer, CLS dropped: (B, F*N, D)."""
        frames = self.config.tokens_per_segment
        x = self.patch_embed_3d(x)  # (B, F*N, D)
        pos = self.pos_embed[:, 1:].repeat(1, frames, 1) + self.temp_embed.repeat_interleave(self.config.grid ** 2, 1)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x + pos], dim=1)  # (B, 1 + F*N, D)
        for block in self.blocks:
            x = block(x, frames)
        return self.norm(x[:, 1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W) -> (B, F, D)
        b, dim = x.shape[0], self.config.embed_dim
        tokens = self.patch_tokens(x).reshape(b * self.config.tokens_per_segment, self.config.grid ** 2, dim)
        return self.spatial_attn_agg(tokens).view(b, self.config.tokens_per_segment, dim)


def split_segments(frames: torch.Tensor, size: int = 16, step: int = 8) -> torch.Tensor:
    """(B, T, ...) -> (B, S, size, ...) windows starting every `step` frames (a view; no copy)."""
    if frames.shape[1] < size:
        raise ValueError(f"Synchformer needs at least {size} frames (one segment), got {frames.shape[1]}")
    return frames.unfold(1, size, step).movedim(-1, 2)


class SynchformerEncoder(nn.Module):
    """The part of Synchformer that MMAudio runs. State-dict keys match the official file's `vfeat_extractor.*`."""

    def __init__(self, config: SynchformerConfig | str = "synchformer"):
        super().__init__()
        self.config = get_synchformer_config(config)
        self.vfeat_extractor = MotionFormer(self.config)

    def forward(self, segments: torch.Tensor) -> torch.Tensor:
        """Segments (N, 16, C, H, W) -> tokens (N, 8, D)."""
        return self.vfeat_extractor(segments.transpose(1, 2))

    @torch.inference_mode()
    def encode_video(self, frames: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """MMAudio's `encode_video_with_sync`: frames -> `sync_f`.

        Args:
            frames: (B, T, 3, H, W) at 25 fps, H = W = image_size (224), already in [-1, 1]
                (see `preprocess_frames`). T >= 16; frames past the last full segment are ignored.
            batch_size: segments per forward pass (all at once when None); does not change the result.
        Returns:
            (B, S*8, D) with S = (T - 16) // 8 + 1: (B, 192, 768) for 8 s (200 frames).
        """
        cfg = self.config
        if frames.ndim != 5 or frames.shape[2] != cfg.in_channels or frames.shape[-2:] != (cfg.image_size,) * 2:
            raise ValueError(f"frames must be (B, T, {cfg.in_channels}, {cfg.image_size}, {cfg.image_size}), "
                             f"got {tuple(frames.shape)}")
        param = next(self.parameters())
        frames = frames.to(device=param.device, dtype=param.dtype)
        b = frames.shape[0]
        segments = split_segments(frames, cfg.segment_frames, cfg.segment_step)  # (B, S, 16, C, H, W)
        segments = segments.flatten(0, 1)  # (B*S, 16, C, H, W)
        step = batch_size or len(segments)
        tokens = torch.cat([self(segments[i:i + step]) for i in range(0, len(segments), step)])  # (B*S, 8, D)
        return tokens.reshape(b, -1, cfg.embed_dim)


def preprocess_frames(frames: np.ndarray | torch.Tensor, size: int = 224) -> torch.Tensor:
    """Decoded uint8 frames (T, H, W, 3) -> Synchformer input (T, 3, size, size), float32 in [-1, 1].

    MMAudio's sync transform (torchvision v2): shorter edge resized to `size` (bicubic, antialiased,
    computed on uint8 as torchvision does on the CPU), centre crop, scaled to [0, 1], normalised with
    mean = std = 0.5.
    """
    x = torch.as_tensor(frames)
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {x.dtype} {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2)  # (T, 3, H, W); channels-last in memory, as in the official pipeline
    h, w = x.shape[-2:]
    long = int(size * max(h, w) / min(h, w))
    new_h, new_w = (long, size) if w <= h else (size, long)
    if (new_h, new_w) != (h, w):
        if x.device.type == "cpu":
            x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)
        else:  # no native uint8 kernel: resize in float, then round back to uint8 like torchvision
            x = F.interpolate(x.float(), size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)
            x = x.clamp_(0, 255).round_().to(torch.uint8)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    x = x[..., top:top + size, left:left + size]
    return (x.to(torch.float32).mul(1.0 / 255) - 0.5) / 0.5


# ------------------------------------------------------------------------------------------- loading
def _linear(prefix: str, n_out: int, n_in: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (n_out, n_in), f"{prefix}.bias": (n_out,)}


def _norm(prefix: str, dim: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (dim,), f"{prefix}.bias": (dim,)}


def _cls_pooling(prefix: str, dim: int, ff_dim: int) -> dict[str, tuple[int, ...]]:
    return {**{f"{prefix}.cls_token": (1, 1, dim)}, **_linear(f"{prefix}.self_attn.out_proj", dim, dim),
            f"{prefix}.self_attn.in_proj_weight": (3 * dim, dim), f"{prefix}.self_attn.in_proj_bias": (3 * dim,),
            **_linear(f"{prefix}.linear1", ff_dim, dim), **_linear(f"{prefix}.linear2", dim, ff_dim),
            **_norm(f"{prefix}.norm1", dim), **_norm(f"{prefix}.norm2", dim)}


def unused_keys(config: SynchformerConfig | str = "synchformer") -> dict[str, tuple[int, ...]]:
    """Entries of the official Synchformer state dict that MMAudio never runs, with their shapes.

    The 2-D patch embedding scales with the visual config; the rest (audio branch: an AST over
    128-band spectrograms with 12 layers, 74 positions and a frequency CLS pooling; the visual and audio
    bridges; the 3-layer synchronisation transformer with its 21-way offset head) is always full size.
    """
    config = get_synchformer_config(config)
    d, p = config.embed_dim, config.patch_size
    keys = {f"{VISUAL_PREFIX}patch_embed.proj.weight": (d, config.in_channels, p, p),
            f"{VISUAL_PREFIX}patch_embed.proj.bias": (d,)}
    a, ff = 768, 3072  # audio branch and synchronisation transformer width
    ast = "afeat_extractor.ast"
    keys |= {f"{ast}.embeddings.cls_token": (1, 1, a), f"{ast}.embeddings.distillation_token": (1, 1, a),
             f"{ast}.embeddings.position_embeddings": (1, 74, a),
             f"{ast}.embeddings.patch_embeddings.projection.weight": (a, 1, 16, 16),
             f"{ast}.embeddings.patch_embeddings.projection.bias": (a,)}
    for i in range(12):
        layer = f"{ast}.encoder.layer.{i}"
        for name in ("query", "key", "value"):
            keys |= _linear(f"{layer}.attention.attention.{name}", a, a)
        keys |= (_linear(f"{layer}.attention.output.dense", a, a) | _linear(f"{layer}.intermediate.dense", ff, a)
                 | _linear(f"{layer}.output.dense", a, ff) | _norm(f"{layer}.layernorm_before", a)
                 | _norm(f"{layer}.layernorm_after", a))
    keys |= _norm(f"{ast}.layernorm", a) | _cls_pooling("afeat_extractor.freq_attn_agg", a, ff)
    keys |= _linear("vproj", a, a) | _linear("aproj", a, a)
    keys |= {"transformer.OFF_tok": (1, 1, a), "transformer.MOD_tok": (1, 1, a),
             **_norm("transformer.vis_in_lnorm", a), **_norm("transformer.aud_in_lnorm", a),
             "transformer.pos_emb_cfg.pos_emb": (1, 198, a)}
    for i in range(3):
        block = f"transformer.blocks.{i}"
        keys |= _norm(f"{block}.ln1", a) | _norm(f"{block}.ln2", a)
        for name in ("key", "query", "value", "proj"):
            keys |= _linear(f"{block}.attn.{name}", a, a)
        keys |= _linear(f"{block}.mlp.0", ff, a) | _linear(f"{block}.mlp.2", a, ff)
    return keys | _norm("transformer.ln_f", a) | _linear("transformer.off_head", 21, a)


def _check_keys(expected: Mapping[str, tuple[int, ...]], state: Mapping, what: str) -> None:
    """Raise IncompatibleWeights naming every missing, unexpected and mis-shaped key."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: file {tuple(getattr(state[k], 'shape', ()))} vs expected {shape}"
              for k, shape in expected.items() if k in state and tuple(getattr(state[k], "shape", ())) != shape]
    if missing or unexpected or shapes:
        def head(items):
            return ", ".join(items[:8]) + (f" ... (+{len(items) - 8} more)" if len(items) > 8 else "")
        parts = [f"{what}:"]
        if missing:
            parts.append(f"{len(missing)} missing keys: {head(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {head(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches: {head(shapes)}")
        raise IncompatibleWeights("\n  ".join(parts))


def synchformer_from_state_dict(state: Mapping[str, torch.Tensor], config: SynchformerConfig | str = "synchformer",
                                what: str = "Synchformer weights") -> SynchformerEncoder:
    """Strict load of a whole official Synchformer state dict; only the visual branch is kept (input untouched)."""
    config = get_synchformer_config(config)
    with torch.device("meta"):
        encoder = SynchformerEncoder(config)
    own = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    _check_keys({**own, **unused_keys(config)}, state, f"{what} do not fit Synchformer preset {config.name!r}")
    encoder.load_state_dict({k: state[k] for k in own}, strict=True, assign=True)
    return encoder.eval()


def load_synchformer(path: str, preset: str | SynchformerConfig = "synchformer", *, verify_checksum: bool = True,
                     storage_options: Mapping | None = None) -> SynchformerEncoder:
    """Load the official `synchformer_state_dict.pth` (local path or fsspec URL) for MMAudio's sync features.

    Every key of the file must be either the visual branch of `preset` or one of `unused_keys`. The
    file's MD5 must match the official one for the full-size preset (`verify_checksum=False` skips it).
    """
    config = get_synchformer_config(preset)
    state = read_weight_file(path, f"Synchformer weights ({config.name})", OFFICIAL_WEIGHTS.get(config.name),
                             verify_checksum=verify_checksum, storage_options=storage_options)
    return synchformer_from_state_dict(state, config, what=f"weights in {path!r}")
