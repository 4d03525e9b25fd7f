"""Batched guided sampling: tracks of several videos, methods and settings in one forward give the
same audio as each track alone (bit for bit in exact mode; within a stated tolerance when fused)."""
import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from nag_model.flow_matching import euler, time_grid
from nag_model.generator import StepByStepGenerator, TrackRequest, TrackSettings, VideoFeatures, VideoJob
from nag_model.guidance import ClassifierFreeGuidance, NegativeAudioGuidance, NegativePromptGuidance
from nag_model.track_batch import PreparedTrack, TrackBatch
from nag_model.network import PreprocessedConditions
from nag_model.velocity import GuidedVelocity

CAPTIONS = ["The ball bounces loudly.", "Wind blows softly.", "The bird chirps.", "A door creaks."]
# Measured on the CPU (torch 2.13, fp32, 1 and 2 threads): the fused batch of the 6 tracks below
# moves x1 (max |x1| about 6) by at most 3.6e-6 from the same tracks sampled alone over 3 steps,
# and no track is bit-identical; the bound leaves headroom for other BLAS builds.
FUSED_ATOL = 1e-4


def _video(base, seed):
    g = torch.Generator().manual_seed(seed)
    return VideoFeatures(torch.randn(1, base.seq.clip, base.config.clip_dim, generator=g),
                         torch.randn(1, base.seq.sync, base.config.sync_dim, generator=g))


@pytest.fixture
def contexts(parts):
    """Two earlier tracks of one video, made once (NAG references and negative prompts need them)."""
    base, controlnet, codec, text = parts
    gen = StepByStepGenerator(base, codec, text, controlnet=controlnet)
    return gen.generate(_video(base, 1), CAPTIONS[:2], seeds=[3, 4], settings=TrackSettings(steps=1))


def _mixed_requests(base, contexts):
    """Different videos, seeds, methods, strengths, context sizes (0, 1 or 2 earlier tracks) and loudness targets
    of the NAG reference mix."""
    return [
        TrackRequest(_video(base, 1), CAPTIONS[2], 11, TrackSettings("nag", 4.5, 1.5, steps=3), tuple(contexts)),
        TrackRequest(_video(base, 2), CAPTIONS[0], 12, TrackSettings("nag", steps=3)),
        TrackRequest(_video(base, 3), CAPTIONS[1], 13, TrackSettings("independent", 3.0, steps=3), tuple(contexts[:1])),
        TrackRequest(_video(base, 4), CAPTIONS[3], 14, TrackSettings("negative-prompt", 5.0, steps=3), tuple(contexts)),
        TrackRequest(_video(base, 5), CAPTIONS[3], 15, TrackSettings("nag", 2.0, 0.5, steps=3, target_lufs=-26.0),
                     tuple(contexts[:1])),
        TrackRequest(VideoFeatures.none(), CAPTIONS[1], 16,
                     TrackSettings("negative-prompt", negative_prompt_form="mmaudio", steps=3), tuple(contexts)),
    ]


def _prepared(gen, requests):
    return [PreparedTrack.from_condition_set(r.settings.guidance(),
                                             gen.condition_set(r.video, r.caption, r.settings, r.context),
                                             gen.initial_noise(r.seed)) for r in requests]


@torch.inference_mode()
@pytest.mark.parametrize("guidance", [ClassifierFreeGuidance(4.5), NegativePromptGuidance(4.5, "paper"),
                                      NegativeAudioGuidance(4.5, 1.5), ClassifierFreeGuidance(2.5),
                                      NegativePromptGuidance(6.0, "paper"), NegativeAudioGuidance(3.0, 0.7)])
