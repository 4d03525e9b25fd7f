"""The paper's mix (sum, then -20 LUFS) with the production safeguards."""
from __future__ import annotations

import math

import numpy as np
import pytest

from media.mix import limit_true_peak, mix_tracks
from audio.loudness import integrated_loudness, true_peak_db

SR = 16_000


def tone(freq: float, seconds: float, amplitude: float) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(round(seconds * SR)) / SR)).astype(np.float32)


@pytest.mark.filterwarnings("error")
def test_mix_is_sum_normalised_to_minus_20_lufs():
    a, b = tone(440, 8, 0.05), tone(1500, 8, 0.02)
    mix, report = mix_tracks([a, b], SR)
    assert mix.shape == a.shape and mix.dtype == np.float32
    assert integrated_loudness(mix, SR) == pytest.approx(-20.0, abs=0.1)
    assert report.lufs == pytest.approx(-20.0, abs=0.1) and not report.limited
    # it is the plain sum scaled by one gain (paper), and the reported gain is that gain
    np.testing.assert_allclose(mix, (a + b) * 10 ** (report.gain_db / 20), rtol=1e-5, atol=1e-7)
    assert report.gain_db == pytest.approx(-20.0 - integrated_loudness(a + b, SR), abs=1e-6)


def test_per_track_gains_change_the_balance():
    a, b = tone(440, 4, 0.1), tone(1500, 4, 0.1)
    mix, _ = mix_tracks([a, b], SR, gains_db=[0.0, -20.0])
    spectrum = np.abs(np.fft.rfft(mix))
    freqs = np.fft.rfftfreq(len(mix), 1 / SR)
    ratio = spectrum[np.argmin(np.abs(freqs - 1500))] / spectrum[np.argmin(np.abs(freqs - 440))]
    assert ratio == pytest.approx(0.1, rel=0.01)
    with pytest.raises(ValueError, match="one finite gain per track"):
        mix_tracks([a, b], SR, gains_db=[0.0])


def impacts(seconds: float, times: list[float], decay_s: float = 0.06, click: float = 8.0) -> np.ndarray:
    """Impact sounds: a sharp hit far above a short noise body, like the demo's (high peaks, little loudness)."""
    rng = np.random.default_rng(0)
    x = np.zeros(round(seconds * SR))
    n = round(0.4 * SR)
    burst = rng.standard_normal(n) * np.exp(-np.arange(n) / (decay_s * SR))
    burst[:8] += click * np.hanning(8)
    for t in times:
        start = round(t * SR)
        x[start : start + n] += burst[: len(x) - start]
    return x.astype(np.float32)


PEAKY = [impacts(8, [0.5, 2.0, 3.1, 5.5, 7.0]), tone(300, 8, 0.01)]  # impacts over a quiet bed


@pytest.mark.filterwarnings("error")
def test_a_peaky_mix_reaches_the_target_under_the_true_peak_ceiling():
    mix, report = mix_tracks(PEAKY, SR)
    assert integrated_loudness(mix, SR) == pytest.approx(-20.0, abs=0.5) and report.lufs == pytest.approx(-20, abs=0.5)
    assert true_peak_db(mix, SR) <= -1.0 and report.true_peak_db <= -1.0
    assert report.limited and -20.0 <= report.limiter_gain_db < -3.0
    # the paper's mix (no ceiling) peaks far above it: one static gain under -1 dBTP would leave it near -27 LUFS
    paper_mix, paper = mix_tracks(PEAKY, SR, ceiling_db=None)
    assert paper.lufs == pytest.approx(-20.0, abs=0.05) and paper.true_peak_db > 5.0
    assert paper.limiter_gain_db == 0.0 and not paper.limited
    assert paper_mix.dtype == np.float32 and np.array_equal(
        paper_mix, ((PEAKY[0].astype(np.float64) + PEAKY[1]) * 10 ** (paper.gain_db / 20)).astype(np.float32))


@pytest.mark.filterwarnings("error")
def test_the_limiter_leaves_the_audio_away_from_the_peaks_alone():
    mix, report = mix_tracks(PEAKY, SR)
    plain = (PEAKY[0] + PEAKY[1]) * 10 ** (report.gain_db / 20)  # the sum with the loudness gain only
    quiet = slice(round(4.0 * SR), round(5.4 * SR))  # 0.6 s after an impact's tail, 0.1 s before the next
    np.testing.assert_allclose(mix[quiet], plain[quiet], rtol=1e-4, atol=1e-6)
    loud = round(5.5 * SR)
    assert np.max(np.abs(mix[loud : loud + 800])) < np.max(np.abs(plain[loud : loud + 800])) * 0.7


