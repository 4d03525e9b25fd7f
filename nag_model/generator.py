"""Step-by-step generation (section 5.1 of the NAG paper): one track per caption, each pushed away
from the loudness-normalised (-20 LUFS) mix of the tracks made before it.

The mix is formed in the waveform domain and encoded back to the model's latent through an
`AudioCodec`, so MMAudio's VAE + vocoder and the demo mel codec plug in the same way. Every
track keeps its own seed and settings; `generate_track` makes (or remakes) any single track
against any set of other tracks, which is how a track is added, regenerated or removed later.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from nag_model.codec import AudioCodec
from nag_model.controlnet import AudioControlNet
from nag_model.features import TextEncoder
from nag_model.flow_matching import euler, time_grid
from nag_model.guidance import (DEFAULT_CFG_STRENGTH, DEFAULT_NAG_BETA, ClassifierFreeGuidance, ConditionSet,
                                NegativeAudioGuidance, NegativePromptGuidance)
from nag_model.loudness import DEFAULT_TARGET_LUFS, normalize_loudness
from nag_model.network import MMAudio, PreprocessedConditions
from nag_model.velocity import GuidedVelocity

Method = Literal["nag", "independent", "negative-prompt"]
METHODS: tuple[str, ...] = ("nag", "independent", "negative-prompt")


@dataclass(frozen=True)
class VideoFeatures:
    """Per-clip visual features: clip_f (1, Lc, clip_dim) at 8 fps and sync_f (1, Ls, sync_dim) at 25 fps.
    `VideoFeatures.none()` means no video (the learned null tokens: text-to-audio)."""

    clip_f: torch.Tensor | None
    sync_f: torch.Tensor | None

    @classmethod
    def none(cls) -> "VideoFeatures":
        return cls(None, None)


@dataclass(frozen=True)
class TrackSettings:
    """How one track is generated. alpha is the CFG strength of every method; beta only matters for NAG."""

    method: Method = "nag"
    alpha: float = DEFAULT_CFG_STRENGTH
    beta: float = DEFAULT_NAG_BETA
    steps: int = 25
    target_lufs: float = DEFAULT_TARGET_LUFS
    negative_prompt_form: Literal["paper", "mmaudio"] = "paper"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


@dataclass(frozen=True)
class Track:
    """One generated track: its waveform (L,) float32 at `sample_rate`, and how it was made."""

    caption: str
    seed: int
    settings: TrackSettings
    waveform: np.ndarray = field(repr=False)
    sample_rate: int
    against: tuple[str, ...] = ()  # captions of the tracks it was pushed away from

    def record(self) -> dict:
        """Everything needed to regenerate this track, without the audio."""
        return {"caption": self.caption, "seed": self.seed, "against": list(self.against), **asdict(self.settings)}


class StepByStepGenerator:
    """Generates tracks with a frozen base MMAudio, an optional audio ControlNet (needed for NAG),
    a codec and a text encoder. Works in eval mode under `torch.inference_mode`."""

    def __init__(self, base: MMAudio, codec: AudioCodec, text_encoder: TextEncoder, *,
                 controlnet: AudioControlNet | None = None, batched: bool = True, progress: bool = False):
        if codec.samples_per_latent != base.config.samples_per_latent or codec.latent_dim != base.config.latent_dim:
            raise ValueError(f"codec ({codec.latent_dim} channels, {codec.samples_per_latent} samples/latent) does not "
                             f"match {base.config.name} ({base.config.latent_dim}, {base.config.samples_per_latent})")
        self.base, self.codec, self.text_encoder, self.controlnet = base.eval(), codec, text_encoder, controlnet
        if controlnet is not None:
            controlnet.eval()
        self.batched, self.progress = batched, progress

    @property
    def device(self) -> torch.device:
        return self.base.latent_mean.device

    @property
    def num_samples(self) -> int:
        return self.base.seq.latent * self.codec.samples_per_latent

    # ------------------------------------------------------------ conditions
    def _video(self, video: VideoFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        seq, base = self.base.seq, self.base
        if video.clip_f is None or video.sync_f is None:
            return base.empty_clip_feat.expand(seq.clip, -1)[None], base.empty_sync_feat.expand(seq.sync, -1)[None]
        return video.clip_f.to(self.device), video.sync_f.to(self.device)

    def _conditions(self, video: VideoFeatures, text_f: torch.Tensor) -> PreprocessedConditions:
        clip_f, sync_f = self._video(video)
        return self.base.preprocess_conditions(clip_f, sync_f, text_f.to(self.device))

    def mix_condition(self, waveforms: Sequence[np.ndarray], target_lufs: float = DEFAULT_TARGET_LUFS) -> np.ndarray:
        """normalize(sum of the tracks) at target_lufs: the NAG condition audio (section 5.1)."""
        total = np.zeros(self.num_samples, dtype=np.float64)
        for w in waveforms:
            w = np.asarray(w, dtype=np.float64).reshape(-1)[: self.num_samples]
            total[: len(w)] += w
        return normalize_loudness(total, self.codec.sample_rate, target_lufs).astype(np.float32)

    def condition_set(self, video: VideoFeatures, caption: str, settings: TrackSettings,
                      context: Sequence[Track] = ()) -> ConditionSet:
        """Preprocess everything this track's guidance needs, once."""
        full = self._conditions(video, self.text_encoder([caption]))
        empty = self.base.get_empty_conditions(1)
        if not context:
            return ConditionSet(full=full, empty=empty)
        if settings.method == "negative-prompt":
            negative_text = self.text_encoder([" ".join(t.caption for t in context)]).to(self.device)
            return ConditionSet(full=full, empty=empty,
                                negative=self.base.get_empty_conditions(1, negative_text_features=negative_text))
        if settings.method == "nag" and settings.beta != 0:
            if self.controlnet is None:
                raise ValueError("method 'nag' needs an AudioControlNet; pass controlnet= or use method 'independent'")
            mix = torch.from_numpy(self.mix_condition([t.waveform for t in context], settings.target_lufs))
            ref_latent = self.base.normalize(self.codec.encode(mix[None].to(self.device)))  # (1, N, C)
            video_only = self._conditions(video, self.base.empty_string_feat[None])
            return ConditionSet(full=full, empty=empty, video_only=video_only,
                                reference=self.controlnet.preprocess_reference(ref_latent))
        return ConditionSet(full=full, empty=empty)

    @staticmethod
    def guidance(settings: TrackSettings):
        if settings.method == "nag":
            return NegativeAudioGuidance(settings.alpha, settings.beta)
        if settings.method == "negative-prompt":
            return NegativePromptGuidance(settings.alpha, settings.negative_prompt_form)
        return ClassifierFreeGuidance(settings.alpha)

    # ------------------------------------------------------------ generation
    def initial_noise(self, seed: int) -> torch.Tensor:
        """x0 (1, N, C) from the track's own seed, drawn on the CPU so every device agrees."""
        g = torch.Generator().manual_seed(seed)
        shape = (1, self.base.seq.latent, self.base.config.latent_dim)
        return torch.randn(shape, generator=g).to(self.device, self.base.latent_mean.dtype)

    def generate_track(self, video: VideoFeatures, caption: str, seed: int, settings: TrackSettings = TrackSettings(),
                       context: Sequence[Track] = ()) -> Track:
        """One track for `caption`, pushed away from `context` (the earlier tracks, or all others on a redo)."""
        if not caption or not caption.strip():
            raise ValueError("caption must be a non-empty string")
        with torch.inference_mode():  # a block, not a decorator: mutation testing mutates undecorated functions
            conditions = self.condition_set(video, caption, settings, context)
            velocity = GuidedVelocity(self.base, self.guidance(settings), conditions, controlnet=self.controlnet,
                                      batched=self.batched)
            steps = time_grid(settings.steps, device=self.device)
            bar = tqdm(total=settings.steps, desc=caption[:40], leave=False, disable=not self.progress)
            x1 = euler(velocity, self.initial_noise(seed), steps, callback=lambda *_: bar.update())
            bar.close()
            wave = self.codec.decode(self.base.unnormalize(x1))[0, : self.num_samples]
        return Track(caption, seed, settings, wave.float().cpu().numpy(), self.codec.sample_rate,
                     tuple(t.caption for t in context) if conditions.reference is not None or conditions.negative is not None else ())

    def generate(self, video: VideoFeatures, captions: Sequence[str], seeds: Sequence[int] | None = None,
                 settings: TrackSettings = TrackSettings(),
                 on_track: Callable[[int, Track], None] | None = None) -> list[Track]:
        """Tracks for `captions` in order; track k is conditioned on the mix of tracks 1..k-1."""
        seeds = list(range(len(captions))) if seeds is None else list(seeds)
        if len(seeds) != len(captions):
            raise ValueError(f"got {len(captions)} captions but {len(seeds)} seeds")
        tracks: list[Track] = []
        for k, (caption, seed) in enumerate(zip(captions, seeds)):
            tracks.append(self.generate_track(video, caption, seed, settings, context=tracks))
            if on_track is not None:
                on_track(k, tracks[-1])
        return tracks
