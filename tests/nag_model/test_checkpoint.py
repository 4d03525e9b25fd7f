"""Checkpoint layout (official key tables), strict loading, our safetensors files, clear errors."""
import hashlib
import json
from pathlib import Path

import pytest
import torch

from nag_model.checkpoint import (DROPPED_KEYS, ChecksumMismatch, IncompatibleWeights, WeightsNotFound,
                                  load_controlnet, load_mmaudio, load_network, save_controlnet, save_network)
from nag_model.config import OFFICIAL_PRESETS, MMAudioConfig, get_config
from nag_model.controlnet import AudioControlNet, ControlNetConfig
from nag_model.network import MMAudio, build_mmaudio

FIXTURES = Path(__file__).parent.parent / "fixtures" / "mmaudio"


@pytest.mark.parametrize("preset", OFFICIAL_PRESETS)
def test_state_dict_matches_the_official_key_table(preset):
    table = json.loads((FIXTURES / f"keys_{preset}.json").read_text())
    with torch.device("meta"):
        net = build_mmaudio(preset)
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert len(ours) == table["num_entries"] == (416 if preset.startswith("large") else 251)
    assert list(ours) == list(table["keys"]), "key order differs from the official state dict"
    assert ours == table["keys"]
    assert sum(p.numel() for p in net.parameters()) == table["num_params"]
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == table["num_trainable_params"]
    assert set(dict(net.named_buffers())) - set(ours) == set(table["non_persistent_buffers"])


def test_official_format_round_trip_accepts_the_dropped_keys(tmp_path, tiny_base):
    state = dict(tiny_base.state_dict())
    state.update({"t_embed.freqs": tiny_base.t_embed.freqs, "latent_rot": tiny_base.latent_rot,
                  "clip_rot": tiny_base.clip_rot})
    assert set(DROPPED_KEYS) <= set(state)
    path = tmp_path / "official.pth"
    torch.save(state, path)
    loaded = load_mmaudio(str(path), "tiny", duration=2.0)
    for k, v in tiny_base.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert "latent_rot" in state, "the caller's dict must not be modified"


def test_wrong_preset_names_the_mismatched_keys(tmp_path, tiny_base):
    path = tmp_path / "tiny.pth"
    torch.save(tiny_base.state_dict(), path)
    v2 = MMAudioConfig(**{**get_config("tiny").to_dict(), "name": "tiny_v2", "v2": True})
    with pytest.raises(IncompatibleWeights) as err:
        load_mmaudio(str(path), v2, duration=2.0)
    msg = str(err.value)
    assert "tiny_v2" in msg and "clip_input_proj.2.w1.weight" in msg and "clip_input_proj.1.w1.weight" in msg
    assert "t_embed.mlp.0.weight: file (64, 256) vs network (64, 64)" in msg


def test_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(WeightsNotFound) as err:
        load_mmaudio(str(tmp_path / "nope.pth"), "small_16k")
    msg = str(err.value)
    assert "mmaudio_small_16k.pth" in msg and "af93cde404179f58e3919ac085b8033b" in msg and "huggingface.co" in msg


def test_checksum_is_verified_for_official_presets(tmp_path):
    path = tmp_path / "fake_small_16k.pth"
    torch.save({"not": torch.zeros(1)}, path)
    with pytest.raises(ChecksumMismatch, match=hashlib.md5(path.read_bytes()).hexdigest()):
        load_mmaudio(str(path), "small_16k")


@pytest.mark.parametrize("root", ["file", "memory"])
def test_our_network_files_round_trip(tmp_path, tiny_base, root):
    path = str(tmp_path / "net") if root == "file" else "memory://weights/net"
    save_network(tiny_base, path, metadata={"steps": 3})
    loaded = load_network(path, duration=2.0)
    assert loaded.config == tiny_base.config
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in tiny_base.state_dict().items())


def test_controlnet_file_records_and_checks_its_base(tmp_path, tiny_base, randomize):
    controlnet = randomize(AudioControlNet.from_base(tiny_base), seed=4)
    save_controlnet(controlnet, tiny_base, str(tmp_path / "cn"))
    card = json.loads((tmp_path / "cn.json").read_text())
    assert card["base_config"]["name"] == "tiny" and len(card["base_fingerprint"]) == 64
    loaded = load_controlnet(str(tmp_path / "cn"), tiny_base)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in controlnet.state_dict().items())
    other = randomize(build_mmaudio("tiny", duration=2.0), seed=9)
    with pytest.raises(IncompatibleWeights, match="fingerprint"):
        load_controlnet(str(tmp_path / "cn"), other)
    assert isinstance(load_controlnet(str(tmp_path / "cn"), other, check_base=False), AudioControlNet)


def test_controlnet_initialises_from_the_base_and_reports_its_size():
    torch.manual_seed(0)
    base = build_mmaudio("tiny")
    cn = AudioControlNet.from_base(base)
    assert len(cn.blocks) == 2  # one per two base blocks
    assert torch.equal(cn.ref_input_proj[0].weight, base.audio_input_proj[0].weight)
    assert torch.equal(cn.blocks[0].block.attn.qkv.weight, base.joint_blocks[0].latent_block.attn.qkv.weight)
    assert torch.allclose(cn.blocks[1].block.ffn.w1.weight, base.fused_blocks[0].ffn.w1.weight.sum(-1))
    assert torch.equal(cn.blocks[1].block.adaLN_modulation[1].weight, base.fused_blocks[0].adaLN_modulation[1].weight)
    wide = AudioControlNet.from_base(base, ControlNetConfig(num_blocks=2, ffn_kernel_size=3))
    assert torch.equal(wide.blocks[1].block.ffn.w1.weight, base.fused_blocks[0].ffn.w1.weight)
    assert torch.count_nonzero(cn.blocks[0].out_proj.weight) == 0
    with torch.device("meta"):
        small = AudioControlNet(get_config("small_16k"))
    assert len(small.blocks) == 6
    assert 40e6 < sum(p.numel() for p in small.parameters()) < 120e6
