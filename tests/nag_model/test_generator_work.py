"""How much work the generator does for a batch, not only what it makes: each NAG reference mix is made once
(ahead, on the mix pool, when a batch needs several), a fused batch preprocesses each kind of condition once,
u(empty, empty) once per call, and the unbatched path evaluates the guidance branches one forward each.

These contracts are what makes batching pay off; the tests are small (one step, two Griffin-Lim iterations), so
a mutation run reaches them first."""
import dataclasses
import threading

import numpy as np
import pytest
import torch

from nag_model import generator as generator_module
from nag_model.generator import StepByStepGenerator, Track, TrackRequest, TrackSettings, VideoFeatures, VideoJob

STEP = dict(steps=1)


def _video(base, seed):
    g = torch.Generator().manual_seed(seed)
    return VideoFeatures(torch.randn(1, base.seq.clip, base.config.clip_dim, generator=g),
                         torch.randn(1, base.seq.sync, base.config.sync_dim, generator=g))


def _context(gen, n=2):
    """n earlier tracks of noise (their content only feeds the NAG mix and the negative prompt)."""
    rng = np.random.default_rng(0)
    return tuple(Track(f"earlier sound {k}", k, TrackSettings(), 0.1 * rng.standard_normal(gen.num_samples,
                                                                                           dtype=np.float32),
                       gen.codec.sample_rate) for k in range(n))


def _requests(gen, context):
    """Two NAG tracks with context (two references), one without, an independent and a negative-prompt track."""
    base = gen.base
    return [TrackRequest(_video(base, 1), "a ball bounces", 1, TrackSettings("nag", **STEP), context),
            TrackRequest(_video(base, 2), "wind blows", 2, TrackSettings("nag", target_lufs=-26.0, **STEP), context[:1]),
            TrackRequest(_video(base, 3), "a bird sings", 3, TrackSettings("nag", **STEP)),
            TrackRequest(_video(base, 4), "a door creaks", 4, TrackSettings("independent", **STEP), context),
            TrackRequest(_video(base, 5), "rain falls", 5, TrackSettings("negative-prompt", **STEP), context)]


class _Calls:
    """Wraps a bound method of `owner` (on the instance) and records each call's arguments and thread name."""

    def __init__(self, owner, name):
        self.calls, inner = [], getattr(owner, name)

        def spy(*args, **kwargs):
            self.calls.append((args, kwargs, threading.current_thread().name))
            return inner(*args, **kwargs)

        object.__setattr__(owner, name, spy)  # nn.Module's __setattr__ takes plain functions as well

    def __len__(self):
        return len(self.calls)


@torch.inference_mode()
def test_a_fused_batch_makes_each_reference_mix_once_on_the_mix_pool(parts):
    base, controlnet, codec, text = parts
    gen = StepByStepGenerator(base, codec, text, controlnet=controlnet, batch_mode="fused")
    context = _context(gen)
    requests, mixes = _requests(gen, context), _Calls(gen, "mix_condition")
    tracks = gen.generate_tracks(requests)
    # the two NAG tracks with earlier tracks, each once, in parallel on the pool, each at its own loudness target
    assert len(mixes) == 2
    assert all(thread.startswith("nag-mix") for _, _, thread in mixes.calls)
    made = sorted((len(args[0]), args[1]) for args, _, _ in mixes.calls)
    assert made == [(1, -26.0), (2, -20.0)]
    # each track is its own request's, in request order (the batch lays them out by guidance)
    assert [(t.caption, t.seed, t.settings, t.sample_rate) for t in tracks] == \
        [(r.caption, r.seed, r.settings, codec.sample_rate) for r in requests]
    assert [t.against for t in tracks] == [tuple(c.caption for c in context), (context[0].caption,), (), (),
                                           tuple(c.caption for c in context)]
    alone = StepByStepGenerator(base, codec, text, controlnet=controlnet, batch_mode="exact").generate_tracks(requests)
    for track, reference in zip(tracks, alone):
        assert track.waveform.shape == (gen.num_samples,) and track.waveform.dtype == np.float32
        np.testing.assert_allclose(track.waveform, reference.waveform, rtol=1e-3, atol=1e-2)  # fused rounding only


@torch.inference_mode()
@pytest.mark.parametrize("batch_mode", ["fused", "exact"])
def test_a_lone_reference_mix_is_made_inline_once(parts, batch_mode):
    base, controlnet, codec, text = parts
    gen = StepByStepGenerator(base, codec, text, controlnet=controlnet, batch_mode=batch_mode)
    context = _context(gen)
    mixes = _Calls(gen, "mix_condition")
    gen.generate_tracks(_requests(gen, context)[:1] + _requests(gen, context)[2:])
    assert len(mixes) == 1 and mixes.calls[0][2] == threading.current_thread().name


