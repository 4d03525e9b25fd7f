"""BigVGAN vocoders (Lee et al. 2023, "BigVGAN: A Universal Neural Vocoder with Large-Scale Training"),
as MMAudio uses them (fact sheet 5.6), in plain PyTorch (no CUDA extension).

Two presets: BigVGAN v1 at 16 kHz (80 bands, x256; ``best_netG.pt``, its ``['generator']`` entry,
from Make-An-Audio 2) and BigVGAN-v2 44 kHz 128-band x512 (``bigvgan_generator.pt`` of
``nvidia/bigvgan_v2_44khz_128band_512x``). Both are the same generator:

    conv_pre -> for each stage: transposed conv (upsample by u), mean of the AMP residual blocks
    -> anti-aliased SnakeBeta -> conv_post -> tanh (v1) or clamp to [-1, 1] (v2)

An AMP block applies, for each dilation d: x + conv_1(act(conv_d(act(x)))), where every activation is
"anti-aliased": upsample x2 with a Kaiser-windowed sinc filter, SnakeBeta x + sin^2(e^a x) / e^b,
low-pass and downsample x2 (alias-free GAN, Karras et al. 2021).

Checkpoint files store weight-normalised convolutions, either as ``weight_g`` / ``weight_v`` or as
``parametrizations.weight.original0`` / ``original1``. :func:`fold_weight_norm` turns both into
plain ``weight`` tensors once at load, so the modules here hold plain convolutions and load the
official files strictly (same key names apart from the folded weights).
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BigVGAN", "BigVGANConfig", "fold_weight_norm"]

_SNAKE_EPS = 1e-9  # added to e^beta before dividing
_FILTER_TAPS = 12  # anti-aliasing filter length (upsampler and downsampler)
_ACT_RATIO = 2  # the activations run at twice the signal rate


@dataclasses.dataclass(frozen=True)
class BigVGANConfig:
    """Generator architecture (the fields of BigVGAN's config file that shape the network).

    Attributes:
        name: preset name.
        sample_rate: Hz of the output waveform.
        num_mels: input mel bands.
        upsample_rates, upsample_kernel_sizes: one transposed convolution per stage; the product
            of the rates is the hop (samples per mel frame).
        upsample_initial_channel: width after conv_pre; stage i has width initial / 2^(i + 1).
        resblock_kernel_sizes, resblock_dilation_sizes: one AMP block per kernel size in every
            stage, with its dilations.
        use_tanh_at_final: tanh at the output (v1) or a clamp to [-1, 1] (v2 44 kHz).
        use_bias_at_final: conv_post has a bias.
        snake_logscale: SnakeBeta's alpha and beta are stored as logs (both official files).
    """

    name: str
    sample_rate: int
    num_mels: int
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    upsample_initial_channel: int
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    use_tanh_at_final: bool = True
    use_bias_at_final: bool = True
    snake_logscale: bool = True

    def __post_init__(self) -> None:
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError(f"one kernel size per upsample rate: {self}")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError(f"one dilation list per resblock kernel size: {self}")
        if any((k - u) % 2 for u, k in zip(self.upsample_rates, self.upsample_kernel_sizes)):
            raise ValueError(f"each upsample kernel minus its rate must be even: {self}")
        if self.upsample_initial_channel >> len(self.upsample_rates) < 1:
            raise ValueError(f"upsample_initial_channel too small for {len(self.upsample_rates)} stages: {self}")

    @property
    def hop_length(self) -> int:
        """Output samples per input mel frame."""
        return math.prod(self.upsample_rates)

    @classmethod
    def preset(cls, name: str) -> "BigVGANConfig":
        """``v1_16k`` (MMAudio's ``bigvgan_vocoder.yml``), ``v2_44k`` (``bigvgan_v2_44khz_128band_512x``)
        or ``tiny_16k`` / ``tiny_44k`` (tests: the same rates, 64 initial channels, two resblock kernels)."""
        presets = {
            "v1_16k": cls("v1_16k", 16_000, 80, (4, 4, 2, 2, 2, 2), (8, 8, 4, 4, 4, 4), 1536),
            "v2_44k": cls("v2_44k", 44_100, 128, (8, 4, 2, 2, 2, 2), (16, 8, 4, 4, 4, 4), 1536,
                          use_tanh_at_final=False, use_bias_at_final=False),
            "tiny_16k": cls("tiny_16k", 16_000, 80, (4, 4, 2, 2, 2, 2), (8, 8, 4, 4, 4, 4), 64,
                            (3, 5), ((1, 3, 5), (1, 3, 5))),
            "tiny_44k": cls("tiny_44k", 44_100, 128, (8, 4, 2, 2, 2, 2), (16, 8, 4, 4, 4, 4), 64,
                            (3, 5), ((1, 3, 5), (1, 3, 5)), use_tanh_at_final=False, use_bias_at_final=False),
        }
        if name not in presets:
            raise ValueError(f"unknown BigVGAN preset {name!r}; known: {sorted(presets)}")
        return presets[name]


_WEIGHT_NORM_KEYS = (
    (re.compile(r"^(.*)\.weight_g$"), re.compile(r"^(.*)\.weight_v$")),
    (re.compile(r"^(.*)\.parametrizations\.weight\.original0$"), re.compile(r"^(.*)\.parametrizations\.weight\.original1$")),
)


def fold_weight_norm(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Replace every weight-normalised pair (g, v) by ``weight`` = g * v / |v| (norm over all dims but 0).

    Accepts ``X.weight_g`` / ``X.weight_v`` (``torch.nn.utils.weight_norm``) and
    ``X.parametrizations.weight.original0`` / ``original1`` (``torch.nn.utils.parametrizations``);
    other entries are copied. The input is not modified. A half pair raises ``KeyError``.
    """
    out: dict[str, Tensor] = {}
    pairs: dict[str, dict[str, Tensor]] = {}
    for key, value in state.items():
        for g_pat, v_pat in _WEIGHT_NORM_KEYS:
            if m := g_pat.match(key):
                pairs.setdefault(m.group(1), {})["g"] = value
                break
            if m := v_pat.match(key):
                pairs.setdefault(m.group(1), {})["v"] = value
                break
        else:
            out[key] = value
    for prefix, pair in pairs.items():
        if set(pair) != {"g", "v"}:
            raise KeyError(f"weight-norm pair of {prefix!r} is incomplete: only {sorted(pair)} present")
        g, v = pair["g"], pair["v"]
        norm = torch.linalg.vector_norm(v, dim=tuple(range(1, v.ndim)), keepdim=True)
        out[prefix + ".weight"] = v * (g / norm)
    return out


def kaiser_sinc_filter(cutoff: float, half_width: float, taps: int) -> Tensor:
    """Kaiser-windowed sinc low-pass (1, 1, taps), summing to 1; cutoff and transition half-width in
    cycles per sample, the Kaiser beta from Kaiser's formula for the attenuation the width allows."""
    half = taps // 2
    attenuation = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95  # dB
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(taps, periodic=False, beta=beta)
    time = torch.arange(-half, half) + 0.5 if taps % 2 == 0 else torch.arange(taps) - half
    kernel = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
    return (kernel / kernel.sum()).view(1, 1, taps)


class SnakeBeta(nn.Module):
    """x + sin^2(alpha x) / beta per channel, alpha and beta stored as logs (``snake_logscale``)."""

    def __init__(self, channels: int, logscale: bool = True) -> None:
        super().__init__()
        self.logscale = logscale
        init = torch.zeros(channels) if logscale else torch.ones(channels)
        self.alpha = nn.Parameter(init.clone())
        self.beta = nn.Parameter(init.clone())

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T)
        alpha, beta = self.alpha[None, :, None], self.beta[None, :, None]
        if self.logscale:
            alpha, beta = alpha.exp(), beta.exp()
        return x + (1.0 / (beta + _SNAKE_EPS)) * torch.sin(x * alpha).pow(2)


class _Upsample2(nn.Module):
    """x2 band-limited upsampling: replicate-pad, zero-stuffed transposed filter, crop."""

    filter: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("filter", kaiser_sinc_filter(0.5 / _ACT_RATIO, 0.6 / _ACT_RATIO, _FILTER_TAPS))
        self.pad = _FILTER_TAPS // _ACT_RATIO - 1
        self.crop_left = self.pad * _ACT_RATIO + (_FILTER_TAPS - _ACT_RATIO) // 2
        self.crop_right = self.pad * _ACT_RATIO + (_FILTER_TAPS - _ACT_RATIO + 1) // 2

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T) -> (B, C, 2 T)
        c = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        x = _ACT_RATIO * F.conv_transpose1d(x, self.filter.expand(c, -1, -1), stride=_ACT_RATIO, groups=c)
        return x[..., self.crop_left : x.shape[-1] - self.crop_right]


