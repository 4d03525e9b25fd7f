"""Condition encoders: captions -> per-token text features, video frames -> CLIP-rate and
Synchformer-rate features, with MMAudio's rates and sequence lengths.

Production uses CLIP (DFN5B ViT-H-14-384) and Synchformer weights the user points to; the demo
encoders here have no pretrained weights at all: they are fixed, seeded projections of simple
visual and lexical statistics, which the demo network learns to read.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from nag_model.encoders.base import TextEncoder, VideoEncoder  # noqa: F401  (re-exported)
from nag_model.config import SYNC_SEGMENT, SYNC_STEP, SYNC_TOKENS_PER_SEGMENT


def _seeded_matrix(seed: int, rows: int, cols: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, cols, generator=g) / cols ** 0.5


_WORD = re.compile(r"[a-z0-9']+")


def tokenize(caption: str) -> list[str]:
    """Lower-case word tokens (punctuation dropped)."""
    return _WORD.findall(caption.lower())


@dataclass(frozen=True)
class HashTextEncoderConfig:
    dim: int = 64
    seq_len: int = 16
    seed: int = 0


_MAX_WORDS = 100_000  # the most word vectors a HashTextEncoder keeps (tens of MB at dim 64)


class HashTextEncoder:
    """Demo text features: each word maps to a fixed unit vector derived from its hash; a token's
    feature adds a small position code. Padding positions are zero; an empty caption is all zeros
    (the demo network's `empty_string_feat` is set to this)."""

    def __init__(self, config: HashTextEncoderConfig = HashTextEncoderConfig()):
        self.config = config
        self._positions = 0.1 * _seeded_matrix(config.seed + 1, config.seq_len, config.dim)  # rows of norm ~0.1
        # word -> its vector, made once: 128 ten-word captions took 35 ms, 14 ms with this and the stacked rows.
        # Emptied when it reaches _MAX_WORDS, so a long run over endless new words stays small.
        self._words: dict[str, torch.Tensor] = {}

    def word_vector(self, word: str) -> torch.Tensor:
        """The word's unit vector (read-only: the cached tensor itself)."""
        v = self._words.get(word)
        if v is None:
            digest = hashlib.sha256(f"{self.config.seed}:{word}".encode()).digest()
            g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
            v = torch.randn(self.config.dim, generator=g)
            if len(self._words) >= _MAX_WORDS:
                self._words.clear()
            v = self._words[word] = v / v.norm()
        return v

    def __call__(self, captions: Sequence[str]) -> torch.Tensor:
        c = self.config
        out = torch.zeros(len(captions), c.seq_len, c.dim)
        for b, caption in enumerate(captions):
            words = tokenize(caption)[: c.seq_len]
            if words:
                out[b, : len(words)] = torch.stack([self.word_vector(w) for w in words]) + self._positions[: len(words)]
        return out

    def to_dict(self) -> dict:
        return {"kind": "hash", **asdict(self.config)}


SYNC_LAYOUTS = ("segments", "aligned")
SYNC_FEATURES = ("projected", "motion_energy", "motion_energy_rgb")
FRAME_PIXELS = 64  # the pixel encoder's frame height and width


@dataclass(frozen=True)
class PixelVideoEncoderConfig:
    clip_dim: int = 64
    sync_dim: int = 64
    grid: int = 8  # frames are pooled to grid x grid cells for the clip features
    seed: int = 0
    # Where each sync token's frames come from: "segments" (Synchformer's layout: 16-frame segments with
    # stride 8, so the flattened sequence runs back in time at every segment start) or "aligned" (token i
    # shows the time MMAudio's upsampling gives it: i / Ls of the clip). Bundles without the key are "segments".
    sync_layout: str = "segments"
    # The sync features' grid (None: `grid`) and the weight of their motion term. A finer grid and a stronger
    # motion term show small, brief events (a drop, a knock) better: docs/nag_effect.md, "Sync features".
    # Bundles without the keys are the committed layout (grid 8, motion x4).
    sync_grid: int | None = None
    motion_gain: float = 4.0
    # What a sync feature is: "projected" (a fixed random projection of the pooled frame and its motion to
    # sync_dim) or "motion_energy" (each cell's frame-to-frame change, the mean over RGB of the absolute
    # difference, times motion_gain; sync_dim = sync_grid ** 2). A linear probe finds on-screen events better in
    # the per-cell energy of a 16 x 16 grid than in any projection to 64 dims (docs/nag_effect.md, "Sync
    # features"). "motion_energy_rgb" keeps the three colour channels' changes apart (sync_dim = 3 sync_grid ** 2),
    # so a cell's motion says which colour moved: which source, where sources differ in colour.
    # Bundles without the key are "projected".
    sync_features: str = "projected"

    def __post_init__(self):
        if self.sync_layout not in SYNC_LAYOUTS:
            raise ValueError(f"sync_layout must be one of {SYNC_LAYOUTS}, got {self.sync_layout!r}")
        if self.sync_features not in SYNC_FEATURES:
            raise ValueError(f"sync_features must be one of {SYNC_FEATURES}, got {self.sync_features!r}")
        for name in ("grid", "sync_grid"):
            cells = getattr(self, name)
            if cells is not None and not 1 <= cells <= FRAME_PIXELS:
                raise ValueError(f"{name} must be 1..{FRAME_PIXELS} cells (the frames' pixels), got {cells}")
        if not self.motion_gain > 0:
            raise ValueError(f"motion_gain must be positive, got {self.motion_gain}")
        grid = self.sync_grid or self.grid
        dim = sync_feature_dim(self.sync_features, grid)
        if dim is not None and self.sync_dim != dim:
            raise ValueError(f"{self.sync_features} sync features have {dim // grid ** 2} dimension(s) per cell: "
                             f"sync_dim must be {dim} (sync grid {grid}), got {self.sync_dim}")


def sync_feature_dim(sync_features: str, sync_grid: int) -> int | None:
    """The sync_dim that unprojected sync features have on a sync_grid x sync_grid grid (None: projected, any)."""
    per_cell = {"motion_energy": 1, "motion_energy_rgb": 3}.get(sync_features)
    return None if per_cell is None else per_cell * sync_grid ** 2


class PixelVideoEncoder:
    """Demo visual features without pretrained weights.

    clip (8 fps): a fixed random projection of the frame pooled to an 8x8 RGB grid, L2-normalised
    per frame like CLIP image embeddings. sync (25 fps): for each 16-frame segment (stride 8), 8
    tokens, each projecting the pooled frame (`sync_grid` cells a side) and its absolute difference to
    the previous frame (motion energy, times `motion_gain`) at one of the segment's 8 frame pairs, as
    Synchformer's temporal patches do; or, with `sync_features="motion_energy"`, each cell's motion
    energy itself, unprojected (`"motion_energy_rgb"`: each colour channel's, three per cell).

    MMAudio flattens the segments' tokens and stretches them evenly over the latent frames, so with the
    "segments" layout latent frame n reads frames up to 0.3 s (mean 0.1 s) from its own time, by an
    offset that changes along the clip: a real Synchformer's tokens see their whole 0.64-s segment and
    MMAudio learns that layout at scale, but these tokens are local, and the 2M-parameter demo cannot
    undo it (docs/nag_effect.md, "Sync layout"). The "aligned" layout keeps the token count and
    interpolates the per-frame features at each token's own time instead.
    """

    clip_size = (FRAME_PIXELS, FRAME_PIXELS)
    sync_size = (FRAME_PIXELS, FRAME_PIXELS)

    def __init__(self, config: PixelVideoEncoderConfig = PixelVideoEncoderConfig()):
        self.config = config
        self._sync_grid = config.sync_grid or config.grid
        self._clip_proj = _seeded_matrix(config.seed + 10, 3 * config.grid ** 2, config.clip_dim)
        self._sync_proj = (_seeded_matrix(config.seed + 11, 2 * 3 * self._sync_grid ** 2, config.sync_dim)
                           if config.sync_features == "projected" else None)

    @staticmethod
    def _pool(frames: np.ndarray, grid: int) -> torch.Tensor:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
            raise ValueError(f"frames must be (T, H, W, 3) uint8 with T >= 1, got {frames.shape}")
        x = torch.from_numpy(np.require(frames, requirements=["C", "W"])).permute(0, 3, 1, 2).float() / 255.0  # (T, 3, H, W)
        return F.adaptive_avg_pool2d(x, grid).flatten(1) * 2 - 1  # (T, 3 grid grid)

    def encode_clip(self, frames: np.ndarray) -> torch.Tensor:
        f = self._pool(frames, self.config.grid) @ self._clip_proj  # (T, clip_dim)
        return F.normalize(f, dim=-1)[None]

    def encode_sync(self, frames: np.ndarray) -> torch.Tensor:
        pooled = self._pool(frames, self._sync_grid)  # (T, cells)
        if pooled.shape[0] < SYNC_SEGMENT:
            raise ValueError(f"sync features need at least {SYNC_SEGMENT} frames, got {pooled.shape[0]}")
        motion = torch.cat([torch.zeros_like(pooled[:1]), (pooled[1:] - pooled[:-1]).abs() * self.config.motion_gain], 0)
        if self.config.sync_features == "motion_energy":  # (T, 3 cells) -> the mean over RGB, (T, cells)
            feats = motion.view(motion.shape[0], 3, -1).mean(1)
        elif self.config.sync_features == "motion_energy_rgb":  # (T, 3 cells): each channel's change
            feats = motion
        else:
            feats = torch.cat([pooled, motion], -1) @ self._sync_proj  # (T, sync_dim)
        segments = (pooled.shape[0] - SYNC_SEGMENT) // SYNC_STEP + 1
        if self.config.sync_layout == "aligned":
            return self._at_token_times(feats, segments * SYNC_TOKENS_PER_SEGMENT)[None]
        per = SYNC_SEGMENT // SYNC_TOKENS_PER_SEGMENT  # frames per token (2)
        tokens = [feats[s * SYNC_STEP: s * SYNC_STEP + SYNC_SEGMENT].view(SYNC_TOKENS_PER_SEGMENT, per, -1).mean(1)
                  for s in range(segments)]
        return torch.cat(tokens, 0)[None]  # (1, 8 segments, sync_dim)

    @staticmethod
    def _at_token_times(feats: torch.Tensor, n_tokens: int) -> torch.Tensor:
        """Per-frame features (T, D) linearly interpolated at the centres of n_tokens equal spans of the clip."""
        t = feats.shape[0]
        x = ((torch.arange(n_tokens, dtype=torch.float64) + 0.5) * t / n_tokens - 0.5).clamp(0, t - 1)  # frame coordinate
        lo = x.floor().long()
        hi = (lo + 1).clamp(max=t - 1)
        w = (x - lo).to(feats.dtype)[:, None]
        return feats[lo] * (1 - w) + feats[hi] * w  # (n_tokens, D)

    def to_dict(self) -> dict:
        return {"kind": "pixel", **asdict(self.config)}
