"""Features of real videos for the real ControlNet: extraction with tiny production-architecture modules
(resumable, one atomic file per video), then ControlNet training steps from those features."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import nag_model.mmaudio_bundle as mb
from training import features as tf

import foley_test_helpers as helpers  # tests/conftest.py SHARED_MODULES
import tiny_mmaudio

_TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("features")
    with pytest.MonkeyPatch.context() as mp:
        weights = tiny_mmaudio.write_tiny_weights(d / "weights")
        tiny_mmaudio.use_tiny_weights(mp, weights)
        bundle = mb.load_mmaudio_bundle("mmaudio-small-16k", str(weights), controlnet=False)
        videos = [helpers.write_video(d / f"v{i}.mp4", s, audio=True) for i, s in enumerate((1.0, 1.5, 9.0))]
        manifest = d / "m.csv"
        manifest.write_text("id,video_uri,captions\n" + "".join(f"v{i},{v},A tone hums.\n" for i, v in enumerate(videos)))
        yield {"dir": d, "weights": weights, "bundle": bundle, "manifest": manifest, "mp": mp}


def test_extraction_resumes_and_writes_one_file_per_video(setup):
    out = setup["dir"] / "feats"
    s = tf.extract(str(setup["manifest"]), setup["bundle"], str(out), progress=False, stop_after=2)  # "killed"
    assert s.done == ["v0", "v1"] and not s.failed
    assert sorted(p.name for p in out.iterdir()) == ["v0.safetensors", "v1.safetensors"]
    (out / "v2.safetensors.tmp").write_bytes(b"partial write of a killed run")
    s = tf.extract(str(setup["manifest"]), setup["bundle"], str(out), progress=False)
    assert s.skipped == ["v0", "v1"] and s.done == ["v2"] and not s.failed
    assert not (out / "v2.safetensors.tmp").exists()
    cfg = setup["bundle"].base.config
    with safe_open(str(out / "v2.safetensors"), "pt") as f:
        shapes = {k: tuple(f.get_tensor(k).shape) for k in f.keys()}
        meta = f.metadata()
    assert shapes == {"clip_f": (64, cfg.clip_dim), "sync_f": (192, cfg.sync_dim), "sync_half": (2, 88, cfg.sync_dim),
                      "text_f": (77, cfg.text_dim), "mean": (250, cfg.latent_dim), "std": (250, cfg.latent_dim)}
    assert meta["video_id"] == "v2" and meta["caption"] == "A tone hums." and meta["bundle"] == "mmaudio-small-16k"
    data = tf.FeatureSet.load(str(out))
    assert data.ids == ["v0", "v1", "v2"] and bool((data.std > 0).all())
    # the 1-s clip's audio is zero-padded: its latents past 1 s differ from its first second
    assert not torch.allclose(data.mean[0, :20], data.mean[0, -20:])


def test_controlnet_trains_from_the_features_and_the_bundle_loads_it(setup):
    out = setup["dir"] / "feats"
    if not out.exists():
        tf.extract(str(setup["manifest"]), setup["bundle"], str(out), progress=False)
    result, stem = tf.train_controlnet(str(out), "mmaudio-small-16k", str(setup["weights"]), str(setup["weights"]),
                                       steps=3, batch_size=2, work=str(setup["dir"] / "work"), progress=False)
    assert result.steps == 3 and len(result.losses) == 3 and all(math.isfinite(x) for x in result.losses)
    assert (setup["dir"] / "work" / "last.pt").exists() and Path(stem + ".safetensors").exists()
    bundle = mb.load_mmaudio_bundle("mmaudio-small-16k", str(setup["weights"]))
    assert bundle.controlnet is not None
    trained = dict(result.model.named_parameters())
    assert all(torch.equal(p, trained[n]) for n, p in bundle.controlnet.named_parameters())  # the EMA weights


def test_batches_pair_two_disjoint_halves_of_one_clip(setup):
    data = tf.FeatureSet(["a"], torch.randn(1, 64, 4), torch.randn(1, 2, 88, 3),
                         torch.arange(250.0).view(1, 250, 1), torch.zeros(1, 250, 1))
    b = tf.FeatureControlNetBatches(data, 125)(8, torch.Generator().manual_seed(0))
    firsts = {float(b["x1"][i, 0, 0]) for i in range(8)} | {float(b["reference"][i, 0, 0]) for i in range(8)}
    assert firsts == {0.0, 125.0}
    assert torch.equal(b["x1"][:, 0, 0] + b["reference"][:, 0, 0], torch.full((8,), 125.0))
    assert b["clip_f"].shape == (8, 32, 4) and b["sync_f"].shape == (8, 88, 3) and bool(b["video_exist"].all())


def test_controlnet_training_on_features_runs_under_torchrun(setup, tmp_path, two_ranks):
    feats = setup["dir"] / "feats"
    if not feats.exists():
        tf.extract(str(setup["manifest"]), setup["bundle"], str(feats), progress=False)
    driver = _TESTS / "training" / "features_ddp_driver.py"
    r0, r1 = two_ranks([str(driver), str(setup["weights"]), str(feats), str(tmp_path)], tmp_path, timeout=300)
    assert r0["losses"] == r1["losses"] and len(r0["losses"]) == 2 and all(math.isfinite(x) for x in r0["losses"])
    assert all(torch.allclose(v, r1["ema"][k], atol=1e-6) for k, v in r0["ema"].items())
    assert Path(r0["stem"] + ".safetensors").exists() and (tmp_path / "work" / "last.pt").exists()
