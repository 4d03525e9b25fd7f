"""Training data of the demo model: SynthFoley clips turned, once, into cached tensors.

For every clip: the MelCodec latent of the mix (loudness-normalised to -20 LUFS) and of every
sounding stem (scaled by the mix's gain, so the stems still sum to the mix), the PixelVideoEncoder
features of the whole clip and of each 4-s half, and the indices of its label and captions in a
table of HashTextEncoder features. `FoleyData` holds these tensors; batch sources in
`training.objectives` sample training pairs from it.
"""
from __future__ import annotations

from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np
import torch

from nag_model.codecs.demo_mel import MelCodec
from nag_model.config import CLIP_FPS, SYNC_FPS
from nag_model.encoders.demo import HashTextEncoder, PixelVideoEncoder
from audio.loudness import integrated_loudness
from synthfoley.captions import LABELS, parse_caption
from synthfoley.splits import split_seeds
from synthfoley.world import KINDS, SR, make_clip

KIND_NAMES: tuple[str, ...] = tuple(KINDS)  # the 12 kinds, in the world's order
TARGET_LUFS = -20.0
HALF_LATENTS = 125  # 4 s at 16 kHz, 512 samples per latent
HALF_CLIP = 32  # 4 s at 8 fps
HALF_FRAMES = 100  # 4 s at 25 fps


@dataclass
class FoleyData:
    """Cached tensors of M clips with K sounding stems in total (T text entries).

    mix (M, 250, C) raw latents; clip_f (M, 64, Dc); sync_f (M, 192, Ds); sync_half (M, 2, 88, Ds);
    label_text (M,) index into text; sounding (M, 12) / visible (M, 12) multi-hot kinds;
    gain_db (M, 12) gain of each heard kind (-60 where absent); stems (K, 250, C) raw latents;
    stem_clip / stem_text / stem_kind (K,) ints; text (T, Lt, Dt) features with captions (T,) strings.
    """

    seeds: torch.Tensor
    mix: torch.Tensor
    clip_f: torch.Tensor
    sync_f: torch.Tensor
    sync_half: torch.Tensor
    label_text: torch.Tensor
    sounding: torch.Tensor
    visible: torch.Tensor
    gain_db: torch.Tensor
    stems: torch.Tensor
    stem_clip: torch.Tensor
    stem_text: torch.Tensor
    stem_kind: torch.Tensor
    text: torch.Tensor
    captions: list[str]

    def __len__(self) -> int:
        return self.mix.shape[0]

    def save(self, path: str) -> None:
        torch.save(self.__dict__, path)

    @classmethod
    def load(cls, path: str) -> "FoleyData":
        return cls(**torch.load(path, weights_only=False))

    def caption_kinds(self) -> torch.Tensor:
        """(T,) kind index of each text entry (labels and captions)."""
        label_kind = {LABELS[k]: i for i, k in enumerate(KIND_NAMES)}
        out = []
        for c in self.captions:
            out.append(label_kind[c] if c in label_kind else (KIND_NAMES.index(parse_caption(c)[0]) if c else -1))
        return torch.tensor(out)


def _render(seed: int) -> dict:
    """One clip -> normalised mix and sounding stems (numpy), frames, and ground truth."""
    clip = make_clip(int(seed))
    n = 8 * SR
    mix = clip.mix[:n].astype(np.float64)
    loud = integrated_loudness(mix, SR)
    gain = 10 ** ((TARGET_LUFS - loud) / 20) if np.isfinite(loud) else 1.0
    stems, captions, kinds = [], [], []
    sounding, visible, gains = np.zeros(12, np.float32), np.zeros(12, np.float32), np.full(12, -60.0, np.float32)
    caption_of = {}
    for info, stem in zip(clip.sources, clip.stems):
        k = KIND_NAMES.index(info.kind)
        if info.on_screen or (info.hint_visible and info.kind in ("wind", "rain", "crowd")):
            visible[k] = 1
        if info.sounding:
            sounding[k] = 1
            gains[k] = info.gain_db
            stems.append((stem[:n] * gain).astype(np.float32))
            caption_of[info.kind] = info.caption
            kinds.append(k)
            captions.append(info.caption)
    return dict(seed=int(seed), mix=(mix * gain).astype(np.float32), stems=stems, captions=captions, kinds=kinds,
                label=clip.label, frames=clip.frames, sounding=sounding, visible=visible, gains=gains)


