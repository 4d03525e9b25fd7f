"""PaSST as av-benchmark runs it: parity with hear21passt on a tiny network, the front end, key tables, loading."""
import dataclasses
import json
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from nag_model.checkpoint import (OFFICIAL_WEIGHTS, ChecksumMismatch, CorruptWeights, IncompatibleWeights,
                                  WeightsNotFound)
from evaluation.models.passt import OFFICIAL_PRESET, PaSST, PaSSTMel, PaSSTNet, get_passt_config, prepare_waveforms

FIXTURES = Path(__file__).parents[2] / "fixtures" / "passt"
TINY_FILE = str(FIXTURES / "tiny_state_dict.pth")


@pytest.fixture(scope="module")
def parity():
    return load_file(FIXTURES / "parity.safetensors")


@pytest.fixture(scope="module")
def tiny():
    return PaSST.from_file(TINY_FILE, "tiny", verify_checksum=False)


def test_features_match_official_wrapper_mode_all(tiny, parity):
    # Each raw clip (0.625 s, 1 s, 1.28 s, with DC offsets) against hear21passt's wrapper output, split 527 + D.
    for i, n in enumerate(parity["lengths"].tolist()):
        out = tiny.features(parity["raw"][i:i + 1, :n].numpy())
        assert out["logits"].shape == (1, 527) and out["embedding"].shape == (1, 32)
        assert out["logits"].dtype == out["embedding"].dtype == np.float32
        for key in ("logits", "embedding"):
            ref = parity[key][i:i + 1].numpy()
            assert np.abs(out[key] - ref).max() / np.abs(ref).max() < 1e-5, (i, key)


