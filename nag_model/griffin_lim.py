"""Batched Griffin-Lim phase reconstruction in PyTorch, for decoding on the GPU.

The same algorithm as `librosa.griffinlim` with `center=False` (the "fast" Griffin-Lim of Perraudin
et al. 2013, momentum 0.99, librosa's defaults): alternate an inverse STFT (overlap-add normalised
by the summed squared window) and an STFT, keep the target magnitudes, and push the phases with
momentum. It runs every item of a batch at once on the magnitudes' device. torch.istft is not used
because with `center=False` it rejects the window's zero ends (its NOLA check).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def griffin_lim(magnitude: torch.Tensor, *, n_fft: int, hop_length: int, window: torch.Tensor,
                init_phase: torch.Tensor, n_iter: int = 32, momentum: float = 0.99) -> torch.Tensor:
    """Waveforms whose STFT magnitudes approximate `magnitude`.

    Args:
        magnitude: (B, n_fft // 2 + 1, T) non-negative float32 STFT magnitudes.
        window: (n_fft,) analysis/synthesis window.
        init_phase: (n_fft // 2 + 1, T) initial phases as fractions of a turn in [0, 1), shared by every item.

    Returns:
        (B, n_fft + hop_length * (T - 1)) float32 waveforms (frames as `torch.stft(center=False)` sees them).
    """
    b, bins, frames = magnitude.shape
    if bins != n_fft // 2 + 1 or init_phase.shape != (bins, frames):
        raise ValueError(f"magnitude must be (B, {n_fft // 2 + 1}, T) with init_phase (bins, T), got "
                         f"{tuple(magnitude.shape)} and {tuple(init_phase.shape)}")
    length = n_fft + hop_length * (frames - 1)
    window = window.to(magnitude.device, torch.float32)
    # Sum of squared windows over the frames (librosa's window_sumsquare), and where it is not ~0.
    envelope = _overlap_add(window.square()[None, :, None].expand(1, n_fft, frames), length, hop_length)[0]
    usable = envelope > torch.finfo(torch.float32).tiny
    envelope = torch.where(usable, envelope, torch.ones_like(envelope))

    def istft(spec: torch.Tensor) -> torch.Tensor:  # (B, bins, T) complex -> (B, length)
        y = _overlap_add(torch.fft.irfft(spec, n=n_fft, dim=1) * window[:, None], length, hop_length)
        return torch.where(usable, y / envelope, y)

    def stft(y: torch.Tensor) -> torch.Tensor:  # (B, length) -> (B, bins, T) complex
        return torch.stft(y, n_fft, hop_length=hop_length, win_length=n_fft, window=window, center=False,
                          return_complex=True)

    tiny = torch.finfo(torch.float32).tiny
    angles = torch.polar(torch.ones_like(init_phase, dtype=torch.float32), 2 * math.pi * init_phase.float())
    angles = angles.to(magnitude.device) * magnitude  # (B, bins, T)
    previous = None
    for _ in range(n_iter):
        rebuilt = stft(istft(angles))
        step = rebuilt if previous is None else rebuilt - (momentum / (1 + momentum)) * previous
        angles = step / (step.abs() + tiny) * magnitude
        previous = rebuilt
    return istft(angles)


def _overlap_add(frames: torch.Tensor, length: int, hop_length: int) -> torch.Tensor:
    """(B, n_fft, T) frames -> (B, length) summed at hop_length strides."""
    n_fft = frames.shape[1]
    out = F.fold(frames, output_size=(1, length), kernel_size=(1, n_fft), stride=(1, hop_length))
    return out.view(frames.shape[0], length)