def test_a_one_track_batch_is_the_guided_velocity_bit_for_bit(parts, contexts, guidance):
    base, controlnet, codec, text = parts
    gen = StepByStepGenerator(base, codec, text, controlnet=controlnet)
    settings = TrackSettings({"ClassifierFreeGuidance": "independent", "NegativePromptGuidance": "negative-prompt",
                              "NegativeAudioGuidance": "nag"}[type(guidance).__name__])
    cs = gen.condition_set(_video(base, 1), CAPTIONS[2], settings, contexts)
    x0 = gen.initial_noise(5)
    batch = TrackBatch(base, controlnet, [PreparedTrack.from_condition_set(guidance, cs, x0)])
    reference = GuidedVelocity(base, guidance, cs, controlnet=controlnet)
    grid = time_grid(3)
    assert torch.equal(batch.sample(grid), euler(reference, x0, grid))


@torch.inference_mode()
def test_layout_groups_by_guidance_and_puts_the_controlnet_rows_last(parts, contexts):
    base, controlnet, codec, text = parts
    gen = StepByStepGenerator(base, codec, text, controlnet=controlnet)
    requests = _mixed_requests(base, contexts)
    batch = TrackBatch(base, controlnet, _prepared(gen, requests))
    kinds = [(g.kind.__name__, g.num_branches, g.num_tracks) for g in batch.groups]
    # NAG with a reference (requests 0 and 4) last; NAG at track 1 (request 1) is its 2-branch CFG form.
    assert kinds == [("NegativeAudioGuidance", 2, 1), ("ClassifierFreeGuidance", 2, 1),
                     ("NegativePromptGuidance", 3, 1), ("NegativePromptGuidance", 2, 1), ("NegativeAudioGuidance", 3, 2)]
    assert batch.order[-2:] == [0, 4] and batch.num_ref == 2
    assert batch.num_rows == 2 + 2 + 3 + 2 + 6
    assert batch.tensors["row_track"].tolist()[-2:] == [4, 5]  # the last branch rows of the two NAG tracks
    x = torch.arange(len(requests), dtype=torch.float32)[batch.order].view(-1, 1)
    assert [float(t) for t in batch.unsort(x)] == list(range(len(requests)))


def test_exact_batches_give_every_track_bit_for_bit_as_alone(parts, contexts):
    base, controlnet, codec, text = parts
    requests = _mixed_requests(base, contexts)
    batched = StepByStepGenerator(base, codec, text, controlnet=controlnet, batch_mode="exact").generate_tracks(requests)
    alone = StepByStepGenerator(base, codec, text, controlnet=controlnet)
    for r, track in zip(requests, batched):
        single = alone.generate_track(r.video, r.caption, r.seed, r.settings, r.context)
        assert np.array_equal(track.waveform, single.waveform), r
        assert (track.caption, track.seed, track.settings, track.against) == (single.caption, single.seed,
                                                                             single.settings, single.against)


@torch.inference_mode()
def test_fused_batches_match_alone_within_the_stated_tolerance(parts, contexts):
    base, controlnet, codec, text = parts
    gen = StepByStepGenerator(base, codec, text, controlnet=controlnet)
    prepared = _prepared(gen, _mixed_requests(base, contexts))
    grid = time_grid(3)
    fused = TrackBatch(base, controlnet, prepared)
    together = fused.unsort(fused.sample(grid))
    for p, x in zip(prepared, together):
        alone = TrackBatch(base, controlnet, [p]).sample(grid)
        assert (x - alone).abs().max() <= FUSED_ATOL
        assert not torch.equal(alone, torch.zeros_like(alone))


@torch.inference_mode()
def test_batched_condition_sets_match_one_request_at_a_time(parts, contexts):
    base, controlnet, codec, text = parts
    gen = StepByStepGenerator(base, codec, text, controlnet=controlnet, batch_mode="fused")
    requests = _mixed_requests(base, contexts)
    for r, together in zip(requests, gen.condition_sets(requests)):
        alone = gen.condition_set(r.video, r.caption, r.settings, r.context)
        for name in ("full", "empty", "video_only", "negative"):
            a, b = getattr(together, name), getattr(alone, name)
            assert (a is None) == (b is None), (name, r)
            if a is not None:
                for x, y in zip(vars(a).values(), vars(b).values()):
                    assert x.shape == y.shape and torch.allclose(x, y, atol=1e-5, rtol=1e-5)
        assert (together.reference is None) == (alone.reference is None)
        if alone.reference is not None:
            for x, y in zip(together.reference.keys + together.reference.values, alone.reference.keys + alone.reference.values):
                assert torch.allclose(x, y, atol=1e-5, rtol=1e-5)


