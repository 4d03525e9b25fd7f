"""The judge timing check: three versions of each true stem, judged against the clip's other sources."""
from __future__ import annotations


import numpy as np
import pytest

from nag_model.bundle import load_bundle
from synthfoley.world import SR, make_clip

import judge_timing_check as check  # tests/conftest.py SHARED_MODULES


@pytest.fixture(scope="module")
def one_clip():
    (seed,), null = check.select_clips(1, 0, split="val", null_clips=20)
    codec = load_bundle("demo").codec
    return seed, codec, check.check_clip(codec, check.null_judge(null), seed, 2.5)


def test_every_version_of_every_source_is_judged_against_the_other_kinds(one_clip):
    seed, _, (pairs, presence) = one_clip
    kinds = [i.kind for i in make_clip(seed, with_frames=False).sources if i.sounding]
    n_pairs = sum(1 for a in kinds for b in kinds if a != b)
    assert len(presence) == 3 * len(kinds) and len(pairs) == 3 * n_pairs
    assert {r["version"] for r in pairs} == set(check.VERSIONS)
    assert all(r["continuous"] == (r["other"] in check.CONTINUOUS) for r in pairs)


def test_the_true_stems_neither_leak_nor_go_missing(one_clip):
    _, _, (pairs, presence) = one_clip
    true = [r for r in pairs if r["version"] == "true stem"]
    assert true and not any(r[j] for r in true for j in check.JUDGES)
    assert all(r[j] for r in presence if r["version"] == "true stem" for j in check.JUDGES)


def test_the_moved_version_is_the_stem_later_in_time(one_clip):
    seed, codec, _ = one_clip
    stem = np.asarray(make_clip(seed, with_frames=False).stems[0][:check.N_SAMPLES], np.float32)
    v = check.versions(codec, stem, 0.5)
    assert np.array_equal(v["moved in time"][SR // 2:], stem[:-SR // 2]) and np.array_equal(v["true stem"], stem)
    assert v["codec round trip"].shape == stem.shape and not np.allclose(v["codec round trip"], stem)


def test_the_summary_gives_each_judges_rate_per_version_and_source_type():
    rows = [{"version": "moved in time", "continuous": True, "gt": True, "timefree": False, "corr": True},
            {"version": "moved in time", "continuous": True, "gt": False, "timefree": False, "corr": True},
            {"version": "true stem", "continuous": False, "gt": False, "timefree": False, "corr": False}]
    s = check.summarise(rows)
    assert s == {("true stem", False): {"n": 1, "gt": 0.0, "timefree": 0.0, "corr": 0.0},
                 ("moved in time", True): {"n": 2, "gt": 0.5, "timefree": 0.0, "corr": 1.0}}
    assert "| moved in time | continuous | 2 | 0.500 | 0.000 | 1.000 |" in check.table(s, "other source")


def test_planted_leakage_is_the_other_source_at_the_level_asked():
    own, other = np.ones(1000, np.float32), np.full(1000, 0.5, np.float32)
    assert np.allclose(check.planted(own, own, other, -6.0), 1 + 10 ** (-6 / 20))
    assert np.allclose(check.planted(np.zeros(1000, np.float32), own, other, 0.0), 1.0)


def test_a_planted_leak_raises_the_other_sources_share(one_clip):
    """Each pair is judged again with the other source planted in the true stem and in the moved one; the
    planted source's GT share rises in every pair, and the judges find most equally loud plants."""
    seed, codec, (clean, _) = one_clip
    (_, null) = check.select_clips(1, 0, split="val", null_clips=20)
    pairs, _ = check.check_clip(codec, check.null_judge(null), seed, 2.5, leak_db=(0.0,))
    kinds = [i.kind for i in make_clip(seed, with_frames=False).sources if i.sounding]
    n_pairs = sum(1 for a in kinds for b in kinds if a != b)
    for name in ("true stem", "moved in time"):
        planted = [r for r in pairs if r["version"] == check.leak_version(name, 0.0)]
        before = {(r["kind"], r["other"]): r["gt_share"] for r in clean if r["version"] == name}
        assert len(planted) == n_pairs
        assert all(r["gt_share"] > before[(r["kind"], r["other"])] + 0.1 for r in planted)
        assert np.mean([r["gt"] for r in planted]) > 0.5 and np.mean([r["corr"] for r in planted]) > 0.5
