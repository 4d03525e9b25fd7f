"""The NAG-effect benchmark: clip selection, one clip end to end on the committed demo bundle, the
summary with paired bootstrap CIs and the per-item Parquet rows."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from nag_model.bundle import load_bundle
from synthfoley.world import make_clip, plan_clip

import nag_effect_benchmark as nag_effect  # tests/conftest.py SHARED_MODULES


def test_clip_selection_from_a_split_or_a_seed_range():
    chosen, null = nag_effect.select_clips(5, 0, null_clips=7)
    assert chosen == nag_effect.test_clips(5, 0)  # the null does not change the evaluated clips
    assert all(10_100_000 <= s < 10_200_000 for s in chosen + null)  # the test split
    assert len(null) == 7 and not set(null) & set(chosen)
    chosen, null = nag_effect.select_clips(3, 0, seeds="20000000:20000010", null_clips=20)
    assert all(20_000_000 <= s < 20_000_010 for s in chosen)
    assert all(3 <= len(plan_clip(s).captions) <= 5 for s in chosen)
    assert len(null) == 20 and null[0] == chosen[-1] + 1 and not set(null) & set(chosen)
    val, _ = nag_effect.select_clips(2, 0, split="val", null_clips=0)
    assert all(10_000_000 <= s < 10_100_000 for s in val)


@pytest.fixture(scope="module")
def one_clip():
    methods = {m: nag_effect.METHODS[m] for m in ("independent", "NAG beta 1.5", "NAG beta 1.5, ascending")}
    bundle = load_bundle("demo")
    (seed,), null = nag_effect.select_clips(1, 0, null_clips=20)  # >= 19 absent-kind stems for a 5% threshold
    rows = nag_effect.run_clip(bundle, nag_effect.null_judge(null), seed, steps=2, seed=0, alpha=4.5, methods=methods)
    return seed, rows


def test_one_clip_end_to_end_gives_rows_for_every_judge(one_clip):
    seed, rows = one_clip
    k = len(make_clip(seed).captions)
    methods = {"independent", "NAG beta 1.5", "NAG beta 1.5, ascending", "independent, ascending", "ground-truth stems"}
    assert {r["method"] for r in rows["clips"]} == methods
    for m in methods:
        tracks = [r for r in rows["tracks"] if r["method"] == m]
        pairs = [r for r in rows["pairs"] if r["method"] == m]
        assert len(tracks) == k and len(pairs) == k * (k - 1) // 2
        for r in pairs:
            assert {"leak_tag", "leak_gt", "leak_corr", "leak_timefree", "corr_threshold"} <= set(r) \
                and r["leak_share"] >= 0
    gt_tracks = [r for r in rows["tracks"] if r["method"] == "ground-truth stems"]
    gt_pairs = [r for r in rows["pairs"] if r["method"] == "ground-truth stems"]
    assert all(r["presence_gt"] and r["presence_corr"] and r["presence_timefree"] for r in gt_tracks)
    assert not any(r["leak_gt"] or r["leak_corr"] or r["leak_timefree"] for r in gt_pairs)
    # the first track of every order is the same CFG track
    first = {r["method"]: r["tag_prob"] for r in rows["tracks"] if r["position"] == 0}
    assert first["independent"] == first["NAG beta 1.5"]
    assert first["independent, ascending"] == first["NAG beta 1.5, ascending"]


def test_independent_is_judged_again_over_the_pairs_of_each_other_order(one_clip):
    _, rows = one_clip
    orders = {r["method"]: r["order"] for r in rows["clips"]}
    assert orders["independent, ascending"] == orders["NAG beta 1.5, ascending"] == "ascending"
    assert orders["independent"] == orders["NAG beta 1.5"] == "descending"

    def of(method, table="tracks"):
        return [r for r in rows[table] if r["method"] == method]
    # the same independent tracks in the reverse order ...
    down, up = of("independent"), of("independent, ascending")
    assert [r["caption"] for r in up] == [r["caption"] for r in down][::-1]
    assert {r["caption"]: r["tag_prob"] for r in up} == {r["caption"]: r["tag_prob"] for r in down}
    # ... so their pairs are the reversed pairs: the later source judged in the earlier track
    pairs = {(r["caption"], r["earlier_caption"]) for r in of("independent", "pairs")}
    assert {(r["earlier_caption"], r["caption"]) for r in of("independent, ascending", "pairs")} == pairs
    assert {(r["caption"], r["earlier_caption"]) for r in of("NAG beta 1.5, ascending", "pairs")} == \
        {(r["caption"], r["earlier_caption"]) for r in of("independent, ascending", "pairs")}


def test_summary_has_paired_cis_and_rows_round_trip(one_clip, tmp_path):
    seed, rows = one_clip
    table, ci = nag_effect.summarise(rows, n_resamples=200)
    assert table["ground-truth stems"]["leak_corr"] == 0.0 and table["ground-truth stems"]["presence_corr"] == 1.0
    assert set(ci) == {"NAG beta 1.5", "NAG beta 1.5, ascending", "ground-truth stems"}
    assert ci["NAG beta 1.5, ascending"]["baseline"] == "independent, ascending"
    assert ci["NAG beta 1.5"]["baseline"] == ci["ground-truth stems"]["baseline"] == "independent"
    for m in ci:
        for metric in nag_effect.CI_METRICS:
            est, low, high = ci[m][metric]["diff"]
            assert est == pytest.approx(table[m][metric] - table[ci[m]["baseline"]][metric], abs=1e-3)
            assert np.isnan(low) and np.isnan(high)  # one clip: no interval
    # the same clip twice: every resample gives the estimate
    twice = {k: v + [r | {"clip_seed": r["clip_seed"] + 1} for r in v] for k, v in rows.items()}
    table2, ci2 = nag_effect.summarise(twice, n_resamples=200)
    assert all(table2[m] == table[m] | {"pairs": 2 * table[m]["pairs"]} for m in table)
    for m in ci2:
        assert ci2[m]["baseline"] == ci[m]["baseline"]
        for metric in nag_effect.CI_METRICS:
            est, low, high = ci2[m][metric]["diff"]
            assert low == pytest.approx(est, abs=1e-6) and high == pytest.approx(est, abs=1e-6)
    out = tmp_path / "r.json"
    paths = nag_effect.write_rows(rows, str(out))
    assert [Path(p).name for p in paths] == ["r.tracks.parquet", "r.pairs.parquet", "r.clips.parquet"]
    pairs = pq.read_table(tmp_path / "r.pairs.parquet").to_pylist()
    assert len(pairs) == len(rows["pairs"]) and pairs[0]["clip_seed"] == seed
    # the table can be recomputed from the Parquet rows alone
    assert nag_effect.summarise(nag_effect.read_rows(str(out)), n_resamples=200)[0] == table
    text = nag_effect.markdown({"table": table, "ci": ci})
    assert "paired bootstrap" in text and "| NAG beta 1.5, ascending | independent, ascending |" in text
    # rows written before orders were recorded: every method is compared with plain independent
    old = rows | {"clips": [{k: v for k, v in r.items() if k != "order"} for r in rows["clips"]]}
    _, ci_old = nag_effect.summarise(old, n_resamples=200)
    assert ci_old["NAG beta 1.5, ascending"]["baseline"] == "independent" and "independent, ascending" not in ci_old
    # rows written before the time-free judge: its columns and CIs are absent, the others unchanged
    judges = ("leak_timefree", "presence_timefree")
    before = {k: [{c: x for c, x in r.items() if c not in judges} for r in v] for k, v in rows.items()}
    table_b, ci_b = nag_effect.summarise(before, n_resamples=200)
    assert all(table_b[m] == table[m] | {j: None for j in judges} for m in table)
    for m in ci:  # (one clip: the intervals are NaN, so compare the estimates)
        assert set(ci_b[m]) == set(ci[m]) - set(judges)
        assert all(ci_b[m][k]["diff"][0] == ci[m][k]["diff"][0] for k in ci_b[m] if k != "baseline")
    assert "| n/a |" in nag_effect.markdown({"table": table_b, "ci": ci_b}).replace("| n/a | n/a |", "| n/a |")
    json.dumps({"table": table, "ci": ci})


def test_presence_as_the_picture_allows_uses_time_only_where_the_picture_shows_it(one_clip):
    seed, rows = one_clip
    infos = {i.caption: i for i in plan_clip(seed).infos if i.sounding}
    for r in rows["tracks"]:
        info = infos[r["caption"]]
        assert r["timed_by_video"] == (info.on_screen or not info.event_times)
        assert r["presence_video"] == (r["presence_gt"] if r["timed_by_video"] else r["presence_timefree"])
    # rows written before the column existed gain the same values from the clip's plan
    new = ("timed_by_video", "presence_video")
    old = {k: [{c: x for c, x in r.items() if c not in new} for r in v] for k, v in rows.items()}
    assert nag_effect.with_video_presence(old)["tracks"] == rows["tracks"]


def test_which_sources_the_picture_times():
    infos = [i for s in range(10_000_000, 10_000_200) for i in plan_clip(s).infos if i.sounding]
    by_kind = {}
    for i in infos:
        by_kind.setdefault((i.kind, i.on_screen), set()).add(i.timed_by_video)
    assert by_kind[("drip", True)] == {True} and by_kind[("drip", False)] == {False}  # events: on screen only
    assert by_kind[("fan", False)] == {True} and by_kind[("wind", False)] == {True}  # continuous: always
