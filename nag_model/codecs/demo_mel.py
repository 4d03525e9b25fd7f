"""Audio codecs: the map between waveforms and the latent sequence the flow model integrates.

The step-by-step generator only sees an :class:`AudioCodec`: ``encode`` turns a waveform into the
raw (un-normalised) latent sequence, ``decode`` turns a latent sequence back into a waveform.
Normalisation with the network's ``latent_mean`` / ``latent_std`` belongs to the network, not to
the codec.

Latent layouts
--------------
MMAudio's codec is mel -> VAE (x2 time downsample) -> latent, and latent -> VAE decoder -> mel ->
BigVGAN vocoder. One latent therefore spans ``hop * 2`` samples (fact sheet 1.2, 1.3):

============  ===========  ===  ==================  ==========  =====================
variant       sample rate  hop  samples_per_latent  latent_dim  8 s clip
============  ===========  ===  ==================  ==========  =====================
MMAudio 16k   16 000       256  512                 20          128 000 samples, 250
MMAudio 44k   44 100       512  1024                40          353 280 samples, 345
============  ===========  ===  ==================  ==========  =====================

(44.1 kHz: 8 s is 352 800 samples, which rounds up to 345 latents = 353 280 samples.)

:class:`MelCodec` is the codec of the embedded demo model: its log-mel frames *are* the latent,
with the hop chosen so that the shapes match ``small_16k`` exactly (16 kHz, hop 512, 20 mel bands:
8 s -> (250, 20)). It follows MMAudio's mel converter (``mmaudio/ext/mel_converter.py``, fact
sheet 5.7) for encoding and uses the mel basis pseudo-inverse plus Griffin-Lim for decoding.
"""
from __future__ import annotations

import dataclasses
import math

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nag_model.codecs.base import AudioCodec, num_latents, num_samples

__all__ = [
    "AudioCodec",
    "MelCodec",
    "MelCodecConfig",
    "num_latents",
    "num_samples",
]

# Seed of the Griffin-Lim initial phase. Fixed, and a private generator: decoding never touches
# numpy's or torch's global RNG, and every batch item starts from the same phase.
_GRIFFIN_LIM_SEED = 0
# Magnitude added under the square root of |STFT| (MMAudio's mel converter).
_MAGNITUDE_EPS = 1e-9


