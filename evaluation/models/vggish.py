"""VGGish as av-benchmark computes FD-VGG: 128-d embeddings of 0.96-s examples, no PCA.

av-benchmark (``av_bench/vggish``) runs its own copy of harritaylor/torchvggish's VGGish with the weights of
``torch.hub.load('harritaylor/torchvggish', 'vggish')`` (the file ``vggish-10086976.pth``), with
``postprocess=False`` (no PCA whitening, no 8-bit quantisation) and **without the ReLU after the last
linear layer** ("removed to match audioldm_eval"): its 128-d embedding is the pre-activation output of
``embeddings.4``. FD-VGG concatenates the embeddings of all examples of all clips, then takes the Fréchet
distance.

Front end (the TensorFlow VGGish ``mel_features`` recipe, reproduced in numpy float64 as the original runs):

* frames of 400 samples (25 ms) every 160 (10 ms), no padding, periodic Hann window, ``|rfft|`` over 512
  points (each frame zero-padded at its end);
* 64 mel bands from 125 to 7500 Hz with VGGish's own HTK-style triangles (``mel = 1127 ln(1 + f / 700)``,
  slopes linear in mel, DC bin zeroed), magnitudes (not power), then ``log(mel + 0.01)``;
* examples of 96 frames (0.96 s) without overlap; an incomplete last example is dropped.

Waveform preparation is av-benchmark's ``AudioDataset`` (mono, mean removed, 16 kHz, first 8 s), as in
:mod:`evaluation.models.panns`. An 8-s clip gives 798 frames, hence 8 examples.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from common.presets import pick_preset
from nag_model.checkpoint import OFFICIAL_WEIGHTS, check_state_dict, read_weight_file


@dataclass(frozen=True)
class VGGishConfig:
    """VGGish's front end and widths; ``vggish`` is the released model."""

    name: str = "vggish"
    sample_rate: int = 16_000
    window_seconds: float = 0.025
    hop_seconds: float = 0.010
    mel_bins: int = 64
    fmin: float = 125.0
    fmax: float = 7500.0
    log_offset: float = 0.01
    example_frames: int = 96  # 0.96 s of 10-ms frames, examples do not overlap
    # conv widths per stage; each stage ends in a 2x2 max pooling (stages 3 and 4 hold two convs)
    stages: tuple[tuple[int, ...], ...] = ((64,), (128,), (256, 256), (512, 512))
    hidden: int = 4096
    embedding_dim: int = 128
    clip_seconds: float | None = 8.0  # av-benchmark's audio_length as MMAudio calls it; None keeps it all

    @property
    def window_samples(self) -> int:
        return int(round(self.sample_rate * self.window_seconds))

    @property
    def hop_samples(self) -> int:
        return int(round(self.sample_rate * self.hop_seconds))

    @property
    def fft_size(self) -> int:
        return 2 ** int(np.ceil(np.log2(self.window_samples)))

    @property
    def min_samples(self) -> int:
        """Shortest waveform that gives one example."""
        return (self.example_frames - 1) * self.hop_samples + self.window_samples


PRESETS: dict[str, VGGishConfig] = {
    "vggish": VGGishConfig(),
    "tiny": VGGishConfig(name="vggish_tiny", stages=((4,), (8,), (8, 8), (16, 16)), hidden=32, embedding_dim=8),
}


def get_config(preset: str | VGGishConfig) -> VGGishConfig:
    return pick_preset(preset, PRESETS, VGGishConfig, "VGGish")


def hertz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """VGGish's mel scale: ``1127 ln(1 + f / 700)``."""
    return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)


def mel_matrix(config: VGGishConfig) -> np.ndarray:
    """(F, M) weights turning |STFT| rows into mel bands: triangles linear in mel, the DC bin excluded."""
    bins = config.fft_size // 2 + 1
    bin_mel = hertz_to_mel(np.linspace(0.0, config.sample_rate / 2.0, bins))[:, None]  # (F, 1)
    edges = np.linspace(hertz_to_mel(config.fmin), hertz_to_mel(config.fmax), config.mel_bins + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]  # (M,) each
    rising = (bin_mel - lower) / (centre - lower)
    falling = (upper - bin_mel) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))  # (F, M)
    weights[0, :] = 0.0
    return weights


def log_mel_examples(wav: np.ndarray, config: VGGishConfig) -> np.ndarray:
    """(L,) waveform -> (N, example_frames, mel_bins) float64 log-mel examples (VGGish's ``mel_features``)."""
    x = np.asarray(wav, np.float64)
    win, hop = config.window_samples, config.hop_samples
    if x.shape[0] < win:
        return np.zeros((0, config.example_frames, config.mel_bins))
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop]  # (T, win)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win) / win)  # periodic Hann
    magnitude = np.abs(np.fft.rfft(frames * window, config.fft_size))  # (T, F)
    log_mel = np.log(magnitude @ mel_matrix(config) + config.log_offset)  # (T, M)
    n = log_mel.shape[0] // config.example_frames
    return log_mel[: n * config.example_frames].reshape(n, config.example_frames, config.mel_bins)


