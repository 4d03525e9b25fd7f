"""The MMAudio flow transformer, written from the published description and checkpoint layout.

`preprocess_conditions` runs once per clip; `predict_flow` runs at every ODE step. The state dict
matches the official checkpoints key for key (see `nag_model.checkpoint`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nag_model.blocks import FinalBlock, JointBlock, MMDitSingleBlock
from nag_model.config import SYNC_TOKENS_PER_SEGMENT, MMAudioConfig, SeqLengths, get_config
from nag_model.layers import MLP, ChannelLastConv1d, ConvMLP, TimestepEmbedder, rope_table


@dataclass(frozen=True)
class PreprocessedConditions:
    """Projected conditions of one batch: clip_f (B, Lc, D), sync_f (B, N, D), text_f (B, Lt, D),
    clip_f_c and text_f_c (B, D)."""

    clip_f: torch.Tensor
    sync_f: torch.Tensor
    text_f: torch.Tensor
    clip_f_c: torch.Tensor
    text_f_c: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.clip_f.shape[0]

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The fields, in order."""
        return tuple(getattr(self, f.name) for f in fields(self))

    def row(self, i: int) -> "PreprocessedConditions":
        """Row i of the batch (views)."""
        return PreprocessedConditions(*(t[i:i + 1] for t in self.tensors()))

    def expand(self, batch_size: int) -> "PreprocessedConditions":
        """Broadcast batch-1 conditions to `batch_size` (views, no copies)."""
        if self.batch_size == batch_size:
            return self
        if self.batch_size != 1:
            raise ValueError(f"can only expand batch-1 conditions, these have batch {self.batch_size}")
        return PreprocessedConditions(*(getattr(self, f.name).expand(batch_size, *getattr(self, f.name).shape[1:])
                                        for f in fields(self)))

    @staticmethod
    def cat(items: Sequence["PreprocessedConditions"]) -> "PreprocessedConditions":
        """Concatenate along the batch dimension."""
        return PreprocessedConditions(*(torch.cat([getattr(c, f.name) for c in items]) for f in fields(PreprocessedConditions)))


