"""Long-form generation: windows that cover any length, equal-power joins without clicks, the first
window equal to a plain generation, and each window's NAG reference taken over the same window."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nag_model.bundle import random_bundle
from nag_model.generator import StepByStepGenerator, TrackSettings, VideoFeatures
from nag_model.long_form import (LongFormGenerator, equal_power_fades, join_windows, plan_windows, window_features,
                                 window_seed)

SR = 16_000
FAST = TrackSettings(steps=2)


def click_score(x: np.ndarray, at: int, sample_rate: int = SR) -> float:
    """Largest 1-ms peak energy of the signal's first difference within 5 ms of sample ``at``, over the median
    of those energies in the 250 ms around it: about 1 for a seamless join, far above it for a click."""
    d = np.diff(np.asarray(x, np.float64))
    frame = round(0.001 * sample_rate)
    lo, hi = max(0, at - round(0.25 * sample_rate)), min(len(d), at + round(0.25 * sample_rate))
    energy = np.array([np.max(d[s : s + frame] ** 2) for s in range(lo, hi - frame, frame)])
    near = [i for i, s in enumerate(range(lo, hi - frame, frame)) if abs(s + frame // 2 - at) <= 0.005 * sample_rate]
    return float(energy[near].max() / max(np.median(energy), 1e-20))


@pytest.mark.parametrize("seconds", [2.0, 8.0, 8.5, 20.0, 95.0])
def test_windows_cover_the_video_on_the_frame_grid(seconds):
    total, window = round(seconds * SR), 8 * SR
    windows = plan_windows(total, window, SR)
    assert windows[0].start == 0 and all(w.length == window for w in windows)
    assert total <= windows[-1].end  # the video is covered
    if len(windows) > 1:
        assert windows[-1].end < total + SR  # and the last window ends within a second of it
    assert all(w.start % SR == 0 for w in windows)  # whole seconds: a frame of 8 fps and of 25 fps
    for a, b in zip(windows, windows[1:]):
        assert a.start < b.start and a.end - b.start >= SR  # at least 1 s of overlap for the crossfade
    expected = {2.0: 1, 8.0: 1, 8.5: 2, 20.0: 3, 95.0: 14}[seconds]  # ~8.6 windows per minute
    assert len(windows) == expected


def test_a_window_that_cannot_advance_is_refused():
    with pytest.raises(ValueError, match="longer window"):
        plan_windows(10 * SR, SR, SR)


def test_equal_power_crossfade_keeps_the_power_of_uncorrelated_windows():
    fade_out, fade_in = equal_power_fades(SR)
    np.testing.assert_allclose(fade_out ** 2 + fade_in ** 2, 1.0, atol=1e-12)
    rng = np.random.default_rng(0)
    windows = plan_windows(5 * SR, 3 * SR, SR)  # [0, 3) and [2, 5): one second of crossfade
    pieces = [rng.standard_normal(3 * SR) * 0.1 for _ in windows]
    out = join_windows(pieces, windows, SR)
    assert out.shape == (5 * SR,)
    np.testing.assert_array_equal(out[: 2 * SR], pieces[0][: 2 * SR].astype(np.float32))  # before the fade
    np.testing.assert_array_equal(out[3 * SR :], pieces[1][SR:].astype(np.float32))  # after it
    seam_rms = np.sqrt(np.mean(out[2 * SR : 3 * SR] ** 2))
    assert seam_rms == pytest.approx(0.1, rel=0.03)  # no dip, no bump in the crossfade


def test_the_seam_energy_test_sees_a_hard_splice_and_no_click_in_the_crossfade():
    """A tone whose two windows start in opposite phase: spliced hard it clicks; crossfaded it does not."""
    windows = plan_windows(4 * SR, 3 * SR, SR)  # [0, 3) and [1, 4)
    t = np.arange(3 * SR) / SR
    first = 0.3 * np.sin(2 * np.pi * 440 * t)
    second = 0.3 * np.sin(2 * np.pi * 440 * (t + 1.0) + np.pi / 2)  # a quarter turn off where they meet
    joined = join_windows([first, second], windows, SR // 4)  # crossfade over [2.75 s, 3 s)
    spliced = np.concatenate([first[: 3 * SR], second[2 * SR :]])  # no crossfade: a jump at 3 s
    assert click_score(spliced, 3 * SR) > 20
    for at in (3 * SR - SR // 4, 3 * SR):
        assert click_score(joined, at) < 3


@pytest.fixture(scope="module")
def bundle():
    return random_bundle("tiny", seed=0, duration=2.0)


@pytest.fixture(scope="module", params=["tiny", "demo"])
def any_bundle(request, bundle):
    """The random tiny model (2-s windows) and the trained demo model (8-s windows, real sound)."""
    if request.param == "tiny":
        return bundle
    from nag_model.bundle import load_bundle

    return load_bundle("demo", duration=8.0)


def _features(bundle, n: int) -> list[VideoFeatures]:
    g = torch.Generator().manual_seed(1)
    seq, cfg = bundle.base.seq, bundle.base.config
    return [VideoFeatures(torch.randn(1, seq.clip, cfg.clip_dim, generator=g),
                          torch.randn(1, seq.sync, cfg.sync_dim, generator=g)) for _ in range(n)]


def test_a_video_within_one_window_is_exactly_the_plain_generation(bundle):
    plain = StepByStepGenerator(bundle.base, bundle.codec, bundle.text_encoder, controlnet=bundle.controlnet)
    long_form = LongFormGenerator(plain)
    features = _features(bundle, 1)
    captions, seeds = ["A dog barks.", "Rain falls."], [3, 4]
    expected = plain.generate(features[0], captions, seeds, FAST)
    got = long_form.generate(features, round(1.5 * SR), captions, seeds, FAST)
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(g.waveform, e.waveform)  # every track: the reference is the same too
    assert got[1].against == ("A dog barks.",)


def test_long_tracks_window_by_window(any_bundle, monkeypatch):
    bundle = any_bundle
    plain = StepByStepGenerator(bundle.base, bundle.codec, bundle.text_encoder, controlnet=bundle.controlnet)
    long_form = LongFormGenerator(plain)
    window_s = round(bundle.duration)
    total = round((window_s + 2.5) * SR)  # four 2-s windows 1 s apart; two 8-s ones, the second at 3 s
    windows = long_form.windows(total)
    assert [w.start / SR for w in windows] == ([0.0, 1.0, 2.0, 3.0] if window_s == 2 else [0.0, 3.0])
    features = _features(bundle, len(windows))
    n = len(windows)
    calls, made = [], []
    real = plain.generate_track

    def spy(video, caption, seed, settings, context=()):
        calls.append((video, caption, seed, [t.waveform.copy() for t in context]))
        track = real(video, caption, seed, settings, context)
        made.append(track.waveform)
        return track

    monkeypatch.setattr(plain, "generate_track", spy)
    first, second = long_form.generate(features, total, ["A dog barks.", "Rain falls."], [3, 4], FAST)
    assert len(first.waveform) == windows[-1].end >= total

    # The first window is the plain generation up to where the second one fades in (its last second).
    alone = real(features[0], "A dog barks.", 3, FAST)
    fade_in_at = windows[0].end - SR
    np.testing.assert_array_equal(first.waveform[:fade_in_at], alone.waveform[:fade_in_at])

    # Each window has its own features and seed; track 2's reference is track 1 over that same window.
    assert [c[0] for c in calls[:n]] == features and [c[2] for c in calls[n:]] == [window_seed(4, j) for j in range(n)]
    assert len({c[2] for c in calls[:n]}) == n and calls[0][2] == 3
    for w, (_, caption, _, context) in zip(windows, calls[n:]):
        assert caption == "Rain falls." and len(context) == 1
        np.testing.assert_array_equal(context[0], first.waveform[w.start : w.end])
    assert all(not c[3] for c in calls[:n])  # track 1 has nothing to push away from

    # The joins add no click: where a window starts fading out and where it has faded out, the joined track
    # is no sharper than the windows it joins are there on their own.
    for track, raw in ((first, made[:n]), (second, made[n:])):
        for j, prev in enumerate(windows[:-1]):
            nxt = windows[j + 1]
            for at in (prev.end - SR, prev.end):
                alone = [np.zeros(windows[-1].end, np.float32) for _ in range(2)]
                alone[0][prev.start : prev.end] = raw[j][: prev.length]
                alone[1][nxt.start : nxt.end] = raw[j + 1][: nxt.length]
                own = max(click_score(alone[0], at) if at < prev.end else 0.0, click_score(alone[1], at))
                assert click_score(track.waveform, at) < 1.5 * own + 1.0


def test_window_features_take_each_windows_own_frames(bundle):
    frames8 = np.stack([np.full((8, 8, 3), i, np.uint8) for i in range(40)])  # 5 s at 8 fps: frame i is i
    frames25 = np.stack([np.full((8, 8, 3), i, np.uint8) for i in range(125)])
    seen = []
    windows = plan_windows(5 * SR, 2 * SR, SR)
    window_features(lambda c, s: seen.append((int(c[0, 0, 0, 0]), int(s[0, 0, 0, 0]))) or VideoFeatures.none(),
                    frames8, frames25, windows, SR)
    assert seen == [(8 * w.start // SR, 25 * w.start // SR) for w in windows]
