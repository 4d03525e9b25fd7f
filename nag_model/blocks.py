"""MM-DiT blocks of MMAudio: the single-stream block, the joint (audio, CLIP, text) block and the
final layer. Each stream's attention is split into `pre_attention` (adaLN + q/k/v) and
`post_attention` (gated residuals) so that several streams can share one attention."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nag_model import layers
from nag_model.layers import MLP, ChannelLastConv1d, ConvMLP, apply_rope, modulate

class SelfAttention(nn.Module):
    """q/k/v projection with per-head RMSNorm on q and k; qkv channels are laid out (head, dim, qkv)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.q_norm = nn.RMSNorm(self.head_dim)
        self.k_norm = nn.RMSNorm(self.head_dim)

    def project(self, x: torch.Tensor, rot: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, L, D) -> q, k, v each (B, H, L, Dh), with RoPE on q and k when a table is given."""
        b, n, _ = x.shape
        qkv = self.qkv(x).view(b, n, self.num_heads, self.head_dim, 3).permute(4, 0, 2, 1, 3)  # (3, B, H, L, Dh)
        if layers.fast_path(x):  # one copy makes q, k and v contiguous for the norms and the fused attention
            qkv = qkv.contiguous()
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if rot is not None:
            q, k = apply_rope(q, rot), apply_rope(k, rot)
        return q, k, v


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Unmasked scaled dot-product attention, (B, H, L, Dh) -> (B, L, H * Dh).

    The fused SDPA kernels (flash, memory-efficient) need a unit stride in the last dimension; v
    comes out of the interleaved (head, dim, qkv) projection with stride 3, which would send SDPA
    to its slow math kernel. On CUDA it is made contiguous. On the CPU the math kernel is kept, so
    CPU results stay bit-identical to earlier versions (the fused CPU kernel is about 5x faster
    per attention at small_16k shapes but rounds differently, ~1e-6)."""
    if q.is_cuda:
        q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).flatten(2)


class MMDitSingleBlock(nn.Module):
    """One stream of an MM-DiT block. kernel_size 1 uses Linear layers, larger kernels convolutions.

    With `pre_only` the block only contributes q/k/v (the last joint block's CLIP and text streams).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, pre_only: bool = False,
                 kernel_size: int = 7, padding: int = 3):
        super().__init__()
        self.pre_only = pre_only
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.attn = SelfAttention(dim, num_heads)
        if pre_only:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim, bias=True))
        else:
            if kernel_size == 1:
                self.linear1 = nn.Linear(dim, dim)
                self.ffn = MLP(dim, int(dim * mlp_ratio))
            else:
                self.linear1 = ChannelLastConv1d(dim, dim, kernel_size=kernel_size, padding=padding)
                self.ffn = ConvMLP(dim, int(dim * mlp_ratio), kernel_size=kernel_size, padding=padding)
            self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim, bias=True))

    def pre_attention(self, x: torch.Tensor, c: torch.Tensor, rot: torch.Tensor | None):
        """x (B, L, D), c (B, 1 or L, D) -> ((q, k, v), modulation chunks for post_attention)."""
        mod = self.adaLN_modulation(c).chunk(2 if self.pre_only else 6, dim=-1)
        h = modulate(self.norm1(x), mod[0], mod[1])
        return self.attn.project(h, rot), mod

    def post_attention(self, x: torch.Tensor, attn_out: torch.Tensor, mod) -> torch.Tensor:
        if self.pre_only:
            return x
        _, _, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod
        if layers.fast_path(x):
            x = torch.addcmul(x, self.linear1(attn_out), gate_msa)
            return torch.addcmul(x, self.ffn(modulate(self.norm2(x), shift_mlp, scale_mlp)), gate_mlp)
        x = x + self.linear1(attn_out) * gate_msa
        return x + self.ffn(modulate(self.norm2(x), shift_mlp, scale_mlp)) * gate_mlp

    def forward(self, x: torch.Tensor, c: torch.Tensor, rot: torch.Tensor | None) -> torch.Tensor:
        (q, k, v), mod = self.pre_attention(x, c, rot)
        return self.post_attention(x, attention(q, k, v), mod)


class JointBlock(nn.Module):
    """Joint attention over [latent, CLIP, text] tokens; each stream keeps its own weights."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, pre_only: bool = False):
        super().__init__()
        self.pre_only = pre_only
        self.latent_block = MMDitSingleBlock(dim, num_heads, mlp_ratio, pre_only=False, kernel_size=3, padding=1)
        self.clip_block = MMDitSingleBlock(dim, num_heads, mlp_ratio, pre_only=pre_only, kernel_size=3, padding=1)
        self.text_block = MMDitSingleBlock(dim, num_heads, mlp_ratio, pre_only=pre_only, kernel_size=1)

    def forward(self, latent, clip_f, text_f, global_c, extended_c, latent_rot, clip_rot):
        """latent (B, N, D), clip_f (B, Lc, D), text_f (B, Lt, D); extended_c (B, N, D), global_c (B, 1, D)."""
        (xq, xk, xv), x_mod = self.latent_block.pre_attention(latent, extended_c, latent_rot)
        (cq, ck, cv), c_mod = self.clip_block.pre_attention(clip_f, global_c, clip_rot)
        (tq, tk, tv), t_mod = self.text_block.pre_attention(text_f, global_c, None)
        n, lc = latent.shape[1], clip_f.shape[1]
        out = attention(torch.cat([xq, cq, tq], 2), torch.cat([xk, ck, tk], 2), torch.cat([xv, cv, tv], 2))
        x_out, c_out, t_out = out[:, :n], out[:, n:n + lc], out[:, n + lc:]
        latent = self.latent_block.post_attention(latent, x_out, x_mod)
        clip_f = self.clip_block.post_attention(clip_f, c_out, c_mod)
        text_f = self.text_block.post_attention(text_f, t_out, t_mod)
        return latent, clip_f, text_f


class FinalBlock(nn.Module):
    """adaLN (shift, scale) + LayerNorm + channel-last conv back to latent channels."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim, bias=True))
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.conv = ChannelLastConv1d(dim, out_dim, kernel_size=7, padding=3)

    def forward(self, latent: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.conv(modulate(self.norm(latent), shift, scale))
