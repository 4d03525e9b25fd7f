"""Guidance components over the same velocity evaluations (the "branches" of one ODE step).

Each component declares the conditions it needs (`needs`), names the branches it evaluates
(`branches`, in batch order) and combines their velocities, by branch name, with its formula:
classifier-free guidance (Eq. 3), the paper's negative-prompting baseline (section 5.1) and
Negative Audio Guidance (Eq. 7). `GuidedVelocity` evaluates the branches, batched by default.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

import torch

from nag_model.controlnet import ReferenceTokens
from nag_model.network import PreprocessedConditions

DEFAULT_ALPHA = 4.5  # MMAudio's CFG strength
DEFAULT_BETA = 1.5  # Table A3 of the NAG paper
DEFAULT_CFG_STRENGTH, DEFAULT_NAG_BETA = DEFAULT_ALPHA, DEFAULT_BETA  # the earlier names

# Conditions a component can ask for (the fields of ConditionSet).
FULL, EMPTY, VIDEO_ONLY, NEGATIVE, REFERENCE = "full", "empty", "video_only", "negative", "reference"


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


Velocities = Mapping[str, torch.Tensor]  # branch name -> velocity (B, N, C)


@dataclass(frozen=True)
class ClassifierFreeGuidance:
    """Eq. (3): u = u(empty, empty) + alpha (u(V, C) - u(empty, empty))."""

    alpha: float = DEFAULT_ALPHA

    def needs(self, has_context: bool) -> frozenset[str]:
        return frozenset({FULL, EMPTY})

    def branches(self, c: ConditionSet) -> dict[str, Branch]:
        return {EMPTY: Branch(c.empty), FULL: Branch(c.full)}

    def combine(self, v: Velocities) -> torch.Tensor:
        return v[EMPTY] + self.alpha * (v[FULL] - v[EMPTY])


@dataclass(frozen=True)
class NegativePromptGuidance:
    """The negative-prompting baseline with C_neg = the earlier captions concatenated.

    form "paper" (section 5.1): u = u(empty, empty) + alpha (u(V, C_k) - u(empty, C_neg)).
    form "mmaudio" (MMAudio's negative prompt): u = u(empty, C_neg) + alpha (u(V, C_k) - u(empty, C_neg)).
    Without a negative prompt (step 1) both reduce to CFG.
    """

    alpha: float = DEFAULT_ALPHA
    form: Literal["paper", "mmaudio"] = "paper"

    def needs(self, has_context: bool) -> frozenset[str]:
        return frozenset({FULL, EMPTY, NEGATIVE}) if has_context else frozenset({FULL, EMPTY})

    def branches(self, c: ConditionSet) -> dict[str, Branch]:
        if c.negative is None:
            return ClassifierFreeGuidance(self.alpha).branches(c)
        if self.form == "paper":
            return {EMPTY: Branch(c.empty), FULL: Branch(c.full), NEGATIVE: Branch(c.negative)}
        return {NEGATIVE: Branch(c.negative), FULL: Branch(c.full)}

    def combine(self, v: Velocities) -> torch.Tensor:
        if NEGATIVE not in v:
            return ClassifierFreeGuidance(self.alpha).combine(v)
        u0 = v[EMPTY] if self.form == "paper" else v[NEGATIVE]
        return u0 + self.alpha * (v[FULL] - v[NEGATIVE])


@dataclass(frozen=True)
class NegativeAudioGuidance:
    """Eq. (7) of the NAG paper:
    u = u(empty, empty) + alpha (u(V, C) - u(empty, empty)) + beta (u(V, C) - u_psi(V, empty, x_ref)).

    With beta = 0 or no reference (step 1) it is CFG with strength alpha, bit for bit (the
    ControlNet branch is then not evaluated at all).
    """

    alpha: float = DEFAULT_ALPHA
    beta: float = DEFAULT_BETA

    def needs(self, has_context: bool) -> frozenset[str]:
        if self.beta == 0 or not has_context:
            return frozenset({FULL, EMPTY})
        return frozenset({FULL, EMPTY, VIDEO_ONLY, REFERENCE})

    def branches(self, c: ConditionSet) -> dict[str, Branch]:
        if self.beta == 0 or c.reference is None:
            return ClassifierFreeGuidance(self.alpha).branches(c)
        if c.video_only is None:
            raise ValueError("NAG needs the video-only conditions u(V, empty) for its ControlNet branch")
        return {EMPTY: Branch(c.empty), FULL: Branch(c.full), REFERENCE: Branch(c.video_only, c.reference)}

    def combine(self, v: Velocities) -> torch.Tensor:
        u = ClassifierFreeGuidance(self.alpha).combine(v)
        return u if REFERENCE not in v else u + self.beta * (v[FULL] - v[REFERENCE])


Guidance = ClassifierFreeGuidance | NegativePromptGuidance | NegativeAudioGuidance
