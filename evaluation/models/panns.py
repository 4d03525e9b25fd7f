"""PANNs Cnn14 at 16 kHz, as av-benchmark computes FD-PANN, KL-PANNS-softmax and ISC-PANNS.

The model is Kong et al.'s Cnn14 (PANNs, 2020) with the 16 kHz AudioSet checkpoint
``Cnn14_16k_mAP=0.438.pth`` (zenodo record 3987831), built the way av-benchmark's extractor builds it
(``av_bench/extraction_models.py``: window 512, hop 160, 64 mel bands from 50 to 8000 Hz, 527 classes):

* **front end** (torchlibrosa's ``Spectrogram`` + ``LogmelFilterBank``, matched here rather than imported:
  torchlibrosa's last release is from 2023 and it is only a few lines of numerics):
  reflect-pad 256 samples on both sides, a power STFT computed as a strided convolution with a
  periodic-Hann-windowed DFT basis, a Slaney mel filter bank (``librosa.filters.mel``), then
  ``10 log10(max(mel, 1e-10))`` (no top-dB clipping). The DFT basis and the mel matrix are frozen
  parameters of the official model and are stored in its checkpoint; av-benchmark's strict load replaces
  the computed ones with the file's, so this module keeps them as parameters under the same names and uses
  the loaded values too.
* **network**: ``bn0`` over the mel bands, six blocks of two 3x3 conv + batch norm + ReLU (2x2 average
  pooling after blocks 1-5, none after block 6), mean over mel bands, max + mean over time, ``fc1``.
* **outputs** (what av-benchmark's ``pann_features.pth`` stores per file): ``"embedding"`` =
  ``relu(fc1(.))``, the 2048-d ``"2048"`` entry, used for FD-PANN; ``"logits"`` = ``fc_audioset`` of that
  embedding, the 527 **pre-sigmoid** scores. av-benchmark's KL (``log_softmax`` of both sides) and IS
  (``softmax``) apply their softmax to these raw logits, not to the clipwise sigmoid output.

Waveform preparation (``av_bench/data/audio_dataset.py::AudioDataset``): mono, the file's mean
subtracted, resampled to 16 kHz, cut to the first 8 s (MMAudio's ``audio_length``), no padding.
:meth:`PANNsCnn14.features` subtracts the mean of the waveform it is given and then cuts; av-benchmark
subtracts the mean before resampling, so the two agree up to how the resampler carries a constant.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import librosa
import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F
from torch import nn

from common.presets import pick_preset
from nag_model.checkpoint import OFFICIAL_WEIGHTS, check_state_dict, read_weight_file

# Numpy objects a PANNs training checkpoint may pickle beside its state dict (training metadata), allowed
# so that the released file loads with ``weights_only=True`` (still no arbitrary code). Files written under
# numpy 1.x name the array constructor ``numpy.core.multiarray._reconstruct``.
try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

_NUMPY_GLOBALS = [
    (_reconstruct, "numpy.core.multiarray._reconstruct"), _reconstruct, np.ndarray, np.dtype,
    *(getattr(np.dtypes, n) for n in ("BoolDType", "Int32DType", "Int64DType", "UInt32DType", "UInt64DType",
                                      "Float32DType", "Float64DType")),
]


@dataclass(frozen=True)
class Cnn14Config:
    """Cnn14's front end and widths; ``cnn14_16k`` is av-benchmark's preset."""

    name: str = "panns_cnn14_16k"
    sample_rate: int = 16_000
    window_size: int = 512
    hop_size: int = 160
    mel_bins: int = 64
    fmin: float = 50.0
    fmax: float = 8000.0
    channels: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)  # six conv blocks; the last is the embedding
    classes: int = 527
    clip_seconds: float | None = 8.0  # av-benchmark's audio_length as MMAudio calls it; None keeps it all

    @property
    def embedding_dim(self) -> int:
        return self.channels[-1]

    @property
    def min_samples(self) -> int:
        """Shortest input the five 2x2 poolings accept (32 STFT frames)."""
        return (2 ** (len(self.channels) - 1) - 1) * self.hop_size


PRESETS: dict[str, Cnn14Config] = {
    "cnn14_16k": Cnn14Config(),
    "tiny": Cnn14Config(name="panns_tiny", channels=(4, 8, 8, 16, 16, 32), classes=10),
}


def get_config(preset: str | Cnn14Config) -> Cnn14Config:
    return pick_preset(preset, PRESETS, Cnn14Config, "Cnn14")


def dft_basis(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary rows (n_fft // 2 + 1, n_fft) of the periodic-Hann-windowed DFT (torchlibrosa's STFT)."""
    window = scipy.signal.get_window("hann", n_fft, fftbins=True)
    k = np.arange(n_fft // 2 + 1)[:, None]
    n = np.arange(n_fft)[None, :]
    angle = 2.0 * np.pi * ((k * n) % n_fft) / n_fft
    return np.cos(angle) * window, -np.sin(angle) * window


class _WindowedDFT(nn.Module):
    """The STFT as two strided convolutions (``conv_real``, ``conv_imag``: the checkpoint's names)."""

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.n_fft = n_fft
        bins = n_fft // 2 + 1
        self.conv_real = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        real, imag = dft_basis(n_fft)
        with torch.no_grad():
            self.conv_real.weight.copy_(torch.from_numpy(real[:, None, :]))
            self.conv_imag.weight.copy_(torch.from_numpy(imag[:, None, :]))
        self.requires_grad_(False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, L) -> power spectrogram (B, 1, T, n_fft // 2 + 1), T = L // hop + 1 (centred frames)."""
        x = F.pad(wav[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        real, imag = self.conv_real(x), self.conv_imag(x)  # (B, F, T)
        return (real ** 2 + imag ** 2).transpose(1, 2)[:, None]


class _PowerSpectrogram(nn.Module):
    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.stft = _WindowedDFT(n_fft, hop)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.stft(wav)


class _LogMel(nn.Module):
    """Slaney mel bank (``melW``: (F, M), the checkpoint's name) and power-to-dB with amin 1e-10, ref 1."""

    def __init__(self, config: Cnn14Config):
        super().__init__()
        mel = librosa.filters.mel(sr=config.sample_rate, n_fft=config.window_size, n_mels=config.mel_bins,
                                  fmin=config.fmin, fmax=config.fmax)  # (M, F)
        self.melW = nn.Parameter(torch.from_numpy(np.ascontiguousarray(mel.T, np.float32)), requires_grad=False)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.log10(torch.clamp(power @ self.melW, min=1e-10))  # (B, 1, T, M)


class _ConvBlock(nn.Module):
    """Two (3x3 conv, batch norm, ReLU) layers, then average pooling."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.avg_pool2d(x, pool) if pool > 1 else x


class PANNsCnn14(nn.Module):
    """Cnn14 audio tagger: 2048-d clip embedding and 527 AudioSet logits (inference only)."""

    def __init__(self, config: Cnn14Config | str = "cnn14_16k"):
        super().__init__()
        self.config = config = get_config(config)
        self.name = config.name
        self.sample_rate = config.sample_rate
        self.spectrogram_extractor = _PowerSpectrogram(config.window_size, config.hop_size)
        self.logmel_extractor = _LogMel(config)
        self.bn0 = nn.BatchNorm2d(config.mel_bins)
        widths = (1, *config.channels)
        for i in range(len(config.channels)):
            self.add_module(f"conv_block{i + 1}", _ConvBlock(widths[i], widths[i + 1]))
        self.fc1 = nn.Linear(config.embedding_dim, config.embedding_dim)
        self.fc_audioset = nn.Linear(config.embedding_dim, config.classes)
        self.eval()

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, L) waveform -> (B, 1, T, M) log-mel in dB (before ``bn0``)."""
        return self.logmel_extractor(self.spectrogram_extractor(wav))

    def forward(self, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, L) prepared waveform -> {"embedding": (B, D), "logits": (B, classes)} (pre-sigmoid)."""
        x = self.bn0(self.log_mel(wav).transpose(1, 3)).transpose(1, 3)  # (B, 1, T, M), normalised per mel band
        n_blocks = len(self.config.channels)
        for i in range(n_blocks):
            x = getattr(self, f"conv_block{i + 1}")(x, pool=2 if i < n_blocks - 1 else 1)  # (B, C, T', M')
        x = x.mean(dim=3)  # (B, C, T')
        x = x.amax(dim=2) + x.mean(dim=2)  # (B, C)
        embedding = F.relu(self.fc1(x))  # (B, D)
        return {"embedding": embedding, "logits": self.fc_audioset(embedding)}

    def prepare(self, wavs: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B, L) waveforms at ``sample_rate`` -> mean removed per clip, cut to ``clip_seconds``, float32."""
        wav = torch.as_tensor(np.asarray(wavs, np.float32) if not torch.is_tensor(wavs) else wavs)
        if wav.ndim != 2:
            raise ValueError(f"expected (B, L) mono waveforms at {self.sample_rate} Hz, got shape {tuple(wav.shape)}")
        wav = wav.float()
        wav = wav - wav.mean(dim=1, keepdim=True)
        if self.config.clip_seconds is not None:
            wav = wav[:, : int(self.sample_rate * self.config.clip_seconds)]
        if wav.shape[1] < self.config.min_samples:
            raise ValueError(f"{self.name} needs at least {self.config.min_samples} samples "
                             f"({self.config.min_samples / self.sample_rate:.2f} s at {self.sample_rate} Hz); "
                             f"got {wav.shape[1]}")
        return wav

    @torch.inference_mode()
    def features(self, wavs: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        """The features av-benchmark stores for each clip.

        Args:
            wavs: (B, L) mono waveforms in [-1, 1] at ``sample_rate`` (16 kHz), not yet mean-removed.
        Returns:
            ``{"embedding": (B, 2048), "logits": (B, 527)}`` float32 arrays: the FD-PANN embedding and the
            pre-sigmoid logits that KL-PANNS-softmax and ISC-PANNS pass through a softmax.
        """
        device = next(self.parameters()).device
        out = self(self.prepare(wavs).to(device))
        return {k: v.float().cpu().numpy() for k, v in out.items()}

    @classmethod
    def from_file(cls, path: str, preset: str | Cnn14Config = "cnn14_16k", *, verify_checksum: bool = True,
                  storage_options: Mapping | None = None) -> "PANNsCnn14":
        """Build ``preset`` and strict-load ``Cnn14_16k_mAP=0.438.pth`` (a local path or fsspec URL)."""
        config = get_config(preset)
        known = OFFICIAL_WEIGHTS.get(config.name)
        with torch.serialization.safe_globals(_NUMPY_GLOBALS):
            state = read_weight_file(path, f"PANNs Cnn14 weights ({config.name})", known,
                                     verify_checksum=verify_checksum, storage_options=storage_options)
        model = cls(config)
        check_state_dict(model, state, f"PANNs Cnn14 weights {path!r}")
        model.load_state_dict(state, strict=True)
        return model.float().eval()

