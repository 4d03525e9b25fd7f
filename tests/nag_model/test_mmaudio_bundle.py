"""The real MMAudio bundles: the file registry, `check_weights`, and assembling a bundle from a folder
of tiny production-architecture files (CLIP, Synchformer, VAE, BigVGAN, network)."""
from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
import torch

import nag_model.mmaudio_bundle as mb
from nag_model.checkpoint import ChecksumMismatch, WeightsNotFound, save_controlnet
from nag_model.controlnet import AudioControlNet
from nag_model.settings import TrackSettings

import tiny_mmaudio  # tests/conftest.py SHARED_MODULES
use_tiny_weights, write_tiny_weights = tiny_mmaudio.use_tiny_weights, tiny_mmaudio.write_tiny_weights


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return write_tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def tiny_bundle(tiny_folder):
    with pytest.MonkeyPatch.context() as mp:
        use_tiny_weights(mp, tiny_folder)
        return mb.load_mmaudio_bundle("mmaudio-small-16k", str(tiny_folder))


def test_every_bundle_names_its_five_registered_files():
    for spec in mb.BUNDLES.values():
        assert set(spec.files) == set(mb.ROLES)
        for key in spec.files.values():
            known = mb.REGISTRY[key]
            assert known.algorithm in ("md5", "sha256") and len(known.digest) == {"md5": 32, "sha256": 64}[known.algorithm]
            assert known.url.startswith("https://")
    assert mb.BUNDLES["mmaudio-small-16k"].files["vocoder"] == "bigvgan_16k"
    assert mb.REGISTRY[mb.BUNDLES["mmaudio-large-44k-v2"].files["vocoder"]].filename == "bigvgan_generator.pt"
    assert mb.REGISTRY["small_16k"].digest == "af93cde404179f58e3919ac085b8033b"


def test_model_string_round_trips_and_needs_weights():
    s = mb.model_string("mmaudio-small-16k", "s3://models/mmaudio/")
    assert mb.parse_model_string(s) == ("mmaudio-small-16k", "s3://models/mmaudio/")
    assert mb.parse_model_string("demo") is None and mb.parse_model_string("random:tiny") is None
    with pytest.raises(ValueError, match="needs its weights folder"):
        mb.parse_model_string("mmaudio-small-16k")
    with pytest.raises(ValueError, match="unknown MMAudio bundle"):
        mb.model_string("mmaudio-huge", "x")


def test_check_weights_reports_ok_missing_and_corrupt(tmp_path, monkeypatch):
    (tmp_path / "ext_weights").mkdir()
    (tmp_path / "ext_weights" / "v1-16.pth").write_bytes(b"not the VAE")  # official subfolder, wrong bytes
    (tmp_path / "best_netG.pt").write_bytes(b"a small vocoder")
    digest = hashlib.md5(b"a small vocoder").hexdigest()
    monkeypatch.setitem(mb.REGISTRY, "bigvgan_16k", replace(mb.REGISTRY["bigvgan_16k"], digest=digest))
    rows = {r.role: r for r in mb.check_weights(str(tmp_path), ["mmaudio-small-16k"])}
    assert rows["vocoder"].status == "ok" and rows["vocoder"].nbytes == 15 and rows["vocoder"].actual == f"md5 {digest}"
    assert rows["vae"].status == "corrupt" and rows["vae"].path.endswith("ext_weights/v1-16.pth")
    assert rows["vae"].actual == f"md5 {hashlib.md5(b'not the VAE').hexdigest()}"
    assert rows["vae"].expected == "md5 69f56803f59a549a1a507c93859fd4d7"
    assert rows["network"].status == "missing" and "mmaudio_small_16k.pth" in rows["network"].note
    assert rows["controlnet (NAG)"].status == "missing"
    assert not mb.bundle_complete(list(rows.values()), "mmaudio-small-16k")


def test_a_truncated_file_is_corrupt_by_its_size(tmp_path):
    (tmp_path / "bigvgan_generator.pt").write_bytes(b"x" * 10)
    (row,) = [r for r in mb.check_weights(str(tmp_path), ["mmaudio-small-44k"]) if r.role == "vocoder"]
    assert row.status == "corrupt" and "truncated: 10 bytes, expected 489041291" in row.note


