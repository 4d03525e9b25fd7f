"""The landed evaluation models load through the registry (tiny presets, seeded files written here) and their
outputs fit the scoring paths: set metrics from `features`, CLAP and ImageBind rows from their embeddings."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation.registry import EVAL_MODELS, WeightRef, load_eval_model, model_class, plan_eval_models
from evaluation.run_sets import model_features, set_values
from pipeline.metrics import clap_metrics, ib_metrics

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _tiny_file(name: str, d: Path) -> tuple[Path, torch.nn.Module | None]:
    """A tiny-preset weight file of ``name`` (and the seeded module it holds, where built here)."""
    path = d / f"{name}.pth"
    if name == "passt":
        shutil.copy(FIXTURES / "passt" / "tiny_state_dict.pth", path)
        return path, None
    if name == "clap":  # the tokenizer files sit beside the weights, as with the official file
        for f in ("vocab.json", "merges.txt"):
            shutil.copy(FIXTURES / "clap" / "tokenizer" / f, d / f)
    torch.manual_seed(0)
    module = model_class(EVAL_MODELS[name])("tiny")
    torch.save((module.net if name == "vggish" else module).state_dict(), path)  # VGGish's file: its network
    return path, module.eval()


@pytest.mark.parametrize("name", ["panns", "vggish", "passt"])
def test_set_models_load_by_name_and_give_fd_kl_is(name, tmp_path):
    path, built = _tiny_file(name, tmp_path)
    plan = plan_eval_models({name: WeightRef(str(path), "tiny")})
    assert list(plan.usable) == [name] and len(plan.skipped) == 5
    model = load_eval_model(name, WeightRef(str(path), "tiny"))
    assert isinstance(model, model_class(EVAL_MODELS[name])) and not model.training
    rng = np.random.default_rng(0)
    waves = [(0.1 * rng.standard_normal(2 * model.sample_rate)).astype(np.float32) for _ in range(4)]
    feats = model_features(model, waves)
    if built is not None:  # the file holds the seeded module: the same outputs
        direct = built.features(np.stack(waves))
        for k, v in feats.items():
            got, want = (np.concatenate(v), np.concatenate(direct[k])) if k == "frames" else (v, direct[k])
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    ref = model_features(model, [w[::-1].copy() for w in waves])
    values = set_values(feats, list("abcd"), ref, list("abcd"))
    expected = {"fd"} if name == "vggish" else {"fd", "kl", "is"}
    assert set(values) == expected and all(np.isfinite(v.value) for v in values.values())
    assert values["fd"].value > 0


def test_clap_and_imagebind_load_by_name_and_give_their_rows(tmp_path):
    clap_path, _ = _tiny_file("clap", tmp_path)
    assert list(plan_eval_models({"clap": WeightRef(str(clap_path), "tiny")}).usable) == ["clap"]
    (tmp_path / "merges.txt").rename(tmp_path / "elsewhere.txt")
    line = [l for l in plan_eval_models({"clap": WeightRef(str(clap_path), "tiny")}).skipped if "CLAP" in l]
    assert line == [f"skipped: CLAP A-A, CLAP T-A: clap: merges.txt is not beside {str(clap_path)!r} (get it from "
                    "https://huggingface.co/FacebookAI/roberta-base/resolve/main/merges.txt)"]
    (tmp_path / "elsewhere.txt").rename(tmp_path / "merges.txt")
    ib_path, ib_built = _tiny_file("imagebind", tmp_path)
    clap = load_eval_model("clap", WeightRef(str(clap_path), "tiny"))
    ib = load_eval_model("imagebind", WeightRef(str(ib_path), "tiny"))
    rng = np.random.default_rng(1)
    waves = [(0.1 * rng.standard_normal(3 * 16000)).astype(np.float32) for _ in range(3)]
    rows = clap_metrics(clap, clap.name, waves, 16000, ["a dog barks", "rain falls", "a car passes"],
                        ["t0", "t1", "t2"], [1, 1, 1], {"t0", "t1", "t2"}, 1)
    assert [(r["track_id"], r["metric"]) for r in rows] == [("t0", "ta_similarity"), ("t1", "ta_similarity"),
                                                           ("t2", "ta_similarity"), (None, "aa_similarity_mean"),
                                                           (None, "aa_similarity_max")]
    assert all(r["model"] == "laion-clap-tiny" and -1 <= r["value"] <= 1 for r in rows)
    frames = rng.integers(0, 256, (4, 224, 298, 3), dtype=np.uint8)
    rows = ib_metrics(ib, ib.name, frames, waves[:2], waves[2], 16000, ["t0", "t1"], [1, 1], {"t0", "t1"}, 1)
    assert [(r["track_id"], r["metric"]) for r in rows] == [("t0", "ib_score"), ("t1", "ib_score"), (None, "ib_score")]
    video = ib_built.embed_video([frames])[0]
    audio = ib_built.embed_audio(np.stack(waves[:1]))[0]
    assert rows[0]["value"] == pytest.approx(float(video @ audio), abs=1e-5)


def test_desync_loads_by_name_and_scores_only_full_windows():
    from pipeline.metrics import desync_metrics

    path = FIXTURES / "synchformer_sync" / "tiny_state_dict.pth"
    model = load_eval_model("desync", WeightRef(str(path), "tiny"))
    assert model.name == "synchformer-desync-tiny" and model.config.num_frames == 200
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (200, 48, 64, 3), dtype=np.uint8)  # 8 s at 25 fps, any size
    mix = (0.1 * rng.standard_normal(8 * 16000)).astype(np.float32)
    rows = desync_metrics(model, model.name, frames, mix, 16000, 3)
    assert [(r["track_id"], r["metric"], r["version"]) for r in rows] == [(None, "desync", 3)]
    assert rows[0]["value"] == pytest.approx(float(model.desync([frames], mix[None])[0]))
    assert 0.0 <= rows[0]["value"] <= 2.0 and desync_metrics(model, model.name, frames[:150], mix, 16000, 3) == []
