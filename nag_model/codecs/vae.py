"""MMAudio's 1-D mel VAE, written from its description (fact sheet 5.5) and checkpoint layout.

The VAE maps a normalised log-mel (B, n_mels, T) to a Gaussian over latents (B, C, T / 2) and back.
Its layers are EDM2's magnitude-preserving (MP) ones (Karras et al. 2024, "Analyzing and Improving
the Training Dynamics of Diffusion Models"): bias-free convolutions whose weights have unit norm per
output channel, SiLU divided by 0.596 (Eq. 81), residual sums by an interpolation divided by its
norm (Eq. 88) and pixel norm over channels.

Checkpoints (``v1-16.pth``, ``v1-44.pth``) hold *raw* training weights. They are converted once when
loaded (:func:`convert_raw_state_dict`): every convolution weight w of fan-in n becomes
w / (1e-4 + |w| / sqrt(n)) / sqrt(n), per output channel. The modules here always hold converted
weights, so their state dict has the official keys and shapes but converted values.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nag_model.codecs.vae_stats import MEL_MEAN_80, MEL_MEAN_128, MEL_STD_80, MEL_STD_128

__all__ = ["VAE", "VAEConfig", "convert_raw_state_dict", "mp_weight"]

_NORM_EPS = 1e-4  # EDM2 normalisation epsilon (pixel norm and weight conversion)
_SILU_GAIN = 0.596  # E[silu(x)^2]^0.5 for x ~ N(0, 1), EDM2 Eq. (81)
_RESIDUAL_T = 0.3  # weight of the branch in every MP residual sum
_LOGVAR_RANGE = (-30.0, 20.0)  # the posterior's log-variance clamp
_MEL_STATS = {80: (MEL_MEAN_80, MEL_STD_80), 128: (MEL_MEAN_128, MEL_STD_128)}


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Architecture of one mel VAE.

    Attributes:
        name: preset name.
        data_dim: mel bands (80 or 128: the bands MMAudio has normalisation statistics for).
        embed_dim: latent channels C.
        hidden_dim: channels of the first level; level i has hidden_dim * ch_mult[i].
        ch_mult: channel multipliers per level. The time axis is halved once, after level 0.
        num_res_blocks: residual blocks per encoder level (the decoder has one more per level).
        kernel_size: convolution size of the residual blocks.
        clip_act: activations are clamped to +-clip_act after every block.
    """

    name: str
    data_dim: int
    embed_dim: int
    hidden_dim: int
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    kernel_size: int = 3
    clip_act: float = 256.0

    def __post_init__(self) -> None:
        if self.data_dim not in _MEL_STATS:
            raise ValueError(f"data_dim must be one of {sorted(_MEL_STATS)}, got {self.data_dim}")
        if min(self.embed_dim, self.hidden_dim, self.num_res_blocks, *self.ch_mult) <= 0 or len(self.ch_mult) < 2:
            raise ValueError(f"sizes must be positive and ch_mult needs at least two levels: {self}")

    @classmethod
    def preset(cls, name: str) -> "VAEConfig":
        """``mmaudio_16k`` / ``mmaudio_44k`` (the official sizes) or ``tiny_16k`` / ``tiny_44k`` (tests)."""
        presets = {
            "mmaudio_16k": cls("mmaudio_16k", 80, 20, 384),
            "mmaudio_44k": cls("mmaudio_44k", 128, 40, 512),
            "tiny_16k": cls("tiny_16k", 80, 20, 16),
            "tiny_44k": cls("tiny_44k", 128, 40, 16),
        }
        if name not in presets:
            raise ValueError(f"unknown VAE preset {name!r}; known: {sorted(presets)}")
        return presets[name]


def pixel_norm(x: Tensor, dim: int = 1) -> Tensor:
    """x / (eps + |x| / sqrt(n)) over ``dim`` (EDM2's normalisation; the norm is taken in float32)."""
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True, dtype=torch.float32)
    return x / (_NORM_EPS + norm * (1.0 / math.sqrt(x.shape[dim]))).to(x.dtype)


def mp_silu(x: Tensor) -> Tensor:
    """Magnitude-preserving SiLU, EDM2 Eq. (81)."""
    return F.silu(x) / _SILU_GAIN


