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
              generator: torch.Generator | None = None, frame_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Flow-matching loss of the base on normalised latents x1 (B, N, C); frame_weight (B, N) weights the
    latent frames (see `flow_matching_loss`), e.g. `onset_weights`."""
    clip_f, sync_f, text_f = drop_conditions(net, clip_f, sync_f, text_f, p=p_drop, video_exist=video_exist,
                                             text_exist=text_exist, generator=generator)
    conditions = net.preprocess_conditions(clip_f, sync_f, text_f)
    x0, t = _noise_and_time(x1, generator)
    return flow_matching_loss(net.predict_flow(interpolate(x0, x1, t), t, conditions), x0, x1, frame_weight)


def onset_weights(log_mel: torch.Tensor, strength: float, max_rise_db: float = 30.0) -> torch.Tensor:
    """Per-frame loss weights (B, N) that make sound onsets count more than steady frames.

    log_mel (B, N, C) are log10-magnitude mel frames (the demo codec's latents, before normalisation). A frame's
    rise is the increase of its power level over the previous frame's, in dB, clipped to [0, max_rise_db]; its
    weight is 1 + strength * rise / max_rise_db, rescaled so that each sample's weights average 1 (the loss keeps
    its scale; a clip without onsets is weighted uniformly). strength 0 gives all ones.
    """
    if strength < 0:
        raise ValueError(f"onset strength must be >= 0, got {strength}")
    level = 10 * torch.log10(torch.pow(10.0, 2 * log_mel.float()).mean(dim=2))  # (B, N) power level in dB
    rise = torch.zeros_like(level)
    rise[:, 1:] = (level[:, 1:] - level[:, :-1]).clamp(0.0, max_rise_db)
    weight = 1 + strength * rise / max_rise_db
    return weight / weight.mean(dim=1, keepdim=True)


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
