"""The waveform <-> latent interface every codec implements (MMAudio's VAE + vocoder, the demo mel codec).

Latent layouts
--------------
MMAudio's codec is mel -> VAE (x2 time downsample) -> latent, and latent -> VAE decoder -> mel ->
vocoder. One latent therefore spans ``hop * 2`` samples: 512 at 16 kHz (20 channels), 1024 at
44.1 kHz (40 channels). Normalisation with the network's ``latent_mean`` / ``latent_std`` belongs to
the network, not to the codec.
"""
from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class AudioCodec(Protocol):
    """Waveform <-> latent-sequence map used by the generator.

    Attributes:
        sample_rate: waveform sample rate in Hz.
        latent_dim: channels C of one latent.
        samples_per_latent: waveform samples covered by one latent (512 for MMAudio 16k, 1024 for
            MMAudio 44k; see the module docstring).
    """

    sample_rate: int
    latent_dim: int
    samples_per_latent: int

    def encode(self, wav: Tensor) -> Tensor:
        """Map waveforms to raw latents.

        Args:
            wav: (B, L) float waveforms in [-1, 1].

        Returns:
            (B, N, C) raw (un-normalised) latents, N = ceil(L / samples_per_latent); the waveform
            is zero-padded at the end to N * samples_per_latent samples.
        """
        ...

    def decode(self, latent: Tensor) -> Tensor:
        """Map raw latents to waveforms.

        Args:
            latent: (B, N, C) raw latents.

        Returns:
            (B, N * samples_per_latent) float32 waveforms (not guaranteed to lie in [-1, 1]).
        """
        ...


def num_latents(codec: AudioCodec, duration_s: float) -> int:
    """Latents covering ``duration_s`` seconds: ceil(round(duration_s * sr) / samples_per_latent)."""
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s must be a positive finite number, got {duration_s!r}")
    samples = round(duration_s * codec.sample_rate)
    return max(1, -(-samples // codec.samples_per_latent))


def num_samples(codec: AudioCodec, num_latents: int) -> int:
    """Waveform samples produced by decoding ``num_latents`` latents."""
    if num_latents < 0:
        raise ValueError(f"num_latents must be >= 0, got {num_latents}")
    return num_latents * codec.samples_per_latent
