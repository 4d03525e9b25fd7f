"""Synthesis batched across videos (pipeline.synthesis_batch): each video gets its own tracks, bit for bit
as alone on the CPU; methods and track counts mix; a failing video fails alone."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from nag_model.generator import StepByStepGenerator, VideoFeatures, VideoJob
from pipeline.models import load_model
from pipeline.params import TrackSettings
from pipeline.synthesis_batch import VideoBatcher, check_batch_videos, default_batch_videos


def _video(bundle, seed: int) -> VideoFeatures:
    g = torch.Generator().manual_seed(seed)
    base = bundle.base
    return VideoFeatures(torch.randn(1, base.seq.clip, base.config.clip_dim, generator=g),
                         torch.randn(1, base.seq.sync, base.config.sync_dim, generator=g))


@pytest.fixture(scope="module")
def bundle(h):
    return load_model(h.MODEL, h.DURATION)


@pytest.fixture(scope="module")
def jobs(bundle):
    """Three videos: NAG with three tracks, CFG with one, negative prompts with two; own seeds and settings."""
    return [VideoJob(_video(bundle, 1), ("A fan hums.", "A lamp beeps.", "A door knocks."), (11, 12, 13),
                     TrackSettings("nag", steps=2)),
            VideoJob(_video(bundle, 2), ("A bird tweets.",), (21,), TrackSettings("independent", 3.0, steps=2)),
            VideoJob(_video(bundle, 3), ("Rain falls.", "A dog barks."), (31, 32),
                     TrackSettings("negative-prompt", steps=2))]


def _alone(bundle, job: VideoJob) -> list[np.ndarray]:
    """The tracks as the synthesis made them before batching: StepByStepGenerator.generate, one video."""
    tracks = bundle.generator().generate(job.video, job.captions, job.seeds, job.settings)
    return [t.waveform for t in tracks]


def _submit(batcher: VideoBatcher, jobs, on_track=None) -> dict[int, object]:
    """Every job from its own thread at once (as the task runner's threads do); each one's result or error."""
    out: dict[int, object] = {}
    calls: dict[int, list[tuple[int, str]]] = {v: [] for v in range(len(jobs))}

    def one(v: int) -> None:
        def seen(k, track):
            calls[v].append((k, threading.current_thread().name))
            if on_track is not None:
                on_track(v, k, track)
        try:
            out[v] = batcher.generate(jobs[v], on_track=seen)
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            out[v] = exc

    threads = [threading.Thread(target=one, args=(v,), name=f"video-{v}") for v in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    out["calls"] = calls
    return out


def test_a_batch_gives_each_video_the_bits_it_gets_alone(bundle, jobs):
    batcher = VideoBatcher(bundle, 3, None, gather_s=5.0)
    out = _submit(batcher, jobs)
    assert batcher.batches == [3]  # the three waiting videos in one generate_videos call
    for v, job in enumerate(jobs):
        got = [t.waveform for t in out[v]]
        assert [t.caption for t in out[v]] == list(job.captions) and [t.seed for t in out[v]] == list(job.seeds)
        assert all(t.settings == job.settings for t in out[v])
        assert len(got) == len(job.captions)
        for a, b in zip(got, _alone(bundle, job)):
            assert np.array_equal(a, b)  # bit for bit (exact batch mode on the CPU)
        # each track reached its own video's callback, in order, in that video's own thread
        assert out["calls"][v] == [(k, f"video-{v}") for k in range(len(job.captions))]


def test_batches_take_at_most_max_videos(bundle, jobs):
    batcher = VideoBatcher(bundle, 2, None, gather_s=1.0)
    out = _submit(batcher, jobs)
    assert sorted(batcher.batches) == [1, 2] and all(not isinstance(out[v], Exception) for v in range(3))


def test_a_failing_video_fails_alone(bundle, jobs):
    bad = VideoJob(_video(bundle, 4), ("A cup clinks.", "   "), (41, 42), TrackSettings(steps=2))
    batcher = VideoBatcher(bundle, 4, None, gather_s=5.0)
    out = _submit(batcher, [jobs[0], bad, jobs[2]])
    assert batcher.batches[0] == 3 and sorted(batcher.batches[1:]) == [1, 1, 1]  # the batch, then each alone
    assert isinstance(out[1], ValueError) and "caption must be a non-empty string" in str(out[1])
    for v, job in ((0, jobs[0]), (2, jobs[2])):
        for a, b in zip([t.waveform for t in out[v]], _alone(bundle, job)):
            assert np.array_equal(a, b)


def test_a_failing_store_fails_its_video_only_after_its_batch(bundle, jobs):
    def on_track(v, k, track):
        if v == 0 and k == 1:
            raise OSError("storage went away")

    batcher = VideoBatcher(bundle, 3, None, gather_s=5.0)
    out = _submit(batcher, jobs, on_track)
    assert batcher.batches == [3]
    assert isinstance(out[0], OSError)
    assert out["calls"][0] == [(0, "video-0"), (1, "video-0")]  # no more stores once one failed
    assert len(out[1]) == 1 and len(out[2]) == 2


def test_a_batch_runs_under_the_slots_exclusive_lock(bundle, jobs, monkeypatch):
    from pipeline import synthesis_batch

    entered = []

    class Lock:
        def __enter__(self):
            entered.append(True)

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(synthesis_batch, "exclusive", lambda name: entered.append(name) or Lock())
    batcher = VideoBatcher(bundle, 3, "gpu-x", gather_s=5.0)
    _submit(batcher, jobs[:2])
    assert entered == ["gpu-x", True]


def test_batch_sizes_by_device_and_their_checks():
    assert default_batch_videos("cpu") == 1 and default_batch_videos(torch.device("cuda", 1)) == 32
    check_batch_videos(None)
    check_batch_videos(3)
    for bad in (0, -2, 1.5, True, "4"):
        with pytest.raises(ValueError, match="batch_videos must be a whole number >= 1"):
            check_batch_videos(bad)


def test_generate_alone_is_generate_videos_of_one(bundle, jobs):
    """What `generate` made before batching, `generate_videos` makes for one video (CPU: bit for bit)."""
    gen: StepByStepGenerator = bundle.generator()
    for job in jobs:
        (tracks,) = gen.generate_videos([job])
        assert all(np.array_equal(t.waveform, w) for t, w in zip(tracks, _alone(bundle, job)))


def test_a_video_longer_than_one_window_is_made_alone_window_after_window(bundle, jobs):
    from nag_model.long_form import LongFormGenerator
    from pipeline.synthesis_batch import generate_video

    long_form = LongFormGenerator(bundle.generator())
    n = round(1.5 * long_form.generator.num_samples)
    windows = [_video(bundle, 7 + j) for j in range(len(long_form.windows(n)))]
    assert len(windows) == 2
    seen, started = [], []
    job = jobs[0]
    tracks = generate_video(bundle, windows, n, job.captions, job.seeds, job.settings, batch_videos=3, slot=None,
                            on_track=lambda k, t: seen.append(k), on_start=lambda: started.append(1))
    alone = long_form.generate(windows, n, job.captions, job.seeds, job.settings)
    assert seen == [0, 1, 2] and started == [1]
    assert all(np.array_equal(a.waveform, b.waveform) for a, b in zip(tracks, alone))


def test_a_video_of_one_window_is_batched_with_the_bits_of_long_form(bundle, jobs):
    from nag_model.long_form import LongFormGenerator
    from pipeline.synthesis_batch import generate_video

    job = jobs[2]
    n = bundle.generator().num_samples
    tracks = generate_video(bundle, [job.video], n, job.captions, job.seeds, job.settings, batch_videos=None,
                            slot=None, on_track=lambda k, t: None)
    alone = LongFormGenerator(bundle.generator()).generate([job.video], n, job.captions, job.seeds, job.settings)
    assert all(np.array_equal(a.waveform, b.waveform) for a, b in zip(tracks, alone))