class _LowPass(nn.Module):
    """Replicate-padded depthwise low-pass with stride 2."""

    filter: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("filter", kaiser_sinc_filter(0.5 / _ACT_RATIO, 0.6 / _ACT_RATIO, _FILTER_TAPS))
        self.pad_left = _FILTER_TAPS // 2 - int(_FILTER_TAPS % 2 == 0)
        self.pad_right = _FILTER_TAPS // 2

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T) -> (B, C, T / 2)
        c = x.shape[1]
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(x, self.filter.expand(c, -1, -1), stride=_ACT_RATIO, groups=c)


class _Downsample2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lowpass = _LowPass()

    def forward(self, x: Tensor) -> Tensor:
        return self.lowpass(x)


class AntiAliasedSnake(nn.Module):
    """Upsample x2, SnakeBeta, downsample x2 (the filters are persistent buffers, as in the files)."""

    def __init__(self, channels: int, logscale: bool) -> None:
        super().__init__()
        self.act = SnakeBeta(channels, logscale)
        self.upsample = _Upsample2()
        self.downsample = _Downsample2()

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T)
        return self.downsample(self.act(self.upsample(x)))


class AMPBlock(nn.Module):
    """x <- x + conv2_i(act(conv1_i(act(x)))) for each dilation i (conv1 dilated, conv2 not)."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...], logscale: bool) -> None:
        super().__init__()

        def conv(d: int) -> nn.Conv1d:
            return nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=d * (kernel_size - 1) // 2)

        self.convs1 = nn.ModuleList(conv(d) for d in dilations)
        self.convs2 = nn.ModuleList(conv(1) for _ in dilations)
        # Stored interleaved: activations[2i] precedes convs1[i], activations[2i + 1] precedes convs2[i].
        self.activations = nn.ModuleList(AntiAliasedSnake(channels, logscale) for _ in range(2 * len(dilations)))

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T)
        for i, (c1, c2) in enumerate(zip(self.convs1, self.convs2)):
            x = x + c2(self.activations[2 * i + 1](c1(self.activations[2 * i](x))))
        return x


class BigVGAN(nn.Module):
    """Mel (B, num_mels, T) -> waveform (B, 1, T * hop) in [-1, 1]; BigVGAN generator with AMP blocks."""

    def __init__(self, config: BigVGANConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        width = cfg.upsample_initial_channel
        self.conv_pre = nn.Conv1d(cfg.num_mels, width, 7, padding=3)
        # Each stage's transposed conv sits alone in a ModuleList (key `ups.i.0`), as in the files.
        self.ups = nn.ModuleList(
            nn.ModuleList([nn.ConvTranspose1d(width >> i, width >> (i + 1), k, u, padding=(k - u) // 2)])
            for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)))
        self.resblocks = nn.ModuleList(
            AMPBlock(width >> (i + 1), k, tuple(d), cfg.snake_logscale)
            for i in range(len(cfg.upsample_rates))
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes))
        last = width >> len(cfg.upsample_rates)
        self.activation_post = AntiAliasedSnake(last, cfg.snake_logscale)
        self.conv_post = nn.Conv1d(last, 1, 7, padding=3, bias=cfg.use_bias_at_final)

    def extra_repr(self) -> str:
        return repr(self.config)

    def load_official_state_dict(self, state: Mapping[str, Tensor]) -> "BigVGAN":
        """Fold the weight norm of an official generator state dict (:func:`fold_weight_norm`), load strictly."""
        self.load_state_dict(fold_weight_norm(state), strict=True)
        return self

    def forward(self, mel: Tensor) -> Tensor:
        """Waveform of a mel spectrogram.

        Args:
            mel: (B, num_mels, T) log-mel.

        Returns:
            (B, 1, T * hop) waveform in [-1, 1].
        """
        if mel.dim() != 3 or mel.shape[1] != self.config.num_mels:
            raise ValueError(f"expected a (B, {self.config.num_mels}, T) mel, got {tuple(mel.shape)}")
        n_kernels = len(self.config.resblock_kernel_sizes)
        x = self.conv_pre(mel)
        for i, (up,) in enumerate(self.ups):
            x = up(x)
            blocks = self.resblocks[i * n_kernels : (i + 1) * n_kernels]
            x = sum(block(x) for block in blocks) / n_kernels
        x = self.conv_post(self.activation_post(x))
        return torch.tanh(x) if self.config.use_tanh_at_final else x.clamp(-1.0, 1.0)
