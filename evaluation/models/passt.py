"""PaSST (Koutini et al., 2022) as the MMAudio evaluation toolkit (av-benchmark) runs it: FD_PaSST and KL_PaSST.

av-benchmark builds the model with ``hear21passt.base.get_basic_model(mode="all")`` (fork
``hkchengrex/passt_hear21``), whose default architecture is ``passt_s_swa_p16_128_ap476``: PaSST-S
trained on AudioSet with structured Patchout and SWA (mAP .476), file
``passt-s-f128-p16-s10-ap.476-swa.pt``. It reads 32 kHz audio, pads or cuts every clip to exactly 10 s
(320 000 samples) and calls the wrapper on it. The wrapper's ``mode="all"`` output is the logits and
the embedding concatenated; av-benchmark splits it into the first 527 columns (logits) and the
remaining 768 (embedding). This module computes the same two tensors:

1. DC removal: the clip's mean is subtracted (av-benchmark's ``AudioDataset`` does it on the whole
   file, before resampling; here it is done on the clip given, already at 32 kHz).
2. Pad with zeros or truncate to 10 s (av-benchmark's ``extract``).
3. Mel front end (hear21passt's ``AugmentMelSTFT`` in eval mode, no augmentation): pre-emphasis
   ``y[n] = x[n+1] - 0.97 x[n]``, STFT (n_fft 1024, symmetric Hann window of 800, hop 320, centred,
   reflect padding), power ``re^2 + im^2``, 128 Kaldi mel banks over 0-15 000 Hz (the 512 FFT bins
   below Nyquist; the Nyquist bin gets weight 0), ``log(x + 1e-5)``, ``(x + 4.5) / 5``. 10 s give
   1000 frames.
4. The PaSST ViT without Patchout (inference): 16x16 patches with stride 10 (12 x 99 patches of a
   128 x 1000 spectrogram), separate frequency and time positional embeddings added on the patch grid,
   cls and distillation tokens with their own positional embeddings, 12 pre-norm blocks, a final
   LayerNorm.
5. embedding = (cls + dist) / 2 after the final norm (B, 768); logits = head(embedding), the head
   being LayerNorm + Linear (B, 527). The logits are pre-sigmoid (the model was trained with a
   multi-label BCE); av-benchmark applies a softmax over the 527 classes to them for KL and IS. The
   distillation head ``head_dist`` is in the file but unused at inference, as in hear21passt.

Differences from av-benchmark: the caller resamples (av-benchmark uses torchaudio's ``Resample``
with its defaults) and truncates to av-benchmark's ``audio_length`` (8 s in MMAudio's evaluation)
before calling; see step 1 for the DC removal.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common.presets import pick_preset
from evaluation.models.kaldi import mel_banks
from nag_model.checkpoint import OFFICIAL_WEIGHTS, check_state_dict, read_weight_file

__all__ = ["PaSST", "PaSSTConfig", "PaSSTMel", "PaSSTNet", "get_passt_config", "prepare_waveforms"]

OFFICIAL_PRESET = "passt_s_swa_p16_128_ap476"


@dataclasses.dataclass(frozen=True)
class PaSSTConfig:
    """Front end and network sizes; ``passt_s_swa_p16_128_ap476`` is the official one.

    Attributes:
        name: preset name, also the key of the weight file in ``OFFICIAL_WEIGHTS``.
        sample_rate: input rate in Hz.
        clip_samples: every clip is padded or truncated to this many samples (10 s).
        n_fft, win_length, hop_length: STFT sizes (symmetric Hann window of ``win_length``).
        n_mels, f_min, f_max: Kaldi mel banks (Hz).
        preemphasis: coefficient of the pre-emphasis filter.
        patch_size, patch_stride: square patches over (mel, frame) and their stride.
        embed_dim, depth, num_heads, mlp_ratio: the ViT.
        num_classes: AudioSet classes.
    """

    name: str
    sample_rate: int = 32_000
    clip_samples: int = 320_000
    n_fft: int = 1024
    win_length: int = 800
    hop_length: int = 320
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float = 15_000.0
    preemphasis: float = 0.97
    patch_size: int = 16
    patch_stride: int = 10
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    num_classes: int = 527

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not a multiple of num_heads {self.num_heads}")
        if self.win_length > self.n_fft or not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(f"need win_length <= n_fft and 0 <= f_min < f_max <= sample_rate / 2: {self}")
        if min(self.n_mels, self.n_frames) < self.patch_size:
            raise ValueError(f"a {self.n_mels} x {self.n_frames} spectrogram is smaller than one patch")

    @property
    def n_frames(self) -> int:
        """STFT frames of a clip: the pre-emphasis drops one sample, the centred STFT adds one frame."""
        return (self.clip_samples - 1) // self.hop_length + 1

    @property
    def grid(self) -> tuple[int, int]:
        """(frequency, time) patches of a clip's spectrogram: (12, 99) for the official preset."""
        def count(n: int) -> int:
            return (n - self.patch_size) // self.patch_stride + 1
        return count(self.n_mels), count(self.n_frames)