def test_generate_videos_batches_track_k_across_videos(parts):
    base, controlnet, codec, text = parts
    jobs = [VideoJob(_video(base, 1), tuple(CAPTIONS[:3]), (1, 2, 3), TrackSettings(steps=2)),
            VideoJob(_video(base, 2), tuple(CAPTIONS[:1]), (4,), TrackSettings("independent", steps=2)),
            VideoJob(_video(base, 3), tuple(CAPTIONS[1:3]), (5, 6), TrackSettings("negative-prompt", steps=1))]
    seen = []
    gen = StepByStepGenerator(base, codec, text, controlnet=controlnet, batch_mode="exact")
    out = gen.generate_videos(jobs, on_track=lambda v, k, t: seen.append((v, k, t)))
    assert sorted((v, k) for v, k, _ in seen) == [(0, 0), (0, 1), (0, 2), (1, 0), (2, 0), (2, 1)]
    assert all(t is out[v][k] for v, k, t in seen)  # each track as it is done
    for job, tracks in zip(jobs, out):
        alone = gen.generate(job.video, list(job.captions), list(job.seeds), job.settings)
        assert [t.caption for t in tracks] == list(job.captions)
        assert all(np.array_equal(a.waveform, b.waveform) and a.against == b.against for a, b in zip(tracks, alone))


def test_fused_generate_videos_pipelines_groups_and_matches_exact(parts):
    base, controlnet, codec, text = parts
    jobs = [VideoJob(_video(base, v), tuple(CAPTIONS[:n]), tuple(range(10 * v, 10 * v + n)), TrackSettings(m, steps=k))
            for v, (n, m, k) in enumerate([(3, "nag", 2), (2, "nag", 1), (1, "independent", 2), (3, "negative-prompt", 2),
                                           (2, "nag", 2)])]  # a batch holds one step count: video 1 goes alone
    seen = []
    fused = StepByStepGenerator(base, codec, text, controlnet=controlnet, batch_mode="fused", max_batch=2)
    out = fused.generate_videos(jobs, on_track=lambda v, k, t: seen.append((v, k)))
    for v, job in enumerate(jobs):  # each video's tracks arrive in order
        assert [k for w, k in seen if w == v] == list(range(len(job.captions)))
    exact = StepByStepGenerator(base, codec, text, controlnet=controlnet).generate_videos(jobs)
    for a_tracks, b_tracks in zip(out, exact):
        for a, b in zip(a_tracks, b_tracks):
            assert a.against == b.against and np.corrcoef(a.waveform, b.waveform)[0, 1] > 0.999


class _RecordingSampler:
    """A caller's sampler (the CUDA-graph sampler's interface): plain Euler, and a log of what it was handed."""

    def __init__(self):
        self.calls = []

    def sample(self, batch, timesteps):
        self.calls.append((len(batch.order), timesteps.tolist()))
        return batch.sample(timesteps)


def test_a_callers_sampler_integrates_each_batch(parts, contexts):
    base, controlnet, codec, text = parts
    requests = _mixed_requests(base, contexts)
    sampler = _RecordingSampler()
    with_sampler = StepByStepGenerator(base, codec, text, controlnet=controlnet, sampler=sampler)
    tracks = with_sampler.generate_tracks(requests)
    assert sampler.calls == [(1, time_grid(3).tolist())] * len(requests)  # exact: a batch per track, 3 steps
    plain = StepByStepGenerator(base, codec, text, controlnet=controlnet).generate_tracks(requests)
    assert all(np.array_equal(a.waveform, b.waveform) for a, b in zip(tracks, plain))


