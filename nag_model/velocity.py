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
        named = guidance.branches(conditions)
        self.names, self.branches = list(named), list(named.values())
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
            velocities = self._batched(t, h)
        else:
            velocities = [self._single(t, h, b.conditions, b.reference) for b in self.branches]
        return self.guidance.combine(dict(zip(self.names, velocities, strict=True)))

    def _control(self, tokens: torch.Tensor, reference: ReferenceTokens):
        """The ControlNet hook of `MMAudio.velocity`: global_c -> residuals."""
        return lambda global_c: self.controlnet(tokens, global_c, self.base.latent_rot, reference)

    def _single(self, t, h, conditions, reference):
        return self.base.velocity(h, t, conditions, None if reference is None else self._control(h, reference))

    def _batched(self, t, h) -> list[torch.Tensor]:
        nb, b = len(self.branches), self.batch_size
        hh = h.repeat(nb, 1, 1)  # (nb B, N, D)
        control = None
        if self._reference is not None:
            rows = torch.cat([torch.arange(i * b, (i + 1) * b) for i in self._ref_rows])
            on_rows = self._control(h.repeat(len(self._ref_rows), 1, 1), self._reference)
            if self._ref_rows == [nb - 1]:  # the reference rows are the last ones: run_blocks adds to that tail
                def control(global_c):
                    return on_rows(global_c[rows])
            else:
                def control(global_c):  # zero residuals on the rows without a reference
                    out = []
                    for r in on_rows(global_c[rows]):
                        full = torch.zeros_like(hh)
                        full[rows] = r
                        out.append(full)
                    return out
        return list(self.base.velocity(hh, t, self._all_conditions, control).split(b))
