"""`foley evaluate` on two demo videos: three catalog runs, the printed tables and the stored rows."""
from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from flows.cli import app

MODEL = "test:evaluate-stub"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, h):
    from pipeline.models import register_model

    register_model(MODEL, h.evaluated_bundle(), h.DURATION)
    d = tmp_path_factory.mktemp("evaluate")
    manifest = d / "manifest.csv"
    manifest.write_text("id,video_uri,captions\n"
                        f"a,{h.DEMO_DIR / 'sf-10109180.mp4'},The fan motor drones strongly. | A lamp beeps softly.\n"
                        f"b,{h.DEMO_DIR / 'sf-10161943.mp4'},The fan hums sharply. | A bird tweets loudly.\n")
    storage = f"file://{d / 'out'}"
    result = CliRunner().invoke(app, ["evaluate", str(manifest), "--storage", storage, "--evaluation-id", "ev",
                                      "--model", MODEL, "--steps", "2", "--duration", str(h.DURATION)],
                                catch_exceptions=False)
    return {"code": result.exit_code, "out": result.output, "storage": storage}


def test_evaluate_prints_both_tables_and_the_skipped_models(evaluated):
    out = evaluated["out"]
    assert evaluated["code"] == 0, out
    assert "ev-independent-descending (completed)" in out and "ev-nag-b1.5-descending (completed)" in out
    table1, table2 = out.split("Table 1: composite audio")[1].split("Table 2: individual tracks")
    for metric in ("fd", "kl", "is"):
        assert f"\n{metric} " in table1
    for metric in ("aa_similarity_mean", "is", "ta_similarity", "target_presence"):
        assert f"\n{metric} " in table2
    assert "nag beta=1.5 descending" in table1 and "negative-prompt" in table2 and "stub-evaluator" in table1
    for model in ("PANNs CNN14", "VGGish", "PaSST", "ImageBind", "Synchformer (DeSync)", "LAION-CLAP"):
        assert out.count(f"no {model} weights configured") == 1


def test_evaluate_stores_the_rows_with_cis_against_independent(evaluated):
    from storage.root import open_root
    from storage.tables import read_table

    rows = read_table(open_root(evaluated["storage"]), "evaluations", "ev").to_pylist()
    by = {(r["scope"], r["metric"], r["method"]): r for r in rows}
    assert len(by) == len(rows) == 3 * 7  # 3 settings x (fd, kl, is | aa, is, ta, presence)
    assert all(r["model"] == "stub-evaluator" and r["steps"] == 2 and r["alpha"] == 4.5 for r in rows)
    assert by[("composite", "fd", "nag")]["reference"] == "source_audio" and by[("composite", "fd", "nag")]["n"] == 2
    base = by[("tracks", "ta_similarity", "independent")]
    assert base["diff"] is None and base["n"] == 2 and base["source_run_id"] == "ev-independent-descending"
    for method in ("negative-prompt", "nag"):
        ta = by[("tracks", "ta_similarity", method)]
        assert math.isclose(ta["diff"], ta["value"] - base["value"], abs_tol=1e-9)
        assert ta["diff_low"] <= ta["diff"] <= ta["diff_high"]
        fd = by[("composite", "fd", method)]
        assert fd["diff_low"] is None and math.isclose(fd["diff"], fd["value"] - by[("composite", "fd", "independent")]["value"])
    assert by[("tracks", "ta_similarity", "nag")]["beta"] == 1.5 and by[("tracks", "is", "independent")]["beta"] is None


def test_the_runs_and_the_rows_are_queryable_with_duckdb(evaluated):
    runner = CliRunner()
    result = runner.invoke(app, ["query", "SELECT metric, method FROM evaluations WHERE run_id = 'ev' AND "
                                 "scope = 'composite' ORDER BY ALL", "--storage", evaluated["storage"]])
    assert result.exit_code == 0 and len(result.output.strip().splitlines()) == 2 + 9, result.output
    result = runner.invoke(app, ["query", "SELECT count(*) AS n FROM tracks WHERE run_id = 'ev-nag-b1.5-descending'",
                                 "--storage", evaluated["storage"]])
    assert result.exit_code == 0 and result.output.strip().splitlines()[-1].strip() == "4", result.output


@pytest.mark.parametrize("args, message", [(["--beta", "1.5", "--beta", "1.5"], "must not repeat"),
                                           (["--evaluation-id", "a/b"], "bad run id"),
                                           (["--beta", "-1"], "beta must be >= 0")])
def test_bad_settings_are_refused_before_any_run(tmp_path, h, args, message):
    result = CliRunner().invoke(app, ["evaluate", str(h.DEMO_DIR / "manifest.csv"), "--storage", f"file://{tmp_path}",
                                      "--model", MODEL, *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "tables").exists()
