"""Small evaluators of the demo world, as pure PyTorch modules with no pretrained weights.

- `AudioTagger`: an audio tower over log-mel frames (the demo codec's latent) and a text tower over
  per-token text features share one embedding space and one multi-label head over the world's
  kinds. The audio embedding is the CLAP-like space for audio-audio similarity, the pair of towers
  for text-audio similarity, and the head is the tagger ("which kinds does this track contain").
- `VideoTagger`: reads the 8 fps clip features and predicts which kinds are heard and how loud
  each is. It scores captions against a video (the paper's ImageBind role: ordering captions,
  highest first) and proposes captions for videos without any. It can only name what the picture
  shows or hints at: off-screen sounds are invisible to it.

`DemoAudioEvaluator`, `DemoCaptionScorer` and `DemoCaptioner` wrap these modules into the
protocols of `nag_model.bundle` (AudioEvaluator, CaptionScorer, Captioner). The vocabulary (kind
names, caption phrases, adverbs) travels in `EvaluatorConfig`, so nothing here depends on the
world's generator.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import fsspec
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from nag_model.codecs.demo_mel import MelCodec
from nag_model.encoders.demo import TextEncoder


@dataclass(frozen=True)
class EvaluatorConfig:
    """Widths and the vocabulary of the demo evaluators (saved beside their weights)."""

    labels: tuple[str, ...]  # kind names, one per output of the heads
    n_mels: int = 20
    text_dim: int = 64
    clip_dim: int = 64
    width: int = 96
    embed_dim: int = 64
    floor_db: float = 80.0  # the audio tower sees log-mel relative to its loudest cell, clamped this far below
    # kind -> caption phrase (noun + verb) used by the captioner, and loudness class -> adverb
    phrases: Mapping[str, str] = field(default_factory=dict)
    adverbs: Mapping[str, str] = field(default_factory=dict)
    loud_db: float = -6.0  # gain thresholds of the captioner's adverbs
    soft_db: float = -13.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["labels"] = list(self.labels)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "EvaluatorConfig":
        d = dict(d)
        d["labels"] = tuple(d["labels"])
        return cls(**d)


def relative_log_mel(log_mel: torch.Tensor, floor_db: float) -> torch.Tensor:
    """(B, N, C) log10-mel -> level-invariant input: minus each clip's maximum, clamped at -floor_db/20."""
    peak = log_mel.amax(dim=(1, 2), keepdim=True)
    return (log_mel - peak).clamp(min=-floor_db / 20.0)


class TextTower(nn.Module):
    """Per-token text features (B, Lt, Dt) -> embedding (B, E) (masked mean over non-zero tokens + MLP)."""

    def __init__(self, text_dim: int, width: int, embed_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * text_dim, width), nn.GELU(), nn.Linear(width, embed_dim))

    def forward(self, text_f: torch.Tensor) -> torch.Tensor:
        mask = (text_f.abs().sum(-1, keepdim=True) > 0).float()  # (B, Lt, 1)
        mean = (text_f * mask).sum(1) / mask.sum(1).clamp(min=1)
        peak = (text_f - 1e4 * (1 - mask)).amax(1) * (mask.sum(1) > 0).float()
        return self.mlp(torch.cat([mean, peak], -1))


class AudioTagger(nn.Module):
    """Audio and text towers with a shared embedding space and a shared multi-label head."""

    def __init__(self, config: EvaluatorConfig):
        super().__init__()
        self.config = config
        c, w = config, config.width
        self.audio = nn.Sequential(
            nn.Conv1d(c.n_mels, w, 5, padding=2), nn.GELU(),
            nn.Conv1d(w, w, 5, padding=4, dilation=2), nn.GELU(),
            nn.Conv1d(w, w, 5, padding=8, dilation=4), nn.GELU())
        self.audio_proj = nn.Linear(2 * w, c.embed_dim)
        self.text = TextTower(c.text_dim, w, c.embed_dim)
        self.head = nn.Linear(c.embed_dim, len(c.labels))
        self.logit_scale = nn.Parameter(torch.tensor(np.log(1 / 0.07), dtype=torch.float32))

    def embed_log_mel(self, log_mel: torch.Tensor) -> torch.Tensor:
        """(B, N, n_mels) log10-mel -> (B, E) un-normalised audio embedding."""
        if log_mel.ndim != 3 or log_mel.shape[-1] != self.config.n_mels:
            raise ValueError(f"log-mel must be (B, N, {self.config.n_mels}), got {tuple(log_mel.shape)}")
        h = self.audio(relative_log_mel(log_mel, self.config.floor_db).transpose(1, 2))  # (B, W, N)
        return self.audio_proj(torch.cat([h.mean(-1), h.amax(-1)], -1))

    def embed_text_features(self, text_f: torch.Tensor) -> torch.Tensor:
        return self.text(text_f)


