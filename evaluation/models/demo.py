"""The demo world's audio evaluator behind the evaluation models' interface (``/work/HELPERS-13.md``), so FD,
KL, IS and the CLAP-style rows run end to end on the demo world with a real (small, trained) model.

``DemoEvalModel.from_file(folder)`` loads the evaluators of a demo bundle folder (``bundle.json`` naming
``evaluators.*``, e.g. ``nag_model/weights/demo``). What it gives, from
:class:`nag_model.demo.evaluators.AudioTagger`:

* ``features(wavs)``: ``embedding`` = the audio tower's embedding before normalisation (B, E), ``logits`` = the
  tagger head before its sigmoid (B, kinds): the same kind of tensors PANNs gives (its 2048-d embedding and
  pre-sigmoid logits), so the same formulas apply (FD on the embedding, softmax KL and IS on the logits);
* ``embed_audio(wavs)``, ``embed_text(captions)``: the shared audio-text space, L2-normalised (CLAP's role).

Its numbers describe the demo world only; they are not comparable with the paper's.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from nag_model.bundle import load_bundle
from nag_model.demo.evaluators import DemoAudioEvaluator


class DemoEvalModel:
    """The demo audio evaluator as an evaluation model (roles ``set`` and ``clap``)."""

    name = "demo-tagger"

    def __init__(self, evaluator: DemoAudioEvaluator):
        self.evaluator = evaluator
        self.sample_rate = int(evaluator.sample_rate)

    @classmethod
    def from_file(cls, path: str, preset: str | None = None, *, verify_checksum: bool = True,
                  storage_options: Mapping | None = None) -> "DemoEvalModel":
        """The evaluator of the demo bundle folder ``path`` (local or fsspec URL); ``preset`` must be None."""
        if preset is not None:
            raise ValueError(f"the demo evaluator has no presets, got {preset!r}")
        bundle = load_bundle(path, storage_options=storage_options)
        if not isinstance(bundle.evaluator, DemoAudioEvaluator):
            raise ValueError(f"{path!r} is a bundle without demo evaluators (bundle.json names no 'evaluators')")
        return cls(bundle.evaluator)

    def eval(self) -> "DemoEvalModel":
        return self

    def to(self, device: torch.device | str) -> "DemoEvalModel":
        self.evaluator.to(device)
        return self

    @torch.inference_mode()
    def features(self, wavs: np.ndarray) -> dict[str, np.ndarray]:
        """(B, L) waveforms at :attr:`sample_rate` -> ``{"embedding": (B, E), "logits": (B, kinds)}``."""
        tagger = self.evaluator.tagger
        emb = tagger.embed_log_mel(self.evaluator._log_mel(wavs))  # (B, E)
        return {"embedding": emb.cpu().numpy(), "logits": tagger.head(emb).cpu().numpy()}

    def embed_audio(self, wavs: np.ndarray) -> np.ndarray:
        """(B, L) -> (B, E), L2-normalised."""
        return self.evaluator.embed_audio(wavs)

    def embed_text(self, captions: Sequence[str]) -> np.ndarray:
        """captions -> (B, E), L2-normalised, in the audio space."""
        return self.evaluator.embed_text(captions)
