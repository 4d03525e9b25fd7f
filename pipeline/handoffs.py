"""What one stage hands to the next: small frozen dataclasses of URIs, ids and numbers (never tensors or
waveforms). They pickle, so they travel to Dask workers and into Prefect's result storage as they are.

Table rows (``tracks``, ``mixes``, ``metrics``) travel as plain dicts: their columns are the tables'
schemas (:mod:`storage.tables`).
"""
from __future__ import annotations

from dataclasses import dataclass

from captioning.two_step import CaptionTrace


@dataclass(frozen=True)
class PreparedVideo:
    """A probed, hashed and encoded video (its features stay in the worker's cache, :mod:`pipeline.models`).

    ``covered_s`` is the length of video the tracks cover (<= the run's duration).
    """

    video_uri: str
    sha256: str
    duration_s: float | None
    fps: float | None
    width: int | None
    height: int | None
    has_audio: bool
    covered_s: float

    def row_fields(self) -> dict:
        """The ``videos`` columns this description fills."""
        return {"duration_s": self.duration_s, "fps": self.fps, "width": self.width, "height": self.height,
                "has_audio": self.has_audio}


@dataclass(frozen=True)
class Captions:
    """A video's captions, checked, and where they came from (``"manifest"`` or ``"captioner"``).

    ``trace`` is the captioner's account of proposed captions (which captioner and model, its prompt and
    raw answers; :mod:`pipeline.captioner`), None for the manifest's; it goes to the ``captions`` table.
    """

    captions: tuple[str, ...]
    source: str
    trace: CaptionTrace | None = None


@dataclass(frozen=True)
class OrderedCaptions:
    """Captions in generation order, their scorer scores in the same order (None without a scorer), the
    ordering mode used, the one requested (they differ when nothing can rank captions) and which scorer
    gave the scores (ImageBind's name when it is configured, else the model's scorer; None without)."""

    captions: tuple[str, ...]
    scores: tuple[float, ...] | None
    order: str
    requested: str
    scorer: str | None = None
