"""Table 1/2 rows from hand-made runs: known differences, their paired CIs, FD/IS set metrics, common videos."""
from __future__ import annotations


import numpy as np
import pytest

from evaluation.paper_tables import display_table, paper_table_rows, skipped_lines
from evaluation.protocol import Setting, protocol_settings
from media.audio_io import audio_to_bytes
from storage import keys
from storage.tables import write_rows

import foley_test_helpers as H  # tests/conftest.py SHARED_MODULES
RATE = 16000
VIDEOS = ("v0", "v1", "v2")
BASE, NAG = Setting("independent", "descending"), Setting("nag", "descending", 1.5)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("sources")
    return {v: str(H.write_video(d / f"{v}.mp4", 1.0, audio=True)) for v in VIDEOS}


def _store_run(root, run_id, sources, ta: dict[str, float], aa: dict[str, float], noise_seed: int, failed=()):
    rng = np.random.default_rng(noise_seed)
    for vid in VIDEOS:
        unit = f"{vid}@v1"
        if vid in failed:
            write_rows(root, "videos", run_id, [{"video_id": vid, "version": 1, "video_uri": sources[vid],
                                                 "status": "failed", "error": "synthesis: x"}], unit=unit)
            continue
        uris = []
        for k, key in enumerate([keys.track_key(run_id, vid, f"t{k}", 1) for k in range(2)] + [keys.mix_key(run_id, vid, 1)]):
            wav = (0.1 * rng.normal(size=RATE)).astype(np.float32)
            uris.append(root.uri(key))
            root.put_atomic(key, audio_to_bytes(wav, RATE, format="flac"))
        write_rows(root, "tracks", run_id, [
            {"video_id": vid, "track_id": f"t{k}", "version": 1, "position": k, "caption": f"c{k}", "seed": k,
             "method": "nag", "steps": 2, "uri": uris[k], "sha256": "x", "duration_s": 1.0, "sample_rate": RATE}
            for k in range(2)], unit=unit)
        write_rows(root, "mixes", run_id, [{"video_id": vid, "version": 1, "track_ids": ["t0", "t1"],
                                            "track_versions": [1, 1], "uri": uris[2], "sha256": "x"}], unit=unit)
        write_rows(root, "metrics", run_id, [
            *({"video_id": vid, "track_id": f"t{k}", "version": 1, "metric": "ta_similarity", "value": ta[vid] + k,
               "model": "stub-evaluator"} for k in range(2)),
            {"video_id": vid, "track_id": "t0", "version": 1, "metric": "ta_similarity", "value": 99.0, "model": "other"},
            {"video_id": vid, "track_id": None, "version": 1, "metric": "aa_similarity_mean", "value": aa[vid],
             "model": "stub-evaluator"}], unit=unit)
        write_rows(root, "videos", run_id, [{"video_id": vid, "version": 1, "video_uri": sources[vid], "status": "ok"}],
                   unit=unit)


def test_differences_and_their_paired_cis(root, sources):
    ta = {"v0": 0.1, "v1": 0.5, "v2": -0.2}
    _store_run(root, "e-base", sources, ta, {"v0": 0.9, "v1": 0.8, "v2": 0.7}, noise_seed=0)
    _store_run(root, "e-nag", sources, {v: x + 0.25 for v, x in ta.items()}, {"v0": 0.5, "v1": 0.8, "v2": 0.2},
               noise_seed=0)  # the same audio: FD, KL, IS do not move
    rows = paper_table_rows(root, [(BASE, "e-base"), (NAG, "e-nag")], H.StubEvaluator(), 1.0, n_resamples=500)
    by = {(r["scope"], r["metric"], r["method"]): r for r in rows}
    assert set(by) == {(s, m, meth) for meth in ("independent", "nag") for s, m in
                       [("composite", "fd"), ("composite", "kl"), ("composite", "is"), ("tracks", "aa_similarity_mean"),
                        ("tracks", "is"), ("tracks", "ta_similarity")]}
    ta_nag = by[("tracks", "ta_similarity", "nag")]
    assert ta_nag["value"] == pytest.approx(np.mean([x + k + 0.25 for x in ta.values() for k in range(2)]))
    assert ta_nag["diff"] == pytest.approx(0.25) and ta_nag["diff_low"] == pytest.approx(0.25)  # every video +0.25
    assert ta_nag["diff_high"] == pytest.approx(0.25) and ta_nag["n"] == 3
    aa = by[("tracks", "aa_similarity_mean", "nag")]
    assert aa["diff"] == pytest.approx(-0.3) and aa["diff_low"] < aa["diff"] < aa["diff_high"] <= 0.0
    for metric in ("fd", "is"):
        row = by[("composite", metric, "nag")]
        assert row["diff"] == pytest.approx(0.0, abs=1e-9) and row["diff_low"] is None
    assert by[("composite", "kl", "nag")]["diff"] == pytest.approx(0.0, abs=1e-12)
    assert by[("composite", "fd", "independent")]["value"] > 0 and by[("composite", "fd", "nag")]["reference"] == "source_audio"
    assert by[("tracks", "is", "nag")]["n"] == 6 and by[("composite", "is", "nag")]["reference"] is None
    assert all(r["model"] == "stub-evaluator" for r in rows)
    shown = display_table(rows, "tracks").to_pylist()
    assert {"metric": "ta_similarity", "setting": "nag beta=1.5 descending", "model": "stub-evaluator", "n": 3,
            "value": ta_nag["value"], "diff_vs_independent": "+0.25", "ci95": "[+0.25, +0.25]"} in shown


def test_only_videos_every_run_finished_are_compared(root, sources):
    ta = {"v0": 0.1, "v1": 0.5, "v2": -0.2}
    _store_run(root, "e-base", sources, ta, {v: 0.5 for v in VIDEOS}, noise_seed=0)
    _store_run(root, "e-nag", sources, ta, {v: 0.5 for v in VIDEOS}, noise_seed=1, failed=("v1",))
    rows = paper_table_rows(root, [(BASE, "e-base"), (NAG, "e-nag")], H.StubEvaluator(), 1.0, n_resamples=200)
    assert {r["n"] for r in rows if r["metric"] != "is"} == {2}
    with pytest.raises(ValueError, match="independent baseline"):
        paper_table_rows(root, [(NAG, "e-nag")], H.StubEvaluator(), 1.0)


def test_protocol_settings_and_skipped_models():
    settings = protocol_settings((1.0, 1.5), ("descending", "ascending"))
    assert [s.label for s in settings][:3] == ["independent", "negative-prompt", "nag beta=1 descending"]
    assert len(settings) == 6 and settings[-1].run_id("ev") == "ev-nag-b1.5-ascending"
    with pytest.raises(ValueError, match="repeat"):
        protocol_settings((1.5, 1.5))
    lines = skipped_lines()
    assert len(lines) == 6 and all("weights configured (--eval-weights " in l and "docs/metrics.md" in l for l in lines)
    assert lines[0].startswith("skipped: FD_PANNs, KL_PANNs, IS: no panns weights")
