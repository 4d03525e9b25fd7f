"""The per-process model cache and the feature cache."""
from __future__ import annotations

import pytest
import torch

from pipeline import models
from tasks.model_info import describe_model


def test_a_worker_loads_each_model_once(h):
    a = models.load_model(h.MODEL, h.DURATION)
    assert models.load_model(h.MODEL, h.DURATION) is a
    assert models.load_model(h.MODEL, 1.0) is not a  # another duration is another network length
    assert models.load_model("random:tiny:3", h.DURATION).name == "random-tiny-3"
    assert models.model_id(a).startswith("random-tiny-0@") and models.model_id(a) == models.model_id(a)


def test_model_ids_differ_with_the_weights(h):
    assert models.model_id(models.load_model("random:tiny:1", h.DURATION)) != \
        models.model_id(models.load_model(h.MODEL, h.DURATION))


def test_missing_demo_weights_give_a_clear_error(monkeypatch, tmp_path, h):
    monkeypatch.setattr(models, "DEMO_MODEL_DIR", tmp_path / "weights" / "demo")
    with pytest.raises(models.ModelNotFound) as err:
        models.load_model("demo", 7.5)
    text = str(err.value)
    assert "demo model is not installed" in text and str(tmp_path / "weights" / "demo" / "bundle.json") in text
    assert "random:tiny" in text  # says what to do meanwhile


def test_a_missing_bundle_path_and_bad_names_are_clear(tmp_path, h):
    with pytest.raises(models.ModelNotFound, match="cannot load model"):
        models.load_model(str(tmp_path / "nope"), h.DURATION)
    with pytest.raises(ValueError, match="random:<preset>"):
        models.load_model("random:", h.DURATION)
    with pytest.raises(ValueError, match="reserved"):
        models.register_model("random:x", models.load_model(h.MODEL, h.DURATION), h.DURATION)


def test_features_are_encoded_once_per_video(h, demo_video, monkeypatch):
    bundle = models.load_model(h.MODEL, h.DURATION)
    calls = []
    real = models.decode_frames
    monkeypatch.setattr(models, "decode_frames", lambda *a, **k: calls.append(a) or real(*a, **k))
    sha = "0" * 63 + "1"
    windows, covered = models.encode_video(bundle, demo_video, sha, h.DURATION)
    f2 = models.video_features(bundle, demo_video, sha, h.DURATION)
    assert windows[0] is f2 and len(calls) == 1 and covered == pytest.approx(8.0)  # the whole video
    assert models.video_windows(bundle, demo_video, sha, h.DURATION) is windows and len(calls) == 1
    assert len(windows) == len(models.soundtrack_windows(bundle, 8.0)) == 1  # one 8-s window (2 for 8.5 s)
    assert len(models.soundtrack_windows(bundle, 8.5)) == 2
    assert f2.clip_f.shape[1] == bundle.base.seq.clip and f2.sync_f.shape[1] == bundle.base.seq.sync


def test_describe_model_reports_the_optional_parts(h, evaluated_model):
    info = describe_model.fn(h.MODEL, h.DURATION)
    assert info["sample_rate"] == 16000 and info["has_controlnet"] and not info["has_scorer"]
    rich = describe_model.fn(evaluated_model, h.DURATION)
    assert rich["has_scorer"] and rich["has_captioner"] and rich["has_evaluator"]


def test_each_placement_is_loaded_once_and_keeps_the_weights_id(h):
    host = models.load_model(h.MODEL, h.DURATION)
    bf16 = models.load_model(h.MODEL, h.DURATION, "cpu", "bf16")
    assert bf16 is not host and models.load_model(h.MODEL, h.DURATION, "cpu", "bf16") is bf16
    assert models.load_model(h.MODEL, h.DURATION, "auto", "auto") is (host if not torch.cuda.is_available() else
                                                                     models.load_model(h.MODEL, h.DURATION, "cuda:0", "bf16"))
    assert bf16.dtype == torch.bfloat16 and host.dtype == torch.float32  # the host bundle is not cast
    assert bf16.base.latent_mean.dtype == torch.float32  # the sampler's statistics stay fp32
    assert models.model_id(bf16) == models.model_id(host)  # the weights as loaded, whatever the placement


def test_a_registered_model_is_copied_to_other_placements(h):
    source = models.load_model("random:tiny:5", h.DURATION)
    models.register_model("test:placed", source, h.DURATION)
    assert models.load_model("test:placed", h.DURATION) is source
    bf16 = models.load_model("test:placed", h.DURATION, "cpu", "bf16")
    assert bf16 is not source and source.dtype == torch.float32 and bf16.dtype == torch.bfloat16


def test_placements_are_checked_with_clear_errors():
    assert models.resolve_placement("cpu", "auto") == ("cpu", "fp32")
    assert models.resolve_placement("CPU", "bf16") == ("cpu", "bf16")
    for device, precision, message in (("tpu", "auto", "device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
                                       ("cuda:x", "auto", "device must be"),
                                       ("cpu", "fp16", "precision must be one of")):
        with pytest.raises(ValueError, match=message):
            models.resolve_placement(device, precision)
    models.check_placement_names("cuda:3", "bf16")  # the words only: no CUDA lookup
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available here"):
            models.resolve_placement("cuda", "auto")
        with pytest.raises(ValueError, match="CUDA is not available here"):
            models.load_model("random:tiny", 2.0, "cuda:1")


def test_describe_model_records_the_placement(h):
    info = describe_model.fn(h.MODEL, h.DURATION, "cpu", "bf16")
    assert (info["device"], info["precision"]) == ("cpu", "bf16")
    assert info["model_id"] == describe_model.fn(h.MODEL, h.DURATION)["model_id"]
