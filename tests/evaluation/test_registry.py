"""The evaluation-model registry: configuration entries, the one-line skip reasons, lazy loading (demo model)."""
from __future__ import annotations

import numpy as np
import pytest

from evaluation import registry
from evaluation.registry import (EVAL_MODELS, EvalModelSpec, EvalModelUnavailable, WeightRef, load_eval_model,
                                 parse_eval_weights, plan_eval_models)
from nag_model.checkpoint import OFFICIAL_WEIGHTS
from pipeline.models import DEMO_MODEL_DIR

DEMO = str(DEMO_MODEL_DIR)


def test_entries_name_preset_path_and_folders(tmp_path):
    (tmp_path / OFFICIAL_WEIGHTS["synchformer"].filename).write_bytes(b"x")
    weights = parse_eval_weights([f"demo={DEMO}", "clap:tiny=s3://b/clap.pt", str(tmp_path), " "])
    assert weights["demo"] == WeightRef(DEMO) and weights["clap"] == WeightRef("s3://b/clap.pt", "tiny")
    assert weights["desync"].path == f"{tmp_path}/synchformer_state_dict.pth"  # found in the folder by its name
    assert parse_eval_weights([f"desync=/elsewhere.pth", str(tmp_path)])["desync"].path == "/elsewhere.pth"
    assert parse_eval_weights({"panns": "/w/p.pth"}) == {"panns": WeightRef("/w/p.pth")}
    assert registry.weight_entries(weights)[0] == "clap:tiny=s3://b/clap.pt"  # sorted by name
    assert parse_eval_weights(registry.weight_entries(weights)) == weights
    with pytest.raises(ValueError, match="unknown evaluation model 'pann'; known: panns, vggish"):
        parse_eval_weights(["pann=/x"])
    with pytest.raises(ValueError, match="given twice"):
        parse_eval_weights(["demo=/a", "demo=/b"])
    with pytest.raises(ValueError, match="empty"):
        parse_eval_weights(["demo="])


def test_plan_says_once_why_each_paper_metric_is_skipped(tmp_path, monkeypatch):
    lines = plan_eval_models({}).skipped
    assert [l.split(":")[1].strip() for l in lines] == ["FD_PANNs, KL_PANNs, IS", "FD_VGG", "KL_PaSST",
                                                        "CLAP A-A, CLAP T-A", "IB-score", "DeSync"]
    f = tmp_path / "w.pth"
    f.write_bytes(b"x")
    monkeypatch.setitem(EVAL_MODELS, "panns", EvalModelSpec("panns", "evaluation.models.no_such:PANNs", None,
                                                            ("set",), "FD_PANNs, KL_PANNs, IS", ("fd",)))
    monkeypatch.setitem(EVAL_MODELS, "vggish", EvalModelSpec("vggish", "evaluation.models.demo:NoClass", None,
                                                             ("set",), "FD_VGG", ("fd",)))
    monkeypatch.setitem(EVAL_MODELS, "clap", EvalModelSpec("clap", "evaluation.models.demo:DemoEvalModel", None,
                                                           ("clap",), "CLAP A-A, CLAP T-A", ("ta_similarity",)))
    plan = plan_eval_models({"panns": WeightRef(str(f)), "vggish": WeightRef(str(f)),
                             "clap": WeightRef(str(tmp_path / "missing.pt")), "demo": WeightRef(DEMO)})
    assert list(plan.usable) == ["demo"] and plan.with_role("clap") == ["demo"] and plan.entries() == [f"demo={DEMO}"]
    by = {l.split(":")[1].strip(): l for l in plan.skipped}
    assert len(plan.skipped) == 6 and "evaluation.models.no_such:PANNs cannot be imported (ModuleNotFoundError" in by["FD_PANNs, KL_PANNs, IS"]
    assert "module evaluation.models.demo has no class NoClass" in by["FD_VGG"]
    assert f"clap: weights not found at '{tmp_path / 'missing.pt'}'" in by["CLAP A-A, CLAP T-A"]
    assert plan.unconfigured == ("KL_PaSST", "IB-score", "DeSync") and plan.notice() == list(plan.skipped)


def test_a_plain_run_is_told_once_that_the_paper_metrics_are_skipped():
    plan = plan_eval_models({})
    assert plan.notice() == ["skipped: the paper's metrics (FD_PANNs, KL_PANNs, IS; FD_VGG; KL_PaSST; CLAP A-A, "
                             "CLAP T-A; IB-score; DeSync): no evaluation weights configured (--eval-weights NAME=PATH "
                             "or FOLEY_EVAL_WEIGHTS; see docs/metrics.md)"]
    assert len(plan.skipped) == 6  # the report still lists each metric's line
    assert plan_eval_models({"demo": WeightRef(DEMO)}).notice()[0].startswith("skipped: the paper's metrics")


def test_the_demo_evaluator_loads_once_through_the_registry():
    model = load_eval_model("demo", WeightRef(DEMO))
    assert load_eval_model("demo", WeightRef(DEMO)) is model and model.name == "demo-tagger"
    wavs = np.random.default_rng(0).uniform(-0.5, 0.5, (3, model.sample_rate)).astype(np.float32)
    feats = model.features(wavs)
    assert feats["embedding"].shape[0] == 3 and feats["logits"].shape == (3, len(model.evaluator.labels))
    probs = model.evaluator.tag(wavs)  # the logits are the tagger's, before its sigmoid
    assert np.allclose(1 / (1 + np.exp(-feats["logits"])), probs, atol=1e-5)
    assert np.allclose(np.linalg.norm(model.embed_text(["A dog barks."]), axis=-1), 1.0, atol=1e-5)
    with pytest.raises(EvalModelUnavailable, match="demo: .*no presets"):
        load_eval_model("demo", WeightRef(DEMO, "tiny"))
    with pytest.raises(EvalModelUnavailable, match="demo: .*not found"):
        load_eval_model("demo", WeightRef("/nowhere/demo"))
