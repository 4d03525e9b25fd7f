"""Typed settings that travel from the flows to the tasks (small, frozen, picklable).

How a track is generated is :class:`nag_model.settings.TrackSettings`, used as is; this module adds how
audio is delivered and how captions are ordered."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from nag_model.settings import TrackSettings  # noqa: F401  (the synthesis settings)

Order = Literal["descending", "ascending", "random", "given"]
ORDERS: tuple[str, ...] = ("descending", "ascending", "random", "given")
AUDIO_FORMATS: tuple[str, ...] = ("flac", "wav")
BIT_DEPTHS: tuple[int, ...] = (16, 24)


@dataclass(frozen=True)
class AudioOutput:
    """How audio is delivered: file format and depth of stems and mix, 48 kHz resampling, stems in the video."""

    audio_format: str = "flac"
    bit_depth: int = 16
    resample_48k: bool = False
    stems_in_video: bool = False

    def __post_init__(self) -> None:
        if self.audio_format not in AUDIO_FORMATS:
            raise ValueError(f"audio_format must be one of {AUDIO_FORMATS}, got {self.audio_format!r}")
        if self.bit_depth not in BIT_DEPTHS:
            raise ValueError(f"bit_depth must be one of {BIT_DEPTHS}, got {self.bit_depth!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is a name (the rules of video ids: ``storage.manifest.id_problem``), else ValueError."""
    from storage.manifest import id_problem

    problem = id_problem(run_id)
    if problem is not None:
        raise ValueError(f"bad run id: {problem.replace('the id', 'the run id', 1)}")
    return run_id


def check_order(order: str) -> str:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    return order
