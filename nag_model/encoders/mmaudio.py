"""MMAudio's condition encoders behind the `encoders.base` interfaces: CLIP (image and text towers)
and Synchformer, as the pipeline feeds them.

The pipeline decodes 8 fps frames stretched to 384x384 for CLIP and 25 fps frames with the short
side at 224, centre-cropped to 224x224, for Synchformer (`clip_fit` / `sync_fit` tell it how). The
encoders also accept frames of any other size and apply MMAudio's own transforms (CLIP: `resize_frames`,
384x384 in [0, 1]; Synchformer: `preprocess_frames`, 224x224 in [-1, 1]).
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np
import torch

from nag_model.encoders.clip import resize_frames
from nag_model.encoders.synchformer import SynchformerEncoder, preprocess_frames


class CLIPModel(Protocol):
    """What `nag_model.encoders.clip.load_clip` returns (only the parts used here)."""

    config: Any

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor: ...

    def encode_text(self, captions: Sequence[str]) -> torch.Tensor: ...


class CLIPTextEncoder:
    """Captions -> MMAudio's `text_f` (B, 77, 1024): CLIP's per-token last hidden states, L2-normalised."""

    def __init__(self, clip: CLIPModel):
        self.clip = clip

    @torch.inference_mode()
    def __call__(self, captions: Sequence[str]) -> torch.Tensor:
        return self.clip.encode_text(list(captions)).float()

    def to_dict(self) -> dict:
        return {"kind": "clip_text", "preset": getattr(self.clip.config, "name", "?")}


class MMAudioVideoEncoder:
    """RGB frames -> (`clip_f`, `sync_f`) with CLIP's image tower and Synchformer's visual branch.

    Args:
        clip: a loaded CLIP (`load_clip`); its `config.frame_size` (384) sets the CLIP frame size.
        synchformer: a loaded `SynchformerEncoder`; its `config.image_size` (224) sets the sync frame size.
        weights_id: identity of the weight files (their checksums), part of the feature-cache key.
        batch_size: frames (CLIP) / segments (Synchformer) per forward pass; does not change results.
    """

    clip_fit = "stretch"
    sync_fit = "crop"

    def __init__(self, clip: CLIPModel, synchformer: SynchformerEncoder, *, weights_id: str = "",
                 batch_size: int | None = 16):
        self.clip, self.synchformer, self.weights_id, self.batch_size = clip, synchformer, weights_id, batch_size
        frame = int(getattr(clip.config, "frame_size", 384))
        self.clip_size = (frame, frame)
        side = synchformer.config.image_size
        self.sync_size = (side, side)

    @torch.inference_mode()
    def encode_clip(self, frames: np.ndarray) -> torch.Tensor:
        """8 fps frames (T, H, W, 3) uint8 -> clip_f (1, T, clip_dim), each frame L2-normalised."""
        x = resize_frames(np.ascontiguousarray(frames), self.clip_size[0])[None]  # (1, T, 3, 384, 384) in [0, 1]
        return self.clip.encode_video(x, batch_size=self.batch_size).float()

    @torch.inference_mode()
    def encode_sync(self, frames: np.ndarray) -> torch.Tensor:
        """25 fps frames (T >= 16, H, W, 3) uint8 -> sync_f (1, 8 * segments, sync_dim)."""
        x = preprocess_frames(np.ascontiguousarray(frames), self.sync_size[0])[None]  # (1, T, 3, 224, 224) in [-1, 1]
        return self.synchformer.encode_video(x, batch_size=self.batch_size).float()

    def to_dict(self) -> dict:
        return {"kind": "mmaudio_video", "clip": getattr(self.clip.config, "name", "?"),
                "synchformer": self.synchformer.config.name, "weights": self.weights_id}