def mp_sum(a: Tensor, b: Tensor, t: float = _RESIDUAL_T) -> Tensor:
    """Magnitude-preserving sum (1 - t) a + t b, rescaled to unit variance, EDM2 Eq. (88)."""
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t**2)


def mp_weight(w: Tensor) -> Tensor:
    """One-time conversion of a raw MP weight (out, in, k): unit norm per output channel, in float32."""
    w32 = w.to(torch.float32)
    fan_in = w32[0].numel()
    norm = torch.linalg.vector_norm(w32, dim=tuple(range(1, w32.ndim)), keepdim=True)
    return (w32 / (_NORM_EPS + norm * (1.0 / math.sqrt(fan_in))) / math.sqrt(fan_in)).to(w.dtype)


def convert_raw_state_dict(raw: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official raw VAE state dict -> the converted weights :class:`VAE` holds (input untouched).

    Every ``*.weight`` of the VAE is an MP convolution and is converted with :func:`mp_weight`; the
    gains and the mel statistics are copied.
    """
    return {k: mp_weight(v) if k.endswith(".weight") else v for k, v in raw.items()}


class MPConv1d(nn.Module):
    """Bias-free 1-D convolution with "same" padding over an already converted MP weight."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(mp_weight(torch.randn(out_channels, in_channels, kernel_size)))

    def forward(self, x: Tensor, gain: Tensor | None = None) -> Tensor:
        w = self.weight if gain is None else self.weight * gain
        return F.conv1d(x, w, padding=w.shape[-1] // 2)


class ResBlock(nn.Module):
    """Pixel norm, then (MP-SiLU, conv) twice; 1x1 shortcut when the width changes; MP sum."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int) -> None:
        super().__init__()
        self.conv1 = MPConv1d(in_dim, out_dim, kernel_size)
        self.conv2 = MPConv1d(out_dim, out_dim, kernel_size)
        if in_dim != out_dim:
            self.nin_shortcut = MPConv1d(in_dim, out_dim, 1)

    def forward(self, x: Tensor) -> Tensor:  # (B, Cin, T) -> (B, Cout, T)
        x = pixel_norm(x)
        h = self.conv2(mp_silu(self.conv1(mp_silu(x))))
        skip = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return mp_sum(skip, h)


class Attention(nn.Module):
    """One-head self-attention over time; q, k and v are interleaved in the qkv channels (c, 3)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.qkv = MPConv1d(dim, 3 * dim, 1)
        self.proj_out = MPConv1d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T)
        b, c, t = x.shape
        qkv = pixel_norm(self.qkv(x).view(b, c, 3, t), dim=1)  # (B, C, 3, T), each of q, k, v normalised
        q, k, v = (y.transpose(1, 2).unsqueeze(1) for y in qkv.unbind(2))  # (B, 1, T, C)
        h = F.scaled_dot_product_attention(q, k, v).squeeze(1).transpose(1, 2)  # (B, C, T)
        return mp_sum(x, self.proj_out(h))


class Downsample(nn.Module):
    """1x1 conv, average pool by 2, 1x1 conv."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = MPConv1d(dim, dim, 1)
        self.conv2 = MPConv1d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T) -> (B, C, T // 2)
        return self.conv2(F.avg_pool1d(self.conv1(x), kernel_size=2, stride=2))


class Upsample(nn.Module):
    """Nearest ("nearest-exact") x2 along time, then a 3-tap conv."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = MPConv1d(dim, dim, 3)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T) -> (B, C, 2 T)
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest-exact"))


class _Level(nn.Module):
    """The residual blocks of one resolution level, and its resampler if it has one."""

    def __init__(self, dims: list[int], kernel_size: int, resample: nn.Module | None, resample_name: str) -> None:
        super().__init__()
        self.block = nn.ModuleList(ResBlock(i, o, kernel_size) for i, o in zip(dims[:-1], dims[1:]))
        if resample is not None:
            self.add_module(resample_name, resample)


class _Middle(nn.Module):
    def __init__(self, dim: int, kernel_size: int) -> None:
        super().__init__()
        self.block_1 = ResBlock(dim, dim, kernel_size)
        self.attn_1 = Attention(dim)
        self.block_2 = ResBlock(dim, dim, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    """Normalised log-mel (B, n_mels, T) -> moments (B, 2 C, T / 2): mean, then log-variance."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.clip_act = cfg.clip_act
        widths = [cfg.hidden_dim * m for m in (1, *cfg.ch_mult)]
        self.conv_in = MPConv1d(cfg.data_dim, cfg.hidden_dim, cfg.kernel_size)
        self.down = nn.ModuleList(
            _Level([widths[i]] + [widths[i + 1]] * cfg.num_res_blocks, cfg.kernel_size,
                   Downsample(widths[i + 1]) if i == 0 else None, "downsample")
            for i in range(len(cfg.ch_mult)))
        self.mid = _Middle(widths[-1], cfg.kernel_size)
        self.conv_out = MPConv1d(widths[-1], 2 * cfg.embed_dim, cfg.kernel_size)
        self.learnable_gain = nn.Parameter(torch.zeros([]))

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for block in level.block:
                h = block(h).clamp(-self.clip_act, self.clip_act)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid(h).clamp(-self.clip_act, self.clip_act)
        return self.conv_out(mp_silu(h), gain=self.learnable_gain + 1)


class Decoder(nn.Module):
    """Latent (B, C, N) -> normalised log-mel (B, n_mels, 2 N)."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.clip_act = cfg.clip_act
        widths = [cfg.hidden_dim * m for m in cfg.ch_mult]
        self.conv_in = MPConv1d(cfg.embed_dim, widths[-1], cfg.kernel_size)
        self.mid = _Middle(widths[-1], cfg.kernel_size)
        # Levels run from the deepest to level 0; `up[i]` is level i (the official indexing). The x2
        # upsampler sits at the end of level 1, mirroring the encoder's downsampler after level 0.
        self.up = nn.ModuleList(
            _Level([widths[min(i + 1, len(widths) - 1)]] + [widths[i]] * (cfg.num_res_blocks + 1), cfg.kernel_size,
                   Upsample(widths[i]) if i == 1 else None, "upsample")
            for i in range(len(widths)))
        self.conv_out = MPConv1d(widths[0], cfg.data_dim, cfg.kernel_size)
        self.learnable_gain = nn.Parameter(torch.zeros([]))

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z)).clamp(-self.clip_act, self.clip_act)
        for level in reversed(self.up):
            for block in level.block:
                h = block(h).clamp(-self.clip_act, self.clip_act)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(mp_silu(h), gain=self.learnable_gain + 1)


