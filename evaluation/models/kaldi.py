"""Kaldi-compatible log-mel filterbank features in torch (no torchaudio).

The evaluation models (ImageBind's audio tower, PaSST, the AST audio branch of Synchformer) were
trained on features from `torchaudio.compliance.kaldi.fbank`, which reproduces Kaldi's
`compute-fbank-feats`. torchaudio does not import beside our torch, so this module computes the
same thing from Kaldi's definitions:

1. frames of `frame_length` ms every `frame_shift` ms (`snip_edges`: only whole frames; otherwise
   `(L + shift // 2) // shift` frames over the signal mirrored at both ends, Kaldi's convention);
2. per frame: remove the DC offset, pre-emphasis `x[j] - a * x[j - 1]` (with `x[-1] = x[0]`),
   the window (`hanning`, `povey` = hanning ** 0.85, `hamming`, `rectangular`), zero-padding to
   the next power of two;
3. power (or magnitude) spectrum, triangular filters equally spaced on Kaldi's mel scale
   `1127 ln(1 + f / 700)` (`mel_banks`), the Nyquist bin left out;
4. `log(max(energy, float32 eps))`; optionally the log frame energy as an extra column.

Dither is not supported (every evaluation model uses `dither=0`), nor VTLN warping.
Parity with torchaudio 2.11's implementation is tested in `tests/evaluation/models/test_kaldi.py`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["fbank", "mel_banks", "mel_scale", "num_frames"]

WINDOWS = ("hanning", "povey", "hamming", "rectangular")
_EPS = torch.finfo(torch.float32).eps  # Kaldi's floor: numeric_limits<float>::epsilon()


def mel_scale(freq: torch.Tensor | float) -> torch.Tensor | float:
    """Kaldi's mel scale, `1127 ln(1 + f / 700)` (feat/mel-computations.h)."""
    if isinstance(freq, torch.Tensor):
        return 1127.0 * torch.log(1.0 + freq / 700.0)
    return 1127.0 * math.log(1.0 + freq / 700.0)


def mel_banks(
    num_bins: int,
    window_length_padded: int,
    sample_frequency: float,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Kaldi's triangular mel filters (as `torchaudio.compliance.kaldi.get_mel_banks`, no VTLN).

    Args:
        num_bins: number of filters (> 3).
        window_length_padded: FFT size (even).
        sample_frequency: Hz.
        low_freq: lower edge of the first filter, Hz.
        high_freq: upper edge of the last filter, Hz; `<= 0` means that much below Nyquist.

    Returns:
        `(banks, center_freqs)`: float32 `(num_bins, window_length_padded // 2)` weights over the FFT
        bins 0 .. N/2 - 1 (the Nyquist bin has no weight), and the `(num_bins,)` centre frequencies
        in Hz.
    """
    if num_bins <= 3:
        raise ValueError(f"mel_banks needs more than 3 bins, got {num_bins}")
    if window_length_padded % 2:
        raise ValueError(f"mel_banks needs an even FFT size, got {window_length_padded}")
    nyquist = 0.5 * sample_frequency
    if high_freq <= 0.0:
        high_freq += nyquist
    if not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise ValueError(f"bad mel band edges low={low_freq} high={high_freq} for Nyquist {nyquist}")
    mel_low, mel_high = mel_scale(low_freq), mel_scale(high_freq)
    # Filters overlap by half: num_bins + 2 edges equally spaced on the mel axis.
    delta = (mel_high - mel_low) / (num_bins + 1)
    index = torch.arange(num_bins, dtype=torch.float32).unsqueeze(1)  # (num_bins, 1)
    left = mel_low + index * delta
    center = mel_low + (index + 1.0) * delta
    right = mel_low + (index + 2.0) * delta
    fft_mel = mel_scale(sample_frequency / window_length_padded
                        * torch.arange(window_length_padded // 2, dtype=torch.float32)).unsqueeze(0)  # (1, N/2)
    rising = (fft_mel - left) / (center - left)
    falling = (right - fft_mel) / (right - center)
    banks = torch.clamp(torch.minimum(rising, falling), min=0.0)  # (num_bins, N/2)
    center_freqs = 700.0 * (torch.exp(center.squeeze(1) / 1127.0) - 1.0)
    return banks, center_freqs


def num_frames(num_samples: int, window_size: int, window_shift: int, snip_edges: bool) -> int:
    """Number of Kaldi frames for a signal of `num_samples` (feat/feature-window.cc NumFrames)."""
    if snip_edges:
        return 0 if num_samples < window_size else 1 + (num_samples - window_size) // window_shift
    return (num_samples + window_shift // 2) // window_shift


def _frames(wave: torch.Tensor, size: int, shift: int, snip_edges: bool) -> torch.Tensor:
    """(..., L) -> (..., m, size) Kaldi frames; without snip_edges the signal is mirrored at both ends."""
    m = num_frames(wave.shape[-1], size, shift, snip_edges)
    if not snip_edges:
        # Kaldi mirrors the signal including the edge sample: [2 1 0 | 0 1 2 ... n | n ... 1 0].
        pad = size // 2 - shift // 2
        tail = wave.flip(-1)
        wave = torch.cat((wave[..., :pad].flip(-1), wave, tail), dim=-1) if pad > 0 \
            else torch.cat((wave[..., -pad:], tail), dim=-1)
    return wave.unfold(-1, size, shift)[..., :m, :]


def _window(kind: str, size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Kaldi's symmetric analysis windows."""
    if kind == "hanning":
        return torch.hann_window(size, periodic=False, device=device, dtype=dtype)
    if kind == "povey":
        return torch.hann_window(size, periodic=False, device=device, dtype=dtype).pow(0.85)
    if kind == "hamming":
        return torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46, device=device, dtype=dtype)
    if kind == "rectangular":
        return torch.ones(size, device=device, dtype=dtype)
    raise ValueError(f"unknown window_type {kind!r}; choose one of {WINDOWS}")