def prepare_data(n_clips: int, *, split: str = "train", seed: int = 0, text_encoder: HashTextEncoder,
                 video_encoder: PixelVideoEncoder, codec: MelCodec, workers: int = 2, progress: bool = True) -> FoleyData:
    """Render `n_clips` clips of `split` (drawn with `seed`) and encode them; deterministic for (split, n, seed)."""
    from tqdm.auto import tqdm

    seeds = [int(s) for s in split_seeds(split, n_clips, seed)]
    text_index: dict[str, int] = {}

    def tid(caption: str) -> int:
        return text_index.setdefault(caption, len(text_index))

    tid("")  # entry 0: the empty caption (the base's empty_string_feat)
    mix, clip_f, sync_f, sync_half, label_text, sounding, visible, gains = [], [], [], [], [], [], [], []
    stems, stem_clip, stem_text, stem_kind = [], [], [], []
    ctx = get_context("fork")
    with ctx.Pool(workers) if workers > 1 else _Serial() as pool:
        for i, r in enumerate(tqdm(pool.imap(_render, seeds, chunksize=4), total=len(seeds), desc=f"data {split}",
                                   disable=not progress)):
            with torch.no_grad():
                waves = torch.from_numpy(np.stack([r["mix"], *r["stems"]]))
                lat = codec.encode(waves)  # (1 + S, 250, C)
                frames = r["frames"]
                clip_f.append(video_encoder.encode_clip(frames[_clip_index(len(frames))])[0])
                sync_f.append(video_encoder.encode_sync(frames)[0])
                sync_half.append(torch.stack([video_encoder.encode_sync(frames[:HALF_FRAMES])[0],
                                              video_encoder.encode_sync(frames[HALF_FRAMES:2 * HALF_FRAMES])[0]]))
            mix.append(lat[0])
            label_text.append(tid(r["label"]))
            sounding.append(torch.from_numpy(r["sounding"]))
            visible.append(torch.from_numpy(r["visible"]))
            gains.append(torch.from_numpy(r["gains"]))
            for j, (caption, kind) in enumerate(zip(r["captions"], r["kinds"])):
                stems.append(lat[1 + j])
                stem_clip.append(i)
                stem_text.append(tid(caption))
                stem_kind.append(kind)
    captions = sorted(text_index, key=text_index.get)
    with torch.no_grad():
        text = text_encoder(captions)
    return FoleyData(torch.tensor(seeds), torch.stack(mix), torch.stack(clip_f), torch.stack(sync_f),
                     torch.stack(sync_half), torch.tensor(label_text), torch.stack(sounding), torch.stack(visible),
                     torch.stack(gains), torch.stack(stems), torch.tensor(stem_clip), torch.tensor(stem_text),
                     torch.tensor(stem_kind), text, captions)


def _clip_index(n_frames: int, fps: int = SYNC_FPS, clip_fps: int = CLIP_FPS, duration: float = 8.0) -> np.ndarray:
    """Indices of the sync-rate frames nearest to the CLIP frame times (64 for 8 s)."""
    t = np.arange(int(duration * clip_fps)) / clip_fps
    return np.minimum(np.round(t * fps).astype(int), n_frames - 1)


class _Serial:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def imap(fn, items, chunksize=1):
        return map(fn, items)


def latent_stats(data: FoleyData) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (1, 1, C) over all mix and stem latents, as MMAudio computes them."""
    x = torch.cat([data.mix, data.stems]).flatten(0, 1)  # (frames, C)
    return x.mean(0).view(1, 1, -1), x.std(0).view(1, 1, -1)
