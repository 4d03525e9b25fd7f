"""Guidance components over the same velocity evaluations (the "branches" of one ODE step).

Each component names the branches it needs and combines their velocities with its formula:
classifier-free guidance (Eq. 3), the paper's negative-prompting baseline (section 5.1) and
Negative Audio Guidance (Eq. 7). `GuidedVelocity` evaluates the branches, batched by default.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch

from nag_model.controlnet import ReferenceTokens
from nag_model.network import PreprocessedConditions

DEFAULT_CFG_STRENGTH = 4.5  # MMAudio's default
DEFAULT_NAG_BETA = 1.5  # Table A3 of the NAG paper


@dataclass(frozen=True)
class Branch:
    """One velocity evaluation: base conditions, plus a reference for the ControlNet branch."""

    conditions: PreprocessedConditions
    reference: ReferenceTokens | None = None


@dataclass(frozen=True)
class ConditionSet:
    """Everything one track's guidance may need, preprocessed once per track (batch B each).

    full: u(V, C_k); empty: u(empty, empty); video_only: u(V, empty) (the ControlNet branch's
    conditions); negative: u(empty, C_neg) with the earlier captions; reference: the earlier
    tracks' mix for the ControlNet, or None at step 1.
    """

    full: PreprocessedConditions
    empty: PreprocessedConditions
    video_only: PreprocessedConditions | None = None
    negative: PreprocessedConditions | None = None
    reference: ReferenceTokens | None = None


@dataclass(frozen=True)
class ClassifierFreeGuidance:
    """Eq. (3): u = u(empty, empty) + w (u(V, C) - u(empty, empty))."""

    strength: float = DEFAULT_CFG_STRENGTH

    def branches(self, c: ConditionSet) -> list[Branch]:
        return [Branch(c.empty), Branch(c.full)]

    def combine(self, v: Sequence[torch.Tensor]) -> torch.Tensor:
        u0, uc = v
        return u0 + self.strength * (uc - u0)


@dataclass(frozen=True)
class NegativePromptGuidance:
    """The negative-prompting baseline with C_neg = the earlier captions concatenated.

    form "paper" (section 5.1): u = u(empty, empty) + w (u(V, C_k) - u(empty, C_neg)).
    form "mmaudio" (MMAudio's negative prompt): u = u(empty, C_neg) + w (u(V, C_k) - u(empty, C_neg)).
    Without a negative prompt (step 1) both reduce to CFG.
    """

    strength: float = DEFAULT_CFG_STRENGTH
    form: Literal["paper", "mmaudio"] = "paper"

    def branches(self, c: ConditionSet) -> list[Branch]:
        if c.negative is None:
            return ClassifierFreeGuidance(self.strength).branches(c)
        if self.form == "paper":
            return [Branch(c.empty), Branch(c.full), Branch(c.negative)]
        return [Branch(c.negative), Branch(c.full)]

    def combine(self, v: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(v) == 2:
            u0, uc = v
            return u0 + self.strength * (uc - u0)
        u0, uc, un = v
        return u0 + self.strength * (uc - un)


@dataclass(frozen=True)
class NegativeAudioGuidance:
    """Eq. (7) of the NAG paper:
    u = u(empty, empty) + alpha (u(V, C) - u(empty, empty)) + beta (u(V, C) - u_psi(V, empty, x_ref)).

    With beta = 0 or no reference (step 1) it is CFG with strength alpha, bit for bit (the
    ControlNet branch is then not evaluated at all).
    """

    alpha: float = DEFAULT_CFG_STRENGTH
    beta: float = DEFAULT_NAG_BETA

    def _is_cfg(self, c: ConditionSet) -> bool:
        return self.beta == 0 or c.reference is None

    def branches(self, c: ConditionSet) -> list[Branch]:
        if self._is_cfg(c):
            return ClassifierFreeGuidance(self.alpha).branches(c)
        if c.video_only is None:
            raise ValueError("NAG needs the video-only conditions u(V, empty) for its ControlNet branch")
        return [Branch(c.empty), Branch(c.full), Branch(c.video_only, c.reference)]

    def combine(self, v: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(v) == 2:
            return ClassifierFreeGuidance(self.alpha).combine(v)
        u0, uc, upsi = v
        return u0 + self.alpha * (uc - u0) + self.beta * (uc - upsi)


Guidance = ClassifierFreeGuidance | NegativePromptGuidance | NegativeAudioGuidance
