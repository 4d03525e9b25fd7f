"""Small building blocks of the MMAudio network: SwiGLU MLPs, channel-last convolutions, RoPE,
the timestep embedding and adaLN modulation. Parameter names follow the official checkpoints.

On CUDA (`fast_path`) the same functions are computed in fewer kernels and without layout copies:
convolutions as matrix products over the channel-last sequence, RoPE as one complex product,
modulations and gated residuals as fused multiply-adds. The CPU keeps the reference arithmetic,
so CPU results are bit-identical to earlier versions; `tests/nag_model/test_fast_path.py` checks
that both agree in float32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def fast_path(x: torch.Tensor) -> bool:
    """Whether x takes the CUDA formulations (see the module docstring)."""
    return x.is_cuda


def unfold_taps(x: torch.Tensor, kernel_size: int, padding: int) -> torch.Tensor:
    """(B, L, C) -> (B, L_out, C * k): the k taps of each output position, in nn.Conv1d's (C, k) weight order."""
    b, _, c = x.shape
    taps = F.pad(x, (0, 0, padding, padding)).unfold(1, kernel_size, 1)  # (B, L_out, C, k) view
    return taps.reshape(b, taps.shape[1], c * kernel_size)


def conv1d_channel_last(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int) -> torch.Tensor:
    """Stride-1 Conv1d of a (B, L, Cin) sequence with weight (Cout, Cin, k) as matrix products -> (B, L_out, Cout).

    Narrow inputs gather their k taps and take one product; wide inputs (Cin > Cout) take one
    product to k * Cout channels and sum the k shifted outputs (fewer bytes than gathering)."""
    cout, cin, k = weight.shape
    if k == 1:
        return F.linear(x, weight[..., 0], bias)
    if cin <= cout:
        return F.linear(unfold_taps(x, k, padding), weight.reshape(cout, cin * k), bias)
    b, length, _ = x.shape
    out_len = length + 2 * padding - k + 1
    z = F.linear(x, weight.permute(2, 0, 1).reshape(k * cout, cin)).view(b, length, k, cout)
    z = F.pad(z, (0, 0, 0, 0, padding, padding))  # (B, L + 2p, k, Cout)
    y = z[:, 0:out_len, 0]
    for j in range(1, k):
        y = y + z[:, j:j + out_len, j]
    return y if bias is None else y + bias


class ChannelLastConv1d(nn.Conv1d):
    """A Conv1d over (B, L, C) sequences (keys `weight` and `bias` as in nn.Conv1d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fast_path(x) and self.stride == (1,) and self.dilation == (1,) and self.groups == 1:
            return conv1d_channel_last(x, self.weight, self.bias, self.padding[0])
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
        w1, w3 = self.w1, self.w3
        k, p = w1.kernel_size[0], w1.padding[0]
        if fast_path(x) and k > 1 and w1.in_channels <= w1.out_channels:  # w1 and w3 share the gathered taps
            taps = unfold_taps(x, k, p)
            h = F.silu(F.linear(taps, w1.weight.reshape(w1.out_channels, -1))) * F.linear(taps, w3.weight.reshape(w3.out_channels, -1))
            return self.w2(h)
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation x (1 + scale) + shift (DiT)."""
    if fast_path(x):
        return torch.addcmul(shift, x, 1 + scale)
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
    if fast_path(x):  # the pair (x0, x1) as x0 + i x1 times cos + i sin, in complex64
        cis = getattr(table, "_foley_cis", None)
        if cis is None:
            with torch.inference_mode(False):  # a normal tensor, usable with autograd later
                cis = torch.complex(table[..., 0, 0].float(), table[..., 1, 0].float())  # (1, L, D/2)
            table._foley_cis = cis
        xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))  # (B, H, L, D/2)
        return torch.view_as_real(xc * cis).flatten(-2).to(x.dtype)
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
