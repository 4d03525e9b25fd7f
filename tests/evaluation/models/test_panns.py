"""PANNs Cnn14 (16 kHz) against av-benchmark's own Cnn14 (fixtures in tests/fixtures/panns, see its README)."""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation.models.panns import PRESETS, PANNsCnn14, dft_basis
from nag_model.checkpoint import (OFFICIAL_WEIGHTS, ChecksumMismatch, CorruptWeights, IncompatibleWeights,
                                  WeightsNotFound)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "panns"
FRONT = ("spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight",
         "logmel_extractor.melW")


def seeded_state(shapes: dict[str, tuple[int, ...]], seed: int, keep=()) -> dict[str, torch.Tensor]:
    """The fixture's random weights, drawn key by key in sorted order (README: 'weights')."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k in sorted(shapes):
        shape = tuple(shapes[k])
        if k in keep or k.endswith("num_batches_tracked"):
            continue
        if k.endswith("running_var"):
            v = (50.0 if k.startswith("bn0.") else 0.5) + torch.rand(shape, generator=g)
        elif k.endswith("running_mean"):
            v = (-20.0 if k.startswith("bn0.") else 0.0) + 0.1 * torch.randn(shape, generator=g)
        elif len(shape) == 1 and k.endswith("weight"):
            v = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif len(shape) == 1:
            v = 0.1 * torch.randn(shape, generator=g)
        else:
            v = torch.randn(shape, generator=g) * (2.0 / float(np.prod(shape[1:]))) ** 0.5
        out[k] = v
    return out


@pytest.fixture(scope="module")
def official():
    return torch.load(FIXTURES / "parity_cnn14_16k.pt", weights_only=True)


@pytest.fixture(scope="module")
def full_model(official):
    with torch.device("meta"):  # no random initialisation of 81 M parameters: every tensor is set below
        model = PANNsCnn14("cnn14_16k")
    model.to_empty(device="cpu")
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    state = seeded_state(shapes, seed=official["seed"], keep=FRONT)
    digest = hashlib.sha256(b"".join(state[k].numpy().tobytes() for k in sorted(state))).hexdigest()
    assert digest == official["state_sha256"], "the seeded weights differ from those the fixture was made with"
    tiny = PANNsCnn14("tiny").state_dict()  # same front end: its computed STFT basis and mel bank
    state.update({k: tiny[k] for k in FRONT})
    state.update({k: torch.zeros((), dtype=torch.long) for k in shapes if k.endswith("num_batches_tracked")})
    model.load_state_dict(state, strict=True)
    return model


def test_full_model_has_exactly_the_official_keys_and_shapes():
    table = json.loads((FIXTURES / "keys_cnn14_16k.json").read_text())["state_dict"]
    with torch.device("meta"):
        model = PANNsCnn14("cnn14_16k")
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == table


def test_log_mel_matches_torchlibrosa(full_model, official, rel_err):
    wav = full_model.prepare(official["wav"])
    ours = full_model.log_mel(wav)
    assert ours.shape == official["logmel"].shape == (2, 1, 101, 64)
    assert rel_err(ours, official["logmel"]) < 1e-5


def test_features_match_av_benchmark_on_seeded_weights(full_model, official, rel_err):
    out = full_model.features(official["wav"].numpy())  # DC offset still in: features() removes it
    assert out["embedding"].shape == (2, 2048) and out["logits"].shape == (2, 527)
    assert out["embedding"].dtype == out["logits"].dtype == np.float32
    assert rel_err(out["embedding"], official["embedding"]) < 1e-4
    assert rel_err(out["logits"], official["logits"]) < 1e-4
    # the logits are av-benchmark's pre-sigmoid "logits", not its clipwise sigmoid output
    assert rel_err(torch.sigmoid(torch.from_numpy(out["logits"])), official["clipwise_output"]) < 1e-4
    assert not np.allclose(out["logits"], official["clipwise_output"].numpy(), atol=1e-2)


def test_dft_basis_is_the_windowed_rfft():
    real, imag = dft_basis(16)
    frame = np.random.default_rng(0).normal(size=16)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(16) / 16)  # periodic Hann
    spectrum = np.fft.rfft(frame * window)
    assert np.allclose(real @ frame, spectrum.real) and np.allclose(imag @ frame, spectrum.imag)


def test_prepare_removes_the_mean_then_keeps_the_first_8_seconds_and_rejects_short_clips():
    model = PANNsCnn14("tiny")
    wav = torch.randn(2, 9 * 16000) + 0.5
    prepared = model.prepare(wav)
    assert torch.allclose(prepared, (wav - wav.mean(1, keepdim=True))[:, : 8 * 16000])
    assert model.prepare(wav.numpy()[:, :16000]).shape == (2, 16000)
    with pytest.raises(ValueError, match=r"at least 4960 samples"):
        model.prepare(wav[:, :4000])
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        model.prepare(wav[0])


def _checkpoint_bytes(state: dict, legacy_numpy_names: bool = False) -> bytes:
    """A file laid out like the released one: {"model": state dict, "iteration", "sampler": numpy arrays}."""
    buf = io.BytesIO()
    torch.save({"model": state, "iteration": 660000,
                "sampler": {"indexes": np.arange(6, dtype=np.int64), "weights": np.ones(3)}}, buf)
    if not legacy_numpy_names:
        return buf.getvalue()
    out = io.BytesIO()  # rename numpy 2's module path to numpy 1's, as in files pickled before 2024
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in data
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            dst.writestr(info, data)
    return out.getvalue()


@pytest.mark.parametrize("legacy", [False, True])
def test_from_file_loads_a_wrapped_checkpoint_with_numpy_metadata(tmp_path, legacy):
    torch.manual_seed(0)
    source = PANNsCnn14("tiny")
    for p in source.parameters():
        p.data.normal_()
    path = tmp_path / "tiny.pth"
    path.write_bytes(_checkpoint_bytes(source.state_dict(), legacy))
    model = PANNsCnn14.from_file(str(path), "tiny", verify_checksum=False)
    assert not model.training
    wav = np.random.default_rng(0).normal(size=(1, 8000)).astype(np.float32)
    out, ref = model.features(wav), source.features(wav)
    assert np.array_equal(out["embedding"], ref["embedding"]) and np.array_equal(out["logits"], ref["logits"])


def test_from_file_errors_name_the_file_and_its_source(tmp_path):
    known = OFFICIAL_WEIGHTS["panns_cnn14_16k"]
    with pytest.raises(WeightsNotFound) as err:
        PANNsCnn14.from_file(str(tmp_path / "absent.pth"))
    assert known.filename in str(err.value) and known.md5 in str(err.value) and known.url in str(err.value)
    wrong = tmp_path / "wrong.pth"
    wrong.write_bytes(_checkpoint_bytes(PANNsCnn14("tiny").state_dict()))
    with pytest.raises(ChecksumMismatch, match=known.md5):
        PANNsCnn14.from_file(str(wrong))
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(wrong.read_bytes()[:5000])
    with pytest.raises(CorruptWeights, match="corrupt.pth"):
        PANNsCnn14.from_file(str(corrupt), verify_checksum=False)
    mismatch = r"conv_block1.conv1.weight: file \(4, 1, 3, 3\) vs network \(64, 1, 3, 3\)"
    with pytest.raises(IncompatibleWeights, match=mismatch):
        PANNsCnn14.from_file(str(wrong), verify_checksum=False)
    state = PANNsCnn14("tiny").state_dict()
    del state["fc1.bias"]
    wrong.write_bytes(_checkpoint_bytes(state))
    with pytest.raises(IncompatibleWeights, match="1 missing keys: fc1.bias"):
        PANNsCnn14.from_file(str(wrong), "tiny", verify_checksum=False)


def test_presets():
    assert PRESETS["cnn14_16k"].embedding_dim == 2048 and PRESETS["cnn14_16k"].classes == 527
    with torch.device("meta"):
        model = PANNsCnn14()
    assert model.name == "panns_cnn14_16k" and model.sample_rate == 16000
    with pytest.raises(ValueError, match="unknown Cnn14 preset"):
        PANNsCnn14("cnn14_32k")
