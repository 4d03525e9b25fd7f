"""`foley weights list`: every registered weight file, the evaluation models' configured or not; bad entries."""
from __future__ import annotations

from typer.testing import CliRunner

from flows.cli import app
from pipeline.models import DEMO_MODEL_DIR


def test_lists_mmaudio_and_evaluation_files_with_their_status(tmp_path):
    result = CliRunner().invoke(app, ["weights", "list", "--eval-weights", f"demo={DEMO_MODEL_DIR}",
                                      "--eval-weights", f"clap={tmp_path / 'nope.pt'}"])
    assert result.exit_code == 0, result.output
    lines = {l.split()[0]: l for l in result.output.splitlines()[2:] if l.strip()}
    assert "mmaudio_small_16k.pth" in lines["small_16k"] and "af93cde404179f58e3919ac085b8033b" in lines["small_16k"]
    assert "synchformer_state_dict.pth" in lines["desync"] and "5b2f5594b0730f70e41e549b7c94390c" in lines["desync"]
    assert "no desync weights configured" in lines["desync"] and "synchformer" not in lines  # one row: DeSync's
    assert lines["demo"].rstrip().endswith("usable") and f"demo={DEMO_MODEL_DIR}" in lines["demo"]
    assert f"clap={tmp_path / 'nope.pt'}" in lines["clap"] and "clap" in lines["clap"].split("clap=")[1]
    assert set(lines) >= {"panns", "vggish", "passt", "clap", "imagebind", "desync", "demo", "vae_16k"}
    assert "IB-score; orders the captions" in lines["imagebind"] and "orders" not in lines["clap"]
    assert "(beside clap's weights)" in lines["roberta_base_vocab"] and "Cnn14_16k_mAP=0.438.pth" in lines["panns"]


def test_an_unknown_evaluation_model_is_refused_before_anything_runs(tmp_path):
    for args in (["weights", "list"], ["run", str(tmp_path / "m.csv"), "--storage", f"file://{tmp_path}"]):
        result = CliRunner().invoke(app, [*args, "--eval-weights", "imagebind_huge=/x"])
        assert result.exit_code == 2 and "unknown evaluation model 'imagebind_huge'; known: panns" in result.output
    assert not (tmp_path / "tables").exists()


def test_entries_come_from_the_environment_too(monkeypatch):
    monkeypatch.setenv("FOLEY_EVAL_WEIGHTS", f"demo={DEMO_MODEL_DIR} vggish=/nowhere.pth")
    result = CliRunner().invoke(app, ["weights", "list"])
    lines = {l.split()[0]: l for l in result.output.splitlines()[2:] if l.strip()}
    assert result.exit_code == 0 and lines["demo"].rstrip().endswith("usable") and "vggish=/nowhere.pth" in lines["vggish"]
