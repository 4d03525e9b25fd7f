"""The NAG-effect benchmark's ground-truth judge and one end-to-end clip on the committed demo bundle."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from nag_model.bundle import load_bundle
from nag_model.codecs.demo_mel import MelCodec
from synthfoley.world import make_clip

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "nag_effect.py"
_spec = importlib.util.spec_from_file_location("nag_effect_benchmark", _PATH)
nag_effect = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nag_effect)


def _sounding_stems(clip) -> list[np.ndarray]:
    return [np.asarray(s[:128000], np.float32) for s, i in zip(clip.stems, clip.sources) if i.sounding]


@pytest.fixture(scope="module")
def clip_stems():
    seed = next(s for s in nag_effect.test_clips(5, 0) if len(make_clip(s).captions) >= 3)
    return _sounding_stems(make_clip(seed))


def test_gt_judge_attributes_each_true_stem_to_itself(clip_stems):
    codec = MelCodec()
    for k, stem in enumerate(clip_stems):
        shares = nag_effect.gt_shares(codec, stem, clip_stems)
        assert shares[k] > 0.95
        assert np.delete(shares, k).max() < nag_effect.GT_SHARE


def test_gt_judge_splits_a_sum_of_stems(clip_stems):
    codec = MelCodec()
    a, b = clip_stems[0], clip_stems[1]
    # make both sources explain about the same mel energy
    scale = nag_effect._mel_magnitude(codec, a).sum() / max(nag_effect._mel_magnitude(codec, b).sum(), 1e-9)
    shares = nag_effect.gt_shares(codec, a + scale * b, clip_stems)
    assert shares[0] >= nag_effect.GT_SHARE and shares[1] >= nag_effect.GT_SHARE
    assert shares[0] + shares[1] > 0.8
    assert shares[2:].sum() < 0.1


def test_one_clip_end_to_end_reports_every_metric():
    methods = {m: nag_effect.METHODS[m] for m in ("independent", "NAG beta 1.5")}
    bundle = load_bundle("demo")
    seed = nag_effect.test_clips(1, 0)[0]
    out = nag_effect.run_clip(bundle, seed, steps=2, seed=0, alpha=4.5, methods=methods)
    assert set(out) == {"independent", "NAG beta 1.5", "ground-truth stems"}
    k = len(make_clip(seed).captions)
    for name, metrics in out.items():
        assert len(metrics["presence_all"]) == k and len(metrics["sep"]) == k * (k - 1) // 2
        assert all(0.0 <= v <= 1.0 + 1e-6 for v in metrics["leak_share"])
    gt = out["ground-truth stems"]
    assert gt["leak_gt"] and max(gt["leak_gt"]) == 0.0 and min(gt["presence_gt"]) == 1.0
    # the first track of every order is the same CFG track
    assert out["independent"]["presence_all"][0] == out["NAG beta 1.5"]["presence_all"][0]
