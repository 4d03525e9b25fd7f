"""The MMAudio condition encoders move with their bundle (`FoleyBundle.to`)."""
from __future__ import annotations

import torch

from nag_model.encoders.clip import build_clip
from nag_model.encoders.mmaudio import CLIPTextEncoder, MMAudioVideoEncoder
from nag_model.encoders.synchformer import SynchformerEncoder


def test_the_encoders_move_to_a_device_and_keep_their_precision():
    clip, sync = build_clip("tiny"), SynchformerEncoder("tiny").eval()
    video, text = MMAudioVideoEncoder(clip, sync), CLIPTextEncoder(clip)
    assert video.to("meta") is video and text.to("meta") is text
    for module in (clip, sync):
        assert {p.device.type for p in module.parameters()} == {"meta"}
        assert {p.dtype for p in module.parameters()} == {torch.float32}
