"""A Foley model bundle: everything the pipeline needs to turn a video and captions into tracks.

base network + audio ControlNet + codec + text and video encoders, and optionally the evaluators
that order captions (the paper's ImageBind role), propose captions and score tracks. A bundle is a
folder (local path or fsspec URL) with `bundle.json` naming its parts; `load_bundle` loads one,
`random_bundle` builds one with random weights for tests.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import fsspec
import numpy as np
import torch

from nag_model.checkpoint import load_controlnet, load_network, read_bytes, save_controlnet, save_network
from nag_model.codecs.base import AudioCodec
from nag_model.config import SYNC_SEGMENT, SYNC_STEP, SYNC_TOKENS_PER_SEGMENT
from nag_model.codecs.demo_mel import MelCodec, MelCodecConfig
from nag_model.controlnet import AudioControlNet
from nag_model.device import cast_weights, configure_cuda_backends, resolve_device, resolve_dtype
from nag_model.encoders.demo import (HashTextEncoder, HashTextEncoderConfig, PixelVideoEncoder, PixelVideoEncoderConfig,
                                TextEncoder, VideoEncoder)
from nag_model.generator import StepByStepGenerator, VideoFeatures
from nag_model.network import MMAudio, build_mmaudio


class CaptionScorer(Protocol):
    """Video-text agreement, higher is better (orders captions, like ImageBind in the paper)."""

    def score(self, clip_f: torch.Tensor, captions: Sequence[str]) -> list[float]: ...


class Captioner(Protocol):
    """Proposes captions for a video that has none."""

    def propose(self, clip_f: torch.Tensor, sync_f: torch.Tensor, max_captions: int = 5) -> list[str]: ...


class AudioEvaluator(Protocol):
    """A CLAP-like space and a tagger: audio (B, L) and text embeddings, and per-label presence."""

    sample_rate: int
    labels: tuple[str, ...]

    def embed_audio(self, wavs: np.ndarray) -> np.ndarray: ...

    def embed_text(self, captions: Sequence[str]) -> np.ndarray: ...

    def tag(self, wavs: np.ndarray) -> np.ndarray: ...

    def labels_of(self, caption: str) -> tuple[str, ...]: ...


@dataclass
class FoleyBundle:
    name: str
    base: MMAudio
    codec: AudioCodec
    text_encoder: TextEncoder
    video_encoder: VideoEncoder
    controlnet: AudioControlNet | None = None
    scorer: CaptionScorer | None = None
    captioner: Captioner | None = None
    evaluator: AudioEvaluator | None = None
    card: dict[str, Any] = field(default_factory=dict)
    _sampler: Any = field(default=None, init=False, repr=False, compare=False)  # CUDA graphs, shared by generators

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def device(self) -> torch.device:
        return self.base.latent_mean.device

    @property
    def dtype(self) -> torch.dtype:
        """The precision of the network's and the ControlNet's weights."""
        return self.base.dtype

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | str | None = None) -> "FoleyBundle":
        """Move every model component to `device` ("auto", "cpu", "cuda", "cuda:N" or a torch.device)
        and put the network's and the ControlNet's weights in `dtype` (torch.bfloat16 / torch.float32, or
        "bf16" / "fp32" / "auto": bf16 on CUDA, fp32 elsewhere).

        The latent statistics stay float32 (the sampler's state is float32 whatever the weights'
        precision), and so do the codec, the encoders and the evaluators. Components without a
        `to` (the demo's hash text encoder and pixel video encoder) produce host tensors that the
        generator moves. In place; returns the bundle. On CUDA it also lets cuDNN pick the fastest
        convolution algorithm per shape (`nag_model.device.configure_cuda_backends`).
        """
        device = None if device is None else resolve_device(device)
        for net in (self.base, self.controlnet):
            if net is None:
                continue
            if device is not None:
                net.to(device)
            if dtype is not None:
                cast_weights(net, resolve_dtype(dtype, device or self.device))
        if device is not None:
            for part in (self.codec, self.text_encoder, self.video_encoder, self.scorer, self.captioner, self.evaluator):
                if callable(getattr(part, "to", None)):
                    part.to(device)
            if device.type == "cuda":
                configure_cuda_backends()
        self._sampler = None  # captured graphs belong to the old placement
        return self

    @property
    def duration(self) -> float:
        return self.base.seq.latent * self.codec.samples_per_latent / self.codec.sample_rate

    def generator(self, *, progress: bool = False, batch_mode: str = "auto",
                  max_batch: int | None = None, queue_thread: bool | None = None,
                  prep_stream: bool | None = None) -> StepByStepGenerator:
        """A step-by-step generator over this bundle. Generators of one bundle share its CUDA graphs."""
        if self.device.type == "cuda" and self._sampler is None:
            from nag_model.cuda_graphs import GraphedSampler

            self._sampler = GraphedSampler()
        return StepByStepGenerator(self.base, self.codec, self.text_encoder, controlnet=self.controlnet,
                                   progress=progress, batch_mode=batch_mode, max_batch=max_batch,
                                   sampler=self._sampler, queue_thread=queue_thread, prep_stream=prep_stream)

    @torch.inference_mode()
    def video_features(self, clip_frames: np.ndarray, sync_frames: np.ndarray) -> VideoFeatures:
        """Frames at ``config.CLIP_FPS`` and ``config.SYNC_FPS`` (uint8, (T, H, W, 3)) -> features
        padded/trimmed to the model's lengths.

        Short videos repeat their last frame (the model always generates its full duration)."""
        seq = self.base.seq
        clip = self.video_encoder.encode_clip(_fit(clip_frames, seq.clip))
        segments = seq.sync // SYNC_TOKENS_PER_SEGMENT
        sync_frames_needed = (segments - 1) * SYNC_STEP + SYNC_SEGMENT
        sync = self.video_encoder.encode_sync(_fit(sync_frames, sync_frames_needed))
        return VideoFeatures(clip, sync)


def _fit(frames: np.ndarray, n: int) -> np.ndarray:
    if len(frames) == 0:
        raise ValueError("no frames")
    if len(frames) >= n:
        return frames[:n]
    return np.concatenate([frames, np.repeat(frames[-1:], n - len(frames), axis=0)])


def random_bundle(preset: str = "tiny", *, seed: int = 0, duration: float = 8.0) -> FoleyBundle:
    """Random-weight bundle with the demo's encoders and codec (for tests and benchmarks)."""
    torch.manual_seed(seed)
    base = build_mmaudio(preset, duration=duration)
    text = HashTextEncoder(HashTextEncoderConfig(dim=base.config.text_dim, seq_len=base.config.text_seq_len, seed=seed))
    video = PixelVideoEncoder(PixelVideoEncoderConfig(clip_dim=base.config.clip_dim, sync_dim=base.config.sync_dim, seed=seed))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        base.latent_mean.fill_(-2.5)  # log10 mel magnitudes of quiet audio
        base.latent_std.fill_(1.0)
        base.empty_string_feat.copy_(text([""])[0])
        for name, p in base.named_parameters():
            if p.requires_grad and ("adaLN" in name or "final_layer.conv" in name):
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
    codec = MelCodec(MelCodecConfig(n_mels=base.config.latent_dim))
    controlnet = AudioControlNet.from_base(base).eval()
    return FoleyBundle(f"random-{preset}-{seed}", base.eval(), codec, text, video, controlnet,
                       card={"kind": "random", "preset": preset, "seed": seed})


DEMO_BUNDLE = str(Path(__file__).resolve().parent / "weights" / "demo")  # the committed demo model


def resolve_bundle_path(name_or_path: str) -> str:
    """The model name "demo" means the demo bundle inside the installed package; anything else is a path/URL."""
    return DEMO_BUNDLE if name_or_path == "demo" else name_or_path


def save_bundle(bundle: FoleyBundle, path: str, *, storage_options: Mapping | None = None) -> None:
    """Write `bundle.json`, `base.*` and `controlnet.*` under `path`; demo evaluators go to `evaluators.*`
    only when the bundle's card names them (`card["evaluators"]`) and they are saved by `save_evaluators`."""
    path = path.rstrip("/")
    save_network(bundle.base, f"{path}/base", storage_options=storage_options)
    if bundle.controlnet is not None:
        save_controlnet(bundle.controlnet, bundle.base, f"{path}/controlnet", storage_options=storage_options)
    card = {**bundle.card, "name": bundle.name, "codec": {"kind": "mel", **asdict(bundle.codec.config)},
            "text_encoder": bundle.text_encoder.to_dict(), "video_encoder": bundle.video_encoder.to_dict(),
            "controlnet": bundle.controlnet is not None}
    with fsspec.open(f"{path}/bundle.json", "w", **(storage_options or {})) as f:
        json.dump(card, f, indent=2)


def load_bundle(path: str, *, storage_options: Mapping | None = None, duration: float | None = None) -> FoleyBundle:
    """Load a bundle folder written by `save_bundle` (or by the demo trainer); "demo" is the committed demo.

    When the card names evaluators (`"evaluators": "<stem>"`), `<stem>.safetensors/.json` are loaded as the
    demo's scorer, captioner and audio evaluator (`nag_model.demo.evaluators`)."""
    path = resolve_bundle_path(path).rstrip("/")
    card = json.loads(read_bytes(f"{path}/bundle.json", "model bundle card", storage_options=storage_options))
    base = load_network(f"{path}/base", storage_options=storage_options, duration=duration)
    controlnet = load_controlnet(f"{path}/controlnet", base, storage_options=storage_options) if card.get("controlnet") else None
    codec_cfg = {k: v for k, v in card["codec"].items() if k != "kind"}
    codec = MelCodec(MelCodecConfig(**codec_cfg))
    text = HashTextEncoder(HashTextEncoderConfig(**{k: v for k, v in card["text_encoder"].items() if k != "kind"}))
    video = PixelVideoEncoder(PixelVideoEncoderConfig(**{k: v for k, v in card["video_encoder"].items() if k != "kind"}))
    scorer = captioner = evaluator = None
    if card.get("evaluators"):
        from nag_model.demo.evaluators import DemoAudioEvaluator, DemoCaptioner, DemoCaptionScorer, load_evaluators

        audio_tagger, video_tagger = load_evaluators(f"{path}/{card['evaluators']}", storage_options=storage_options)
        evaluator = DemoAudioEvaluator(audio_tagger, codec, text)
        scorer, captioner = DemoCaptionScorer(video_tagger, evaluator), DemoCaptioner(video_tagger)
    return FoleyBundle(card.get("name", path), base, codec, text, video, controlnet, scorer=scorer, captioner=captioner,
                       evaluator=evaluator, card=card)