def test_batch_options_are_checked(parts):
    base, controlnet, codec, text = parts
    with pytest.raises(ValueError, match="batch_mode"):
        StepByStepGenerator(base, codec, text, batch_mode="sometimes")
    with pytest.raises(ValueError, match="max_batch"):
        StepByStepGenerator(base, codec, text, max_batch=0)
    gen = StepByStepGenerator(base, codec, text)
    assert not gen.fused and gen.max_batch == 1  # the CPU default is exact
    assert StepByStepGenerator(base, codec, text, batch_mode="fused").max_batch == 8
    with pytest.raises(ValueError, match="seeds"):
        VideoJob(VideoFeatures.none(), ("a",), (1, 2)).seed_list()


@torch.inference_mode()
def test_a_clone_owns_its_tensors_and_copy_fills_them_from_a_batch_of_the_same_layout(parts, contexts):
    """What a captured CUDA graph relies on: its static inputs are the clone's own storage, refilled by copy_."""
    base, controlnet, codec, text = parts
    gen = StepByStepGenerator(base, codec, text, controlnet=controlnet)
    requests = _mixed_requests(base, contexts)[:2]
    batch = TrackBatch(base, controlnet, _prepared(gen, requests))
    twin = batch.clone()
    assert twin.signature == batch.signature and twin.order == batch.order and twin.groups == batch.groups
    assert twin.tensors.keys() == batch.tensors.keys()
    for k, v in twin.tensors.items():
        assert torch.equal(v, batch.tensors[k]) and v.data_ptr() != batch.tensors[k].data_ptr(), k
    other = TrackBatch(base, controlnet, _prepared(gen, [TrackRequest(_video(base, 9), r.caption, r.seed + 1, r.settings,
                                                                      r.context) for r in requests]))
    assert other.signature == batch.signature
    twin.copy_(other)
    for k, v in twin.tensors.items():
        assert torch.equal(v, other.tensors[k]), k
    assert not torch.equal(twin.tensors["x0"], batch.tensors["x0"])  # the original keeps its values
    grid = time_grid(2)
    assert torch.equal(twin.sample(grid), other.sample(grid))


@dataclass(frozen=True)
class _LoudCFG(ClassifierFreeGuidance):
    """CFG with a flag: a non-numeric field (a bool is not a strength) that splits the layout's groups."""

    loud: bool = False


@dataclass(frozen=True)
class _OtherNAG(NegativeAudioGuidance):
    """NAG under another name: a second guidance kind with a ControlNet reference."""


@dataclass(frozen=True)
class _ReferenceFirst(NegativeAudioGuidance):
    """A component that (wrongly) puts its ControlNet branch first."""

    def branches(self, c):
        named = super().branches(c)
        return {k: named[k] for k in reversed(named)}


@torch.inference_mode()
def test_prepared_tracks_and_batches_refuse_what_they_cannot_lay_out(parts, contexts):
    base, controlnet, codec, text = parts
    gen = StepByStepGenerator(base, codec, text, controlnet=controlnet)
    nag = TrackSettings("nag", steps=1)
    cs = gen.condition_set(_video(base, 1), CAPTIONS[2], nag, contexts)
    x0 = gen.initial_noise(5)
    two = gen.condition_sets([TrackRequest(_video(base, 1), CAPTIONS[2], 1, nag, tuple(contexts))] * 2)
    wide = dataclasses.replace(cs, full=PreprocessedConditions.cat([two[0].full, two[1].full]))
    with pytest.raises(ValueError) as raised:
        PreparedTrack.from_condition_set(NegativeAudioGuidance(), wide, x0)
    assert str(raised.value) == "a prepared track holds one track: every branch must have batch 1"
    with pytest.raises(ValueError) as raised:
        PreparedTrack.from_condition_set(_ReferenceFirst(), cs, x0)
    assert str(raised.value) == "only the last branch of a track may carry a ControlNet reference"
    with pytest.raises(ValueError) as raised:
        TrackBatch(base, controlnet, [])
    assert str(raised.value) == "a TrackBatch needs at least one track"
    tracks = [PreparedTrack.from_condition_set(g, cs, x0) for g in (NegativeAudioGuidance(), _OtherNAG())]
    with pytest.raises(ValueError, match=r"^tracks with a ControlNet reference must share one guidance kind, got \[\(True, "
                                         r"'NegativeAudioGuidance', \(\), \('empty', 'full', 'reference'\)\), \(True, "
                                         r"'_OtherNAG', \(\), \('empty', 'full', 'reference'\)\)\]$"):
        TrackBatch(base, controlnet, tracks)
    with pytest.raises(ValueError) as raised:
        TrackBatch(base, None, tracks[:1])
    assert str(raised.value) == "tracks with a ControlNet reference need an AudioControlNet"
    prepared = PreparedTrack.from_condition_set(NegativeAudioGuidance(), cs, x0)
    assert prepared.names == ("empty", "full", "reference") and prepared.num_branches == 3
    assert prepared.reference is cs.reference and prepared.x0 is x0


