"""The interfaces of the condition encoders: captions -> text features, frames -> visual features."""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
import torch


class TextEncoder(Protocol):
    """Captions -> (B, text_seq_len, text_dim) per-token features."""

    def __call__(self, captions: Sequence[str]) -> torch.Tensor: ...


class VideoEncoder(Protocol):
    """RGB frames -> MMAudio's visual conditions.

    `encode_clip` takes 8 fps frames (T, H, W, 3) uint8 and returns (1, T, clip_dim);
    `encode_sync` takes 25 fps frames and returns (1, 8 * segments, sync_dim) with segments of 16
    frames at stride 8 (200 frames -> 24 segments -> 192 tokens).
    """

    clip_size: tuple[int, int]
    sync_size: tuple[int, int]

    def encode_clip(self, frames: np.ndarray) -> torch.Tensor: ...

    def encode_sync(self, frames: np.ndarray) -> torch.Tensor: ...
