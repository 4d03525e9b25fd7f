"""evaluation.models.imagebind against the official ImageBind fork + av-benchmark preprocessing (fixtures)."""

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation.models import imagebind as ib
from nag_model.checkpoint import (OFFICIAL_WEIGHTS, ChecksumMismatch, CorruptWeights, IncompatibleWeights,
                                  WeightsNotFound)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "imagebind"
REF = np.load(FIXTURES / "tiny_parity.npz")
TINY = json.loads((FIXTURES / "tiny_params.json").read_text())
CAPTIONS = json.loads((FIXTURES / "captions.json").read_text())


def official_tiny_state() -> dict[str, torch.Tensor]:
    """The fixture's seeded weights under the official key names (same draws, same order as the generator)."""
    g = torch.Generator().manual_seed(1234)
    state = {}
    for key, shape in TINY["fill_order"]:
        r = torch.randn(shape, generator=g)
        if len(shape) == 0:
            state[key] = math.log(1 / 0.07) + 0.1 * r
        elif len(shape) == 1:
            state[key] = 1.0 + 0.1 * r if key.endswith("weight") else 0.1 * r
        elif shape[0] == 1:
            state[key] = 0.5 * r
        else:
            state[key] = r / math.sqrt(math.prod(shape[1:]))
    for key, expected in TINY["sums"].items():
        assert float(state[key].double().sum()) == pytest.approx(expected, rel=1e-6), f"torch.randn drifted: {key}"
    state["modality_preprocessors.text.mask"] = torch.full((77, 77), float("-inf")).triu(1)
    state["modality_postprocessors.audio.1.log_logit_scale"] = torch.tensor(math.log(20.0))
    return state


@pytest.fixture(scope="module")
def tiny_model():
    model = ib.ImageBind("tiny")
    state = ib.from_official_keys(official_tiny_state())
    model.load_state_dict(state, strict=True)
    return model.eval()


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize("name", ["landscape_up", "portrait_down", "square"])
def test_video_embedding_matches_official(tiny_model, name, rel_err):
    ours = tiny_model.embed_video([REF[f"video/{name}/frames"]])[0]
    assert rel_err(ours, unit(REF[f"video/{name}/embedding"])) < 1e-5


@pytest.mark.parametrize("name", ["eight_s", "three_s", "short"])
def test_audio_embedding_matches_official(tiny_model, name, rel_err):
    ours = tiny_model.embed_audio(REF[f"audio/{name}/wave"][None])[0]
    assert rel_err(ours, unit(REF[f"audio/{name}/embedding"])) < 1e-5


def test_text_ids_and_embedding_match_official(tiny_model, rel_err):
    ids = tiny_model.tokenize(CAPTIONS)
    np.testing.assert_array_equal(ids.numpy(), REF["text/ids"])
    assert int(ids[-1, -1]) != tiny_model._tokenizer.eot_id  # cut without forcing the end token
    assert rel_err(tiny_model.embed_text(CAPTIONS), unit(REF["text/embedding"])) < 1e-5


def test_text_padding_is_cut_without_changing_embeddings(tiny_model):
    alone = tiny_model.embed_text(CAPTIONS[:1])  # computed over its own ~10 positions
    with_long = tiny_model.embed_text([CAPTIONS[0], CAPTIONS[-1]])  # over all 77
    np.testing.assert_allclose(alone[0], with_long[0], rtol=0, atol=1e-6)


def test_audio_fbanks_match_official_preprocessing(rel_err):
    ours = ib.audio_fbanks(REF["audio/three_s/wave"]).numpy()
    assert ours.shape == (3, 1, 128, 204)
    assert rel_err(ours, REF["audio/three_s/fbanks"]) < 2e-4  # float32 logs differ across CPUs (test_kaldi.py)


def test_video_resize_matches_torchvision_uint8_bicubic():
    frames = torch.from_numpy(REF["video/landscape_up/frames"]).permute(0, 3, 1, 2).contiguous()
    resized = ib._resize_shorter_edge(frames, 224)
    assert resized.dtype == torch.uint8 and resized.shape == (4, 3, 224, 298)
    assert int((resized[0].int() - torch.from_numpy(REF["video/landscape_up/resized_frame0"]).int()).abs().max()) == 0


@pytest.mark.parametrize("name", ["landscape_up", "portrait_down", "square"])
def test_video_clips_are_three_crops_of_consecutive_pairs(name, rel_err):
    frames = REF[f"video/{name}/frames"]
    clips = ib.video_clips(frames)
    t = len(frames)
    assert clips.shape == (3 * (t - 1), 3, 2, 224, 224)
    # Rebuild (crop, time, channel) statistics: clip t * 3 + crop holds frames t and t + 1.
    per_frame = torch.stack([torch.stack([clips[min(i, t - 2) * 3 + c][:, 0 if i < t - 1 else 1] for i in range(t)])
                             for c in range(3)])  # (crop, T, C, H, W)
    assert rel_err(per_frame.mean(dim=(-1, -2)), REF[f"video/{name}/input_mean"]) < 1e-5
    assert rel_err(per_frame.std(dim=(-1, -2)), REF[f"video/{name}/input_std"]) < 1e-5


def test_single_frame_video_repeats_the_frame():
    frames = REF["video/square/frames"][:1]
    clips = ib.video_clips(frames)
    assert clips.shape == (3, 3, 2, 224, 224)
    torch.testing.assert_close(clips[:, :, 0], clips[:, :, 1])