def test_batch_gives_the_same_features_as_one_clip_at_a_time(tiny, parity):
    clips = parity["raw"][:2, :20_000]
    both = tiny.features(clips)
    for i in range(2):
        one = tiny.features(clips[i:i + 1])
        np.testing.assert_allclose(both["logits"][i:i + 1], one["logits"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(both["embedding"][i:i + 1], one["embedding"], rtol=0, atol=1e-5)


def test_prepare_removes_dc_then_pads_or_truncates_like_av_benchmark(parity):
    config = get_passt_config("tiny")
    for i, n in enumerate(parity["lengths"].tolist()):
        out = prepare_waveforms(parity["raw"][i:i + 1, :n], config)
        assert out.shape == (1, config.clip_samples)
        torch.testing.assert_close(out, parity["prepared"][i:i + 1], rtol=0, atol=1e-6)
    assert prepare_waveforms(np.ones((2, 7), np.float64), config).abs().max() == 0  # constant -> silence


# float32 STFT and log kernels differ between CPUs (AVX2 vs AVX-512 code, picked at run time): an AVX2-only
# AMD EPYC differs from the official numbers by up to 8.7e-5 in a few of the log-mel cells (under 1e-5 on an
# AVX-512 machine).
MEL_TOL = dict(rtol=1e-4, atol=2e-4)


def test_mel_front_end_matches_official_augment_mel_stft(tiny, parity):
    with torch.no_grad():
        mel = tiny.mel(parity["prepared"])
    assert mel.shape == (4, 128, 100)
    torch.testing.assert_close(mel, parity["mel"], **MEL_TOL)


def test_full_size_front_end_gives_1000_frames_matching_official():
    # The official front end on a 10-s clip of numpy PCG64 noise (seed 0, std 0.1).
    clip = torch.from_numpy((0.1 * np.random.default_rng(0).standard_normal(320_000)).astype(np.float32))[None]
    config = get_passt_config(OFFICIAL_PRESET)
    assert config.n_frames == 1000 and config.grid == (12, 99)
    with torch.no_grad():
        mel = PaSSTMel(config)(clip)
    ref = load_file(FIXTURES / "parity.safetensors")["full_mel"]
    assert mel.shape == ref.shape == (1, 128, 1000)
    torch.testing.assert_close(mel, ref, **MEL_TOL)


def test_full_size_network_has_the_official_keys_and_shapes():
    table = json.loads((FIXTURES / "keys.json").read_text())
    with torch.device("meta"):
        net = PaSSTNet(get_passt_config(OFFICIAL_PRESET))
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert ours == table["net"]
    assert sum(v.numel() for v in net.state_dict().values()) == table["num_parameters"] == 86_153_758
    assert list(get_passt_config(OFFICIAL_PRESET).grid) == table["patch_grid"]
    assert {n: m.eps for n, m in net.named_modules() if isinstance(m, torch.nn.LayerNorm)} == table["layer_norm_eps"]
    # fp32 tensors plus pickle overhead: the registered file is a few tens of KB larger
    assert 0 < OFFICIAL_WEIGHTS[OFFICIAL_PRESET].nbytes - 4 * table["num_parameters"] < 200_000


def test_wrong_patch_grid_is_refused(tiny):
    with pytest.raises(ValueError, match=r"patch grid"):
        tiny.net(torch.zeros(1, 1, 128, 200))


def test_features_refuse_non_batched_input(tiny):
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        tiny.features(np.zeros(32_000, np.float32))
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        tiny.features(np.zeros((1, 0), np.float32))


def test_interface_attributes(tiny):
    assert tiny.sample_rate == 32_000 and tiny.name == "tiny" and not tiny.training
    assert get_passt_config(OFFICIAL_PRESET).num_classes == 527
    with pytest.raises(ValueError, match="unknown PaSST preset"):
        get_passt_config("passt_l")


def test_missing_file_names_the_official_file_and_its_checksum(tmp_path):
    known = OFFICIAL_WEIGHTS[OFFICIAL_PRESET]
    with pytest.raises(WeightsNotFound) as err:
        PaSST.from_file(str(tmp_path / "nope.pt"))
    for part in (known.filename, known.sha256, known.url, "344665734 bytes"):
        assert part in str(err.value)


def test_wrong_size_or_checksum_is_refused(tmp_path, monkeypatch):
    with pytest.raises(ChecksumMismatch, match="expected 344665734"):
        PaSST.from_file(TINY_FILE)
    size = Path(TINY_FILE).stat().st_size
    # a registry entry of the right size but another sha256 -> the digest is checked
    same_size = dataclasses.replace(OFFICIAL_WEIGHTS[OFFICIAL_PRESET], nbytes=size)
    monkeypatch.setitem(OFFICIAL_WEIGHTS, OFFICIAL_PRESET, same_size)
    with pytest.raises(ChecksumMismatch, match="sha256"):
        PaSST.from_file(TINY_FILE)


def test_corrupt_file_is_refused(tmp_path):
    bad = tmp_path / "cut.pt"
    bad.write_bytes(Path(TINY_FILE).read_bytes()[:-1000])  # an interrupted download
    with pytest.raises(CorruptWeights, match="cut.pt.*truncated"):
        PaSST.from_file(str(bad), "tiny", verify_checksum=False)
    bad.write_bytes(b"<html>not a checkpoint</html>")
    with pytest.raises(CorruptWeights, match="truncated or not a PyTorch checkpoint"):
        PaSST.from_file(str(bad), "tiny", verify_checksum=False)
    torch.save([torch.zeros(2)], bad)
    with pytest.raises(CorruptWeights, match="state dict"):
        PaSST.from_file(str(bad), "tiny", verify_checksum=False)


def test_file_of_another_size_does_not_load_strictly():
    with pytest.raises(IncompatibleWeights, match="shape mismatches"):
        PaSST.from_file(TINY_FILE, OFFICIAL_PRESET, verify_checksum=False)


def test_loads_from_an_fsspec_url(tiny, parity):
    with fsspec.open("memory://passt/tiny.pt", "wb") as f:
        f.write(Path(TINY_FILE).read_bytes())
    model = PaSST.from_file("memory://passt/tiny.pt", "tiny", verify_checksum=False)
    for a, b in zip(model.net.state_dict().values(), tiny.net.state_dict().values()):
        assert torch.equal(a, b)