class MMAudio(nn.Module):
    """MMAudio network: joint (audio, CLIP, text) blocks, then audio-only fused blocks.

    Args:
        config: architecture (`nag_model.config.PRESETS` or a custom `MMAudioConfig`).
        seq: token counts; defaults to `config.seq_lengths()` (8 s).
    """

    def __init__(self, config: MMAudioConfig, seq: SeqLengths | None = None):
        super().__init__()
        self.config = config
        d, c = config.hidden_dim, config
        act = nn.SiLU if c.v2 else nn.SELU
        self.audio_input_proj = nn.Sequential(
            ChannelLastConv1d(c.latent_dim, d, kernel_size=7, padding=3), act(),
            ConvMLP(d, d * 4, kernel_size=7, padding=3))
        clip_proj = [nn.Linear(c.clip_dim, d)] + ([nn.SiLU()] if c.v2 else []) + [ConvMLP(d, d * 4, kernel_size=3, padding=1)]
        self.clip_input_proj = nn.Sequential(*clip_proj)
        self.sync_input_proj = nn.Sequential(
            ChannelLastConv1d(c.sync_dim, d, kernel_size=7, padding=3), act(),
            ConvMLP(d, d * 4, kernel_size=3, padding=1))
        text_proj = [nn.Linear(c.text_dim, d)] + ([nn.SiLU()] if c.v2 else []) + [MLP(d, d * 4)]
        self.text_input_proj = nn.Sequential(*text_proj)
        self.clip_cond_proj = nn.Linear(d, d)
        self.text_cond_proj = nn.Linear(d, d)
        self.global_cond_mlp = MLP(d, d * 4)
        self.final_layer = FinalBlock(d, c.latent_dim)
        if c.v2:
            self.t_embed = TimestepEmbedder(d, frequency_embedding_size=d, max_period=1)
        else:
            self.t_embed = TimestepEmbedder(d, frequency_embedding_size=256, max_period=10_000)
        self.joint_blocks = nn.ModuleList([
            JointBlock(d, c.num_heads, c.mlp_ratio, pre_only=(i == c.joint_depth - 1)) for i in range(c.joint_depth)])
        self.fused_blocks = nn.ModuleList([
            MMDitSingleBlock(d, c.num_heads, c.mlp_ratio, kernel_size=3, padding=1) for _ in range(c.fused_depth)])
        self.sync_pos_emb = nn.Parameter(torch.zeros(1, 1, SYNC_TOKENS_PER_SEGMENT, c.sync_dim))
        self.latent_mean = nn.Parameter(torch.full((1, 1, c.latent_dim), float("nan")), requires_grad=False)
        self.latent_std = nn.Parameter(torch.full((1, 1, c.latent_dim), float("nan")), requires_grad=False)
        self.empty_string_feat = nn.Parameter(torch.zeros(c.text_seq_len, c.text_dim), requires_grad=False)
        self.empty_clip_feat = nn.Parameter(torch.zeros(1, c.clip_dim))
        self.empty_sync_feat = nn.Parameter(torch.zeros(1, c.sync_dim))
        self.initialize_weights()
        self.update_seq_lengths(seq or config.seq_lengths())

    # ------------------------------------------------------------------ setup
    def initialize_weights(self) -> None:
        """Xavier linears, zero adaLN and output layers (DiT), small random null tokens."""
        def basic(m: nn.Module) -> None:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.apply(basic)
        for m in self.modules():
            if hasattr(m, "adaLN_modulation"):
                nn.init.zeros_(m.adaLN_modulation[-1].weight)
                nn.init.zeros_(m.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.conv.weight)
        nn.init.zeros_(self.final_layer.conv.bias)
        nn.init.normal_(self.t_embed.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embed.mlp[2].weight, std=0.02)
        nn.init.normal_(self.sync_pos_emb, std=0.02)
        nn.init.normal_(self.empty_clip_feat, std=0.02)
        nn.init.normal_(self.empty_sync_feat, std=0.02)

    def update_seq_lengths(self, seq: SeqLengths) -> None:
        """Set token counts for a new duration and recompute the rotary tables (config untouched)."""
        if seq.sync % SYNC_TOKENS_PER_SEGMENT:
            raise ValueError(f"sync length must be a multiple of {SYNC_TOKENS_PER_SEGMENT}, got {seq.sync}")
        self.seq = seq
        device = self.sync_pos_emb.device
        head_dim = self.config.hidden_dim // self.config.num_heads
        self.register_buffer("latent_rot", rope_table(seq.latent, head_dim).to(device), persistent=False)
        self.register_buffer("clip_rot", rope_table(seq.clip, head_dim, freq_scale=seq.latent / seq.clip).to(device),
                             persistent=False)

    def set_duration(self, duration: float) -> None:
        """Convenience: `update_seq_lengths(config.seq_lengths(duration))`."""
        self.update_seq_lengths(self.config.seq_lengths(duration))

    @property
    def dtype(self) -> torch.dtype:
        """The precision of the weights (the latent statistics stay float32, see `nag_model.device`)."""
        return self.audio_input_proj[0].weight.dtype

    # ------------------------------------------------------------ latent stats
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Raw codec latent -> the standardised latent the flow is trained on (new tensor)."""
        return (x - self.latent_mean) / self.latent_std

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.latent_std + self.latent_mean

    # ------------------------------------------------------------- conditions
    def _check(self, name: str, x: torch.Tensor, length: int, dim: int) -> None:
        if x.ndim != 3 or x.shape[1] != length or x.shape[2] != dim:
            raise ValueError(f"{name} must have shape (B, {length}, {dim}) for {self.config.name} at "
                             f"{self.seq}, got {tuple(x.shape)}")

    def preprocess_conditions(self, clip_f: torch.Tensor, sync_f: torch.Tensor, text_f: torch.Tensor) -> PreprocessedConditions:
        """clip_f (B, Lc, clip_dim), sync_f (B, Ls, sync_dim), text_f (B, Lt, text_dim) -> projected conditions."""
        c, seq = self.config, self.seq
        self._check("clip_f", clip_f, seq.clip, c.clip_dim)
        self._check("sync_f", sync_f, seq.sync, c.sync_dim)
        self._check("text_f", text_f, c.text_seq_len, c.text_dim)
        b = clip_f.shape[0]
        if sync_f.shape[0] != b or text_f.shape[0] != b:
            raise ValueError(f"batch sizes differ: clip {b}, sync {sync_f.shape[0]}, text {text_f.shape[0]}")
        clip_f, sync_f, text_f = (x.to(self.dtype) for x in (clip_f, sync_f, text_f))
        sync_f = sync_f.view(b, -1, SYNC_TOKENS_PER_SEGMENT, c.sync_dim) + self.sync_pos_emb  # (B, S, 8, Ds)
        sync_f = sync_f.flatten(1, 2)  # (B, Ls, Ds)
        clip_f = self.clip_input_proj(clip_f)  # (B, Lc, D)
        sync_f = self.sync_input_proj(sync_f)  # (B, Ls, D)
        text_f = self.text_input_proj(text_f)  # (B, Lt, D)
        sync_f = F.interpolate(sync_f.transpose(1, 2), size=seq.latent, mode="nearest-exact").transpose(1, 2)  # (B, N, D)
        clip_f_c = self.clip_cond_proj(clip_f.mean(dim=1))
        text_f_c = self.text_cond_proj(text_f.mean(dim=1))
        return PreprocessedConditions(clip_f, sync_f, text_f, clip_f_c, text_f_c)

    def get_empty_conditions(self, batch_size: int = 1, negative_text_features: torch.Tensor | None = None) -> PreprocessedConditions:
        """Null video (learned tokens) and empty text, or the given negative text features (B, Lt, Dt)."""
        seq = self.seq
        clip = self.empty_clip_feat.expand(seq.clip, -1)[None]  # (1, Lc, Dc)
        sync = self.empty_sync_feat.expand(seq.sync, -1)[None]  # (1, Ls, Ds)
        if negative_text_features is None:
            return self.preprocess_conditions(clip, sync, self.empty_string_feat[None]).expand(batch_size)
        b = negative_text_features.shape[0]
        return self.preprocess_conditions(clip.expand(b, -1, -1), sync.expand(b, -1, -1), negative_text_features)

    def get_empty_video_conditions(self, text_f: torch.Tensor) -> PreprocessedConditions:
        """Null video with the given text features (B, Lt, Dt) — the audio-text training pairs."""
        b = text_f.shape[0]
        clip = self.empty_clip_feat.expand(b, self.seq.clip, -1)
        sync = self.empty_sync_feat.expand(b, self.seq.sync, -1)
        return self.preprocess_conditions(clip, sync, text_f)

    # ------------------------------------------------------------------- flow
    def embed_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """Noisy latent (B, N, C) -> audio tokens (B, N, D)."""
        self._check("latent", latent, self.seq.latent, self.config.latent_dim)
        return self.audio_input_proj(latent.to(self.dtype))

    def condition_vectors(self, t: torch.Tensor, conditions: PreprocessedConditions,
                          global_cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """global_c (B, 1, D) from time, CLIP and text; extended_c (B, N, D) adds the sync features.
        `global_cond` (B, D): the time-free part, `global_cond(conditions)`, when computed beforehand."""
        global_c = self.global_cond(conditions) if global_cond is None else global_cond  # (B, D)
        global_c = self.t_embed(t).unsqueeze(1) + global_c.unsqueeze(1)  # (B, 1, D)
        return global_c, global_c + conditions.sync_f

    def global_cond(self, conditions: PreprocessedConditions) -> torch.Tensor:
        """The time-free part of the global condition vector (B, D): it depends on the conditions only."""
        return self.global_cond_mlp(conditions.clip_f_c + conditions.text_f_c)

    def run_blocks(self, x: torch.Tensor, conditions: PreprocessedConditions, global_c: torch.Tensor,
                   extended_c: torch.Tensor, control: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """Transformer trunk and final layer. `control` holds ControlNet residuals (R, N, D); block i
        receives `control[i // ceil(depth / len(control))]` after it runs (SD3.5-ControlNet wiring).
        With R < B the residuals belong to the last R rows of x (the others get none)."""
        interval = math.ceil(self.config.depth / len(control)) if control else 0
        clip_f, text_f = conditions.clip_f, conditions.text_f
        for i, block in enumerate(self.joint_blocks):
            x, clip_f, text_f = block(x, clip_f, text_f, global_c, extended_c, self.latent_rot, self.clip_rot)
            if control:
                x = _add_control(x, control[i // interval])
        for j, block in enumerate(self.fused_blocks):
            x = block(x, extended_c, self.latent_rot)
            if control:
                x = _add_control(x, control[(j + self.config.joint_depth) // interval])
        return self.final_layer(x, global_c)

    def velocity(self, tokens: torch.Tensor, t: torch.Tensor | float, conditions: PreprocessedConditions,
                 control: Callable[[torch.Tensor], Sequence[torch.Tensor]] | None = None, *,
                 global_cond: torch.Tensor | None = None) -> torch.Tensor:
        """One velocity evaluation from embedded audio tokens: the one place the trunk is run.

        Args:
            tokens: `embed_latent(latent)`, (B, N, D); embedded once and shared by guidance branches.
            t: flow time, a scalar or (B,) in [0, 1] (0 is noise, 1 is data).
            conditions: preprocessed conditions of batch B.
            control: a ControlNet hook: global_c (B, 1, D) -> residuals, each (B, N, D), or (R, N, D)
                for the last R rows only (see `run_blocks`).
            global_cond: `global_cond(conditions)` (B, D), when computed once for many steps.

        Returns:
            The velocity (B, N, C).
        """
        # Time stays float32 whatever the weights' precision (the embedder computes in float32).
        global_c, extended_c = self.condition_vectors(self.flow_time(t, tokens, torch.float32), conditions, global_cond)
        residuals = None if control is None else control(global_c)
        return self.run_blocks(tokens, conditions, global_c, extended_c, residuals)

    def predict_flow(self, latent: torch.Tensor, t: torch.Tensor, conditions: PreprocessedConditions) -> torch.Tensor:
        """Velocity (B, N, C) at flow time t (B,) in [0, 1] (0 is noise, 1 is data)."""
        return self.velocity(self.embed_latent(latent), t, conditions)

    def forward(self, latent: torch.Tensor, clip_f: torch.Tensor, sync_f: torch.Tensor, text_f: torch.Tensor,
                t: torch.Tensor) -> torch.Tensor:
        """Official argument order: latent (B, N, C), clip_f, sync_f, text_f, t (B,) -> velocity (B, N, C)."""
        return self.predict_flow(latent, t, self.preprocess_conditions(clip_f, sync_f, text_f))

    @staticmethod
    def flow_time(t: torch.Tensor | float, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Broadcast t to (B,) in `dtype`, by default the dtype of `like` (B, ...), as the official sampler does."""
        t = torch.as_tensor(t, device=like.device)
        if t.ndim == 0:
            t = t.expand(like.shape[0])
        if t.shape != (like.shape[0],):
            raise ValueError(f"t must be a scalar or shape ({like.shape[0]},), got {tuple(t.shape)}")
        return t.to(like.dtype if dtype is None else dtype)


def _add_control(x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """x (B, N, D) plus a ControlNet residual for all rows, or for the last R rows when it has R < B."""
    r = residual.shape[0]
    if r == x.shape[0]:
        return x + residual
    if r > x.shape[0]:
        raise ValueError(f"control residual has {r} rows, more than the {x.shape[0]} of the latent")
    if torch.is_grad_enabled():
        return torch.cat([x[:-r], x[-r:] + residual])
    x[-r:] += residual  # x is this forward's own intermediate; no autograd under inference
    return x


def build_mmaudio(preset: str | MMAudioConfig = "small_16k", duration: float | None = None) -> MMAudio:
    """Build an MMAudio network from a preset name (random weights; load a checkpoint separately)."""
    config = get_config(preset)
    return MMAudio(config, config.seq_lengths(duration))