@pytest.mark.filterwarnings("error")
def test_limit_true_peak_holds_the_ceiling_between_samples():
    x = tone(SR / 4 + 1, 1.0, 1.0) * np.float32(2.0)  # near fs/4: inter-sample peaks above the sample peaks
    y, reduction_db = limit_true_peak(x, SR, -1.0)
    assert true_peak_db(x, SR) > 6.0 and true_peak_db(y, SR) <= -1.0
    assert reduction_db == pytest.approx(-1.0 - true_peak_db(x, SR), abs=0.1)
    quiet = tone(440, 1.0, 0.1)
    assert limit_true_peak(quiet, SR, -1.0) == (pytest.approx(quiet), 0.0)  # nothing to do: unchanged


@pytest.mark.filterwarnings("error")
def test_peaks_that_would_need_more_than_the_cap_leave_the_mix_below_the_target():
    rng = np.random.default_rng(0)
    clicks = np.zeros(SR * 4, np.float32)
    clicks[rng.integers(0, len(clicks), 20)] = 1.0  # sparse clicks: almost no loudness, full-scale peaks
    mix, report = mix_tracks([clicks, tone(200, 4, 0.001)], SR, max_limit_db=12.0)
    assert report.limiter_gain_db == pytest.approx(-12.0, abs=0.05) and report.lufs < -25.0
    assert true_peak_db(mix, SR) <= -1.0 and np.isfinite(mix).all()


@pytest.mark.filterwarnings("error")
def test_a_short_peaky_clip_is_limited_and_measured():
    mix, report = mix_tracks([impacts(0.3, [0.05], click=4.0)], SR)  # under one 0.4 s block
    assert mix.shape == (round(0.3 * SR),) and np.isfinite(mix).all()
    assert report.lufs == pytest.approx(-20.0, abs=0.5) and true_peak_db(mix, SR) <= -1.0


@pytest.mark.filterwarnings("error")
def test_silent_tracks_mix_to_zeros():
    mix, report = mix_tracks([np.zeros(SR * 2, np.float32), np.zeros(SR, np.float32)], SR)
    assert mix.shape == (SR * 2,) and not np.any(mix) and np.isfinite(mix).all()
    assert report.lufs == -math.inf and report.true_peak_db == -math.inf and report.gain_db == 0.0


@pytest.mark.filterwarnings("error")
def test_short_and_uneven_tracks():
    mix, report = mix_tracks([tone(1000, 0.3, 0.1), tone(1000, 0.2, 0.1)], SR)  # both under one 0.4 s block
    assert mix.shape == (round(0.3 * SR),)
    assert np.isfinite(mix).all() and report.lufs == pytest.approx(-20.0, abs=0.1)
    cut = round(0.2 * SR)  # the shorter track is zero-padded: twice the amplitude before 0.2 s, once after
    assert np.max(np.abs(mix[:cut])) / np.max(np.abs(mix[cut:])) == pytest.approx(2.0, rel=1e-3)


def test_stereo_tracks_and_layout_mismatch():
    st = np.stack([tone(440, 3, 0.1), tone(660, 3, 0.1)])
    mix, report = mix_tracks([st, st * 0.5], SR)
    assert mix.shape == st.shape and report.lufs == pytest.approx(-20.0, abs=0.1)
    with pytest.raises(ValueError, match="same layout"):
        mix_tracks([st, tone(440, 3, 0.1)], SR)
    with pytest.raises(ValueError, match="at least one"):
        mix_tracks([], SR)
    with pytest.raises(ValueError, match="NaN"):
        mix_tracks([np.full(SR, np.nan, np.float32)], SR)


def _expected_attenuation(need: np.ndarray, half: int, rate_db: float) -> np.ndarray:
    """The limiter's gain reduction worked out by hand: the need held over +-half samples (a running max),
    averaged over +-half (edges repeat the end values), never below the need, then released at rate_db per
    sample after each peak."""
    n = len(need)
    at = lambda a, i: a[min(max(i, 0), n - 1)]  # noqa: E731  (edge values repeat)
    held = np.array([max(at(need, j) for j in range(i - half, i + half + 1)) for i in range(n)])
    avg = np.array([sum(at(held, j) for j in range(i - half, i + half + 1)) / (2 * half + 1) for i in range(n)])
    avg = np.maximum(avg, need)
    return np.array([max(avg[m] - (i - m) * rate_db for m in range(i + 1)) for i in range(n)])


