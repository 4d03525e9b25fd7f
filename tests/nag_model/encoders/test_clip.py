"""MMAudio's CLIP against open_clip + MMAudio's FeaturesUtils (fixtures in tests/fixtures/clip, see README)."""
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import fsspec
import pytest
import torch

from nag_model.checkpoint import (OFFICIAL_WEIGHTS, ChecksumMismatch, CorruptWeights, IncompatibleWeights,
                                  WeightFile, WeightsNotFound)
from nag_model.encoders import clip as clip_module
from nag_model.encoders.clip import CLIP_PRESETS, build_clip, get_clip_config, load_clip, resize_frames
from nag_model.encoders.clip_tokenizer import CLIPTokenizer

FIXTURES = Path(__file__).parents[2] / "fixtures" / "clip"
REL_TOL = 1e-4


@pytest.fixture(scope="module")
def parity():
    return torch.load(FIXTURES / "parity_tiny.pt", weights_only=True)


@pytest.fixture(scope="module")
def tokenizer():
    return CLIPTokenizer()


@pytest.fixture(scope="module")
def tiny(parity, tokenizer):
    net = build_clip("tiny", tokenizer=tokenizer)
    net.load_state_dict(parity["state_dict"], strict=True)
    return net


@pytest.fixture
def tiny_file(tmp_path, parity):
    path = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(parity["state_dict"], path)
    return path


def official_frames(parity):
    """The fixture's frames: uint8 48x48 noise, each pixel repeated 8x8, scaled to [0, 1]."""
    small, k = parity["inputs"]["frames_small_uint8"], parity["inputs"]["upsample"]
    return small.to(torch.float32).repeat_interleave(k, dim=3).repeat_interleave(k, dim=4) / 255


def assert_close(ours, ref, rel=REL_TOL):
    assert ours.shape == ref.shape
    err = (ours - ref).abs().max().item()
    assert err <= rel * ref.abs().max().item(), f"max abs error {err:.3g} vs max |ref| {ref.abs().max().item():.3g}"


def as_open_clip_cfg(c):
    return {"embed_dim": c.embed_dim, "quick_gelu": c.quick_gelu,
            "vision_cfg": {"image_size": c.image_size, "layers": c.vision_layers, "width": c.vision_width,
                           "head_width": c.vision_head_width, "patch_size": c.patch_size},
            "text_cfg": {"context_length": c.context_length, "vocab_size": c.vocab_size, "width": c.text_width,
                         "heads": c.text_heads, "layers": c.text_layers}}


def test_full_size_state_dict_matches_open_clip_key_table():
    table = json.loads((FIXTURES / "keys_dfn5b_vit_h_14_384.json").read_text())
    config = get_clip_config("dfn5b_vit_h_14_384")
    assert as_open_clip_cfg(config) == table["model_cfg"] and config.mlp_ratio == 4.0
    assert [config.grid_size] * 2 == table["visual_grid_size"] and config.frame_size // config.patch_size == 27
    with torch.device("meta"):
        net = build_clip("dfn5b_vit_h_14_384")
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert len(ours) == table["num_entries"] == 686
    assert list(ours) == list(table["keys"]), "key order differs from open_clip's state dict"
    assert ours == table["keys"]
    assert sum(p.numel() for p in net.parameters()) == table["num_params"] == 986_714_881
    # The official file holds exactly these tensors in fp32 (plus pickle overhead).
    assert table["fp32_bytes"] < OFFICIAL_WEIGHTS["clip"].nbytes < table["fp32_bytes"] + 1_000_000


def test_tiny_preset_is_the_fixture_config(parity):
    assert as_open_clip_cfg(CLIP_PRESETS["tiny"]) == parity["config"]


def test_video_matches_mmaudio_encode_video_with_clip(tiny, parity):
    frames = official_frames(parity)  # (B=2, T=2, 3, 384, 384)
    out = parity["outputs"]
    clip_f = tiny.encode_video(frames)
    assert_close(clip_f, out["clip_f"])
    assert torch.allclose(clip_f.norm(dim=-1), torch.ones(2, 2), atol=1e-6)
    assert_close(tiny.encode_video(frames, batch_size=3), out["clip_f_batch_size_3"])
    normalised = (frames - torch.tensor(clip_module.CLIP_MEAN).view(3, 1, 1)) / torch.tensor(clip_module.CLIP_STD).view(3, 1, 1)
    assert_close(tiny.encode_image(normalised.flatten(0, 1), normalize=False), out["image_embedding_unnormalised"])