@torch.inference_mode()
def test_non_numeric_guidance_fields_split_groups_and_numbers_become_strength_tensors(parts, contexts):
    base, controlnet, codec, text = parts
    gen = StepByStepGenerator(base, codec, text, controlnet=controlnet)
    cs = gen.condition_set(_video(base, 1), CAPTIONS[2], TrackSettings("independent", steps=1))
    x0 = gen.initial_noise(5)
    guidances = [_LoudCFG(2.0, False), _LoudCFG(3.0, True), _LoudCFG(4.0, False)]
    batch = TrackBatch(base, controlnet, [PreparedTrack.from_condition_set(g, cs, x0) for g in guidances])
    assert [(g.fixed, g.strengths, g.num_tracks, g.first_track, g.first_row) for g in batch.groups] == [
        ({"loud": False}, ("alpha",), 2, 0, 0), ({"loud": True}, ("alpha",), 1, 2, 4)]
    assert batch.order == [0, 2, 1] and sorted(k for k in batch.tensors if k.startswith("g") and "." in k) == ["g0.alpha", "g1.alpha"]
    assert batch.tensors["g0.alpha"].flatten().tolist() == [2.0, 4.0] and batch.tensors["g0.alpha"].shape == (2, 1, 1)
    assert batch.tensors["g0.alpha"].dtype == torch.float32
    v = batch.velocity(torch.tensor(0.5), batch.tensors["x0"])
    for i, g in zip(batch.order, (guidances[0], guidances[2], guidances[1])):
        alone = TrackBatch(base, controlnet, [PreparedTrack.from_condition_set(g, cs, x0)])
        assert torch.allclose(v[batch.order.index(i)], alone.velocity(torch.tensor(0.5), alone.tensors["x0"])[0],
                              atol=1e-5)


def test_fused_requests_are_batched_by_step_count_and_returned_in_request_order(parts, contexts):
    base, controlnet, codec, text = parts
    requests = [TrackRequest(_video(base, v), CAPTIONS[v % 4], 20 + v, TrackSettings("nag", steps=1 + v % 2),
                             tuple(contexts[: v % 3])) for v in range(5)]
    made = []
    fused = StepByStepGenerator(base, codec, text, controlnet=controlnet, batch_mode="fused", max_batch=2)
    out = fused.generate_tracks(requests, on_track=lambda i, t: made.append(i))
    assert sorted(made) == list(range(5))
    alone = StepByStepGenerator(base, codec, text, controlnet=controlnet)
    for r, track in zip(requests, out):
        single = alone.generate_track(r.video, r.caption, r.seed, r.settings, r.context)
        assert (track.caption, track.seed, track.settings.steps) == (r.caption, r.seed, r.settings.steps)
        assert np.corrcoef(track.waveform, single.waveform)[0, 1] > 0.999


