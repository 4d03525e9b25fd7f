"""VGGish against av-benchmark's own VGGish and mel_features (fixtures in tests/fixtures/vggish, see its README)."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation.models.vggish import PRESETS, VGGish, hertz_to_mel, log_mel_examples, mel_matrix
from nag_model.checkpoint import (OFFICIAL_WEIGHTS, ChecksumMismatch, CorruptWeights, IncompatibleWeights,
                                  WeightsNotFound)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "vggish"


def seeded_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """The fixture's random weights, drawn key by key in sorted order (README: 'weights')."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k in sorted(shapes):
        shape = tuple(shapes[k])
        if len(shape) == 1:
            out[k] = 0.1 * torch.randn(shape, generator=g)
        else:
            out[k] = torch.randn(shape, generator=g) * (2.0 / float(np.prod(shape[1:]))) ** 0.5
    return out


@pytest.fixture(scope="module")
def official():
    return torch.load(FIXTURES / "parity_vggish.pt", weights_only=True)


@pytest.fixture(scope="module")
def full_model(official):
    with torch.device("meta"):  # no random initialisation of 72 M parameters: every tensor is set below
        model = VGGish("vggish")
    model.to_empty(device="cpu")
    state = seeded_state({k: v.shape for k, v in model.net.state_dict().items()}, seed=official["seed"])
    digest = hashlib.sha256(b"".join(state[k].numpy().tobytes() for k in sorted(state))).hexdigest()
    assert digest == official["state_sha256"], "the seeded weights differ from those the fixture was made with"
    model.net.load_state_dict(state, strict=True)
    return model


def test_full_network_has_exactly_the_official_keys_and_shapes():
    table = json.loads((FIXTURES / "keys_vggish.json").read_text())["state_dict"]
    with torch.device("meta"):
        model = VGGish("vggish")
    assert {k: list(v.shape) for k, v in model.net.state_dict().items()} == table


def test_log_mel_examples_match_mel_features(official, rel_err):
    model = VGGish("tiny")  # the front end does not depend on the network's widths
    for wav, ref in zip(official["wav"], official["examples"]):
        ours = model.examples(wav)
        assert ours.shape == ref.shape == (2, 96, 64)
        assert rel_err(ours, ref) < 1e-6


def test_embeddings_match_av_benchmark_on_seeded_weights(full_model, official, rel_err):
    out = full_model.features(official["wav"].numpy())  # DC offset still in: features() removes it
    frames = out["frames"]
    assert [f.shape for f in frames] == [(2, 128), (2, 128)] and frames[0].dtype == np.float32
    assert rel_err(np.stack(frames), official["embeddings"]) < 1e-4
    assert (np.stack(frames) < 0).any()  # no ReLU after the last layer, as av-benchmark


def test_mel_matrix_closed_form_points():
    config = PRESETS["vggish"]
    weights = mel_matrix(config)
    assert weights.shape == (257, 64) and np.all(weights[0] == 0.0)
    assert hertz_to_mel(700.0) == pytest.approx(1127.0 * np.log(2.0))
    edges = np.linspace(hertz_to_mel(125.0), hertz_to_mel(7500.0), 66)
    bin_mel = hertz_to_mel(np.arange(257) * 31.25)
    # each band is 1 at its centre and 0 at its edges, linear in mel between: check band 10 at 3 bins
    for b in (40, 41, 42):
        rise = (bin_mel[b] - edges[10]) / (edges[11] - edges[10])
        fall = (edges[12] - bin_mel[b]) / (edges[12] - edges[11])
        assert weights[b, 10] == pytest.approx(max(0.0, min(rise, fall)))
    assert np.all(weights[bin_mel > edges[-1]] == 0.0)


def test_examples_are_whole_96_frame_windows_of_the_first_8_seconds():
    model = VGGish("tiny")
    config = model.config
    assert (config.window_samples, config.hop_samples, config.fft_size) == (400, 160, 512)
    assert config.min_samples == 15600
    assert model.examples(np.zeros(15600, np.float32)).shape == (1, 96, 64)
    assert model.examples(np.zeros(15599, np.float32)).shape == (0, 96, 64)
    assert model.examples(np.zeros(10 * 16000, np.float32)).shape == (8, 96, 64)  # 8 s kept: 798 frames
    silence = log_mel_examples(np.zeros(16000), config)
    assert np.allclose(silence, np.log(0.01))
    wav = np.random.default_rng(0).normal(size=9 * 16000).astype(np.float32) + 0.3
    x = wav - wav.mean(dtype=np.float32)
    assert np.array_equal(model.examples(wav), log_mel_examples(x[: 8 * 16000], config))
    with pytest.raises(ValueError, match="at least 15600 samples"):
        model.features([np.zeros(15000, np.float32)])
    out = model.features([wav[:16000], wav])  # clips of different lengths
    assert [f.shape for f in out["frames"]] == [(1, 8), (8, 8)]


def _file_bytes(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def test_from_file_round_trip_and_errors(tmp_path):
    torch.manual_seed(0)
    source = VGGish("tiny")
    path = tmp_path / "tiny.pth"
    path.write_bytes(_file_bytes(source.net.state_dict()))
    model = VGGish.from_file(str(path), "tiny", verify_checksum=False)
    wav = np.random.default_rng(1).normal(size=(1, 16000)).astype(np.float32)
    assert np.array_equal(model.features(wav)["frames"][0], source.features(wav)["frames"][0])

    known = OFFICIAL_WEIGHTS["vggish"]
    with pytest.raises(WeightsNotFound) as err:
        VGGish.from_file(str(tmp_path / "absent.pth"))
    assert known.filename in str(err.value) and known.sha256 in str(err.value) and known.url in str(err.value)
    with pytest.raises(ChecksumMismatch, match=known.sha256):
        VGGish.from_file(str(path))
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(CorruptWeights, match="corrupt.pth"):
        VGGish.from_file(str(corrupt), verify_checksum=False)
    with pytest.raises(IncompatibleWeights, match=r"features.0.weight: file \(4, 1, 3, 3\) vs network \(64, 1, 3, 3\)"):
        VGGish.from_file(str(path), verify_checksum=False)
    with pytest.raises(ValueError, match="unknown VGGish preset"):
        VGGish("vggish_pca")