def _conv_stack(stages: Sequence[Sequence[int]]) -> nn.Sequential:
    """3x3 conv + ReLU layers, a 2x2 max pooling after each stage (indices match torchvggish's ``features``)."""
    layers: list[nn.Module] = []
    c_in = 1
    for stage in stages:
        for c_out in stage:
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
            c_in = c_out
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


class VGGishNet(nn.Module):
    """The VGG network over log-mel examples; its state-dict names are those of torchvggish's file."""

    def __init__(self, config: VGGishConfig):
        super().__init__()
        self.features = _conv_stack(config.stages)
        scale = 2 ** len(config.stages)
        flat = config.stages[-1][-1] * (config.example_frames // scale) * (config.mel_bins // scale)
        self.embeddings = nn.Sequential(nn.Linear(flat, config.hidden), nn.ReLU(),
                                        nn.Linear(config.hidden, config.hidden), nn.ReLU(),
                                        nn.Linear(config.hidden, config.embedding_dim))  # no final ReLU (av-benchmark)

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        """(N, example_frames, mel_bins) log-mel examples -> (N, embedding_dim)."""
        x = self.features(examples[:, None])  # (N, C, frames / 16, mels / 16)
        return self.embeddings(x.permute(0, 2, 3, 1).flatten(1))  # flattened in (time, mel, channel) order


class VGGish(nn.Module):
    """VGGish for FD-VGG: waveform -> per-example 128-d embeddings (inference only)."""

    def __init__(self, config: VGGishConfig | str = "vggish"):
        super().__init__()
        self.config = config = get_config(config)
        self.name = config.name
        self.sample_rate = config.sample_rate
        self.net = VGGishNet(config)
        self.eval()

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        """(N, example_frames, mel_bins) log-mel examples -> (N, embedding_dim)."""
        return self.net(examples)

    def examples(self, wav: np.ndarray | torch.Tensor) -> np.ndarray:
        """(L,) waveform at ``sample_rate`` -> mean removed, cut to ``clip_seconds``, (N, frames, mels) examples."""
        x = wav.detach().cpu().float().numpy() if torch.is_tensor(wav) else np.asarray(wav, np.float32)
        x = x - x.mean(dtype=np.float32)
        if self.config.clip_seconds is not None:
            x = x[: int(self.sample_rate * self.config.clip_seconds)]
        return log_mel_examples(x, self.config)

    @torch.inference_mode()
    def features(self, wavs: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> dict[str, list[np.ndarray]]:
        """The per-example embeddings av-benchmark stores for each clip.

        Args:
            wavs: (B, L) array or a list of (L_i,) mono waveforms in [-1, 1] at ``sample_rate`` (16 kHz), not
                yet mean-removed.
        Returns:
            ``{"frames": [(n_i, 128) float32 array per clip]}``, ``n_i`` = number of whole 0.96-s examples.
        """
        clips = list(wavs)
        if any(np.ndim(c) != 1 for c in clips):
            raise ValueError(f"expected (B, L) or a list of (L,) mono waveforms at {self.sample_rate} Hz")
        examples = [self.examples(clip) for clip in clips]  # (n_i, frames, mels) each
        for clip, ex in zip(clips, examples):
            if ex.shape[0] == 0:
                raise ValueError(f"{self.name} needs at least {self.config.min_samples} samples "
                                 f"({self.config.min_samples / self.sample_rate:.3f} s) per clip; got {len(clip)}")
        device = next(self.parameters()).device
        batch = torch.from_numpy(np.concatenate(examples)).float().to(device)  # (sum n_i, frames, mels)
        embeddings = self(batch).float().cpu().numpy()  # (sum n_i, embedding_dim)
        return {"frames": np.split(embeddings, np.cumsum([len(ex) for ex in examples])[:-1])}

    @classmethod
    def from_file(cls, path: str, preset: str | VGGishConfig = "vggish", *, verify_checksum: bool = True,
                  storage_options: Mapping | None = None) -> "VGGish":
        """Build ``preset`` and strict-load torchvggish's ``vggish-10086976.pth`` (a local path or fsspec URL)."""
        config = get_config(preset)
        known = OFFICIAL_WEIGHTS.get(config.name)
        state = read_weight_file(path, f"VGGish weights ({config.name})", known,
                                 verify_checksum=verify_checksum, storage_options=storage_options)
        model = cls(config)
        check_state_dict(model.net, state, f"VGGish weights {path!r}")
        model.net.load_state_dict(state, strict=True)
        return model.float().eval()