@pytest.mark.parametrize("mode", ["fused", "exact"])  # condition_sets, or condition_set per track
def test_a_batch_with_a_nag_track_needs_a_controlnet(parts, contexts, mode):
    base, controlnet, codec, text = parts
    gen = StepByStepGenerator(base, codec, text, batch_mode=mode)  # no ControlNet
    requests = [TrackRequest(_video(base, 1), CAPTIONS[2], 1, TrackSettings("independent", steps=1)),
                TrackRequest(_video(base, 2), CAPTIONS[3], 2, TrackSettings("nag", steps=1), tuple(contexts))]
    with pytest.raises(ValueError) as raised:
        gen.generate_tracks(requests)
    assert str(raised.value) == "method 'nag' needs an AudioControlNet; pass controlnet= or use method 'independent'"


@pytest.mark.parametrize("targets", [(-26.0,), (-26.0, -14.0)], ids=["one-nag-track", "two-nag-tracks"])
def test_a_fused_batch_makes_each_reference_at_its_tracks_target_loudness(parts, contexts, monkeypatch, targets):
    """One NAG track: its mix is made by `condition_sets`; two or more: ahead, on the mixing thread pool."""
    import pyloudnorm

    base, controlnet, codec, text = parts
    fused = StepByStepGenerator(base, codec, text, controlnet=controlnet, batch_mode="fused")
    latents = []
    encode = controlnet.preprocess_reference
    monkeypatch.setattr(controlnet, "preprocess_reference", lambda ref: latents.append(ref.clone()) or encode(ref))
    context_of = [tuple(contexts), tuple(contexts[:1])]
    fused.generate_tracks([TrackRequest(_video(base, 1), CAPTIONS[2], 1, TrackSettings("independent", steps=1))]
                          + [TrackRequest(_video(base, 2 + k), CAPTIONS[3], 2 + k,
                                          TrackSettings("nag", steps=1, target_lufs=target), context_of[k])
                             for k, target in enumerate(targets)])
    expected = []
    for target, context in zip(targets, context_of):
        total = np.sum([np.asarray(t.waveform, np.float64) for t in context], axis=0)
        gain = 10.0 ** ((target - pyloudnorm.Meter(codec.sample_rate).integrated_loudness(total)) / 20.0)
        expected.append(base.normalize(codec.encode(torch.from_numpy((total * gain).astype(np.float32))[None])))
    assert len(latents) == 1 and torch.allclose(latents[0], torch.cat(expected), atol=1e-4)


def test_a_batched_call_leaves_the_generators_conditions_as_they_were(parts):
    base, controlnet, codec, text = parts
    gen = StepByStepGenerator(base, codec, text, controlnet=controlnet)
    video, settings = _video(base, 1), TrackSettings("independent", steps=1)

    def empty():  # u(empty, empty) as a direct condition_set call sees it
        return vars(gen.condition_set(video, CAPTIONS[0], settings).empty)

    fresh = empty()
    gen.generate_videos([VideoJob(video, tuple(CAPTIONS[:1]), (1,), settings)])
    after_videos = empty()
    gen.generate_tracks([TrackRequest(video, CAPTIONS[0], 1, settings)])
    for after in (after_videos, empty()):
        assert after.keys() == fresh.keys() and all(torch.equal(after[k], fresh[k]) for k in fresh)


@pytest.mark.parametrize("progress", [True, False])
def test_the_progress_bar_counts_each_batchs_steps_and_is_cleared(parts, capsys, monkeypatch, progress):
    import functools

    import nag_model.generator
    from tqdm.auto import tqdm

    monkeypatch.setattr(nag_model.generator, "tqdm", functools.partial(tqdm, mininterval=0))  # draw every update
    base, _, codec, text = parts
    caption = "A heavy wooden door creaks open, slowly, in the old house."  # longer than the 40 characters shown
    gen = StepByStepGenerator(base, codec, text, **({"progress": True} if progress else {}))  # quiet by default
    gen.generate_tracks([TrackRequest(_video(base, 1), caption, 1, TrackSettings("independent", steps=3))])
    err = capsys.readouterr().err
    if not progress:
        assert err == ""
        return
    frames = err.split("\r")
    assert any(f.startswith(f"{caption[:40]}: 100%") and "3/3" in f for f in frames), frames
    assert not err.endswith("\n") and frames[-1].strip() == ""  # leave=False: the finished bar is wiped