def test_video_parity_is_not_vacuous(tiny, parity):
    """Flipping one frame changes that frame's embedding only, the same way in both implementations."""
    frames = official_frames(parity)
    frames[0, 0] = frames[0, 0].flip(-1)
    flipped = tiny.encode_video(frames)
    assert_close(flipped, parity["outputs"]["clip_f_first_frame_flipped"])
    change = (flipped - parity["outputs"]["clip_f"]).abs().amax(-1)  # (B, T)
    assert change[0, 0] > 0.05 and change.flatten()[1:].max() < 1e-5


def test_text_matches_mmaudio_patched_encode_text(tiny, parity):
    captions, out = parity["inputs"]["captions"], parity["outputs"]
    assert torch.equal(tiny.tokenizer(captions), out["tokens"])
    text_f = tiny.encode_text(captions)  # (5, 77, 8)
    assert_close(text_f, out["text_f"])
    assert torch.allclose(text_f.norm(dim=-1), torch.ones(5, 77), atol=1e-6)  # padding tokens too
    assert_close(tiny.encode_tokens(out["tokens"], normalize=False), out["text_hidden_unnormalised"])
    assert not torch.allclose(text_f[0], text_f[1], atol=1e-2)  # different captions, different features


def test_text_attention_is_causal(tiny, tokenizer):
    """A token's feature depends only on the tokens before it (open_clip's causal text mask)."""
    captions = ["a dog barks loudly", "a dog barks quietly"]
    ids = tokenizer(captions)
    n_same = int((ids[0] != ids[1]).nonzero()[0])  # first differing token
    assert n_same >= 3
    a, b = tiny.encode_text(captions)
    assert torch.allclose(a[:n_same], b[:n_same], atol=1e-6) and not torch.allclose(a[n_same], b[n_same], atol=1e-3)


def test_bf16_tracks_fp32(tiny, parity):
    net = build_clip("tiny", tokenizer=tiny.tokenizer)
    net.load_state_dict(parity["state_dict"])
    net = net.to(torch.bfloat16)
    clip_f = net.encode_video(official_frames(parity))
    assert clip_f.dtype == torch.bfloat16
    assert (clip_f.float() - parity["outputs"]["clip_f"]).abs().max() < 0.05


def test_encode_video_checks_shapes(tiny):
    with pytest.raises(ValueError, match=r"\(B, T, 3, 384, 384\).*\(1, 2, 3, 378, 378\)"):
        tiny.encode_video(torch.zeros(1, 2, 3, 378, 378))
    with pytest.raises(TypeError, match="list of captions"):
        tiny.encode_text("one caption")


@pytest.mark.parametrize("case", ["upscale", "downscale"])
def test_resize_frames_matches_mmaudio_transform(case):
    fixture = torch.load(FIXTURES / "resize.pt", weights_only=True)["cases"][case]
    frames = fixture["input"]  # (T, H, W, 3) uint8
    if "input_repeat" in fixture:
        k = fixture["input_repeat"]
        frames = frames.repeat_interleave(k, dim=1).repeat_interleave(k, dim=2)
    ours = resize_frames(frames.numpy())
    assert ours.shape == (frames.shape[0], 3, 384, 384) and ours.dtype == torch.float32
    assert torch.equal(ours, fixture["output_uint8"].to(torch.float32).mul_(1.0 / 255))
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\) uint8"):
        resize_frames(frames.permute(0, 3, 1, 2))


@pytest.mark.parametrize("root", ["file", "memory"])
def test_load_clip_round_trip(tiny_file, parity, root):
    path = str(tiny_file)
    if root == "memory":
        path = "memory://clip-weights/open_clip_pytorch_model.bin"
        with fsspec.open(path, "wb") as f:
            f.write(tiny_file.read_bytes())
    net = load_clip(path, "tiny")
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert_close(net.encode_video(official_frames(parity)), parity["outputs"]["clip_f"])
    assert_close(net.encode_text(parity["inputs"]["captions"]), parity["outputs"]["text_f"])


