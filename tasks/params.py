"""Typed settings that travel from the flows to the tasks (small, frozen, picklable)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from nag_model.generator import METHODS, TrackSettings

Order = Literal["descending", "ascending", "random", "given"]
ORDERS: tuple[str, ...] = ("descending", "ascending", "random", "given")
AUDIO_FORMATS: tuple[str, ...] = ("flac", "wav")
BIT_DEPTHS: tuple[int, ...] = (16, 24)


@dataclass(frozen=True)
class SynthesisParams:
    """How tracks are generated: the method (Eq. 7 NAG, plain CFG, or negative prompting) and its knobs."""

    method: str = "nag"
    alpha: float = 4.5
    beta: float = 1.5
    steps: int = 25

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if not self.steps >= 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.alpha < 0 or self.beta < 0:
            raise ValueError(f"alpha and beta must be >= 0, got alpha={self.alpha}, beta={self.beta}")

    def track_settings(self) -> TrackSettings:
        return TrackSettings(method=self.method, alpha=self.alpha, beta=self.beta, steps=self.steps)  # type: ignore[arg-type]

    def row_fields(self) -> dict[str, Any]:
        """The ``tracks`` columns these settings fill; beta is null for methods that do not use it."""
        return {"method": self.method, "alpha": float(self.alpha),
                "beta": float(self.beta) if self.method == "nag" else None, "steps": int(self.steps)}


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
    """``run_id`` if it is a name (the rules of video ids: ``tasks.manifest.id_problem``), else ValueError."""
    from tasks.manifest import id_problem

    problem = id_problem(run_id)
    if problem is not None:
        raise ValueError(f"bad run id: {problem.replace('the id', 'the run id', 1)}")
    return run_id


def check_order(order: str) -> str:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    return order
