"""Frozen network configurations and the sequence-length arithmetic of MMAudio.

The five official presets reproduce MMAudio's factory functions (hidden size, depth, latent
channels, v1/v2 projections); `tiny` and `demo_16k` are small presets for tests and for the
embedded demo model. A config never changes after creation: derive variants with
`dataclasses.replace` and sequence lengths for other durations with `MMAudioConfig.seq_lengths`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

CLIP_FPS = 8  # semantic (CLIP) frames per second
SYNC_FPS = 25  # Synchformer frames per second
SYNC_SEGMENT = 16  # frames per Synchformer segment
SYNC_STEP = 8  # stride between segments
SYNC_TOKENS_PER_SEGMENT = 8  # Synchformer output tokens per segment (temporal patch 2)


@dataclass(frozen=True)
class SeqLengths:
    """Token counts of the three time-indexed streams for one clip duration."""

    latent: int
    clip: int
    sync: int

    @classmethod
    def for_duration(cls, duration: float, sample_rate: int, samples_per_latent: int) -> "SeqLengths":
        """MMAudio's `SequenceConfig` arithmetic (8 s at 16 kHz gives 250 / 64 / 192)."""
        if duration <= 0:
            raise ValueError(f"duration must be positive, got {duration}")
        latent = math.ceil(duration * sample_rate / samples_per_latent)
        clip = int(duration * CLIP_FPS)
        sync_frames = int(duration * SYNC_FPS)
        if sync_frames < SYNC_SEGMENT:
            raise ValueError(f"duration {duration}s gives {sync_frames} sync frames, fewer than one segment ({SYNC_SEGMENT})")
        segments = (sync_frames - SYNC_SEGMENT) // SYNC_STEP + 1
        return cls(latent=latent, clip=clip, sync=segments * SYNC_TOKENS_PER_SEGMENT)


@dataclass(frozen=True)
class MMAudioConfig:
    """Architecture of one MMAudio network; `depth` counts joint plus fused blocks (head size = hidden / heads)."""

    name: str
    latent_dim: int
    hidden_dim: int
    depth: int
    fused_depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    clip_dim: int = 1024
    sync_dim: int = 768
    text_dim: int = 1024
    text_seq_len: int = 77
    v2: bool = False
    sample_rate: int = 16_000
    samples_per_latent: int = 512  # STFT hop x VAE time downsampling (256 x 2 at 16 kHz)
    duration: float = 8.0

    def __post_init__(self) -> None:
        if self.hidden_dim % (2 * self.num_heads):
            raise ValueError(f"{self.name}: hidden_dim must split into num_heads even head sizes, got "
                             f"{self.hidden_dim} and {self.num_heads}")
        if not 0 <= self.fused_depth < self.depth:
            raise ValueError(f"{self.name}: need 0 <= fused_depth < depth, got {self.fused_depth} and {self.depth}")

    @property
    def joint_depth(self) -> int:
        return self.depth - self.fused_depth

    def seq_lengths(self, duration: float | None = None) -> SeqLengths:
        return SeqLengths.for_duration(self.duration if duration is None else duration, self.sample_rate, self.samples_per_latent)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MMAudioConfig":
        return cls(**d)


_S = dict(hidden_dim=448, num_heads=7, depth=12, fused_depth=8)
_M = dict(hidden_dim=896, num_heads=14, depth=12, fused_depth=8)
_L = dict(hidden_dim=896, num_heads=14, depth=21, fused_depth=14)
_16K = dict(latent_dim=20, sample_rate=16_000, samples_per_latent=512)
_44K = dict(latent_dim=40, sample_rate=44_100, samples_per_latent=1024)

PRESETS: dict[str, MMAudioConfig] = {
    "small_16k": MMAudioConfig("small_16k", **_S, **_16K),
    "small_44k": MMAudioConfig("small_44k", **_S, **_44K),
    "medium_44k": MMAudioConfig("medium_44k", **_M, **_44K),
    "large_44k": MMAudioConfig("large_44k", **_L, **_44K),
    "large_44k_v2": MMAudioConfig("large_44k_v2", **_L, **_44K, v2=True),
    # Small presets: the same architecture with narrow features, for tests and the demo model.
    "tiny": MMAudioConfig("tiny", latent_dim=8, hidden_dim=64, num_heads=1, depth=4, fused_depth=2,
                          clip_dim=32, sync_dim=24, text_dim=32, text_seq_len=8),
    # demo_16k: sized so that the whole demo retrains in 90 minutes on 2 CPU cores (docs/demo_model.md):
    # ~2M parameters, one 64-wide head, 2 joint + 2 fused blocks, the small_16k latent shape (250 x 20).
    "demo_16k": MMAudioConfig("demo_16k", latent_dim=20, hidden_dim=64, num_heads=1, depth=4, fused_depth=2,
                              clip_dim=64, sync_dim=64, text_dim=64, text_seq_len=16),
}
OFFICIAL_PRESETS = ("small_16k", "small_44k", "medium_44k", "large_44k", "large_44k_v2")


def get_config(preset: str | MMAudioConfig) -> MMAudioConfig:
    """Look up a named preset (an `MMAudioConfig` passes through)."""
    if isinstance(preset, MMAudioConfig):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise KeyError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}") from None