def test_load_clip_accepts_open_clips_checkpoint_variants(tmp_path, parity):
    """A {'state_dict': ...} wrapper, a DDP 'module.' prefix and a (1,) logit_scale, as open_clip's loader allows."""
    state = {f"module.{k}": v for k, v in parity["state_dict"].items()}
    state["module.logit_scale"] = state["module.logit_scale"].reshape(1)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "wrapped.pt")
    net = load_clip(str(tmp_path / "wrapped.pt"), "tiny")
    assert torch.equal(net.logit_scale, parity["state_dict"]["logit_scale"])
    assert torch.equal(net.visual.proj, parity["state_dict"]["visual.proj"])


def test_load_clip_finds_the_vocab_beside_the_weights(tiny_file, tmp_path):
    (tmp_path / "bpe_simple_vocab_16e6.txt.gz").write_bytes(Path(CLIPTokenizer().vocab_path).read_bytes())
    assert load_clip(str(tiny_file), "tiny").tokenizer.vocab_path == str(tmp_path / "bpe_simple_vocab_16e6.txt.gz")


def test_missing_file_names_itself_its_size_checksum_and_source(tmp_path):
    with pytest.raises(WeightsNotFound) as err:
        load_clip(str(tmp_path / "nope.bin"))
    msg = str(err.value)
    known = OFFICIAL_WEIGHTS["clip"]
    for part in ("open_clip_pytorch_model.bin", "3.9G", "3947081637", known.sha256, "huggingface.co/apple/DFN5B-CLIP"):
        assert part in msg, (part, msg)


@pytest.fixture
def registered_tiny(monkeypatch, tiny_file):
    """Register the tiny file as if it were an official one, with the given sha256/size."""
    def register(sha256, nbytes):
        monkeypatch.setitem(clip_module.OFFICIAL_FILES, "tiny", "clip_test")
        monkeypatch.setitem(OFFICIAL_WEIGHTS, "clip_test", WeightFile("tiny.bin", None, "2M", "https://example.invalid/tiny.bin",
                                                                       sha256=sha256, nbytes=nbytes))
    return register


def test_checksum_is_verified(registered_tiny, tiny_file):
    actual = hashlib.sha256(tiny_file.read_bytes()).hexdigest()
    registered_tiny(actual, tiny_file.stat().st_size)
    assert load_clip(str(tiny_file), "tiny") is not None
    registered_tiny("0" * 64, tiny_file.stat().st_size)
    with pytest.raises(ChecksumMismatch, match=f"has sha256 {actual}, expected 0000.*example.invalid"):
        load_clip(str(tiny_file), "tiny")
    assert load_clip(str(tiny_file), "tiny", verify_checksum=False) is not None


def test_truncated_file_is_named_as_such(registered_tiny, tiny_file):
    size = tiny_file.stat().st_size
    tiny_file.write_bytes(tiny_file.read_bytes()[: size // 2])
    registered_tiny("0" * 64, size)
    with pytest.raises(ChecksumMismatch, match=f"has {size // 2} bytes, expected {size}.*truncated"):
        load_clip(str(tiny_file), "tiny")
    # Without a registry entry (or with verification off) the read itself fails clearly.
    with pytest.raises(CorruptWeights, match="truncated or not a torch checkpoint"):
        load_clip(str(tiny_file), "tiny", verify_checksum=False)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "x.bin"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(CorruptWeights, match="state dict"):
        load_clip(str(path), "tiny")
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CorruptWeights, match="truncated or not a torch checkpoint"):
        load_clip(str(path), "tiny")


def test_wrong_preset_lists_the_mismatched_keys(tiny_file):
    deeper = replace(CLIP_PRESETS["tiny"], name="tiny3", text_layers=3)
    with pytest.raises(IncompatibleWeights, match=r"12 missing keys: transformer\.resblocks\.2\.ln_1\.weight"):
        load_clip(str(tiny_file), deeper)
    with pytest.raises(IncompatibleWeights) as err:
        load_clip(str(tiny_file), "dfn5b_vit_h_14_384", verify_checksum=False)
    msg = str(err.value)
    assert "do not fit dfn5b_vit_h_14_384" in msg and "missing keys: visual.transformer.resblocks.2" in msg
    assert "visual.conv1.weight: file (32, 3, 27, 27) vs network (1280, 3, 14, 14)" in msg