class VideoTagger(nn.Module):
    """Clip features (B, Lc, clip_dim) at 8 fps -> per-kind presence logits and gain (dB) estimates."""

    def __init__(self, config: EvaluatorConfig):
        super().__init__()
        self.config = config
        c, w, k = config, config.width, len(config.labels)
        self.frame = nn.Sequential(nn.Linear(c.clip_dim, w), nn.GELU())
        self.temporal = nn.Sequential(nn.Conv1d(w, w, 3, padding=1), nn.GELU(), nn.Conv1d(w, w, 3, padding=1), nn.GELU())
        self.out = nn.Linear(3 * w, 2 * k)

    def forward(self, clip_f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> presence logits (B, K) and gain estimates in dB (B, K)."""
        if clip_f.ndim != 3 or clip_f.shape[-1] != self.config.clip_dim:
            raise ValueError(f"clip_f must be (B, Lc, {self.config.clip_dim}), got {tuple(clip_f.shape)}")
        h = self.frame(clip_f)  # (B, Lc, W)
        t = self.temporal(h.transpose(1, 2))  # (B, W, Lc): motion over time
        pooled = torch.cat([h.mean(1), t.mean(-1), t.amax(-1)], -1)
        logits, gain = self.out(pooled).chunk(2, -1)
        return logits, gain


class DemoAudioEvaluator:
    """AudioEvaluator protocol over an `AudioTagger`: waveforms are encoded by the demo mel codec."""

    def __init__(self, tagger: AudioTagger, codec: MelCodec, text_encoder: TextEncoder):
        self.tagger, self.codec, self.text_encoder = tagger.eval(), codec, text_encoder
        self.sample_rate = codec.sample_rate
        self.labels = tuple(tagger.config.labels)

    def to(self, device: torch.device | str) -> "DemoAudioEvaluator":
        """Run the tagger on `device` (inputs are moved there, results come back as numpy)."""
        self.tagger.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.tagger.parameters()).device

    @torch.inference_mode()
    def _log_mel(self, wavs: np.ndarray) -> torch.Tensor:
        w = torch.from_numpy(np.array(wavs, dtype=np.float32))  # a copy: the input may be read-only
        if w.ndim == 1:
            w = w[None]
        return self.codec.encode(w.to(self.device))

    def _text(self, captions: Sequence[str]) -> torch.Tensor:
        return self.text_encoder(list(captions)).to(self.device)

    @torch.inference_mode()
    def embed_audio(self, wavs: np.ndarray) -> np.ndarray:
        """(B, L) waveforms -> (B, E) L2-normalised embeddings."""
        return F.normalize(self.tagger.embed_log_mel(self._log_mel(wavs)), dim=-1).cpu().numpy()

    @torch.inference_mode()
    def embed_text(self, captions: Sequence[str]) -> np.ndarray:
        """captions -> (B, E) L2-normalised embeddings in the audio space."""
        return F.normalize(self.tagger.embed_text_features(self._text(captions)), dim=-1).cpu().numpy()

    @torch.inference_mode()
    def tag(self, wavs: np.ndarray) -> np.ndarray:
        """(B, L) waveforms -> (B, K) presence probabilities, one column per label."""
        return torch.sigmoid(self.tagger.head(self.tagger.embed_log_mel(self._log_mel(wavs)))).cpu().numpy()

    @torch.inference_mode()
    def labels_of(self, caption: str) -> tuple[str, ...]:
        """The labels the text tower reads in a caption (probability >= 0.5; at least the top one)."""
        p = torch.sigmoid(self.tagger.head(self.tagger.embed_text_features(self._text([caption]))))[0].cpu()
        chosen = [i for i in range(len(p)) if p[i] >= 0.5] or [int(p.argmax())]
        return tuple(self.labels[i] for i in chosen)


class DemoCaptionScorer:
    """CaptionScorer protocol: score = log P(the caption's kind is heard | clip features)."""

    def __init__(self, video_tagger: VideoTagger, audio_evaluator: DemoAudioEvaluator):
        self.video_tagger, self.audio_evaluator = video_tagger.eval(), audio_evaluator

    def to(self, device: torch.device | str) -> "DemoCaptionScorer":
        self.video_tagger.to(device)
        self.audio_evaluator.to(device)
        return self

    @torch.inference_mode()
    def score(self, clip_f: torch.Tensor, captions: Sequence[str]) -> list[float]:
        device = next(self.video_tagger.parameters()).device
        logits, _ = self.video_tagger(clip_f.reshape(1, *clip_f.shape[-2:]).to(device, torch.float32))
        logp = F.logsigmoid(logits[0]).cpu()
        labels = self.audio_evaluator.labels
        out = []
        for caption in captions:
            kinds = self.audio_evaluator.labels_of(caption)
            out.append(float(max(logp[labels.index(k)] for k in kinds)))
        return out


class DemoCaptioner:
    """Captioner protocol: the kinds the picture suggests, loudest first, in the world's caption style.

    It only names what the video shows or hints at (visible objects, drawn ambience hints); an
    off-screen sound cannot be proposed."""

    def __init__(self, video_tagger: VideoTagger, threshold: float = 0.5):
        self.video_tagger, self.threshold = video_tagger.eval(), threshold

    def to(self, device: torch.device | str) -> "DemoCaptioner":
        self.video_tagger.to(device)
        return self

    def caption_for(self, kind: str, gain_db: float) -> str:
        c = self.video_tagger.config
        cls = "loud" if gain_db >= c.loud_db else ("moderate" if gain_db >= c.soft_db else "soft")
        return f"{c.phrases[kind]} {c.adverbs[cls]}."

    @torch.inference_mode()
    def propose(self, clip_f: torch.Tensor, sync_f: torch.Tensor | None = None, max_captions: int = 5) -> list[str]:
        device = next(self.video_tagger.parameters()).device
        logits, gain = self.video_tagger(clip_f.reshape(1, *clip_f.shape[-2:]).to(device, torch.float32))
        p, gain = torch.sigmoid(logits[0]).cpu(), gain[0].cpu()
        labels = self.video_tagger.config.labels
        chosen = [i for i in range(len(p)) if p[i] >= self.threshold] or [int(p.argmax())]
        chosen.sort(key=lambda i: -float(gain[i]))
        return [self.caption_for(labels[i], float(gain[i])) for i in chosen[:max_captions]]


# ---------------------------------------------------------------- persistence
def save_evaluators(audio: AudioTagger, video: VideoTagger, path: str, *, storage_options: Mapping | None = None,
                    metadata: Mapping | None = None) -> None:
    """Write `<path>.safetensors` (audio.* and video.* tensors) and `<path>.json` (config + metadata)."""
    state = {f"audio.{k}": v.contiguous() for k, v in audio.state_dict().items()}
    state.update({f"video.{k}": v.contiguous() for k, v in video.state_dict().items()})
    with fsspec.open(path + ".safetensors", "wb", **(storage_options or {})) as f:
        f.write(st_save(state))
    with fsspec.open(path + ".json", "w", **(storage_options or {})) as f:
        json.dump({"kind": "demo_evaluators", "config": audio.config.to_dict(), **(metadata or {})}, f, indent=2)


def load_evaluators(path: str, *, storage_options: Mapping | None = None) -> tuple[AudioTagger, VideoTagger]:
    """Load the modules saved by `save_evaluators` (strict)."""
    with fsspec.open(path + ".json", "r", **(storage_options or {})) as f:
        card = json.load(f)
    config = EvaluatorConfig.from_dict(card["config"])
    with fsspec.open(path + ".safetensors", "rb", **(storage_options or {})) as f:
        state = st_load(f.read())
    audio, video = AudioTagger(config), VideoTagger(config)
    audio.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("audio.")}, strict=True)
    video.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("video.")}, strict=True)
    return audio.eval(), video.eval()
