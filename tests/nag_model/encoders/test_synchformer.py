"""Synchformer's visual encoder: parity with the official code, key tables, segmenting, preprocessing, loading."""
import hashlib
import json
from pathlib import Path

import fsspec
import pytest
import torch

from nag_model.checkpoint import (OFFICIAL_WEIGHTS, ChecksumMismatch, CorruptWeights, IncompatibleWeights,
                                  WeightsNotFound)
from nag_model.encoders.synchformer import (VISUAL_PREFIX, SynchformerEncoder, get_synchformer_config,
                                            load_synchformer, preprocess_frames, split_segments, unused_keys)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "synchformer"
TINY_FILE = str(FIXTURES / "tiny_state_dict.pth")


@pytest.fixture(scope="module")
def parity():
    return torch.load(FIXTURES / "tiny_parity.pt", weights_only=True)


@pytest.fixture(scope="module")
def tiny():
    return load_synchformer(TINY_FILE, "tiny", verify_checksum=False)


@pytest.fixture(scope="module")
def tiny_out(tiny, parity):
    return tiny.encode_video(parity["frames"])


@pytest.fixture(scope="module")
def official_keys():
    return json.loads((FIXTURES / "keys.json").read_text())


def test_matches_official_encode_video_with_sync(tiny_out, parity):
    # 2 clips x 43 frames: 4 segments each, the last 3 frames unused
    out = tiny_out
    assert out.shape == parity["sync_f"].shape == (2, 32, 32)
    torch.testing.assert_close(out, parity["sync_f"], rtol=1e-4, atol=1e-5)
    assert (out - parity["sync_f"]).abs().max() / parity["sync_f"].abs().max() < 1e-5


def test_patch_tokens_match_official_before_spatial_pooling(tiny, parity):
    segments = split_segments(parity["frames"]).flatten(0, 1).transpose(1, 2)  # (B*S, C, 16, H, W)
    with torch.no_grad():
        tokens = tiny.vfeat_extractor.patch_tokens(segments)
    torch.testing.assert_close(tokens, parity["segment_tokens_after_norm"], rtol=1e-4, atol=1e-5)


def test_segment_batching_does_not_change_the_result(tiny, tiny_out, parity):
    torch.testing.assert_close(tiny.encode_video(parity["frames"], batch_size=3), tiny_out, rtol=0, atol=1e-6)


def test_eight_seconds_give_192_tokens(tiny):
    frames = torch.rand(1, 200, 3, 32, 32) * 2 - 1
    assert tiny.config.num_segments(200) == 24
    assert tiny.encode_video(frames).shape == (1, 192, 32)


def test_segmenting_matches_the_official_arithmetic():
    rows = json.loads((FIXTURES / "segments.json").read_text())["rows"]
    config = get_synchformer_config("synchformer")
    for t, row in rows.items():
        t = int(t)
        frames = torch.arange(t, dtype=torch.float32).view(1, t, 1)
        if "error" in row:  # the official code has no segment to stack below 16 frames
            with pytest.raises(ValueError, match="at least 16 frames"):
                split_segments(frames)
            with pytest.raises(ValueError, match="at least 16 frames"):
                config.num_segments(t)
            continue
        segments = split_segments(frames, config.segment_frames, config.segment_step)  # (1, S, 16, 1)
        assert segments.shape[1] == config.num_segments(t)
        assert segments.reshape(-1, 2).tolist() == row["token_frames"], t
        assert config.num_segments(t) * config.tokens_per_segment == row["num_tokens"]


def test_encode_video_checks_its_input(tiny):
    with pytest.raises(ValueError, match=r"\(B, T, 3, 32, 32\)"):
        tiny.encode_video(torch.zeros(1, 16, 3, 224, 224))
    with pytest.raises(ValueError, match="at least 16 frames"):
        tiny.encode_video(torch.zeros(1, 15, 3, 32, 32))


def test_full_size_keys_match_the_official_tables(official_keys):
    with torch.device("meta"):
        encoder = SynchformerEncoder("synchformer")
    own = {k: list(v.shape) for k, v in encoder.state_dict().items()}
    unused = {k: list(v) for k, v in unused_keys("synchformer").items()}
    assert not set(own) & set(unused)
    assert {**own, **unused} == official_keys["full_synchformer"]["keys"]  # 513 entries
    mmaudio = official_keys["mmaudio_synchformer"]  # what MMAudio's Synchformer loads: 238 entries
    visual_unused = {k: v for k, v in unused.items() if k.startswith(VISUAL_PREFIX)}
    assert {**own, **visual_unused} == mmaudio["keys"] and mmaudio["num_entries"] == 238
    assert sum(p.numel() for p in encoder.parameters()) + sum(
        torch.Size(s).numel() for s in visual_unused.values()) == mmaudio["num_params"]


