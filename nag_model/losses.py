"""Training losses, written once for the demo scale and for real MMAudio features.

`base_loss` trains an MMAudio network as MMAudio does (condition dropout with the learned null
tokens, logit-normal t). `controlnet_loss` trains the audio ControlNet as in section 4.2 of the
NAG paper: target and reference are non-overlapping segments of one clip, the text is empty, and
the base is frozen.
"""
from __future__ import annotations

import torch
from torch import nn

from nag_model.controlnet import AudioControlNet
from nag_model.flow_matching import drop_conditions, flow_matching_loss, interpolate, sample_logit_normal
from nag_model.network import MMAudio


def freeze(module: nn.Module) -> nn.Module:
    """Stop gradients into `module`'s parameters and switch it to eval mode."""
    module.requires_grad_(False)
    return module.eval()


def _noise_and_time(x1: torch.Tensor, generator: torch.Generator | None):
    x0 = torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
    t = sample_logit_normal(x1.shape[0], generator=generator, device=x1.device).to(x1.dtype)
    return x0, t


def base_loss(net: MMAudio, x1: torch.Tensor, clip_f: torch.Tensor, sync_f: torch.Tensor, text_f: torch.Tensor, *,
              video_exist: torch.Tensor | None = None, text_exist: torch.Tensor | None = None, p_drop: float = 0.1,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Flow-matching loss of the base on normalised latents x1 (B, N, C)."""
    clip_f, sync_f, text_f = drop_conditions(net, clip_f, sync_f, text_f, p=p_drop, video_exist=video_exist,
                                             text_exist=text_exist, generator=generator)
    conditions = net.preprocess_conditions(clip_f, sync_f, text_f)
    x0, t = _noise_and_time(x1, generator)
    return flow_matching_loss(net.predict_flow(interpolate(x0, x1, t), t, conditions), x0, x1)


def controlnet_loss(base: MMAudio, controlnet: AudioControlNet, x1: torch.Tensor, reference: torch.Tensor,
                    clip_f: torch.Tensor, sync_f: torch.Tensor, *, video_exist: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Flow-matching loss of u_psi(x_t, t, V, empty, x_ref) on target latents x1 (B, N, C).

    reference (B, Nr, C) is the normalised latent of another segment of the same clip; samples
    without video get the base's learned null tokens. The base must be frozen (see `freeze`).
    """
    if any(p.requires_grad for p in base.parameters()):
        raise ValueError("the base must be frozen while the ControlNet trains: call nag_model.losses.freeze(base)")
    b = x1.shape[0]
    if video_exist is not None:
        keep = video_exist.bool().view(b, 1, 1)
        clip_f = torch.where(keep, clip_f, base.empty_clip_feat.expand_as(clip_f))
        sync_f = torch.where(keep, sync_f, base.empty_sync_feat.expand_as(sync_f))
    conditions = base.preprocess_conditions(clip_f, sync_f, base.empty_string_feat.expand(b, -1, -1))
    x0, t = _noise_and_time(x1, generator)
    predicted = controlnet.predict_flow(base, interpolate(x0, x1, t), t, conditions,
                                        controlnet.preprocess_reference(reference))
    return flow_matching_loss(predicted, x0, x1)
