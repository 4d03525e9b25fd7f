"""`foley evaluate` on two demo videos: three catalog runs, the printed tables and the stored rows, with the
demo evaluator also configured as an evaluation model (--eval-weights demo=...)."""
from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from flows.cli import app

MODEL = "test:evaluate-stub"
DEMO_EVAL = "demo-tagger"  # the demo world's evaluator behind the evaluation-model interface


def _invoke(manifest, storage, *extra):
    from pipeline.models import DEMO_MODEL_DIR

    return CliRunner().invoke(app, ["evaluate", str(manifest), "--storage", storage, "--evaluation-id", "ev",
                                    "--model", MODEL, "--steps", "2", "--duration", "8", "--eval-weights",
                                    f"demo={DEMO_MODEL_DIR}", "--n-resamples", "300", *extra], catch_exceptions=False)


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
    assert h.DURATION == 8
    result = _invoke(manifest, storage)
    from storage.root import open_root
    from storage.tables import read_table

    root = open_root(storage)
    first = {t: read_table(root, t).num_rows for t in ("run_metrics", "evaluations", "metrics")}
    again = _invoke(manifest, storage)  # every run finished: resumed, the tables recomputed
    return {"code": result.exit_code, "out": result.output, "storage": storage, "first": first, "again": again,
            "root": root}


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
    assert DEMO_EVAL in table1 and DEMO_EVAL in table2
    for model in ("panns", "vggish", "passt", "imagebind", "desync", "clap"):
        assert out.count(f"no {model} weights configured (--eval-weights {model}=PATH") == 1, out


def test_evaluate_stores_the_rows_with_cis_against_independent(evaluated):
    from storage.root import open_root
    from storage.tables import read_table

    everything = read_table(open_root(evaluated["storage"]), "evaluations", "ev").to_pylist()
    rows = [r for r in everything if r["model"] == "stub-evaluator"]
    by = {(r["scope"], r["metric"], r["method"]): r for r in rows}
    assert len(by) == len(rows) == 3 * 7  # 3 settings x (fd, kl, is | aa, is, ta, presence)
    assert all(r["steps"] == 2 and r["alpha"] == 4.5 for r in everything)
    demo = {(r["scope"], r["metric"], r["method"]): r for r in everything if r["model"] == DEMO_EVAL}
    assert len(demo) == len(everything) - len(rows) == 3 * 6  # (fd, kl, is | aa, is, ta): no target presence
    kl = demo[("composite", "kl", "nag")]
    assert kl["reference"] == "source_audio" and kl["diff_low"] <= kl["diff"] <= kl["diff_high"] and kl["n"] == 2
    assert demo[("tracks", "ta_similarity", "negative-prompt")]["diff_low"] is not None
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
                                 "scope = 'composite' AND model = 'stub-evaluator' ORDER BY ALL", "--storage", evaluated["storage"]])
    assert result.exit_code == 0 and len(result.output.strip().splitlines()) == 2 + 9, result.output
    result = runner.invoke(app, ["query", "SELECT count(*) AS n FROM run_metrics WHERE model = 'demo-tagger' AND "
                                 "run_id LIKE 'ev-%' AND scope = 'mixes'", "--storage", evaluated["storage"]])
    assert result.exit_code == 0 and result.output.strip().splitlines()[-1].strip() == "9", result.output
    result = runner.invoke(app, ["query", "SELECT count(*) AS n FROM tracks WHERE run_id = 'ev-nag-b1.5-descending'",
                                 "--storage", evaluated["storage"]])
    assert result.exit_code == 0 and result.output.strip().splitlines()[-1].strip() == "4", result.output


def test_each_run_stores_its_set_metrics_and_a_rerun_adds_no_rows(evaluated):
    from storage.tables import read_table

    root = evaluated["root"]
    sets = read_table(root, "run_metrics").to_pylist()
    assert {(r["run_id"], r["scope"], r["metric"]) for r in sets} == {
        (f"ev-{s}-descending", scope, m) for s in ("independent", "negative-prompt", "nag-b1.5")
        for scope, m in (("mixes", "fd"), ("mixes", "kl"), ("mixes", "is"), ("tracks", "is"))}
    assert all(r["model"] == DEMO_EVAL and r["video_ids"] == ["a", "b"] and r["seconds"] == 8.0 for r in sets)
    assert {r["method"] for r in sets} == {"independent", "negative-prompt", "nag"}
    metrics = read_table(root, "metrics", "ev-nag-b1.5-descending").to_pylist()
    assert {m["metric"] for m in metrics if m["model"] == DEMO_EVAL} == {"ta_similarity", "aa_similarity_mean",
                                                                        "aa_similarity_max"}
    assert evaluated["again"].exit_code == 0, evaluated["again"].output
    assert {t: read_table(root, t).num_rows for t in ("run_metrics", "evaluations", "metrics")} == evaluated["first"]
    # the same numbers again: the stored set rows are reused, the tables recomputed identically
    assert evaluated["again"].output.split("Table 1")[1] == evaluated["out"].split("Table 1")[1]


@pytest.mark.parametrize("args, message", [(["--beta", "1.5", "--beta", "1.5"], "must not repeat"),
                                           (["--evaluation-id", "a/b"], "bad run id"),
                                           (["--beta", "-1"], "beta must be >= 0"),
                                           (["--eval-weights", "pann=/x"], "unknown evaluation model 'pann'"),
                                           (["--n-resamples", "5"], "--n-resamples")])
def test_bad_settings_are_refused_before_any_run(tmp_path, h, args, message):
    result = CliRunner().invoke(app, ["evaluate", str(h.DEMO_DIR / "manifest.csv"), "--storage", f"file://{tmp_path}",
                                      "--model", MODEL, *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "tables").exists()
