"""Conditional flow matching as MMAudio trains and samples it (t = 0 is noise, t = 1 is data).

x_t = (1 - t) x0 + t x1 with target velocity x1 - x0 (sigma_min = 0), logit-normal training
times, mean-squared loss averaged over (N, C) then the batch, and the Euler sampler.
"""
from __future__ import annotations

from typing import Callable

import torch

DEFAULT_STEPS = 25  # Euler steps of MMAudio's sampler

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (t: scalar tensor, x (B, N, C)) -> (B, N, C)


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x0 + t x1 for t (B,)."""
    t = t.view(-1, *([1] * (x0.ndim - 1)))
    return (1 - t) * x0 + t * x1


def target_velocity(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """u = x1 - x0, the velocity of the straight path."""
    return x1 - x0


def sample_logit_normal(n: int, *, mean: float = 0.0, std: float = 1.0, generator: torch.Generator | None = None,
                        device: torch.device | str = "cpu") -> torch.Tensor:
    """t = sigmoid(z), z ~ N(mean, std^2): MMAudio's training-time distribution."""
    z = torch.randn(n, generator=generator, device=device) * std + mean
    return torch.sigmoid(z)


def flow_matching_loss(predicted: torch.Tensor, x0: torch.Tensor, x1: torch.Tensor,
                       frame_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Squared error to x1 - x0, averaged over (N, C) per sample and then over the batch.

    frame_weight (B, N), if given, weights each latent frame's error (mean over C) before the mean over N.
    """
    error = (predicted - target_velocity(x0, x1)).pow(2)
    if frame_weight is None:
        return error.mean(dim=(1, 2)).mean()
    return (error.mean(dim=2) * frame_weight).mean(dim=1).mean()


def time_grid(num_steps: int = DEFAULT_STEPS, device: torch.device | str = "cpu") -> torch.Tensor:
    """Uniform grid of num_steps + 1 times from 0 to 1."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    return torch.linspace(0.0, 1.0, num_steps + 1, device=device)


def euler(velocity_fn: VelocityFn, x0: torch.Tensor, timesteps: torch.Tensor, *,
          callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Integrate dx/dt = v(t, x) from timesteps[0] to timesteps[-1] with explicit Euler steps.

    callback(i, t_i, x) is called after each step (for progress bars or previews).
    """
    x = x0
    for i in range(len(timesteps) - 1):
        t, t_next = timesteps[i], timesteps[i + 1]
        x = x + (t_next - t) * velocity_fn(t, x)
        if callback is not None:
            callback(i, t, x)
    return x


def drop_conditions(net, clip_f: torch.Tensor, sync_f: torch.Tensor, text_f: torch.Tensor, *, p: float = 0.1,
                    video_exist: torch.Tensor | None = None, text_exist: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MMAudio's training-time condition dropout, returning new tensors.

    Samples without video (audio-text pairs) get the learned null CLIP and sync tokens; then one
    Bernoulli(p) per sample replaces both CLIP and sync with them, and an independent Bernoulli(p)
    replaces the text with the empty-string features.
    """
    b, device = clip_f.shape[0], clip_f.device
    video_exist = torch.ones(b, dtype=torch.bool, device=device) if video_exist is None else video_exist.bool()
    text_exist = torch.ones(b, dtype=torch.bool, device=device) if text_exist is None else text_exist.bool()
    keep_video = video_exist & (torch.rand(b, generator=generator, device=device) >= p)
    keep_text = text_exist & (torch.rand(b, generator=generator, device=device) >= p)
    kv, kt = keep_video.view(b, 1, 1), keep_text.view(b, 1, 1)
    clip_f = torch.where(kv, clip_f, net.empty_clip_feat.to(clip_f.dtype).expand_as(clip_f))
    sync_f = torch.where(kv, sync_f, net.empty_sync_feat.to(sync_f.dtype).expand_as(sync_f))
    text_f = torch.where(kt, text_f, net.empty_string_feat.to(text_f.dtype).expand_as(text_f))
    return clip_f, sync_f, text_f
