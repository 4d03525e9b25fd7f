"""The audio-conditioned ControlNet of the NAG paper (section 4.2, appendix D).

Design (documented in docs/controlnet.md):
- The reference audio x_ref (B, Nr, C), a normalised latent of any length, is encoded ONCE per
  track (`preprocess_reference`): an input projection shaped like the base's `audio_input_proj`,
  a small transformer encoder, and per-block key/value projections. It carries no position
  table, because in training the reference is a different, non-overlapping segment of the clip.
- Each ControlNet block is a single-stream MM-DiT block over the noisy audio tokens (the base's
  `audio_input_proj` output), modulated by the base's global vector (time + CLIP + text), whose
  attention also reads the cached reference keys/values.
- Block j's output goes through a zero-initialised projection and is added after base blocks
  2j and 2j+1 (one ControlNet block per two base blocks), so an untrained ControlNet is a no-op.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from nag_model.blocks import MMDitSingleBlock, attention
from nag_model.config import MMAudioConfig
from nag_model.layers import ChannelLastConv1d, ConvMLP
from nag_model.network import MMAudio


@dataclass(frozen=True)
class ControlNetConfig:
    """ControlNet architecture; widths follow the base network it attaches to."""

    num_blocks: int = 6
    ref_encoder_depth: int = 2
    # 1: Linear output/FFN layers (the default: keeps a NAG step within ~1.5x a CFG step on the CPU);
    # 3: convolutions exactly like the base's audio blocks (more parameters, ~1.7x).
    ffn_kernel_size: int = 1

    @classmethod
    def for_base(cls, base: MMAudioConfig, **overrides) -> "ControlNetConfig":
        """One ControlNet block per two base blocks (6 for small_16k), as in appendix D."""
        return cls(**{"num_blocks": math.ceil(base.depth / 2), **overrides})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ReferenceTokens:
    """Per-block cached keys and values of the reference audio, each (B, H, Nr, Dh)."""

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]

    @property
    def batch_size(self) -> int:
        return self.keys[0].shape[0]

    @staticmethod
    def cat(items: "list[ReferenceTokens]") -> "ReferenceTokens":
        """Concatenate along the batch (references must share a length)."""
        return ReferenceTokens(tuple(torch.cat(k) for k in zip(*(r.keys for r in items))),
                               tuple(torch.cat(v) for v in zip(*(r.values for r in items))))


class ControlBlock(nn.Module):
    """A single-stream block whose attention also attends to the reference tokens."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, kernel_size: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.block = MMDitSingleBlock(dim, num_heads, mlp_ratio, kernel_size=kernel_size, padding=kernel_size // 2)
        self.ref_norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.ref_kv = nn.Linear(dim, 2 * dim)
        self.ref_k_norm = nn.RMSNorm(self.head_dim)
        self.out_proj = nn.Linear(dim, dim)  # zero-initialised: the ControlNet starts as a no-op
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def reference_kv(self, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ref (B, Nr, D) -> keys, values (B, H, Nr, Dh)."""
        b, n, _ = ref.shape
        kv = self.ref_kv(self.ref_norm(ref)).view(b, n, self.num_heads, self.head_dim, 2).permute(4, 0, 2, 1, 3)
        k, v = kv.unbind(0)
        return self.ref_k_norm(k), v

    def forward(self, x, global_c, latent_rot, ref_k, ref_v):
        """x (B, N, D) -> (new x, zero-projected residual for the base)."""
        (q, k, v), mod = self.block.pre_attention(x, global_c, latent_rot)
        out = attention(q, torch.cat([k, ref_k], 2), torch.cat([v, ref_v], 2))
        x = self.block.post_attention(x, out, mod)
        return x, self.out_proj(x)


class AudioControlNet(nn.Module):
    """u_psi(x_t, t, V, C, x_ref) = base trunk + per-block residuals from this network."""

    def __init__(self, base_config: MMAudioConfig, config: ControlNetConfig | None = None):
        super().__init__()
        self.base_config = base_config
        self.config = config or ControlNetConfig.for_base(base_config)
        d, c = base_config.hidden_dim, self.config
        act = nn.SiLU if base_config.v2 else nn.SELU
        self.ref_input_proj = nn.Sequential(
            ChannelLastConv1d(base_config.latent_dim, d, kernel_size=7, padding=3), act(),
            ConvMLP(d, d * 4, kernel_size=7, padding=3))
        layer = nn.TransformerEncoderLayer(d, base_config.num_heads, dim_feedforward=4 * d, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.ref_encoder = nn.TransformerEncoder(layer, c.ref_encoder_depth, enable_nested_tensor=False)
        self.blocks = nn.ModuleList([ControlBlock(d, base_config.num_heads, base_config.mlp_ratio, c.ffn_kernel_size)
                                     for _ in range(c.num_blocks)])

    @classmethod
    def from_base(cls, base: MMAudio, config: ControlNetConfig | None = None) -> "AudioControlNet":
        """Initialise from a base network, copying weights where shapes allow (SD3.5-ControlNet style):
        the reference projection from `audio_input_proj`, block j from the base's audio stream of block 2j.
        With ffn_kernel_size 1 the base's k-tap convolutions are folded into Linear layers by summing
        their taps (exact for slowly varying features)."""
        net = cls(base.config, config)
        net.ref_input_proj.load_state_dict(base.audio_input_proj.state_dict())
        base_audio_blocks = [b.latent_block for b in base.joint_blocks] + list(base.fused_blocks)
        stride = math.ceil(len(base_audio_blocks) / len(net.blocks))
        for j, block in enumerate(net.blocks):
            source = base_audio_blocks[min(j * stride, len(base_audio_blocks) - 1)].state_dict()
            target = block.block.state_dict()
            copied = {}
            for k, v in source.items():
                if k in target and target[k].shape == v.shape:
                    copied[k] = v
                elif k in target and v.ndim == 3 and target[k].shape == v.shape[:2]:
                    copied[k] = v.sum(-1)
            block.block.load_state_dict(copied, strict=False)
        return net

    def preprocess_reference(self, ref_latent: torch.Tensor) -> ReferenceTokens:
        """Normalised reference latent (B, Nr, C) -> per-block keys/values; run once per track."""
        c = self.base_config.latent_dim
        if ref_latent.ndim != 3 or ref_latent.shape[2] != c or ref_latent.shape[1] < 1:
            raise ValueError(f"reference latent must have shape (B, Nr, {c}), got {tuple(ref_latent.shape)}")
        ref_latent = ref_latent.to(self.ref_input_proj[0].weight.dtype)
        ref = self.ref_encoder(self.ref_input_proj(ref_latent))  # (B, Nr, D)
        keys, values = zip(*(block.reference_kv(ref) for block in self.blocks))
        return ReferenceTokens(tuple(keys), tuple(values))

    def forward(self, x: torch.Tensor, global_c: torch.Tensor, latent_rot: torch.Tensor,
                reference: ReferenceTokens) -> list[torch.Tensor]:
        """x: the base's audio tokens (B, N, D); global_c (B, 1, D) -> residuals, one (B, N, D) per block."""
        if reference.batch_size != x.shape[0]:
            raise ValueError(f"reference batch {reference.batch_size} != latent batch {x.shape[0]}")
        residuals = []
        for block, k, v in zip(self.blocks, reference.keys, reference.values):
            x, r = block(x, global_c, latent_rot, k, v)
            residuals.append(r)
        return residuals

    def predict_flow(self, base: MMAudio, latent: torch.Tensor, t: torch.Tensor, conditions,
                     reference: ReferenceTokens) -> torch.Tensor:
        """Audio-conditioned velocity u_psi (B, N, C) of the frozen base plus this ControlNet."""
        tokens = base.embed_latent(latent)  # (B, N, D)
        return base.velocity(tokens, t, conditions, control=lambda g: self(tokens, g, base.latent_rot, reference))
