"""The per-process model cache and the feature cache."""
from __future__ import annotations

import pytest

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