def test_tiny_file_has_the_official_layout(official_keys):
    state = torch.load(TINY_FILE, weights_only=True)
    full = official_keys["full_synchformer"]["keys"]
    assert {k for k in state if not k.startswith(VISUAL_PREFIX)} == {k for k in full if not k.startswith(VISUAL_PREFIX)}


def test_preprocessing_matches_torchvision_sync_transform():
    cases = torch.load(FIXTURES / "preprocess.pt", weights_only=True)["cases"]
    for name, case in cases.items():
        out = preprocess_frames(case["frames_thwc"].numpy())
        expected = (case["resized_cropped_u8"].float().mul(1.0 / 255) - 0.5) / 0.5
        assert out.shape == (len(case["frames_thwc"]), 3, 224, 224), name
        torch.testing.assert_close(out, expected, rtol=0, atol=0, msg=name)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_frames(torch.zeros(1, 8, 8, 3))


# --------------------------------------------------------------------------- loading
def _save(state, path):
    torch.save(state, path)
    return str(path)


def test_full_size_official_layout_loads_strictly(tmp_path):
    # every entry of the official file at its real shape, stored as one-element stride-0 placeholders
    with torch.device("meta"):
        own = SynchformerEncoder("synchformer").state_dict()
    state = {k: torch.zeros(()).expand(v.shape) for k, v in own.items()}
    state |= {k: torch.zeros(()).expand(s) for k, s in unused_keys().items()}
    encoder = load_synchformer(_save(state, tmp_path / "synchformer_state_dict.pth"), verify_checksum=False)
    assert encoder.vfeat_extractor.blocks[11].timeattn.qkv.weight.shape == (2304, 768)
    assert not any(p.is_meta for p in encoder.parameters())


def test_loads_from_an_fsspec_url(tiny):
    with fsspec.open("memory://weights/synchformer_state_dict.pth", "wb") as f:
        f.write(Path(TINY_FILE).read_bytes())
    encoder = load_synchformer("memory://weights/synchformer_state_dict.pth", "tiny", verify_checksum=False)
    loaded, reference = encoder.state_dict(), tiny.state_dict()
    assert loaded.keys() == reference.keys() and all(torch.equal(loaded[k], reference[k]) for k in loaded)


def test_missing_file_says_what_and_where_to_get_it(tmp_path):
    known = OFFICIAL_WEIGHTS["synchformer"]
    with pytest.raises(WeightsNotFound) as err:
        load_synchformer(str(tmp_path / "nothing.pth"))
    for part in (known.filename, known.size, known.md5, known.url, "nothing.pth"):
        assert part in str(err.value)


def test_checksum_is_verified_for_the_official_preset(tmp_path):
    path = Path(TINY_FILE)
    digest = hashlib.md5(path.read_bytes()).hexdigest()
    with pytest.raises(ChecksumMismatch) as err:
        load_synchformer(TINY_FILE)
    for part in (digest, OFFICIAL_WEIGHTS["synchformer"].md5, f"{path.stat().st_size} bytes",
                 OFFICIAL_WEIGHTS["synchformer"].url):
        assert part in str(err.value)


def test_wrong_preset_lists_the_mismatched_keys():
    with pytest.raises(IncompatibleWeights) as err:
        load_synchformer(TINY_FILE, "synchformer", verify_checksum=False)
    msg = str(err.value)
    assert "missing keys: vfeat_extractor.blocks.2." in msg
    assert "shape mismatches" in msg and "vfeat_extractor.cls_token: file (1, 1, 32) vs expected (1, 1, 768)" in msg


def test_missing_and_unexpected_entries_are_named(tmp_path):
    state = torch.load(TINY_FILE, weights_only=True)
    del state["transformer.off_head.bias"]  # a part MMAudio does not run must still be there
    state["vfeat_extractor.head.weight"] = torch.zeros(2, 2)
    with pytest.raises(IncompatibleWeights) as err:
        load_synchformer(_save(state, tmp_path / "edited.pth"), "tiny", verify_checksum=False)
    assert "1 missing keys: transformer.off_head.bias" in str(err.value)
    assert "1 unexpected keys: vfeat_extractor.head.weight" in str(err.value)


def test_truncated_file_is_reported(tmp_path):
    data = Path(TINY_FILE).read_bytes()
    path = tmp_path / "synchformer_state_dict.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptWeights, match=rf"\({len(data) // 2} bytes\): truncated or not a PyTorch checkpoint"):
        load_synchformer(str(path), "tiny", verify_checksum=False)
    with pytest.raises(ChecksumMismatch):  # with the official preset the checksum catches it first
        load_synchformer(str(path))
