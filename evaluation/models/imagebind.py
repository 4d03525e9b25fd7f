"""ImageBind (huge): video, audio and text embeddings for the IB-score and for ordering captions.

What: the vision (ViT-H/14 over 2-frame clips, 32 layers of width 1280), text (24 layers of width 1024,
causal, CLIP's BPE) and audio (12 layers of width 768 over 16x16 patches, stride 10, of a 128-bin
Kaldi fbank) towers of `imagebind_model.imagebind_huge` (facebookresearch/ImageBind; av-benchmark
uses the fork hkchengrex/ImageBind, whose model code is the same), each with its head (LayerNorm,
CLS token, or the end-of-text token for text, then a bias-free projection to 1024) and its
L2 normalisation. IB-score = cosine(video, audio) (av-benchmark `IB-Score`; the paper reports x100).

Weights: `imagebind_huge.pth` (4 803 584 173 bytes) from https://dl.fbaipublicfiles.com/imagebind/.
Meta publishes no checksum; the sha256 registered in `nag_model.checkpoint.OFFICIAL_WEIGHTS`
(d6f6c22b...2157) is the Git-LFS id of the identical copies on the Hugging Face hub
(DAMO-NLP-SG/Video-LLaMA-2-*, vdo/Video-LLaMA-Series). The file also holds the depth, thermal and
IMU towers and the logit scales; those keys are checked by name and left out (`UNUSED_KEYS`), the
rest loads strictly.

Preprocessing (as av-benchmark's `extract_video.py` / `ImageBindAudioDataset`):
- video: frames sampled at `video_fps` = 0.5 fps by the caller (4 frames for 8 s); shorter edge
  resized to 224 with torch's antialiased bicubic on uint8 (torchvision v2 `Resize` on CPU calls the
  same kernel), scaled to [0, 1], CLIP mean/std; 3 crops of 224 (left/centre/right, or
  top/centre/bottom for portrait frames); clips of 2 consecutive frames (T - 1 clips per crop).
  Each clip is embedded and L2-normalised; the video embedding is their mean.
- audio (16 kHz): 3 clips of 2 s starting at 0, (d - 2) / 2 and d - 2 seconds (pytorchvideo's
  `ConstantClipsPerVideoSampler` at the commit the fork pins); each clip has its mean removed in place
  (so overlapping clips of audio shorter than 4 s see the earlier clips' shifts, as the official
  code does), then a Kaldi fbank (128 bins, 25 ms hanning windows every 10 ms, `htk_compat`),
  cut or zero-padded to 204 frames, normalised with mean -4.268 and std 9.138. The audio embedding
  is the mean of the 3 normalised clip embeddings.
- text: CLIP's BPE ids (`nag_model.encoders.clip_tokenizer`, the same vocabulary and rules), cut to
  77 ids WITHOUT forcing the end token (ImageBind's tokenizer), pooled at the highest id. The
  attention is causal, so the padding after the batch's last pooled position is not computed.

Deviations: the mean embeddings are L2-normalised again (the official ones are means of unit
vectors, and audio's is also x20): cosines, the IB-score and caption orderings are unchanged. The
text logit scale is not applied (it scales all captions alike). Drop-path (audio, 0.1) is inactive at
inference, as in the official eval mode. A video of one frame gives one clip with that frame repeated
(ImageBind's own image path; av-benchmark needs at least 2 frames). Stereo is the caller's business:
inputs are mono (av-benchmark would use the first channel of a stereo file).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evaluation.models import kaldi
from nag_model.checkpoint import OFFICIAL_WEIGHTS, check_state_dict, read_weight_file
from nag_model.encoders.clip_tokenizer import CLIPTokenizer

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
FBANK_MEAN, FBANK_STD = -4.268, 9.138
AUDIO_CLIP_SECONDS, AUDIO_CLIPS = 2, 3
SPATIAL_CROPS = 3


@dataclass(frozen=True)
class ImageBindConfig:
    """`ImageBindModel` hyper-parameters for the vision, text and audio towers."""

    name: str
    embed_dim: int = 1024  # out_embed_dim: the shared embedding space
    vision_width: int = 1280
    vision_layers: int = 32
    vision_heads: int = 16
    patch_size: int = 14  # the patch conv's kernel is (frames_per_clip, patch_size, patch_size)
    frames_per_clip: int = 2
    image_size: int = 224
    text_width: int = 1024
    text_layers: int = 24
    text_heads: int = 16
    context_length: int = 77
    vocab_size: int = 49408
    audio_width: int = 768
    audio_layers: int = 12
    audio_heads: int = 12
    audio_patch: int = 16
    audio_stride: int = 10
    num_mel_bins: int = 128
    audio_frames: int = 204  # fbank frames per clip (target_length)

    @property
    def vision_tokens(self) -> int:
        return 1 + (self.image_size // self.patch_size) ** 2

    @property
    def audio_grid(self) -> tuple[int, int]:
        return tuple((n - self.audio_patch) // self.audio_stride + 1 for n in (self.num_mel_bins, self.audio_frames))


PRESETS = {
    "huge": ImageBindConfig("huge"),
    # For tests: every code path of the huge model at toy widths (vocabulary and context stay official).
    "tiny": ImageBindConfig("tiny", embed_dim=16, vision_width=32, vision_layers=2, vision_heads=4, patch_size=32,
                            text_width=32, text_layers=2, text_heads=4, audio_width=32, audio_layers=2,
                            audio_heads=4),
}


class Mlp(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (ImageBind's `BlockWithMasking`: no layer scale, LayerNorm eps 1e-6)."""

    def __init__(self, width: int, heads: int, bias_kv: bool):
        super().__init__()
        self.norm_1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = nn.MultiheadAttention(width, heads, add_bias_kv=bias_kv, batch_first=True)
        self.norm_2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = Mlp(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm_1(x)  # (B, N, D)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.norm_2(x))


def _blocks(width: int, heads: int, layers: int, bias_kv: bool) -> nn.ModuleList:
    return nn.ModuleList(Block(width, heads, bias_kv) for _ in range(layers))


class VisionTower(nn.Module):
    """2-frame clips (N, 3, 2, 224, 224) -> L2-normalised (N, embed_dim)."""

    def __init__(self, c: ImageBindConfig):
        super().__init__()
        kernel = (c.frames_per_clip, c.patch_size, c.patch_size)
        self.patch_embed = nn.Conv3d(3, c.vision_width, kernel, stride=kernel, bias=False)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.vision_width))
        self.pos_embed = nn.Parameter(torch.zeros(1, c.vision_tokens, c.vision_width))
        self.pre_norm = nn.LayerNorm(c.vision_width, eps=1e-6)
        self.blocks = _blocks(c.vision_width, c.vision_heads, c.vision_layers, bias_kv=False)
        self.head_norm = nn.LayerNorm(c.vision_width, eps=1e-6)
        self.proj = nn.Linear(c.vision_width, c.embed_dim, bias=False)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(clips).flatten(2).transpose(1, 2)  # (N, P, D)
        x = torch.cat((self.cls_token.expand(len(x), -1, -1), x), dim=1) + self.pos_embed
        x = self.pre_norm(x)
        for block in self.blocks:
            x = block(x)
        return F.normalize(self.proj(self.head_norm(x[:, 0])), dim=-1)