@pytest.mark.parametrize("bad", [np.zeros((2, 8, 8, 3), np.float32), np.zeros((2, 8, 8), np.uint8),
                                 np.zeros((0, 8, 8, 3), np.uint8)])
def test_video_clips_reject_bad_frames(bad):
    with pytest.raises(ValueError, match="uint8 RGB"):
        ib.video_clips(bad)


def test_audio_clip_bounds_follow_constant_clips_sampler():
    assert ib.audio_clip_bounds(8 * 16000) == [(0, 32000), (48000, 80000), (96000, 128000)]
    assert ib.audio_clip_bounds(3 * 16000) == [(0, 32000), (8000, 40000), (16000, 48000)]
    assert ib.audio_clip_bounds(16000) == [(0, 32000)] * 3  # shorter than a clip: the same clip thrice


def test_score_captions_is_the_video_text_cosine(tiny_model):
    frames = REF["video/landscape_up/frames"]
    scores = tiny_model.score_captions(frames, CAPTIONS[:3])
    expected = tiny_model.embed_text(CAPTIONS[:3]) @ tiny_model.embed_video([frames])[0]
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    assert all(-1.0 <= s <= 1.0 for s in scores)


def test_embeddings_are_unit_norm_and_batched(tiny_model):
    waves = np.stack([REF["audio/short/wave"], REF["audio/short/wave"][::-1]])
    emb = tiny_model.embed_audio(waves)
    assert emb.shape == (2, 16) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(emb[0], tiny_model.embed_audio(REF["audio/short/wave"])[0], rtol=1e-5, atol=1e-6)
    videos = [REF["video/square/frames"], REF["video/portrait_down/frames"]]
    batched = tiny_model.embed_video(videos)
    np.testing.assert_allclose(batched[1], tiny_model.embed_video(videos[1:])[0], rtol=1e-5, atol=1e-6)


def test_full_model_has_the_official_keys_and_shapes():
    table = json.loads((FIXTURES / "imagebind_huge_keys.json").read_text())
    official = {k: torch.empty(shape, device="meta") for k, shape in table.items()}
    mapped = ib.from_official_keys(official)
    with torch.device("meta"):
        model = ib.ImageBind("huge")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in mapped.items()} == ours
    dropped = {k for k in table if k in ib.UNUSED_KEYS or k.startswith(ib.UNUSED_PREFIXES)}
    assert all(any(m in k for m in (".depth.", ".thermal.", ".imu.")) or k in ib.UNUSED_KEYS for k in dropped)
    assert sum(math.prod(s) for s in ours.values()) == 1_073_097_728  # of the file's 1 200 786 990 numbers


def test_from_file_loads_strictly_and_matches(tmp_path, tiny_model):
    path = tmp_path / "tiny.pth"
    torch.save(official_tiny_state(), path)
    model = ib.ImageBind.from_file(str(path), "tiny")
    assert not model.training and model.vision.cls_token.device.type == "cpu"
    frames = REF["video/square/frames"]
    np.testing.assert_allclose(model.embed_video([frames]), tiny_model.embed_video([frames]), rtol=0, atol=1e-6)


def test_from_file_rejects_a_missing_key(tmp_path):
    state = official_tiny_state()
    del state["modality_heads.audio.2.weight"]
    torch.save(state, tmp_path / "t.pth")
    with pytest.raises(IncompatibleWeights, match="audio.proj.weight"):
        ib.ImageBind.from_file(str(tmp_path / "t.pth"), "tiny")


def test_from_file_missing_names_the_file_and_checksum(tmp_path):
    with pytest.raises(WeightsNotFound) as err:
        ib.ImageBind.from_file(str(tmp_path / "imagebind_huge.pth"))
    known = OFFICIAL_WEIGHTS["imagebind_huge"]
    assert "imagebind_huge.pth" in str(err.value) and known.sha256 in str(err.value) and known.url in str(err.value)


def test_from_file_wrong_size_or_checksum(tmp_path):
    path = tmp_path / "imagebind_huge.pth"
    torch.save({"x": torch.zeros(3)}, path)
    with pytest.raises(ChecksumMismatch, match="truncated"):
        ib.ImageBind.from_file(str(path))


def test_from_file_checks_the_sha256_of_a_file_of_the_right_size(tmp_path, monkeypatch):
    path = tmp_path / "imagebind_huge.pth"
    torch.save(official_tiny_state(), path)
    known = OFFICIAL_WEIGHTS["imagebind_huge"]
    monkeypatch.setitem(OFFICIAL_WEIGHTS, "imagebind_huge", replace(known, nbytes=path.stat().st_size))
    with pytest.raises(ChecksumMismatch, match=known.sha256):
        ib.ImageBind.from_file(str(path))


def test_registered_size_fits_the_key_table():
    table = json.loads((FIXTURES / "imagebind_huge_keys.json").read_text())
    fp32_bytes = 4 * sum(math.prod(shape) for shape in table.values())
    assert fp32_bytes < OFFICIAL_WEIGHTS["imagebind_huge"].nbytes < fp32_bytes + 1_000_000


def test_from_file_corrupt(tmp_path):
    path = tmp_path / "imagebind_huge.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CorruptWeights):
        ib.ImageBind.from_file(str(path), verify_checksum=False)