PRESETS: dict[str, PaSSTConfig] = {
    OFFICIAL_PRESET: PaSSTConfig(OFFICIAL_PRESET),
    # Same code paths at toy size, for tests: 1-s clips (100 frames, 12 x 9 patches), a 2-block ViT of width 32.
    "tiny": PaSSTConfig("tiny", clip_samples=32_000, embed_dim=32, depth=2, num_heads=4),
}


def get_passt_config(preset: str | PaSSTConfig) -> PaSSTConfig:
    """A preset by name (``passt_s_swa_p16_128_ap476`` or ``tiny``), or the config itself."""
    return pick_preset(preset, PRESETS, PaSSTConfig, "PaSST")


def prepare_waveforms(wavs: np.ndarray | Tensor, config: PaSSTConfig) -> Tensor:
    """(B, L) float waveforms -> (B, clip_samples) float32: DC removed, then zero-padded or truncated."""
    x = torch.as_tensor(np.asarray(wavs, dtype=np.float32) if not isinstance(wavs, Tensor) else wavs)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"expected waveforms of shape (B, L) with L > 0, got {tuple(x.shape)}")
    x = x.float()
    x = x - x.mean(dim=1, keepdim=True)  # (B, L)
    n = config.clip_samples
    return x[:, :n] if x.shape[1] >= n else F.pad(x, (0, n - x.shape[1]))


class PaSSTMel(nn.Module):
    """hear21passt's log-mel front end in eval mode: (B, L) waveform -> (B, n_mels, T) normalised log-mel."""

    def __init__(self, config: PaSSTConfig):
        super().__init__()
        self.config = config
        c = config
        basis, _ = mel_banks(c.n_mels, c.n_fft, float(c.sample_rate), c.f_min, c.f_max)  # (n_mels, n_fft // 2)
        basis = F.pad(basis, (0, 1))  # (n_mels, n_fft // 2 + 1): the Nyquist bin gets weight 0
        self.register_buffer("mel_basis", basis, persistent=False)
        self.register_buffer("window", torch.hann_window(c.win_length, periodic=False), persistent=False)

    def forward(self, wav: Tensor) -> Tensor:
        c = self.config
        x = wav.float()
        x = x[:, 1:] - c.preemphasis * x[:, :-1]  # (B, L - 1)
        spec = torch.stft(x, c.n_fft, hop_length=c.hop_length, win_length=c.win_length, window=self.window,
                          center=True, pad_mode="reflect", normalized=False, return_complex=True)  # (B, F, T)
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(self.mel_basis, power)  # (B, n_mels, T)
        return (torch.log(mel + 1e-5) + 4.5) / 5.0