class TextTower(nn.Module):
    """Token ids (B, 77) -> L2-normalised (B, embed_dim), pooled at each row's highest id."""

    def __init__(self, c: ImageBindConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(c.vocab_size, c.text_width)
        self.pos_embed = nn.Parameter(torch.zeros(1, c.context_length, c.text_width))
        self.blocks = _blocks(c.text_width, c.text_heads, c.text_layers, bias_kv=False)
        self.head_norm = nn.LayerNorm(c.text_width, eps=1e-6)
        self.proj = nn.Linear(c.text_width, c.embed_dim, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # Attention is causal, so the tokens after the last pooled position change nothing: drop them.
        n = int(ids.argmax(dim=-1).max()) + 1
        ids = ids[:, :n]
        x = self.token_embedding(ids) + self.pos_embed[:, :n]  # (B, n, D)
        causal = torch.full((n, n), float("-inf"), device=x.device, dtype=x.dtype).triu(1)
        for block in self.blocks:
            x = block(x, causal)
        x = x[torch.arange(len(x), device=x.device), ids.argmax(dim=-1)]  # (B, D) at the end-of-text id
        return F.normalize(self.proj(self.head_norm(x)), dim=-1)


class AudioTower(nn.Module):
    """Normalised fbank clips (N, 1, 128, 204) -> L2-normalised (N, embed_dim)."""

    def __init__(self, c: ImageBindConfig):
        super().__init__()
        self.patch_embed = nn.Conv2d(1, c.audio_width, c.audio_patch, stride=c.audio_stride, bias=False)
        self.patch_norm = nn.LayerNorm(c.audio_width)  # eps 1e-5, unlike the others
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.audio_width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + math.prod(c.audio_grid), c.audio_width))
        self.blocks = _blocks(c.audio_width, c.audio_heads, c.audio_layers, bias_kv=True)
        self.head_norm = nn.LayerNorm(c.audio_width, eps=1e-6)
        self.proj = nn.Linear(c.audio_width, c.embed_dim, bias=False)

    def forward(self, fbanks: torch.Tensor) -> torch.Tensor:
        x = self.patch_norm(self.patch_embed(fbanks).flatten(2).transpose(1, 2))  # (N, P, D)
        x = torch.cat((self.cls_token.expand(len(x), -1, -1), x), dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return F.normalize(self.proj(self.head_norm(x[:, 0])), dim=-1)


# Official key prefix -> ours, for the three towers used.
KEY_PREFIXES = (
    ("modality_preprocessors.vision.rgbt_stem.proj.1.", "vision.patch_embed."),
    ("modality_preprocessors.vision.cls_token", "vision.cls_token"),
    ("modality_preprocessors.vision.pos_embedding_helper.pos_embed", "vision.pos_embed"),
    ("modality_trunks.vision.pre_transformer_layer.0.", "vision.pre_norm."),
    ("modality_trunks.vision.blocks.", "vision.blocks."),
    ("modality_heads.vision.0.", "vision.head_norm."),
    ("modality_heads.vision.2.", "vision.proj."),
    ("modality_preprocessors.text.token_embedding.", "text.token_embedding."),
    ("modality_preprocessors.text.pos_embed", "text.pos_embed"),
    ("modality_trunks.text.blocks.", "text.blocks."),
    ("modality_heads.text.proj.0.", "text.head_norm."),
    ("modality_heads.text.proj.1.", "text.proj."),
    ("modality_preprocessors.audio.rgbt_stem.proj.", "audio.patch_embed."),
    ("modality_preprocessors.audio.rgbt_stem.norm_layer.", "audio.patch_norm."),
    ("modality_preprocessors.audio.cls_token", "audio.cls_token"),
    ("modality_preprocessors.audio.pos_embedding_helper.pos_embed", "audio.pos_embed"),
    ("modality_trunks.audio.blocks.", "audio.blocks."),
    ("modality_heads.audio.0.", "audio.head_norm."),
    ("modality_heads.audio.2.", "audio.proj."),
)
# Keys of the official file that the three towers do not use: the other modalities, the text causal
# mask (rebuilt on the fly) and the logit scales (constant factors on normalised embeddings).
UNUSED_PREFIXES = tuple(f"{part}.{m}." for part in ("modality_preprocessors", "modality_trunks", "modality_heads",
                                                     "modality_postprocessors") for m in ("depth", "thermal", "imu"))
UNUSED_KEYS = ("modality_preprocessors.text.mask", "modality_postprocessors.text.1.log_logit_scale",
               "modality_postprocessors.audio.1.log_logit_scale")


def from_official_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official `imagebind_huge.pth` state dict -> ours (unused keys dropped, unknown keys kept as they are)."""
    out = {}
    for key, value in state.items():
        if key in UNUSED_KEYS or key.startswith(UNUSED_PREFIXES):
            continue
        for official, ours in KEY_PREFIXES:
            if key.startswith(official):
                key = ours + key[len(official):]
                break
        out[key] = value
    return out


def _resize_shorter_edge(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(T, 3, H, W) uint8 -> shorter edge `size`, longer edge floored (torchvision's Resize(size), bicubic)."""
    h, w = frames.shape[-2:]
    new = (int(size * h / w), size) if w <= h else (size, int(size * w / h))
    if new == (h, w):
        return frames
    return F.interpolate(frames, size=new, mode="bicubic", align_corners=False, antialias=True)


def video_clips(frames: np.ndarray | torch.Tensor, size: int = 224) -> torch.Tensor:
    """uint8 RGB (T, H, W, 3) at 0.5 fps -> normalised clips (3 * max(T - 1, 1), 3, 2, size, size)."""
    frames = torch.as_tensor(frames)
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 RGB (T, H, W, 3) with T >= 1, got {frames.dtype} {tuple(frames.shape)}")
    if min(frames.shape[1:3]) < 1:
        raise ValueError(f"empty frames {tuple(frames.shape)}")
    x = _resize_shorter_edge(frames.permute(0, 3, 1, 2).contiguous(), size)  # (T, 3, H', W') uint8
    x = x.to(torch.float32).mul_(1.0 / 255)
    x = (x - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)
    h, w = x.shape[-2:]
    y0, x0 = math.ceil((h - size) / 2), math.ceil((w - size) / 2)
    if h > w:
        offsets = [(0, x0), (y0, x0), (h - size, x0)]
    else:
        offsets = [(y0, 0), (y0, x0), (y0, w - size)]
    crops = [x[:, :, a:a + size, b:b + size] for a, b in offsets]  # 3 x (T, 3, size, size)
    if len(x) == 1:
        return torch.stack([c.expand(2, -1, -1, -1).transpose(0, 1) for c in crops])
    clips = [crop[t:t + 2].transpose(0, 1) for t in range(len(x) - 1) for crop in crops]
    return torch.stack(clips)  # (n, 3, 2, size, size)


def audio_clip_bounds(num_samples: int, sample_rate: int = 16000) -> list[tuple[int, int]]:
    """Sample ranges of the 3 audio clips of 2 s (pytorchvideo's ConstantClipsPerVideoSampler, Fractions)."""
    max_start = Fraction(max(num_samples / sample_rate - AUDIO_CLIP_SECONDS, 0))
    step = max_start / max(AUDIO_CLIPS - 1, 1)
    bounds, index = [], 0
    while True:
        start = step * index
        bounds.append((int(start * sample_rate), int((start + AUDIO_CLIP_SECONDS) * sample_rate)))
        index += 1
        if index >= AUDIO_CLIPS or step * index > max_start:
            return bounds


def audio_fbanks(wave: np.ndarray | torch.Tensor, config: ImageBindConfig = PRESETS["huge"],
                 sample_rate: int = 16000) -> torch.Tensor:
    """Mono (L,) waveform at 16 kHz -> normalised fbank clips (3, 1, num_mel_bins, audio_frames)."""
    wave = torch.as_tensor(wave, dtype=torch.float32).clone()
    if wave.ndim != 1:
        raise ValueError(f"audio_fbanks takes one mono waveform (L,), got shape {tuple(wave.shape)}")
    clips = []
    for a, b in audio_clip_bounds(len(wave), sample_rate):
        segment = wave[a:b]
        segment -= segment.mean()  # in place on the shared waveform, as the official code
        bank = kaldi.fbank(segment, sample_frequency=sample_rate, num_mel_bins=config.num_mel_bins,
                           window_type="hanning", htk_compat=True, use_energy=False, dither=0.0,
                           frame_length=25.0, frame_shift=10.0).T  # (mels, frames)
        bank = F.pad(bank, (0, max(config.audio_frames - bank.shape[1], 0)))[:, :config.audio_frames]
        clips.append((bank - FBANK_MEAN) / FBANK_STD)
    return torch.stack(clips).unsqueeze(1)


class ImageBind(nn.Module):
    """ImageBind huge's vision, text and audio towers with av-benchmark's preprocessing (see module doc).

    Args:
        config: a preset of `PRESETS` or an `ImageBindConfig`.
        vocab: CLIP's `bpe_simple_vocab_16e6.txt.gz` (path or URL); `None` finds it as `CLIPTokenizer` does.
            Only read when text is first embedded.
        clip_batch: clips per forward pass of the vision and audio towers.
    """

    sample_rate = 16000
    video_fps = 0.5

    def __init__(self, config: ImageBindConfig | str = "huge", *, vocab: str | None = None, clip_batch: int = 16):
        super().__init__()
        self.config = PRESETS[config] if isinstance(config, str) else config
        self.name = f"imagebind-{self.config.name}"
        self.vision = VisionTower(self.config)
        self.text = TextTower(self.config)
        self.audio = AudioTower(self.config)
        self.vocab, self.clip_batch = vocab, clip_batch
        self._tokenizer: CLIPTokenizer | None = None

    @classmethod
    def from_file(cls, path: str, preset: str | ImageBindConfig = "huge", *, verify_checksum: bool = True,
                  storage_options: Mapping | None = None, vocab: str | None = None) -> "ImageBind":
        """Load `imagebind_huge.pth` (local path or fsspec URL): checksummed, strict on the three towers.

        Returns the model in eval mode, float32, on the CPU.
        """
        config = PRESETS[preset] if isinstance(preset, str) else preset
        known = OFFICIAL_WEIGHTS.get("imagebind_huge") if config.name == "huge" else None
        state = read_weight_file(path, "ImageBind weights (imagebind_huge.pth)", known,
                                 verify_checksum=verify_checksum, storage_options=storage_options)
        with torch.device("meta"):
            model = cls(config, vocab=vocab)
        state = {k: v.float() for k, v in from_official_keys(state).items()}
        check_state_dict(model, state, f"ImageBind weights in {path}")
        model.load_state_dict(state, strict=True, assign=True)
        return model.eval().requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self.vision.cls_token.device

    def tokenize(self, captions: Sequence[str]) -> torch.Tensor:
        """(B, 77) ids: start, BPE ids, end, cut to 77 ids (no end token forced), zero padding."""
        if self._tokenizer is None:
            self._tokenizer = CLIPTokenizer(self.vocab, context_length=self.config.context_length)
        tok = self._tokenizer
        ids = torch.zeros(len(captions), self.config.context_length, dtype=torch.long)
        for row, caption in enumerate(captions):
            tokens = [tok.sot_id, *tok.encode(caption), tok.eot_id][:self.config.context_length]
            ids[row, :len(tokens)] = torch.tensor(tokens)
        return ids

    def _embed_clips(self, tower: nn.Module, clips: list[torch.Tensor]) -> np.ndarray:
        """Each item's clips (n_i, ...) -> the L2-normalised mean of its clip embeddings, (B, embed_dim).

        All items' clips go through `tower` together, `clip_batch` at a time."""
        flat = torch.cat(clips)
        emb = torch.cat([tower(flat[i:i + self.clip_batch].to(self.device))
                         for i in range(0, len(flat), self.clip_batch)])  # (sum n_i, E), unit rows
        means = torch.stack([e.mean(0) for e in emb.split([len(c) for c in clips])])
        return F.normalize(means, dim=-1).cpu().numpy()

    @torch.no_grad()
    def embed_video(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 RGB videos, each (T, H, W, 3) at 0.5 fps -> (B, embed_dim) L2-normalised float32."""
        if len(frames) == 0:
            raise ValueError("embed_video needs at least one video")
        return self._embed_clips(self.vision, [video_clips(v, self.config.image_size) for v in frames])

    @torch.no_grad()
    def embed_audio(self, wavs: np.ndarray | torch.Tensor) -> np.ndarray:
        """Mono waveforms (B, L) or (L,) at 16 kHz -> (B, embed_dim) L2-normalised float32."""
        wavs = torch.as_tensor(wavs, dtype=torch.float32)
        if wavs.ndim == 1:
            wavs = wavs[None]
        if wavs.ndim != 2 or len(wavs) == 0:
            raise ValueError(f"embed_audio takes (B, L) mono waveforms at 16 kHz, got shape {tuple(wavs.shape)}")
        return self._embed_clips(self.audio, [audio_fbanks(w, self.config, self.sample_rate) for w in wavs])

    @torch.no_grad()
    def embed_text(self, captions: Sequence[str]) -> np.ndarray:
        """Captions -> (B, embed_dim) L2-normalised float32."""
        if isinstance(captions, str):
            raise TypeError("embed_text takes a list of captions, not one string")
        return self.text(self.tokenize(captions).to(self.device)).cpu().numpy()

    def score_captions(self, frames: np.ndarray, captions: Sequence[str]) -> list[float]:
        """Cosine between one video (uint8 (T, H, W, 3) at 0.5 fps) and each caption; higher = more relevant."""
        return [float(s) for s in self.embed_text(captions) @ self.embed_video([frames])[0]]