@torch.inference_mode()
def test_a_fused_batch_preprocesses_each_kind_of_condition_once(parts):
    base, controlnet, codec, text = parts
    gen = StepByStepGenerator(base, codec, text, controlnet=controlnet, batch_mode="fused")
    context = _context(gen)
    preprocess, empty = _Calls(base, "preprocess_conditions"), _Calls(base, "get_empty_conditions")
    gen.generate_tracks(_requests(gen, context))
    # u(empty, empty); the full conditions of all five tracks in one call; the negative prompt of its one track; the
    # video-only conditions of the two references in one call
    assert [args[0].shape[0] for args, _, _ in preprocess.calls] == [1, 5, 1, 2]
    # u(empty, empty) once for the call, the negative prompt's conditions once for its one track
    assert [(args, sorted(kwargs)) for args, kwargs, _ in empty.calls] == [((1,), []), ((), ["negative_text_features"])]
    # a fused pair is batched too
    preprocess.calls.clear()
    gen.generate_tracks(_requests(gen, context)[2:4])
    assert [args[0].shape[0] for args, _, _ in preprocess.calls] == [1, 2]


@torch.inference_mode()
def test_u_empty_is_computed_once_per_call(parts):
    base, controlnet, codec, text = parts
    gen = StepByStepGenerator(base, codec, text, controlnet=controlnet)  # exact: one track per forward
    context = _context(gen)
    empty = _Calls(base, "get_empty_conditions")
    gen.generate_tracks([r for r in _requests(gen, context) if r.settings.method != "negative-prompt"])
    assert len(empty) == 1
    gen.generate_videos([VideoJob(_video(base, 1), ("a ball bounces", "wind blows"), (1, 2), TrackSettings(**STEP))])
    assert len(empty) == 2  # and once per generate_videos call, whatever its rounds


@torch.inference_mode()
def test_unbatched_generation_runs_each_branch_alone_with_its_own_conditions(parts):
    base, controlnet, codec, text = parts
    exact = StepByStepGenerator(base, codec, text, controlnet=controlnet)
    context = _context(exact)
    request = _requests(exact, context)[0]
    alone = exact.generate_tracks([request])[0]
    for batch_mode in ("fused", "exact"):
        gen = StepByStepGenerator(base, codec, text, controlnet=controlnet, batched=False, batch_mode=batch_mode)
        preprocess, forwards = _Calls(base, "preprocess_conditions"), _Calls(base, "velocity")
        mixes = _Calls(gen, "mix_condition")
        pair = gen.generate_tracks([request, request])
        assert len(mixes) == 2  # made ahead on the pool (fused pair) or inline (exact), and not made again
        # one step of NAG, one track at a time: the full, empty and video-only branches, one row each
        assert [args[0].shape[0] for args, _, _ in forwards.calls] == [1, 1, 1] * 2
        # u(empty, empty) once, then the full and video-only conditions of each request alone: no fused preprocessing
        assert [args[0].shape[0] for args, _, _ in preprocess.calls] == [1] * 5
        for track in pair:
            np.testing.assert_allclose(track.waveform, alone.waveform, rtol=1e-4, atol=1e-3)  # rounding only (max |x| ~40)
            assert track.against == alone.against == tuple(t.caption for t in context)


@torch.inference_mode()
def test_each_track_records_its_request_and_is_handed_on_as_it_is_made(parts):
    base, controlnet, codec, text = parts
    gen = StepByStepGenerator(base, codec, text, controlnet=controlnet)
    requests = [TrackRequest(_video(base, 1), "a ball bounces", 7, TrackSettings("independent", 3.0, **STEP)),
                TrackRequest(VideoFeatures.none(), "wind blows", 8, TrackSettings("independent", **STEP))]
    told = []
    tracks = gen.generate_tracks(requests, on_track=lambda i, track: told.append((i, track)))
    assert [i for i, _ in told] == [0, 1] and all(track is tracks[i] for i, track in told)
    assert [(t.caption, t.seed, t.settings, t.sample_rate, t.against) for t in tracks] == \
        [(r.caption, r.seed, r.settings, codec.sample_rate, ()) for r in requests]
    assert all(t.waveform.shape == (gen.num_samples,) and t.waveform.dtype == np.float32 for t in tracks)


