"""Guided sampling of many tracks at once: the branches of every track in one forward.

A `PreparedTrack` is one track's guided-sampling input, preprocessed once per track: its guidance
component, the conditions of each of its branches (one row per branch), the ControlNet reference
of its last branch (NAG after track 1) and its initial noise. A `TrackBatch` lays the rows of
several prepared tracks out for one forward of the base trunk:

- tracks are grouped by guidance kind and branch count (CFG, NAG without a reference, negative
  prompting, NAG with a reference), the NAG-with-reference group last, so that the ControlNet's
  rows are the last rows of the batch and its residuals are added to a contiguous tail;
- within a group, rows are ordered branch-major: [branch 0 of every track, branch 1 of every
  track, ...], so each group's velocities combine with one vectorised call of its guidance formula,
  whose strengths are (tracks, 1, 1) tensors;
- each track keeps its own seed, conditions, method and strengths; only the number of sampler
  steps must match (`nag_model.generator` groups requests by it).

The Euler state stays float32 whatever the network's precision; branch velocities are cast to
float32 before they are combined. With one track, the arithmetic is exactly that of
`nag_model.velocity.GuidedVelocity` (batched) over the same conditions.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import torch

from nag_model.controlnet import AudioControlNet, ReferenceTokens
from nag_model.flow_matching import euler
from nag_model.guidance import ConditionSet, Guidance
from nag_model.network import MMAudio, PreprocessedConditions

_CONDITION_FIELDS = [f.name for f in dataclasses.fields(PreprocessedConditions)]


@dataclass(frozen=True)
class PreparedTrack:
    """One track's guided sampling inputs.

    guidance: the component whose formula combines the branches; names: the branch names, in
    `guidance.branches` order; conditions: (n_branches, ...) one row per branch in that order;
    reference: the last branch's ControlNet reference (batch 1) or None; x0: the initial noise
    (1, N, C) float32.
    """

    guidance: Guidance
    names: tuple[str, ...]
    conditions: PreprocessedConditions
    reference: ReferenceTokens | None
    x0: torch.Tensor

    @classmethod
    def from_condition_set(cls, guidance: Guidance, conditions: ConditionSet, x0: torch.Tensor) -> "PreparedTrack":
        """Lay out the branches `guidance` asks of `conditions` (each of batch 1)."""
        named = guidance.branches(conditions)
        branches = list(named.values())
        if any(b.conditions.batch_size != 1 for b in branches):
            raise ValueError("a prepared track holds one track: every branch must have batch 1")
        refs = [i for i, b in enumerate(branches) if b.reference is not None]
        if refs and refs != [len(branches) - 1]:
            raise ValueError("only the last branch of a track may carry a ControlNet reference")
        return cls(guidance, tuple(named), PreprocessedConditions.cat([b.conditions for b in branches]),
                   branches[-1].reference if refs else None, x0)

    @property
    def num_branches(self) -> int:
        return self.conditions.batch_size

    @property
    def group_key(self) -> tuple:
        """Tracks with equal keys combine their branches with one vectorised formula."""
        g = self.guidance
        fixed = tuple((f.name, getattr(g, f.name)) for f in dataclasses.fields(g) if not _is_strength(getattr(g, f.name)))
        return (self.reference is not None, type(g).__name__, fixed, self.names)


def _is_strength(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class _Group:
    kind: type
    fixed: dict  # non-numeric fields of the guidance (e.g. the negative-prompt form)
    strengths: tuple[str, ...]  # numeric fields, held as (tracks, 1, 1) tensors in TrackBatch.tensors
    names: tuple[str, ...]  # the branch names, in row-block order
    first_row: int
    num_branches: int
    first_track: int
    num_tracks: int


class TrackBatch:
    """The rows of several prepared tracks, laid out for one forward (see the module docstring).

    All tensors the sampler reads live in `self.tensors` (a flat dict), so a CUDA graph can capture
    the sampler once per layout (`signature`) and be fed new tracks by copying into them.
    """

    def __init__(self, base: MMAudio, controlnet: AudioControlNet | None, tracks: Sequence[PreparedTrack]):
        if not tracks:
            raise ValueError("a TrackBatch needs at least one track")
        self.base, self.controlnet = base, controlnet
        keys = [t.group_key for t in tracks]
        first_seen = {k: i for i, k in reversed(list(enumerate(keys)))}
        # Reference groups last; otherwise in order of first appearance; stable within a group.
        self.order = sorted(range(len(tracks)), key=lambda i: (keys[i][0], first_seen[keys[i]]))
        ref_keys = {k for k in keys if k[0]}
        if len(ref_keys) > 1:
            raise ValueError(f"tracks with a ControlNet reference must share one guidance kind, got {sorted(ref_keys)}")
        if ref_keys and controlnet is None:
            raise ValueError("tracks with a ControlNet reference need an AudioControlNet")
        ordered = [tracks[i] for i in self.order]
        device = ordered[0].x0.device

        rows: list[PreprocessedConditions] = []
        row_track: list[int] = []
        self.groups: list[_Group] = []
        self.tensors: dict[str, torch.Tensor] = {}
        start = 0
        while start < len(ordered):
            end = start
            while end < len(ordered) and ordered[end].group_key == ordered[start].group_key:
                end += 1
            members = ordered[start:end]
            nb, g0 = members[0].num_branches, members[0].guidance
            strengths = tuple(f.name for f in dataclasses.fields(g0) if _is_strength(getattr(g0, f.name)))
            fixed = {f.name: getattr(g0, f.name) for f in dataclasses.fields(g0) if f.name not in strengths}
            gi = len(self.groups)
            for name in strengths:  # float32 (tracks, 1, 1), exactly the Python float rounded as a scalar is
                values = [float(getattr(t.guidance, name)) for t in members]
                self.tensors[f"g{gi}.{name}"] = host_tensor(device, values, torch.float32).view(-1, 1, 1)
            self.groups.append(_Group(type(g0), fixed, strengths, members[0].names, len(rows), nb, start, end - start))
            for j in range(nb):  # branch-major rows
                for m, t in enumerate(members):
                    rows.append(t.conditions.row(j))
                    row_track.append(start + m)
            start = end

        conditions = PreprocessedConditions.cat(rows)
        for name in _CONDITION_FIELDS:
            self.tensors[name] = getattr(conditions, name)
        # The global vector without time (rows, D): it depends on the conditions only, so it is
        # computed once here instead of at every step and handed to MMAudio.velocity.
        self.tensors["global_cond"] = base.global_cond(conditions)
        self.tensors["row_track"] = host_tensor(device, row_track, torch.long)
        self.tensors["x0"] = torch.cat([t.x0 for t in ordered]).float()
        refs = [t.reference for t in ordered if t.reference is not None]
        self.num_ref = len(refs)
        if refs:
            reference = ReferenceTokens.cat(refs)
            for i, (k, v) in enumerate(zip(reference.keys, reference.values)):
                self.tensors[f"ref.k{i}"], self.tensors[f"ref.v{i}"] = k, v
        self.num_tracks, self.num_rows = len(ordered), len(rows)

    # ------------------------------------------------------------------ layout
    @property
    def signature(self) -> tuple:
        """Everything that decides the sequence of kernels the sampler runs (not the values)."""
        groups = tuple((g.kind.__name__, tuple(sorted(g.fixed.items())), g.names, g.num_tracks) for g in self.groups)
        tensors = tuple((k, tuple(v.shape), v.dtype, str(v.device)) for k, v in self.tensors.items())
        return groups, tensors, self.base.dtype

    def unsort(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Split a (tracks, ...) result in batch order back into the order the tracks were given."""
        out: list[torch.Tensor | None] = [None] * self.num_tracks
        for position, i in enumerate(self.order):
            out[i] = x[position:position + 1]
        return out  # type: ignore[return-value]

    def clone(self) -> "TrackBatch":
        """A copy whose tensors are new storage (the static inputs of a captured graph)."""
        twin = object.__new__(TrackBatch)
        twin.__dict__.update(self.__dict__)
        twin.tensors = {k: v.clone() for k, v in self.tensors.items()}
        return twin

    def copy_(self, other: "TrackBatch") -> None:
        """Copy the values of a batch with the same signature into this one's tensors."""
        for k, v in self.tensors.items():
            v.copy_(other.tensors[k], non_blocking=True)

    # --------------------------------------------------------------- sampling
    def _conditions(self) -> PreprocessedConditions:
        return PreprocessedConditions(*(self.tensors[name] for name in _CONDITION_FIELDS))

    def _reference(self) -> ReferenceTokens:
        n = len(self.controlnet.blocks)
        return ReferenceTokens(tuple(self.tensors[f"ref.k{i}"] for i in range(n)),
                               tuple(self.tensors[f"ref.v{i}"] for i in range(n)))

    def velocity(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Guided velocity of every track: t a scalar tensor, x (T, N, C) float32 -> (T, N, C) float32."""
        base, tensors = self.base, self.tensors
        conditions = self._conditions()
        h = base.embed_latent(x)  # (T, N, D), once per track, shared by its branches
        hh = h.index_select(0, tensors["row_track"])  # (rows, N, D)
        control = None
        if self.num_ref:  # the ControlNet runs on the reference rows only: the last num_ref rows and tracks
            r, reference = self.num_ref, self._reference()

            def control(global_c):  # (rows, 1, D) -> residuals (r, N, D) for the tail rows
                return self.controlnet(h[-r:], global_c[-r:], base.latent_rot, reference)
        out = base.velocity(hh, t, conditions, control, global_cond=tensors["global_cond"]).float()  # (rows, N, C)
        velocities = []
        for gi, g in enumerate(self.groups):
            n = g.num_tracks
            branches = out[g.first_row:g.first_row + g.num_branches * n].unflatten(0, (g.num_branches, n)).unbind(0)
            guidance = g.kind(**g.fixed, **{name: tensors[f"g{gi}.{name}"] for name in g.strengths})
            velocities.append(guidance.combine(dict(zip(g.names, branches, strict=True))))
        return velocities[0] if len(velocities) == 1 else torch.cat(velocities)

    def sample(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Integrate every track from its x0 over `timesteps` (Euler) -> x1 (T, N, C) float32, batch order."""
        return euler(self.velocity, self.tensors["x0"], timesteps)


def host_tensor(device: torch.device, values: list, dtype: torch.dtype) -> torch.Tensor:
    """A small tensor from host values on `device`, without waiting for the device's queued work."""
    t = torch.tensor(values, dtype=dtype)
    if device.type != "cuda":
        return t.to(device)
    # Reached only on a GPU (tests/nag_model/test_gpu.py), so not mutated: no CPU test can tell this line's mutants.
    return t.pin_memory().to(device, non_blocking=True)  # pragma: no mutate

