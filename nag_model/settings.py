"""How one track is generated: the one settings type, from the notebook to the tables.

The defaults and the guidance component of each method live here only (the method names themselves in
the torch-free :mod:`common.methods`, which storage shares): the flows, the CLI and the ``tracks``
columns derive theirs from :class:`TrackSettings` and :data:`GUIDANCE`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Literal

from audio.loudness import DEFAULT_TARGET_LUFS
from common.methods import INDEPENDENT, METHODS, NAG, NEGATIVE_PROMPT
from nag_model.flow_matching import DEFAULT_STEPS
from nag_model.guidance import (DEFAULT_ALPHA, DEFAULT_BETA, ClassifierFreeGuidance, Guidance, NegativeAudioGuidance,
                                NegativePromptGuidance)

Method = str  # one of METHODS

# method -> its guidance component, built from the settings (section 5.1 of the NAG paper)
GUIDANCE: dict[str, Callable[["TrackSettings"], Guidance]] = {
    NAG: lambda s: NegativeAudioGuidance(s.alpha, s.beta),  # Eq. (7)
    INDEPENDENT: lambda s: ClassifierFreeGuidance(s.alpha),  # Eq. (3), each track alone
    NEGATIVE_PROMPT: lambda s: NegativePromptGuidance(s.alpha, s.negative_prompt_form),
}
assert tuple(GUIDANCE) == METHODS, "every method name has exactly one guidance component"


@dataclass(frozen=True)
class TrackSettings:
    """How one track is generated. alpha is the CFG strength of every method; beta only matters for NAG."""

    method: Method = NAG
    alpha: float = DEFAULT_ALPHA
    beta: float = DEFAULT_BETA
    steps: int = DEFAULT_STEPS
    target_lufs: float = DEFAULT_TARGET_LUFS
    negative_prompt_form: Literal["paper", "mmaudio"] = "paper"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.alpha < 0 or self.beta < 0:
            raise ValueError(f"alpha and beta must be >= 0, got alpha={self.alpha}, beta={self.beta}")

    def guidance(self) -> Guidance:
        """This method's guidance component."""
        return GUIDANCE[self.method](self)

    def uses(self, name: str) -> bool:
        """Whether this method's guidance reads the setting ``name`` (``beta`` is NAG's only)."""
        return name in {f.name for f in fields(self.guidance())}

    def row_fields(self) -> dict:
        """The ``tracks`` columns these settings fill; beta is null for methods that do not use it."""
        return {"method": self.method, "alpha": float(self.alpha),
                "beta": float(self.beta) if self.uses("beta") else None, "steps": int(self.steps)}


DEFAULTS = TrackSettings()