@torch.inference_mode()
def test_generate_makes_the_tracks_in_order_each_against_the_earlier_ones(parts):
    base, controlnet, codec, text = parts
    gen = StepByStepGenerator(base, codec, text, controlnet=controlnet)
    told = []
    tracks = gen.generate(_video(base, 1), ["a ball bounces", "wind blows"], settings=TrackSettings("nag", **STEP),
                          on_track=lambda k, track: told.append((k, track)))
    assert [(t.caption, t.seed, t.against) for t in tracks] == [("a ball bounces", 0, ()),
                                                                ("wind blows", 1, ("a ball bounces",))]
    assert [k for k, _ in told] == [0, 1] and all(track is tracks[k] for k, track in told)


@torch.inference_mode()
@pytest.mark.parametrize("batch_mode", ["fused", "exact"])
def test_the_queue_thread_samples_and_decodes_there_and_changes_no_sample(parts, batch_mode):
    """With `queue_thread` (the default on CUDA), each batch's sampling and decoding run on the queue
    thread, in order, while this thread prepares the next batch; the audio is bit for bit the same."""
    base, controlnet, codec, text = parts
    jobs = [VideoJob(_video(base, v), captions, tuple(range(len(captions))), TrackSettings(method, **STEP))
            for v, (captions, method) in enumerate([(("a ball bounces", "wind blows", "a bird sings"), "nag"),
                                                    (("rain falls",), "independent"),
                                                    (("a door creaks", "a dog barks"), "negative-prompt")])]
    inline = StepByStepGenerator(base, codec, text, controlnet=controlnet, batch_mode=batch_mode, max_batch=2)
    assert not inline.queue_thread  # the CPU's default
    queued = StepByStepGenerator(base, codec, text, controlnet=controlnet, batch_mode=batch_mode, max_batch=2,
                                 queue_thread=True)
    samples, decodes = _Calls(queued, "_sample"), _Calls(codec, "decode")
    made = queued.generate_videos(jobs)
    assert len(samples) == len(decodes) > 0
    assert all(thread.startswith("nag-queue") for _, _, thread in samples.calls + decodes.calls)
    del codec.decode  # the class's method again
    for a_tracks, b_tracks in zip(inline.generate_videos(jobs), made):
        assert [(t.caption, t.seed, t.against) for t in a_tracks] == [(t.caption, t.seed, t.against) for t in b_tracks]
        for a, b in zip(a_tracks, b_tracks):
            np.testing.assert_array_equal(a.waveform, b.waveform)


def test_an_error_on_the_queue_thread_reaches_the_caller(parts):
    base, controlnet, codec, text = parts
    gen = StepByStepGenerator(base, codec, text, controlnet=controlnet, queue_thread=True)

    def broken(*_):
        raise RuntimeError("the device fell over")

    object.__setattr__(gen, "_sample", broken)
    with pytest.raises(RuntimeError, match="the device fell over"):
        gen.generate_tracks([TrackRequest(_video(base, 1), "a ball bounces", 1, TrackSettings(**STEP))])


@torch.inference_mode()
def test_the_preparation_stream_is_cuda_only_and_covers_every_prepared_tensor_but_the_shared_empty(parts):
    """On the CPU the conditions are prepared inline whatever is asked; on CUDA (tests/nag_model/test_gpu.py)
    every tensor a batch's conditions hold, except the shared u(empty, empty), is handed to the sampling stream."""
    base, controlnet, codec, text = parts
    gen = StepByStepGenerator(base, codec, text, controlnet=controlnet, queue_thread=True, prep_stream=True)
    assert not gen.prep_stream
    context = gen.generate(_video(base, 9), ["a ball bounces"], settings=TrackSettings(**STEP))
    gen._begin()
    requests = [TrackRequest(_video(base, 1), "wind blows", 1, TrackSettings("nag", **STEP), tuple(context)),
                TrackRequest(_video(base, 2), "a bird sings", 2, TrackSettings("negative-prompt", **STEP), tuple(context)),
                TrackRequest(_video(base, 3), "rain falls", 3, TrackSettings("independent", **STEP))]
    sets = gen._prepare(requests, gen._mixes(requests))
    handed = {id(t) for t in generator_module._condition_tensors(sets)}
    expected = []
    for s in sets:
        expected += [getattr(c, f.name) for c in (s.full, s.video_only, s.negative) if c is not None
                     for f in dataclasses.fields(c)]
        expected += [*s.reference.keys, *s.reference.values] if s.reference is not None else []
    assert handed == {id(t) for t in expected} and len(expected) == 3 * 5 + 5 + 5 + 2 * len(controlnet.blocks)
    assert not handed & {id(getattr(sets[0].empty, f.name)) for f in dataclasses.fields(sets[0].empty)}
