"""MMAudio's log-mel front end (fact sheet 5.7): the input of its VAE and of its vocoders.

The waveform is clamped to [-1, 1], reflect-padded by (n_fft - hop) / 2 on both sides, framed with
a periodic Hann window (no centring), turned into magnitudes sqrt(re^2 + im^2 + 1e-9), projected
on librosa's Slaney mel basis, clamped at 1e-5 and logged (log10 at 16 kHz, natural log at
44.1 kHz). A waveform of L samples gives floor(L / hop) frames: 500 for 8 s at 16 kHz (128 000
samples), 690 for 8 s at 44.1 kHz (353 280 samples).
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import librosa
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MelConfig", "MelConverter"]


@dataclasses.dataclass(frozen=True)
class MelConfig:
    """Log-mel settings; the two presets are MMAudio's ``16k`` and ``44k`` modes.

    Attributes:
        sample_rate: Hz.
        n_fft: FFT size.
        win_length: periodic Hann window length (<= n_fft).
        hop_length: samples per frame.
        n_mels: mel bands.
        f_min, f_max: filterbank range in Hz (librosa, Slaney scale and norm).
        log: ``"log10"`` or ``"ln"``.
        log_floor: mel magnitudes are clamped to at least this before the log.
        magnitude_eps: added to re^2 + im^2 under the square root.
    """

    sample_rate: int
    n_fft: int
    win_length: int
    hop_length: int
    n_mels: int
    f_min: float
    f_max: float
    log: Literal["log10", "ln"]
    log_floor: float = 1e-5
    magnitude_eps: float = 1e-9

    def __post_init__(self) -> None:
        if min(self.sample_rate, self.n_fft, self.win_length, self.hop_length, self.n_mels) <= 0:
            raise ValueError(f"sizes must be positive: {self}")
        if self.win_length > self.n_fft or (self.n_fft - self.hop_length) % 2:
            raise ValueError(f"need win_length <= n_fft and n_fft - hop_length even: {self}")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2: {self}")
        if self.log not in ("log10", "ln"):
            raise ValueError(f"log must be 'log10' or 'ln', got {self.log!r}")

    @classmethod
    def mmaudio_16k(cls) -> "MelConfig":
        """16 kHz, n_fft 1024, hop 256, 80 bands up to 8 kHz, log10."""
        return cls(16_000, 1024, 1024, 256, 80, 0.0, 8_000.0, "log10")

    @classmethod
    def mmaudio_44k(cls) -> "MelConfig":
        """44.1 kHz, n_fft 2048, hop 512, 128 bands up to 22.05 kHz, natural log."""
        return cls(44_100, 2048, 2048, 512, 128, 0.0, 22_050.0, "ln")

    @classmethod
    def for_mode(cls, mode: str) -> "MelConfig":
        """The preset of MMAudio mode ``'16k'`` or ``'44k'``."""
        if mode == "16k":
            return cls.mmaudio_16k()
        if mode == "44k":
            return cls.mmaudio_44k()
        raise ValueError(f"unknown MMAudio mode {mode!r}; expected '16k' or '44k'")

    @property
    def pad(self) -> int:
        """Reflect padding on each side: (n_fft - hop) / 2."""
        return (self.n_fft - self.hop_length) // 2

    def num_frames(self, num_samples: int) -> int:
        """Frames of a waveform of ``num_samples`` samples: floor(num_samples / hop)."""
        return (num_samples + 2 * self.pad - self.n_fft) // self.hop_length + 1


class MelConverter(nn.Module):
    """Waveform (B, L) -> log-mel (B, n_mels, T), T = floor(L / hop); MMAudio's mel converter."""

    mel_basis: Tensor
    window: Tensor

    def __init__(self, config: MelConfig) -> None:
        super().__init__()
        self.config = config
        basis = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels,
                                    fmin=config.f_min, fmax=config.f_max)  # (n_mels, n_fft // 2 + 1)
        # Derived from the config, so kept out of the state dict; float32 masters kept on the CPU.
        self._float32 = {"mel_basis": torch.from_numpy(basis).float(), "window": torch.hann_window(config.win_length)}
        for name, value in self._float32.items():
            self.register_buffer(name, value.clone(), persistent=False)

    def _apply(self, fn, recurse=True):
        """Moves follow the module; dtype casts do not: the converter always computes in float32."""
        super()._apply(fn, recurse)
        for name, value in self._float32.items():
            setattr(self, name, value.to(getattr(self, name).device))
        return self

    def extra_repr(self) -> str:
        return repr(self.config)

    def forward(self, wav: Tensor) -> Tensor:
        """Log-mel of a batch of waveforms.

        Args:
            wav: (B, L) float waveforms, L > (n_fft - hop) / 2 (for the reflect padding); clamped
                to [-1, 1].

        Returns:
            (B, n_mels, floor(L / hop)) float32 log-mel on the converter's device.
        """
        cfg = self.config
        if wav.dim() != 2 or not wav.is_floating_point():
            raise ValueError(f"expected a (B, L) float waveform, got {tuple(wav.shape)} {wav.dtype}")
        if wav.shape[1] <= cfg.pad or wav.shape[1] < cfg.hop_length:
            raise ValueError(f"waveform of {wav.shape[1]} samples is too short: need more than "
                             f"{max(cfg.pad, cfg.hop_length - 1)} at hop {cfg.hop_length}")
        x = wav.to(self.mel_basis.device, torch.float32).clamp(-1.0, 1.0)
        x = F.pad(x.unsqueeze(1), (cfg.pad, cfg.pad), mode="reflect").squeeze(1)  # (B, L + 2 pad)
        spec = torch.stft(x, cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, window=self.window,
                          center=False, onesided=True, return_complex=True)  # (B, F, T)
        magnitude = torch.sqrt(spec.real.square() + spec.imag.square() + cfg.magnitude_eps)
        mel = torch.matmul(self.mel_basis, magnitude).clamp(min=cfg.log_floor)  # (B, n_mels, T)
        return torch.log10(mel) if cfg.log == "log10" else torch.log(mel)