class VAE(nn.Module):
    """MMAudio's mel VAE with its per-band mel statistics (``data_mean`` / ``data_std``, (1, n_mels, 1)).

    Random (converted) weights at construction; load an official file with
    :meth:`load_raw_state_dict` or through :func:`nag_model.codecs.mmaudio.load_codec`.
    """

    data_mean: Tensor
    data_std: Tensor

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        mean, std = _MEL_STATS[config.data_dim]
        self.register_buffer("data_mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1))
        self.register_buffer("data_std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1))
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def extra_repr(self) -> str:
        return repr(self.config)

    def load_raw_state_dict(self, raw: Mapping[str, Tensor]) -> "VAE":
        """Convert an official raw state dict (:func:`convert_raw_state_dict`) and load it strictly."""
        self.load_state_dict(convert_raw_state_dict(raw), strict=True)
        return self

    def encode(self, mel: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior of a log-mel.

        Args:
            mel: (B, n_mels, T) log-mel (:class:`~nag_model.codecs.mel.MelConverter` output), T even.

        Returns:
            mean and std, each (B, C, T / 2); the log-variance is clamped to [-30, 20] first.
        """
        if mel.dim() != 3 or mel.shape[1] != self.config.data_dim or mel.shape[2] < 2:
            raise ValueError(f"expected a (B, {self.config.data_dim}, T >= 2) log-mel, got {tuple(mel.shape)}")
        moments = self.encoder((mel - self.data_mean) / self.data_std)  # (B, 2 C, T / 2)
        mean, logvar = moments.chunk(2, dim=1)
        return mean, torch.exp(0.5 * logvar.clamp(*_LOGVAR_RANGE))

    def decode(self, z: Tensor) -> Tensor:
        """Log-mel (B, n_mels, 2 N) from latents z (B, C, N)."""
        if z.dim() != 3 or z.shape[1] != self.config.embed_dim:
            raise ValueError(f"expected a (B, {self.config.embed_dim}, N) latent, got {tuple(z.shape)}")
        return self.decoder(z) * self.data_std + self.data_mean
