"""Small building blocks of the MMAudio network: SwiGLU MLPs, channel-last convolutions, RoPE,
the timestep embedding and adaLN modulation. Parameter names follow the official checkpoints."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelLastConv1d(nn.Conv1d):
    """A Conv1d over (B, L, C) sequences (keys `weight` and `bias` as in nn.Conv1d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def swiglu_hidden_dim(hidden_dim: int, multiple_of: int = 256) -> int:
    """SwiGLU width: 2/3 of the requested width rounded up to a multiple of 256 (4 x 448 -> 1280)."""
    hidden = int(2 * hidden_dim / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class MLP(nn.Module):
    """SwiGLU feed-forward without biases: w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        hidden = swiglu_hidden_dim(hidden_dim)
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class ConvMLP(nn.Module):
    """SwiGLU feed-forward whose three projections are channel-last convolutions."""

    def __init__(self, dim: int, hidden_dim: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        hidden = swiglu_hidden_dim(hidden_dim)
        self.w1 = ChannelLastConv1d(dim, hidden, kernel_size, padding=padding, bias=False)
        self.w2 = ChannelLastConv1d(hidden, dim, kernel_size, padding=padding, bias=False)
        self.w3 = ChannelLastConv1d(dim, hidden, kernel_size, padding=padding, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation x (1 + scale) + shift (DiT)."""
    return x * (1 + scale) + shift


def rope_table(length: int, dim: int = 64, theta: float = 10_000.0, freq_scale: float = 1.0) -> torch.Tensor:
    """Interleaved rotary table (1, L, dim/2, 2, 2) of [[cos, -sin], [sin, cos]].

    Frequencies are scaled by `freq_scale`, so with L_latent / L_clip CLIP frame i sits at latent
    position i * N / L_clip. Computed in float32 in the official order (the parity tests depend on it).
    """
    pos = torch.arange(length, dtype=torch.float32)  # (L,)
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)) * freq_scale  # (dim/2,)
    angles = pos[:, None] * freqs[None]  # (L, dim/2)
    cos, sin = angles.cos(), angles.sin()
    return torch.stack([cos, -sin, sin, cos], dim=-1).reshape(1, length, dim // 2, 2, 2)


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs (2j, 2j+1) of x (B, H, L, D) by the table; computed in fp32."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        xf = x.float().reshape(*x.shape[:-1], -1, 1, 2)  # (B, H, L, D/2, 1, 2)
        out = table[..., 0] * xf[..., 0] + table[..., 1] * xf[..., 1]  # (B, H, L, D/2, 2)
        return out.reshape(x.shape).to(x.dtype)


class TimestepEmbedder(nn.Module):
    """Sinusoidal [cos, sin] embedding of the flow time t in [0, 1] followed by an MLP."""

    def __init__(self, dim: int, frequency_embedding_size: int = 256, max_period: float = 10_000.0):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(frequency_embedding_size, dim), nn.SiLU(), nn.Linear(dim, dim))
        f = frequency_embedding_size
        freqs = 1.0 / (10_000 ** (torch.arange(0, f, 2, dtype=torch.float32) / f)) * (10_000 / max_period)
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.float()[:, None] * self.freqs[None]  # (B, F/2)
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(self.mlp[0].weight.dtype)
        return self.mlp(emb)