def test_loading_names_every_missing_file_then_every_corrupt_one(tmp_path, monkeypatch):
    with pytest.raises(WeightsNotFound) as err:
        mb.load_mmaudio_bundle("mmaudio-small-16k", str(tmp_path))
    for name in ("mmaudio_small_16k.pth", "open_clip_pytorch_model.bin", "synchformer_state_dict.pth", "v1-16.pth",
                 "best_netG.pt", "af93cde404179f58e3919ac085b8033b", "huggingface.co"):
        assert name in str(err.value)
    folder = write_tiny_weights(tmp_path / "w")
    with pytest.raises(ChecksumMismatch, match="5 weight file.*not the expected ones"):
        mb.load_mmaudio_bundle("mmaudio-small-16k", str(folder))


def test_tiny_bundle_encodes_pipeline_frames_at_the_network_lengths(tiny_bundle):
    b = tiny_bundle
    assert b.video_encoder.clip_size == (384, 384) and b.video_encoder.sync_size == (32, 32)
    assert (b.video_encoder.clip_fit, b.video_encoder.sync_fit) == ("stretch", "crop")
    rng = np.random.default_rng(0)
    feats = b.video_features(rng.integers(0, 255, (40, 384, 384, 3), np.uint8),  # short: padded to 64
                             rng.integers(0, 255, (230, 32, 32, 3), np.uint8))  # long: cut to 200
    assert feats.clip_f.shape == (1, 64, b.base.config.clip_dim)
    assert feats.sync_f.shape == (1, 192, b.base.config.sync_dim)
    assert torch.allclose(feats.clip_f.norm(dim=-1), torch.ones(1, 64), atol=1e-5)  # L2-normalised frames
    text = b.text_encoder(["A dog barks.", ""])
    assert text.shape == (2, 77, b.base.config.text_dim)
    assert torch.allclose(text.norm(dim=-1), torch.ones(2, 77), atol=1e-5)  # per-token normalised
    assert b.sample_rate == 16_000 and b.duration == pytest.approx(8.0, abs=0.05) and b.controlnet is None


def test_without_a_controlnet_nag_is_refused_and_other_methods_run(tiny_bundle):
    from nag_model.generator import VideoFeatures

    gen = tiny_bundle.generator()
    video = VideoFeatures(torch.zeros(1, 64, 16), torch.zeros(1, 192, 32))
    out = gen.generate(video, ["A dog barks.", "Rain falls."], settings=TrackSettings("independent", steps=2))
    assert len(out) == 2 and all(np.isfinite(t.waveform).all() for t in out)
    with pytest.raises(ValueError, match="needs an AudioControlNet"):
        gen.generate(video, ["A dog barks.", "Rain falls."], settings=TrackSettings("nag", steps=2))


def test_the_controlnet_file_in_the_folder_enables_nag(tiny_folder, tmp_path, monkeypatch):
    import shutil

    folder = tmp_path / "w"
    shutil.copytree(tiny_folder, folder)
    use_tiny_weights(monkeypatch, folder)
    base = mb.load_mmaudio_bundle("mmaudio-small-16k", str(folder), controlnet=False).base
    save_controlnet(AudioControlNet.from_base(base), base, str(folder / "controlnet_small_16k"))
    bundle = mb.load_mmaudio_bundle("mmaudio-small-16k", str(folder))
    assert bundle.controlnet is not None and bundle.card["controlnet"]
    rows = {r.role: r for r in mb.check_weights(str(folder), ["mmaudio-small-16k"])}
    assert rows["controlnet (NAG)"].status == "unverified" and rows["controlnet (NAG)"].actual.startswith("sha256 ")
    assert mb.bundle_complete(list(rows.values()), "mmaudio-small-16k")


def test_check_weights_reads_an_fsspec_url(monkeypatch):
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/weights-check/ext_weights/synchformer_state_dict.pth", b"sync bytes")
    digest = hashlib.md5(b"sync bytes").hexdigest()
    monkeypatch.setitem(mb.REGISTRY, "synchformer", replace(mb.REGISTRY["synchformer"], digest=digest))
    rows = {r.role: r for r in mb.check_weights("memory://weights-check", ["mmaudio-small-16k"])}
    assert rows["synchformer"].status == "ok" and rows["synchformer"].nbytes == 10
    assert rows["synchformer"].path == "memory://weights-check/ext_weights/synchformer_state_dict.pth"
    assert rows["clip"].status == "missing"
    fs.rm("/weights-check", recursive=True)
