"""The ground-truth judges: the null-calibrated stem-correlation judge on synthetic stems, NNLS shares on a clip."""
from __future__ import annotations

import numpy as np
import pytest

from nag_model.codecs.demo_mel import MelCodec
from synthfoley.judges import NNLS_SHARE, StemCorrelationJudge, StemMels, loo_false_alarm_rate, mel_magnitude, null_threshold
from synthfoley.splits import captioned_seeds, split_seeds
from synthfoley.world import make_clip

SR, N = 16000, 16000  # 1-s synthetic stems keep the tests fast


def _stem(rng: np.random.Generator) -> np.ndarray:
    """A synthetic 'kind': noise bursts in a random band at random times (like a SynthFoley event source)."""
    lo = rng.uniform(100, 5000)
    hi = lo * rng.uniform(1.3, 2.0)
    f = np.fft.rfftfreq(N, 1 / SR)
    spec = np.fft.rfft(rng.standard_normal(N)) * ((f >= lo) & (f <= hi))
    carrier = np.fft.irfft(spec, N)
    env = np.zeros(N)
    for t in rng.uniform(0, 0.9, rng.integers(2, 6)):
        i = int(t * SR)
        env[i:i + 1600] += np.exp(-np.arange(min(1600, N - i)) / 400)
    x = carrier * env
    return (x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(0)
    null = np.stack([_stem(rng) for _ in range(60)])
    kinds = [f"k{i}" for i in range(60)]  # every null stem is a kind absent from the test clips
    return rng, StemCorrelationJudge(null, kinds)


def test_planted_leak_is_detected_and_a_clean_track_is_not(world):
    rng, judge = world
    clean_leaks, planted_leaks, presence = [], [], []
    for _ in range(20):
        own, earlier = _stem(rng), _stem(rng)
        noise = 0.01 * rng.standard_normal(N).astype(np.float32)
        p_clean, (l_clean,) = judge.judge(0.8 * own + noise, own, [earlier], ["a", "b"])
        p_leak, (l_leak,) = judge.judge(0.8 * own + 0.4 * earlier + noise, own, [earlier], ["a", "b"])
        clean_leaks.append(l_clean.detected)
        planted_leaks.append(l_leak.detected)
        presence += [p_clean.detected, p_leak.detected]
        assert l_leak.score > l_clean.score
    assert np.mean(planted_leaks) >= 0.95
    assert np.mean(clean_leaks) <= 0.15
    assert np.mean(presence) == 1.0


def test_a_track_without_its_source_is_absent(world):
    rng, judge = world
    absent = [judge.judge(_stem(rng), _stem(rng), [], ["a"])[0].detected for _ in range(40)]
    assert np.mean(absent) <= 0.15


def test_null_false_alarm_rate_is_near_five_percent(world):
    """A stem exchangeable with the null stems (drawn the same way) exceeds the null's 95th percentile
    about 5% of the time: the calibration the judge's thresholds rest on."""
    rng, judge = world
    alarms, loo = [], []
    for _ in range(300):
        own = _stem(rng)
        track = own + 0.3 * rng.standard_normal(N).astype(np.float32) * np.abs(own).max()
        _, (leak,) = judge.judge(track, own, [_stem(rng)], ["a", "b"])
        alarms.append(leak.detected)
        loo.append(leak.null_false_alarm)
    assert 0.02 <= np.mean(alarms) <= 0.09
    assert 0.03 <= np.mean(loo) <= 0.08


def test_the_true_stem_itself_is_present_and_leaks_nothing(world):
    rng, judge = world
    own, earlier = _stem(rng), _stem(rng)
    presence, (leak,) = judge.judge(own, own, [earlier], ["a", "b"])
    assert presence.detected and presence.score == pytest.approx(1.0, abs=1e-5)
    assert not leak.detected and leak.score == 0.0


def test_the_null_leaves_out_kinds_of_the_clip():
    rng = np.random.default_rng(1)
    judge = StemCorrelationJudge(np.stack([_stem(rng) for _ in range(4)]), ["a", "a", "b", "b"])
    with pytest.raises(ValueError, match="absent"):
        judge.judge(_stem(rng), _stem(rng), [], ["a", "b"])
    assert judge._null(["a"]).shape[0] == 2


def test_null_threshold_is_a_finite_sample_rank():
    assert null_threshold(np.arange(19.0), 0.95) == 18.0  # k = ceil(20 * 0.95) = 19: the largest
    assert null_threshold(np.arange(18.0), 0.95) == np.inf  # too few null scores for 5%
    assert null_threshold(np.arange(85.0), 0.95) == 81.0  # k = 82


def test_loo_false_alarm_rate():
    assert loo_false_alarm_rate(np.arange(100.0), 0.95) == pytest.approx(0.05, abs=0.011)
    assert loo_false_alarm_rate(np.zeros(10), 0.95) == 0.0


@pytest.fixture(scope="module")
def clip_stems():
    seed = captioned_seeds(split_seeds("test", 50, 0), 1, 3, 5)[0]
    clip = make_clip(seed, with_frames=False)
    return [np.asarray(s[:128000], np.float32) for s, i in zip(clip.stems, clip.sources) if i.sounding]


def test_nnls_judge_attributes_each_true_stem_to_itself(clip_stems):
    stem_mels = StemMels(MelCodec(), clip_stems)
    for k, stem in enumerate(clip_stems):
        shares, _ = stem_mels.shares(stem)
        assert shares[k] > 0.95
        assert np.delete(shares, k).max() < NNLS_SHARE


def test_nnls_judge_splits_a_sum_of_stems(clip_stems):
    codec = MelCodec()
    a, b = clip_stems[0], clip_stems[1]
    scale = mel_magnitude(codec, a).sum() / max(mel_magnitude(codec, b).sum(), 1e-9)  # equal mel energy
    shares, _ = StemMels(codec, clip_stems).shares(a + scale * b)
    assert shares[0] >= NNLS_SHARE and shares[1] >= NNLS_SHARE
    assert shares[0] + shares[1] > 0.8
    assert shares[2:].sum() < 0.1


def test_the_time_free_judge_finds_a_moved_stem_where_the_time_aligned_one_does_not(clip_stems):
    """The same stems moved 2.5 s later: the time-aligned judge loses the event sources (their energy lands
    where other sources sound), the time-free one still gives each stem to itself and to nothing else."""
    stem_mels = StemMels(MelCodec(), clip_stems)
    aligned = []
    for k, stem in enumerate(clip_stems):
        shares, spectral = stem_mels.shares(np.roll(stem, 40000))
        assert spectral[k] > 0.9 and np.delete(spectral, k).max() < NNLS_SHARE
        aligned.append(shares[k])
    assert min(aligned) < NNLS_SHARE  # at least one moved source is missed by the time-aligned judge


def test_the_time_free_judge_splits_a_sum_of_stems(clip_stems):
    codec = MelCodec()
    a, b = clip_stems[0], clip_stems[1]
    scale = mel_magnitude(codec, a).sum() / max(mel_magnitude(codec, b).sum(), 1e-9)
    _, shares = StemMels(codec, clip_stems).shares(a + scale * np.roll(b, 24000))  # b at other times: still found
    assert shares[0] >= NNLS_SHARE and shares[1] >= NNLS_SHARE and shares[2:].sum() < 0.2
