"""The presence diagnosis judges each track for its own source and for what else it holds."""
from __future__ import annotations


import numpy as np
import pytest

from nag_model.bundle import load_bundle
from synthfoley.splits import captioned_seeds, split_seeds
from synthfoley.world import make_clip

import presence_diagnosis as diag  # tests/conftest.py SHARED_MODULES


@pytest.fixture(scope="module")
def judged():
    candidates = [int(s) for s in split_seeds("val", 60, 0)]
    seed = captioned_seeds(candidates, 1, 3, 5)[0]
    null = [s for s in candidates if s != seed][:20]
    bundle, clip = load_bundle("demo"), make_clip(seed, with_frames=False)
    infos, stems, mix = diag.normalised_stems(clip)
    judge = diag.null_judge(null)
    true = diag.judge_rows(bundle, judge, clip, infos, stems, mix, "gt", stems)
    # track 0 also holds all of source 1 (of another kind): a leak the judges must see
    other = next(j for j, i in enumerate(infos) if i.kind != infos[0].kind)
    leaky = diag.judge_rows(bundle, judge, clip, infos, stems, mix, "leaky",
                            [stems[0] + stems[other], *stems[1:]])
    return true, leaky


def test_a_true_stem_holds_its_own_source_and_nothing_else(judged):
    true, _ = judged
    assert all(r["nnls"] and r["nnls_timefree"] for r in true)
    assert not any(r["other_nnls"] for r in true)
    assert all(r["other_nnls_share"] < 0.2 for r in true)


def test_a_track_holding_another_source_is_seen_to_hold_it(judged):
    true, leaky = judged
    assert leaky[0]["other_nnls"] and leaky[0]["other_nnls_share"] > true[0]["other_nnls_share"] + 0.2
    assert leaky[0]["other_tagger_max"] >= true[0]["other_tagger_max"]
    assert [r["other_nnls"] for r in leaky[1:]] == [r["other_nnls"] for r in true[1:]]


def test_the_summary_rates_what_else_tracks_hold(judged):
    true, leaky = judged
    summary = diag.summarise(true + leaky)
    assert summary["gt"]["all"]["other_nnls"] == 0.0
    assert summary["leaky"]["all"]["other_nnls"] == pytest.approx(1 / len(leaky), abs=1e-3)
    assert "other_tagger" in diag.markdown(summary).splitlines()[0]
    assert np.isfinite(summary["leaky"]["all"]["envelope_corr"])


def test_presence_as_the_picture_allows_forgives_timing_only_where_nothing_shows_it(judged):
    true, _ = judged
    candidates = [int(s) for s in split_seeds("val", 60, 0)]
    clip = make_clip(true[0]["clip_seed"], with_frames=False)
    infos, stems, mix = diag.normalised_stems(clip)
    moved = [np.roll(s, len(s) * 5 // 16) for s in stems]  # the right sounds, 2.5 s late
    rows = diag.judge_rows(load_bundle("demo"), diag.null_judge(candidates[-20:]), clip, infos, stems, mix, "moved",
                           moved)
    for info, r in zip(infos, rows):
        assert r["nnls_video"] == (r["nnls"] if info.timed_by_video else r["nnls_timefree"])
        assert r["nnls_timefree"]  # a moved stem still holds its own spectrum