class PatchEmbed(nn.Module):
    """Overlapping square patches of the spectrogram, as a strided convolution."""

    def __init__(self, config: PaSSTConfig):
        super().__init__()
        self.proj = nn.Conv2d(1, config.embed_dim, config.patch_size, stride=config.patch_stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)  # (B, 1, n_mels, T) -> (B, D, Fp, Tp)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)  # (B, H, N, Dh)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, Dh)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-6)."""

    def __init__(self, config: PaSSTConfig):
        super().__init__()
        d = config.embed_dim
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.attn = Attention(d, config.num_heads)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = Mlp(d, int(d * config.mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PaSSTNet(nn.Module):
    """The PaSST ViT at inference (no Patchout); its state dict has the official file's layout.

    ``forward`` maps (B, 1, n_mels, T) spectrograms to ``(logits (B, C), embedding (B, D))``.
    """

    def __init__(self, config: PaSSTConfig):
        super().__init__()
        self.config = config
        d = config.embed_dim
        n_freq, n_time = config.grid
        self.patch_embed = PatchEmbed(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, d))
        self.new_pos_embed = nn.Parameter(torch.zeros(1, 2, d))  # for the cls and dist tokens
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, d, n_freq, 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, d, 1, n_time))
        self.blocks = nn.Sequential(*[Block(config) for _ in range(config.depth)])
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, config.num_classes))  # LayerNorm eps 1e-5
        self.head_dist = nn.Linear(d, config.num_classes)  # in the file; unused at inference

    def forward(self, spec: Tensor) -> tuple[Tensor, Tensor]:
        x = self.patch_embed(spec)  # (B, D, Fp, Tp)
        grid = tuple(x.shape[2:])
        if grid != self.config.grid:
            raise ValueError(f"spectrogram {tuple(spec.shape)} gives a {grid} patch grid, expected {self.config.grid}")
        x = x + self.time_new_pos_embed + self.freq_new_pos_embed
        x = x.flatten(2).transpose(1, 2)  # (B, Fp * Tp, D), frequency-major
        b = x.shape[0]
        cls = self.cls_token.expand(b, -1, -1) + self.new_pos_embed[:, :1]
        dist = self.dist_token.expand(b, -1, -1) + self.new_pos_embed[:, 1:]
        x = self.norm(self.blocks(torch.cat([cls, dist, x], dim=1)))  # (B, 2 + Fp * Tp, D)
        embedding = (x[:, 0] + x[:, 1]) / 2  # (B, D)
        return self.head(embedding), embedding


class PaSST(nn.Module):
    """PaSST for FD_PaSST (embedding) and KL_PaSST (logits), as av-benchmark extracts them.

    Build it with ``PaSST.from_file(path)``; ``features(wavs)`` takes (B, L) mono float waveforms at
    32 kHz in [-1, 1] and returns ``{"embedding": (B, 768), "logits": (B, 527)}`` as numpy float32.
    """

    def __init__(self, config: PaSSTConfig | str = OFFICIAL_PRESET):
        super().__init__()
        self.config = get_passt_config(config)
        self.name = self.config.name.replace("_", "-")
        self.sample_rate = self.config.sample_rate
        self.mel = PaSSTMel(self.config)
        self.net = PaSSTNet(self.config)

    @classmethod
    def from_file(cls, path: str, preset: str | PaSSTConfig = OFFICIAL_PRESET, *, verify_checksum: bool = True,
                  storage_options: Mapping | None = None) -> "PaSST":
        """Load the official ``passt-s-f128-p16-s10-ap.476-swa.pt`` (local path or fsspec URL), strictly.

        Raises ``WeightsNotFound``, ``ChecksumMismatch`` or ``CorruptWeights`` (see
        ``nag_model.checkpoint.read_weight_file``) and ``IncompatibleWeights`` for a file of another layout.
        """
        config = get_passt_config(preset)
        known = OFFICIAL_WEIGHTS.get(config.name)
        state = read_weight_file(path, f"PaSST weights ({config.name})", known, verify_checksum=verify_checksum,
                                 storage_options=storage_options)
        model = cls(config)
        check_state_dict(model.net, state, f"PaSST weights in {path}")
        model.net.load_state_dict(state, strict=True)
        return model.eval()

    def forward(self, wavs: Tensor) -> tuple[Tensor, Tensor]:
        """(B, clip_samples) prepared waveforms -> (logits (B, C), embedding (B, D))."""
        return self.net(self.mel(wavs).unsqueeze(1))

    @torch.no_grad()
    def features(self, wavs: np.ndarray | Tensor) -> dict[str, np.ndarray]:
        """The tensors av-benchmark stores for FD_PaSST and KL_PaSST.

        Args:
            wavs: (B, L) mono float waveforms at 32 kHz in [-1, 1], numpy or torch (any L: DC removed,
                then padded or truncated to 10 s).

        Returns:
            ``embedding`` (B, 768), the averaged cls/dist tokens, and ``logits`` (B, 527), pre-sigmoid
            (av-benchmark softmaxes them for KL and IS); numpy float32.
        """
        device = self.mel.window.device
        logits, embedding = self(prepare_waveforms(wavs, self.config).to(device))
        return {"embedding": embedding.float().cpu().numpy(), "logits": logits.float().cpu().numpy()}