@dataclasses.dataclass(frozen=True)
class MelCodecConfig:
    """Log-mel codec settings. The defaults are the demo preset (:meth:`demo_16k`).

    Attributes:
        sample_rate: Hz.
        n_fft: FFT size, equal to the (periodic Hann) window length.
        hop_length: samples per frame, i.e. per latent.
        n_mels: mel bands, i.e. latent channels.
        f_min, f_max: mel filterbank range in Hz (librosa, Slaney scale and norm).
        griffin_lim_iters: Griffin-Lim iterations used by ``decode``.
        log_floor: mel magnitudes are clamped to at least this before log10.
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 20
    f_min: float = 0.0
    f_max: float = 8000.0
    griffin_lim_iters: int = 32
    log_floor: float = 1e-5

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.n_mels <= 0:
            raise ValueError(f"sample_rate, n_fft and n_mels must be positive: {self}")
        if not 0 < self.hop_length <= self.n_fft or (self.n_fft - self.hop_length) % 2:
            raise ValueError(
                f"need 0 < hop_length <= n_fft with n_fft - hop_length even, "
                f"got n_fft={self.n_fft}, hop_length={self.hop_length}"
            )
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(
                f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={self.f_min}, "
                f"f_max={self.f_max}, sample_rate={self.sample_rate}"
            )
        if self.griffin_lim_iters < 1:
            raise ValueError(f"griffin_lim_iters must be >= 1, got {self.griffin_lim_iters}")
        if not self.log_floor > 0:
            raise ValueError(f"log_floor must be > 0, got {self.log_floor}")

    @classmethod
    def demo_16k(cls) -> "MelCodecConfig":
        """Demo preset: 16 kHz, hop 512, 20 bands; 8 s -> (250, 20), the small_16k latent shape."""
        return cls(
            sample_rate=16000,
            n_fft=1024,
            hop_length=512,
            n_mels=20,
            f_min=0.0,
            f_max=8000.0,
            griffin_lim_iters=32,
            log_floor=1e-5,
        )

    @property
    def pad(self) -> int:
        """Reflect padding on each side before the STFT: (n_fft - hop) / 2."""
        return (self.n_fft - self.hop_length) // 2


class MelCodec(torch.nn.Module):
    """Log10-mel codec: one mel frame is one latent; implements :class:`AudioCodec`.

    Framing: after the end is zero-padded to N * hop samples and both sides are reflect-padded by
    (n_fft - hop) / 2, frame n is the window over input samples [n*hop - pad, n*hop - pad + n_fft),
    centred on sample (n + 0.5) * hop. ``decode`` uses the same frames, so a sound at time t in a
    decoded waveform comes from the latents whose frames cover t.

    Decoding is not differentiable (it runs librosa on the CPU) and is lossy: the 20-band mel
    spectrogram keeps the spectral envelope, not the fine structure, and Griffin-Lim estimates
    the phase. Latent cells at or below log10(log_floor) decode to zero magnitude, so silence
    decodes to exact silence; cells above the loudest value a waveform in [-1, 1] can produce
    (log10(sum(window) * sum of the band's filter), 1.52 for the demo preset) are clamped to it.
    """

    mel_basis: Tensor
    window: Tensor

    def __init__(self, config: MelCodecConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else MelCodecConfig.demo_16k()
        cfg = self.config
        basis = librosa.filters.mel(
            sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.f_min, fmax=cfg.f_max
        )  # (n_mels, n_fft // 2 + 1), Slaney scale and norm
        # Both buffers are derived from the config, so they stay out of the state dict.
        self.register_buffer("mel_basis", torch.from_numpy(basis).float(), persistent=False)
        self._mel_inverse = np.linalg.pinv(basis.astype(np.float64))  # (F, n_mels), used by decode
        self.register_buffer(
            "window", torch.hann_window(cfg.n_fft, periodic=True), persistent=False
        )

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def latent_dim(self) -> int:
        return self.config.n_mels

    @property
    def samples_per_latent(self) -> int:
        return self.config.hop_length

    def extra_repr(self) -> str:
        return repr(self.config)

    def encode(self, wav: Tensor) -> Tensor:
        """Log10-mel frames of a waveform (MMAudio's mel converter, fact sheet 5.7).

        Args:
            wav: (B, L) float waveforms; clamped to [-1, 1].

        Returns:
            (B, N, n_mels) float32 log10-mel on ``wav``'s device, N = ceil(L / hop).
        """
        if wav.dim() != 2 or wav.shape[1] == 0:
            raise ValueError(
                f"MelCodec.encode expects a (B, L) waveform with L >= 1, got shape {tuple(wav.shape)}"
            )
        if not wav.is_floating_point():
            raise TypeError(f"MelCodec.encode expects a float waveform, got dtype {wav.dtype}")
        cfg = self.config
        length = wav.shape[1]
        n = -(-length // cfg.hop_length)
        x = wav.to(torch.float32).clamp(-1.0, 1.0)
        x = F.pad(x, (0, n * cfg.hop_length - length))  # (B, N * hop), zeros at the end
        # (B, N * hop + 2 * pad)
        x = F.pad(x.unsqueeze(1), (cfg.pad, cfg.pad), mode="reflect").squeeze(1)
        spec = torch.stft(
            x,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.n_fft,
            window=self.window.to(x.device),
            center=False,
            onesided=True,
            return_complex=True,
        )  # (B, F, N)
        magnitude = torch.sqrt(spec.real.square() + spec.imag.square() + _MAGNITUDE_EPS)
        mel = torch.matmul(self.mel_basis.to(x.device), magnitude)  # (B, n_mels, N)
        return torch.log10(mel.clamp(min=cfg.log_floor)).transpose(1, 2)  # (B, N, n_mels)

    def decode(self, latent: Tensor) -> Tensor:
        """Waveform from log10-mel frames: 10**x, the mel basis pseudo-inverse (clipped at 0), then Griffin-Lim.

        Args:
            latent: (B, N, n_mels) log10-mel frames.

        Returns:
            (B, N * hop) float32 waveforms on ``latent``'s device; deterministic, each batch item
            decoded independently of the others. A latent on a GPU is decoded there, the whole
            batch at once (:func:`nag_model.griffin_lim.griffin_lim`, the same algorithm and initial
            phases; it does not check for NaN, which would wait for the GPU).
        """
        cfg = self.config
        if latent.dim() != 3 or latent.shape[2] != cfg.n_mels or latent.shape[1] == 0:
            raise ValueError(
                f"MelCodec.decode expects a (B, N, {cfg.n_mels}) latent with N >= 1, "
                f"got shape {tuple(latent.shape)}"
            )
        if latent.device.type != "cpu":
            return self._decode_on_device(latent)
        if not torch.isfinite(latent).all():
            raise ValueError("MelCodec.decode got a latent with NaN or infinite values")
        n = latent.shape[1]
        basis = self.mel_basis.detach().cpu().numpy()  # (n_mels, F)
        window = self.window.detach().cpu().numpy()  # (n_fft,)
        # The loudest log-mel any waveform in [-1, 1] can give (|STFT| <= sum(window) in every
        # bin). Values above it are unreachable; clamping them keeps 10**x finite and the
        # magnitudes within what a waveform in [-1, 1] can have.
        ceiling = np.log10(basis.sum(axis=1) * window.sum())  # (n_mels,)
        log_mel = np.minimum(latent.detach().to("cpu", torch.float32).numpy(), ceiling)
        silent = log_mel <= math.log10(cfg.log_floor) + 1e-4  # at the encoder's floor
        mel = np.where(silent, 0.0, np.power(10.0, log_mel, dtype=np.float64)).astype(np.float32)

        out = np.zeros((latent.shape[0], n * cfg.hop_length), dtype=np.float32)
        for b in range(latent.shape[0]):
            if not mel[b].any():
                continue  # all cells at the floor: exact silence
            # Minimum-norm magnitudes whose mel projection is the target, clipped at zero. On
            # SynthFoley audio this re-encodes to the same log-mel as librosa's NNLS (mean error
            # 0.0688 for both) in 3 ms instead of about 1 s.
            magnitude = np.maximum(self._mel_inverse @ mel[b].T.astype(np.float64), 0.0).astype(np.float32)
            wav = librosa.griffinlim(
                magnitude,  # (F, N)
                n_iter=cfg.griffin_lim_iters,
                hop_length=cfg.hop_length,
                win_length=cfg.n_fft,
                n_fft=cfg.n_fft,
                window=window,
                center=False,
                init="random",
                random_state=np.random.RandomState(_GRIFFIN_LIM_SEED),
            )  # (N*hop + 2*pad,): the same frames as encode's padded signal
            out[b] = wav[cfg.pad : cfg.pad + n * cfg.hop_length]
        return torch.from_numpy(out).to(latent.device)

    def _decode_on_device(self, latent: Tensor) -> Tensor:
        """`decode` for a batch on an accelerator: the same steps in torch, all items at once."""
        from nag_model.griffin_lim import griffin_lim

        cfg, n, device = self.config, latent.shape[1], latent.device
        basis, window = self.mel_basis.to(device), self.window.to(device)
        ceiling = torch.log10(basis.sum(dim=1) * window.sum())  # (n_mels,)
        log_mel = torch.minimum(latent.float(), ceiling)  # (B, N, n_mels)
        silent = log_mel <= math.log10(cfg.log_floor) + 1e-4
        mel = torch.where(silent, 0.0, torch.pow(10.0, log_mel.double()))  # (B, N, n_mels) float64
        inverse, phase = self._device_constants(device, n)
        magnitude = (inverse @ mel.transpose(1, 2)).clamp(min=0.0).float()  # (B, F, N)
        wav = griffin_lim(magnitude, n_fft=cfg.n_fft, hop_length=cfg.hop_length, window=window,
                          init_phase=phase, n_iter=cfg.griffin_lim_iters)
        return wav[:, cfg.pad : cfg.pad + n * cfg.hop_length]

    def _device_constants(self, device: torch.device, n: int) -> tuple[Tensor, Tensor]:
        """The mel pseudo-inverse (F, n_mels) float64 and librosa's initial phases (F, N), kept on the
        device (copying them at every decode would make the host wait for the device)."""
        cache = self.__dict__.setdefault("_on_device", {})
        key = (str(device), n)
        if key not in cache:
            phase = np.random.RandomState(_GRIFFIN_LIM_SEED).random_sample((self._mel_inverse.shape[0], n))
            cache[key] = (torch.as_tensor(self._mel_inverse, device=device), torch.as_tensor(phase, device=device))
        return cache[key]
