"""Batch sources of the demo data (the base's mixture of audio-visual and audio-text rows) and the base objective."""
from __future__ import annotations

import pytest
import torch

from nag_model.network import build_mmaudio
from training import objectives
from training.objectives import BaseBatches, BaseObjective


def test_default_batches_are_unchanged_and_stem_rows_have_no_video(tiny_foley_data):
    d = tiny_foley_data()
    a = BaseBatches(d)(16, torch.Generator().manual_seed(1))
    b = BaseBatches(d, stem_video_fraction=0.0, caption_mix_fraction=0.0)(16, torch.Generator().manual_seed(1))
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert a["video_exist"].tolist() == [True] * 8 + [False] * 8


def test_stem_rows_can_keep_their_clips_video(tiny_foley_data):
    d = tiny_foley_data()
    plain = BaseBatches(d)(16, torch.Generator().manual_seed(1))
    b = BaseBatches(d, stem_video_fraction=0.5)(16, torch.Generator().manual_seed(1))
    assert b["video_exist"].tolist() == [True] * 12 + [False] * 4
    # the same rows are drawn; only which stem rows see their video differs
    assert all(torch.equal(plain[key], b[key]) for key in ("x1", "clip_f", "sync_f", "text_f"))
    stem_rows = b["x1"][8:12]
    idx = [int(torch.nonzero((d.stems == row).all(-1).all(-1))[0]) for row in stem_rows]
    assert torch.equal(b["sync_f"][8:12], d.sync_f[d.stem_clip[idx]])  # a stem keeps its own clip's video
    with pytest.raises(ValueError, match="stem_video_fraction"):
        BaseBatches(d, stem_video_fraction=1.5)


def test_mix_rows_can_carry_one_of_their_sources_captions(tiny_foley_data):
    d = tiny_foley_data()
    plain = BaseBatches(d)(16, torch.Generator().manual_seed(1))
    b = BaseBatches(d, caption_mix_fraction=0.5)(16, torch.Generator().manual_seed(1))
    assert b["video_exist"].tolist() == [True] * 8 + [False] * 8
    assert all(torch.equal(plain[key][:4], b[key][:4]) for key in ("x1", "clip_f", "sync_f", "text_f"))  # label rows
    labels = {tuple(d.text[t].flatten().tolist()) for t in d.label_text.tolist()}
    for row in range(4, 8):  # a clip's mix and video with the caption of one of its own sounding stems
        clip = int(torch.nonzero((d.mix == b["x1"][row]).all(-1).all(-1))[0])
        assert torch.equal(b["clip_f"][row], d.clip_f[clip]) and torch.equal(b["sync_f"][row], d.sync_f[clip])
        own = [int(t) for t in d.stem_text[d.stem_clip == clip]]
        assert any(torch.equal(b["text_f"][row], d.text[t]) for t in own)
    captioned = [tuple(b["text_f"][row].flatten().tolist()) not in labels for row in range(4, 8)]
    assert any(captioned)  # not only the label
    with pytest.raises(ValueError, match="caption_mix_fraction"):
        BaseBatches(d, caption_mix_fraction=-0.1)


def test_the_base_objective_weights_onsets_only_when_asked(tiny_foley_data, monkeypatch):
    seen = []

    def fake_loss(net, x1, clip_f, sync_f, text_f, **kwargs):
        seen.append(kwargs["frame_weight"])
        return x1.sum() * 0

    monkeypatch.setattr(objectives, "base_loss", fake_loss)
    net = build_mmaudio("demo_16k", duration=8.0)
    batch = BaseBatches(tiny_foley_data())(4, torch.Generator().manual_seed(1))
    BaseObjective(net)(batch, torch.Generator())
    BaseObjective(net, onset_weight=2.0)(batch, torch.Generator())
    assert seen[0] is None
    assert torch.equal(seen[1], objectives.onset_weights(batch["x1"], 2.0))  # from the raw (unnormalised) latents
    with pytest.raises(ValueError, match="onset_weight"):
        BaseObjective(net, onset_weight=-1.0)