@pytest.mark.parametrize("lookahead_s, half", [(0.002, 32), (0.0, 1)])  # 0 s still looks one sample ahead
def test_the_limiters_gain_falls_before_a_peak_and_recovers_at_the_release_rate(lookahead_s, half):
    from media.mix import _attenuation

    sr, n = 16_000, 400
    excess = np.full(n, -3.0)  # dB over the ceiling: negative = under it, no reduction needed
    excess[[half + 5, 200, 203]] = [1.0, 6.0, 2.5]  # a peak near the start (edge handling) and two close ones
    got = _attenuation(excess, sr, lookahead_s, 300.0)
    expected = _expected_attenuation(np.maximum(excess, 0.0), half, 300.0 / sr)
    assert np.allclose(got, expected, atol=1e-9), np.abs(got - expected).max()
    assert got[200] == pytest.approx(6.0) and got[200 - 2 * half - 1] == 0.0 < got[200 - 2 * half + 3]
    assert not _attenuation(np.full(10, -1.0), sr, lookahead_s, 300.0).any()  # nothing over: no reduction


@pytest.mark.filterwarnings("error")
def test_limit_true_peak_applies_exactly_the_gain_curve_of_its_attenuation():
    from media.mix import LOOKAHEAD_S, RELEASE_DB_PER_S, _attenuation, _true_peak_db

    x = impacts(1.0, [0.3, 0.7], click=3.0)  # two impacts far above a -3 dBTP ceiling
    y, reduction_db = limit_true_peak(x, SR, -3.0)
    gain_db = -_attenuation(_true_peak_db(x.astype(np.float64)) + 3.0, SR, LOOKAHEAD_S, RELEASE_DB_PER_S)
    assert y.dtype == np.float32 and true_peak_db(y, SR) <= -3.0
    # that curve, and at most one static trim of a few hundredths of a dB (step 4: interpolation residue)
    audible = np.abs(x) > 1e-3
    trim = y[audible] / (x[audible] * 10 ** (gain_db[audible] / 20))
    assert trim.max() - trim.min() < 1e-5 and 10 ** (-0.05 / 20) < trim.mean() <= 1.0
    assert reduction_db == pytest.approx(gain_db.min() + 20 * np.log10(trim.mean()), abs=1e-3) and reduction_db < -6.0


def test_limit_true_peak_of_tiny_clips():
    empty, reduction_db = limit_true_peak(np.zeros(0, np.float64), SR)
    assert empty.dtype == np.float32 and empty.shape == (0,) and reduction_db == 0.0
    one, reduction_db = limit_true_peak(np.array([2.0]), SR, -1.0)  # a single sample 7 dB over the ceiling
    assert one.dtype == np.float32 and true_peak_db(one, SR) <= -1.0 and reduction_db < -6.0
    for clip in ([2.0], [2.0, 2.0], [2.0, -1.0, 0.5]):  # one static gain: exactly down to the ceiling, no further
        x = np.array(clip)
        y, reduction_db = limit_true_peak(x, SR, -1.0)
        assert reduction_db == pytest.approx(-1.0 - true_peak_db(x, SR), abs=1e-4)
        assert true_peak_db(y, SR) == pytest.approx(-1.0, abs=1e-4)


def test_tracks_must_share_their_layout():
    mono = tone(440, 0.5, 0.1)
    with pytest.raises(ValueError, match=r"same layout and channel count; got shapes \[\(8000,\), \(1, 8000\)\]"):
        mix_tracks([mono, mono[None]], SR)  # one channel each, but (samples,) and (1, samples)
    with pytest.raises(ValueError, match="^mix_tracks needs at least one track$"):
        mix_tracks([], SR)


def _traced_mix(monkeypatch, tracks, **kwargs):
    """mix_tracks with its make-up search recorded: the gain before the limiter and the loudness it gave, per round."""
    from media import mix as mixer

    excess, loudness = [], []
    attenuation, measure = mixer._attenuation, mixer.integrated_loudness
    monkeypatch.setattr(mixer, "_attenuation", lambda e, *a: excess.append(e.copy()) or attenuation(e, *a))
    monkeypatch.setattr(mixer, "integrated_loudness", lambda x, sr: loudness.append(measure(x, sr)) or loudness[-1])
    mix, report = mix_tracks(tracks, SR, **kwargs)
    monkeypatch.undo()
    total = np.sum([np.asarray(t, np.float64) for t in tracks], axis=0)
    peaks = mixer._true_peak_db(total)
    finite = np.isfinite(peaks)
    ceiling = kwargs.get("ceiling_db", -1.0)
    gains = [float(np.median(e[finite] - peaks[finite])) + ceiling for e in excess]  # excess = peaks + gain - ceiling
    # loudness[0]: the sum; then one per round; the last: the report's, of the delivered mix
    return mix, report, total, peaks, gains, loudness[1:-1], loudness


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("case", ["peaky", "capped by the limit", "deep impacts", "loud tone", "short",
                                  "capped near the target"])