def fbank(
    waveform: torch.Tensor,
    *,
    sample_frequency: float = 16000.0,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    num_mel_bins: int = 23,
    window_type: str = "povey",
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    preemphasis_coefficient: float = 0.97,
    remove_dc_offset: bool = True,
    round_to_power_of_two: bool = True,
    snip_edges: bool = True,
    dither: float = 0.0,
    use_energy: bool = False,
    raw_energy: bool = True,
    energy_floor: float = 1.0,
    htk_compat: bool = False,
    use_log_fbank: bool = True,
    use_power: bool = True,
    subtract_mean: bool = False,
) -> torch.Tensor:
    """Kaldi log-mel filterbank, as `torchaudio.compliance.kaldi.fbank` with the same defaults.

    Args:
        waveform: `(L,)` or `(..., L)` samples (torchaudio's `(1, L)` gives `(1, m, bins)` here:
            every leading dim is a batch dim; take `[0]` for torchaudio's shape).
        sample_frequency: Hz. `frame_length`, `frame_shift`: milliseconds.
        num_mel_bins, window_type, low_freq, high_freq, preemphasis_coefficient, remove_dc_offset,
            round_to_power_of_two, snip_edges, use_energy, raw_energy, energy_floor, htk_compat,
            use_log_fbank, use_power, subtract_mean: Kaldi's options (see the module docstring).
        dither: must be 0 (random dither is not reproducible and no evaluation model uses it).

    Returns:
        `(..., m, num_mel_bins + use_energy)` in the input's dtype; with `use_energy` the log frame
        energy is the first column, or the last with `htk_compat`.
    """
    if dither != 0.0:
        raise ValueError("fbank: dither is not supported (the evaluation models use dither=0)")
    if not 0.0 <= preemphasis_coefficient <= 1.0:
        raise ValueError(f"preemphasis_coefficient must be in [0, 1], got {preemphasis_coefficient}")
    if not waveform.is_floating_point():
        raise TypeError(f"fbank needs a floating-point waveform, got {waveform.dtype}")
    shift = int(sample_frequency * frame_shift * 0.001)
    size = int(sample_frequency * frame_length * 0.001)
    n_fft = 1 << (size - 1).bit_length() if round_to_power_of_two else size
    if not 2 <= size <= waveform.shape[-1]:
        raise ValueError(f"fbank: window of {size} samples needs a signal at least that long, "
                         f"got shape {tuple(waveform.shape)}")
    if shift <= 0 or n_fft % 2:
        raise ValueError(f"fbank: frame shift {shift} must be > 0 and FFT size {n_fft} even")
    dtype, device = waveform.dtype, waveform.device
    eps = torch.tensor(_EPS, dtype=dtype, device=device)

    frames = _frames(waveform, size, shift, snip_edges)  # (..., m, size)
    if remove_dc_offset:
        frames = frames - frames.mean(dim=-1, keepdim=True)
    if use_energy and raw_energy:
        log_energy = _log_energy(frames, eps, energy_floor)
    if preemphasis_coefficient != 0.0:
        previous = torch.cat((frames[..., :1], frames[..., :-1]), dim=-1)
        frames = frames - preemphasis_coefficient * previous
    frames = frames * _window(window_type, size, device, dtype)
    if use_energy and not raw_energy:
        log_energy = _log_energy(frames, eps, energy_floor)

    spectrum = torch.fft.rfft(frames, n=n_fft).abs()  # (..., m, n_fft // 2 + 1)
    if use_power:
        spectrum = spectrum.pow(2.0)
    banks, _ = mel_banks(num_mel_bins, n_fft, sample_frequency, low_freq, high_freq)
    banks = F.pad(banks, (0, 1)).to(device=device, dtype=dtype)  # (bins, n_fft // 2 + 1)
    mel = spectrum @ banks.T  # (..., m, bins)
    if use_log_fbank:
        mel = torch.maximum(mel, eps).log()
    if use_energy:
        parts = (mel, log_energy.unsqueeze(-1)) if htk_compat else (log_energy.unsqueeze(-1), mel)
        mel = torch.cat(parts, dim=-1)
    if subtract_mean:
        mel = mel - mel.mean(dim=-2, keepdim=True)
    return mel


def _log_energy(frames: torch.Tensor, eps: torch.Tensor, energy_floor: float) -> torch.Tensor:
    """log of each frame's energy, floored at `eps` and at `energy_floor` when that is > 0."""
    log_energy = torch.maximum(frames.pow(2).sum(-1), eps).log()  # (..., m)
    if energy_floor == 0.0:
        return log_energy
    return torch.clamp(log_energy, min=math.log(energy_floor))
