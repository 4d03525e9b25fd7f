"""Evaluate a guidance component's velocity branches at one ODE step.

All branches share the same noisy latent, so its input projection runs once; in batched mode
(the default) every branch then goes through ONE forward of the base trunk, and the ControlNet
runs only on the rows of branches that carry a reference.
"""
from __future__ import annotations

import torch

from nag_model.controlnet import AudioControlNet, ReferenceTokens
from nag_model.guidance import ConditionSet, Guidance
from nag_model.network import MMAudio, PreprocessedConditions


class GuidedVelocity:
    """velocity_fn(t, x) for the samplers: x (B, N, C), t a scalar tensor -> guided velocity (B, N, C)."""

    def __init__(self, base: MMAudio, guidance: Guidance, conditions: ConditionSet, *,
                 controlnet: AudioControlNet | None = None, batched: bool = True):
        self.base, self.controlnet, self.guidance, self.batched = base, controlnet, guidance, batched
        self.branches = guidance.branches(conditions)
        self.batch_size = conditions.full.batch_size
        if any(b.reference is not None for b in self.branches) and controlnet is None:
            raise ValueError(f"{type(guidance).__name__} needs an AudioControlNet for its reference branch")
        sizes = {b.conditions.batch_size for b in self.branches}
        if sizes != {self.batch_size}:
            raise ValueError(f"all branches must share the batch size {self.batch_size}, got {sorted(sizes)}")
        # Concatenate the per-branch conditions once per track, not at every step.
        self._all_conditions = PreprocessedConditions.cat([b.conditions for b in self.branches])
        self._ref_rows = [i for i, b in enumerate(self.branches) if b.reference is not None]
        self._reference = ReferenceTokens.cat([self.branches[i].reference for i in self._ref_rows]) if self._ref_rows else None

    def __call__(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.batch_size:
            raise ValueError(f"latent batch {x.shape[0]} != conditions batch {self.batch_size}")
        h = self.base.embed_latent(x)  # (B, N, D), shared by every branch
        if self.batched:
            velocities = self._batched(t, x, h)
        else:
            velocities = [self._single(t, x, h, b.conditions, b.reference) for b in self.branches]
        return self.guidance.combine(velocities)

    def _single(self, t, x, h, conditions, reference):
        tt = self.base._time(t, x)
        global_c, extended_c = self.base.condition_vectors(tt, conditions)
        control = None if reference is None else self.controlnet(h, global_c, self.base.latent_rot, reference)
        return self.base.run_blocks(h, conditions, global_c, extended_c, control)

    def _batched(self, t, x, h) -> list[torch.Tensor]:
        nb, b = len(self.branches), self.batch_size
        hh = h.repeat(nb, 1, 1)  # (nb B, N, D)
        tt = self.base._time(t, hh)
        global_c, extended_c = self.base.condition_vectors(tt, self._all_conditions)
        control = None
        if self._reference is not None:
            rows = torch.cat([torch.arange(i * b, (i + 1) * b) for i in self._ref_rows])
            residuals = self.controlnet(h.repeat(len(self._ref_rows), 1, 1), global_c[rows], self.base.latent_rot,
                                        self._reference)
            if self._ref_rows == [nb - 1]:  # the reference rows are the last ones: run_blocks adds to that tail
                control = residuals
            else:
                control = []
                for r in residuals:  # zero residuals on the rows without a reference
                    full = torch.zeros_like(hh)
                    full[rows] = r
                    control.append(full)
        out = self.base.run_blocks(hh, self._all_conditions, global_c, extended_c, control)
        return list(out.split(b))