def test_the_make_up_search_steps_by_the_secant_and_keeps_the_loudest_mix_within_the_target(monkeypatch, case):
    rng = np.random.default_rng(0)
    clicks = np.zeros(SR * 4, np.float32)
    clicks[rng.integers(0, len(clicks), 20)] = 1.0
    tracks, kwargs = {
        "peaky": (PEAKY, {}),
        "capped by the limit": ([clicks, tone(200, 4, 0.001)], {"max_limit_db": 12.0}),
        "deep impacts": ([impacts(8, [0.5, 2.0, 3.1, 5.5, 7.0], click=20), tone(300, 8, 0.003)], {}),
        "loud tone": ([tone(440, 2, 0.9)], {"target_lufs": -5.0, "ceiling_db": -2.0}),
        "short": ([impacts(0.3, [0.05], click=4.0)], {}),
        "capped near the target": (PEAKY, {"max_limit_db": 11.0}),
    }[case]
    from media import mix as mixer

    target, ceiling, cap = kwargs.get("target_lufs", -20.0), kwargs.get("ceiling_db", -1.0), kwargs.get("max_limit_db", 20.0)
    mix, report, total, peaks, gains, lufs, measured = _traced_mix(monkeypatch, tracks, **kwargs)
    assert report.sum_lufs == measured[0] == integrated_loudness(total, SR)
    max_gain = ceiling + cap - float(peaks.max())
    assert gains[0] == pytest.approx(min(target - report.sum_lufs, max_gain), abs=1e-9)
    slope = [1.0]  # LU per dB, as known after each round: 1 until two rounds give a secant
    for k in range(1, len(gains)):
        slope.append(slope[-1] if gains[k] == gains[k - 1] else (lufs[k] - lufs[k - 1]) / (gains[k] - gains[k - 1]))
    for k in range(1, len(gains)):  # each round makes up the last shortfall along the secant, never past the cap
        assert gains[k] == pytest.approx(min(gains[k - 1] + (target - lufs[k - 1]) / slope[k - 1], max_gain), abs=1e-9)

    def stops(k):  # there, or more limiting buys too little loudness, or the cap is reached below the target
        return abs(target - lufs[k]) <= 0.05 or slope[k] < 0.1 or (target - lufs[k] > 0 and gains[k] >= max_gain - 1e-9)

    assert len(gains) == len(lufs) and 1 <= len(gains) <= 8
    assert all(not stops(k) for k in range(len(gains) - 1)) and (stops(len(gains) - 1) or len(gains) == 8)
    best = 0
    for k in range(1, len(gains)):
        if lufs[best] < lufs[k] <= target + 0.05:
            best = k
    assert report.gain_db == gains[best] or report.gain_db == pytest.approx(gains[best], abs=1e-9)
    assert mix.dtype == np.float32 and measured[-1] == report.lufs == integrated_loudness(mix, SR)
    assert report.true_peak_db == true_peak_db(mix, SR) <= ceiling + 1e-3
    assert report.limited == (report.limiter_gain_db < 0.0) and report.target_lufs == target
    attenuation = mixer._attenuation(peaks + report.gain_db - ceiling, SR, 0.002, 300.0)
    expected, reduction = mixer._apply(total * 10.0 ** (report.gain_db / 20.0), attenuation, SR, ceiling)
    assert report.limiter_gain_db == reduction and np.array_equal(mix, expected)
    assert report.lufs == pytest.approx(target, abs=0.05) or report.lufs < target  # never louder than the target


@pytest.mark.filterwarnings("error")
def test_a_mix_under_the_loudness_gate_is_still_held_under_the_callers_ceiling():
    click = np.zeros(SR * 4, np.float32)
    click[SR] = 0.01  # one click at -40 dBFS in silence: far below the -70 LUFS gate, not below a -60 dBTP ceiling
    mix, report = mix_tracks([click], SR, ceiling_db=-60.0)
    assert report.sum_lufs == -math.inf and report.gain_db == 0.0
    assert true_peak_db(mix, SR) <= -60.0 and report.limited and report.limiter_gain_db < -15.0
