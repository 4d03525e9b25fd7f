"""The model on a CUDA device: placement, precision, fused batches and CUDA graphs (skipped without CUDA).

Tolerances are stated against the scale of the result (max |x1| of the reference), on toy-size
random networks over 3 Euler steps; each test prints the error it measured (`pytest -s`).
"""
import copy

import numpy as np
import pytest
import torch

from nag_model.bundle import FoleyBundle, random_bundle
from nag_model.codecs.demo_mel import MelCodec, MelCodecConfig
from nag_model.cuda_graphs import GraphedSampler
from nag_model.encoders.demo import PixelVideoEncoder, PixelVideoEncoderConfig
from nag_model.flow_matching import time_grid
from nag_model.generator import StepByStepGenerator, TrackRequest, TrackSettings, VideoFeatures, VideoJob
from nag_model.track_batch import PreparedTrack, TrackBatch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CAPTIONS = ["The ball bounces loudly.", "Wind blows softly.", "The bird chirps.", "A door creaks."]
FP32_RTOL = 1e-4  # CUDA vs CPU, fp32 without TF32: different kernels, float32 rounding
BF16_RTOL = 5e-2  # bf16 weights and activations, fp32 sampler state, vs fp32
FUSED_BF16_RTOL = 2e-2  # a fused bf16 batch vs the same tracks alone in bf16


@pytest.fixture(autouse=True)
def no_tf32():
    """fp32 means fp32 here: no TF32 matrix products or convolutions."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _video(base, seed):
    g = torch.Generator().manual_seed(seed)
    return VideoFeatures(torch.randn(1, base.seq.clip, base.config.clip_dim, generator=g),
                         torch.randn(1, base.seq.sync, base.config.sync_dim, generator=g))


def _parts_on(demo_parts, device, dtype=torch.float32):
    """A bundle of copies of the fixture's networks (2-iteration Griffin-Lim) on `device` in `dtype`."""
    base, controlnet, _, text = copy.deepcopy(demo_parts)
    video = PixelVideoEncoder(PixelVideoEncoderConfig(clip_dim=base.config.clip_dim, sync_dim=base.config.sync_dim))
    bundle = FoleyBundle("test", base, MelCodec(MelCodecConfig(griffin_lim_iters=2)), text, video, controlnet)
    return bundle.to(device, dtype)


def _requests(base, context):
    return [TrackRequest(_video(base, 1), CAPTIONS[2], 11, TrackSettings("nag", steps=3), tuple(context)),
            TrackRequest(_video(base, 2), CAPTIONS[0], 12, TrackSettings("nag", steps=3)),
            TrackRequest(_video(base, 3), CAPTIONS[1], 13, TrackSettings("independent", 3.0, steps=3), tuple(context)),
            TrackRequest(_video(base, 4), CAPTIONS[3], 14, TrackSettings("negative-prompt", steps=3), tuple(context)),
            TrackRequest(_video(base, 5), CAPTIONS[3], 15, TrackSettings("nag", 2.0, 0.5, steps=3), tuple(context[:1]))]


def _x1(bundle, requests, fused=True):
    """x1 of every request (request order), sampled eagerly: together (fused) or one by one."""
    gen = bundle.generator()
    prepared = [PreparedTrack.from_condition_set(r.settings.guidance(),
                                                 gen.condition_set(r.video, r.caption, r.settings, r.context),
                                                 gen.initial_noise(r.seed)) for r in requests]
    grid = time_grid(3, device=bundle.device)
    if fused:
        batch = TrackBatch(bundle.base, bundle.controlnet, prepared)
        return torch.cat(batch.unsort(batch.sample(grid))).cpu()
    return torch.cat([TrackBatch(bundle.base, bundle.controlnet, [p]).sample(grid) for p in prepared]).cpu()


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture
def context(demo_parts):
    base, controlnet, codec, text = demo_parts
    gen = StepByStepGenerator(base, MelCodec(MelCodecConfig(griffin_lim_iters=2)), text, controlnet=controlnet)
    return gen.generate(_video(base, 9), CAPTIONS[:2], seeds=[3, 4], settings=TrackSettings(steps=1))


@torch.inference_mode()
def test_bundle_to_cuda_places_every_component():
    bundle = random_bundle("tiny", duration=2.0).to("cuda", torch.bfloat16)
    assert bundle.device.type == "cuda" and bundle.dtype == torch.bfloat16
    assert bundle.base.latent_mean.dtype == torch.float32 and bundle.base.latent_rot.dtype == torch.float32
    assert all(p.device.type == "cuda" for p in bundle.controlnet.parameters())
    assert bundle.controlnet.blocks[0].out_proj.weight.dtype == torch.bfloat16
    assert bundle.codec.mel_basis.device.type == "cuda"
    assert torch.backends.cudnn.benchmark
    tracks = bundle.generator().generate(VideoFeatures.none(), CAPTIONS[:2], settings=TrackSettings(steps=2))
    assert all(t.waveform.dtype == np.float32 and np.isfinite(t.waveform).all() for t in tracks)
    bundle.to("cpu", torch.float32)
    assert bundle.device.type == "cpu" and bundle.dtype == torch.float32


@torch.inference_mode()
def test_cpu_and_cuda_fp32_agree(demo_parts, context):
    requests = _requests(demo_parts[0], context)
    cpu = _x1(_parts_on(demo_parts, "cpu"), requests)
    cuda = _x1(_parts_on(demo_parts, "cuda"), requests)
    err = _rel(cuda, cpu)
    print(f"cuda fp32 vs cpu fp32: max |diff| / max |x1| = {err:.2e}")
    assert err < FP32_RTOL


@torch.inference_mode()
def test_bf16_stays_within_tolerance_of_fp32(demo_parts, context):
    requests = _requests(demo_parts[0], context)
    fp32 = _x1(_parts_on(demo_parts, "cuda"), requests)
    bf16 = _x1(_parts_on(demo_parts, "cuda", torch.bfloat16), requests)
    err = _rel(bf16, fp32)
    print(f"cuda bf16 vs cuda fp32: max |diff| / max |x1| = {err:.2e}")
    assert err < BF16_RTOL


@torch.inference_mode()
@pytest.mark.parametrize("dtype,rtol", [(torch.float32, FP32_RTOL), (torch.bfloat16, FUSED_BF16_RTOL)])
def test_fused_batch_matches_each_track_alone(demo_parts, context, dtype, rtol):
    bundle = _parts_on(demo_parts, "cuda", dtype)
    requests = _requests(demo_parts[0], context)
    fused, alone = _x1(bundle, requests, fused=True), _x1(bundle, requests, fused=False)
    err = _rel(fused, alone)
    print(f"fused vs alone, {dtype}: max |diff| / max |x1| = {err:.2e}")
    assert err < rtol


@torch.inference_mode()
def test_graph_replay_equals_eager_sampling(demo_parts, context):
    bundle = _parts_on(demo_parts, "cuda", torch.bfloat16)
    gen = bundle.generator()
    requests = _requests(demo_parts[0], context)
    sampler, grid = GraphedSampler(), time_grid(3, device="cuda")

    def batch(seed_offset):
        prepared = [PreparedTrack.from_condition_set(r.settings.guidance(),
                                                     gen.condition_set(r.video, r.caption, r.settings, r.context),
                                                     gen.initial_noise(r.seed + seed_offset)) for r in requests]
        return TrackBatch(bundle.base, bundle.controlnet, prepared)

    first, second = batch(0), batch(100)  # same layout, other noise: the second replays the first's graph
    for b in (first, second):
        eager = b.sample(grid)
        graphed = sampler.sample(b, grid)
        err = _rel(graphed, eager)
        print(f"graph vs eager: {err:.2e}")
        assert err < 1e-5
    assert sampler.captures == 1 and sampler.replays == 2


def test_generate_videos_on_cuda_matches_the_cpu(demo_parts):
    base = demo_parts[0]
    jobs = [VideoJob(_video(base, v), tuple(CAPTIONS[:n]), tuple(range(n)), TrackSettings(method, steps=3))
            for v, (n, method) in enumerate([(3, "nag"), (1, "independent"), (2, "negative-prompt"), (3, "nag")])]
    cpu = _parts_on(demo_parts, "cpu").generator().generate_videos(jobs)
    cuda = _parts_on(demo_parts, "cuda").generator().generate_videos(jobs)  # fused, graphs, GPU decoding
    for a_tracks, b_tracks in zip(cpu, cuda):
        assert [t.caption for t in a_tracks] == [t.caption for t in b_tracks]
        for a, b in zip(a_tracks, b_tracks):
            corr = np.corrcoef(a.waveform, b.waveform)[0, 1]
            print(f"{a.caption!r} ({a.settings.method}): waveform correlation cpu/cuda {corr:.6f}")
            assert a.against == b.against and corr > 0.999


@torch.inference_mode()
@pytest.mark.parametrize("prep_stream", [False, True])
def test_queueing_a_batch_never_waits_for_the_device(demo_parts, context, prep_stream):
    """Once a layout's graph exists, preparing, sampling and decoding a batch only queue device work
    (the one wait is when the waveforms are read), so the host prepares the next batch meanwhile."""
    bundle = _parts_on(demo_parts, "cuda", torch.bfloat16)
    # the queueing on this thread, where the debug mode sees it
    gen = bundle.generator(queue_thread=False, prep_stream=prep_stream)
    assert gen.prep_stream == prep_stream
    requests = _requests(demo_parts[0], context)
    gen.generate_tracks(requests)  # captures the graph, caches the decoder's constants
    torch.cuda.synchronize()
    gen._begin()
    torch.cuda.set_sync_debug_mode("error")
    try:
        (waves, order), against = gen._launch(requests)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert waves.device.type == "cuda" and waves.shape[0] == len(requests)
    assert gen.sampler.captures == 1 and gen.sampler.replays == 2


def test_the_queue_thread_makes_the_same_audio_and_captures_beside_a_busy_host(demo_parts):
    """On CUDA the batches' device work is queued on a thread of its own (`generator._queue_thread`);
    the first batch of each layout is captured there, possibly while this thread prepares the next batch
    or reads the previous one's waveforms (a synchronisation), which the capture must survive. Same
    audio as queueing inline."""
    base = demo_parts[0]
    jobs = [VideoJob(_video(base, v), tuple(CAPTIONS[:n]), tuple(range(n)), TrackSettings(method, steps=3))
            for v, (n, method) in enumerate([(3, "nag"), (1, "independent"), (2, "negative-prompt"), (3, "nag")])]
    inline = _parts_on(demo_parts, "cuda").generator(queue_thread=False, max_batch=2).generate_videos(jobs)
    bundle = _parts_on(demo_parts, "cuda")
    gen = bundle.generator(max_batch=2)
    assert gen.queue_thread
    threaded = gen.generate_videos(jobs)
    assert gen.sampler.captures >= 2 and gen.sampler.replays > gen.sampler.captures
    for a_tracks, b_tracks in zip(inline, threaded):
        assert [(t.caption, t.against) for t in a_tracks] == [(t.caption, t.against) for t in b_tracks]
        for a, b in zip(a_tracks, b_tracks):
            np.testing.assert_array_equal(a.waveform, b.waveform)


@torch.inference_mode()
def test_conditions_are_prepared_while_the_default_stream_is_busy(demo_parts, context):
    """With the preparation stream (the default on CUDA), a batch's conditions are made while the
    default stream still works on the batch before (here about a second of spinning): nothing in
    the preparation waits for that stream."""
    gen = _parts_on(demo_parts, "cuda").generator(max_batch=8)
    assert gen.queue_thread and gen.prep_stream
    requests = _requests(demo_parts[0], context)
    gen.generate_tracks(requests)  # caches the decoder's and encoders' constants
    torch.cuda.synchronize()
    gen._begin()
    torch.cuda._sleep(2_000_000_000)  # queued on the default stream
    with torch.cuda.stream(gen._prep):
        sets = gen._prepare(requests, gen._mixes(requests))
    gen._prep.synchronize()
    still_busy = not torch.cuda.current_stream().query()
    torch.cuda.synchronize()
    assert still_busy and len(sets) == len(requests)


def test_the_preparation_stream_makes_the_same_audio(demo_parts):
    base = demo_parts[0]
    jobs = [VideoJob(_video(base, v), tuple(CAPTIONS[:n]), tuple(range(n)), TrackSettings(method, steps=3))
            for v, (n, method) in enumerate([(3, "nag"), (1, "independent"), (2, "negative-prompt"), (3, "nag")])]
    same_stream = _parts_on(demo_parts, "cuda").generator(prep_stream=False, max_batch=2).generate_videos(jobs)
    gen = _parts_on(demo_parts, "cuda").generator(max_batch=2)
    assert gen.prep_stream
    for a_tracks, b_tracks in zip(same_stream, gen.generate_videos(jobs)):
        assert [(t.caption, t.against) for t in a_tracks] == [(t.caption, t.against) for t in b_tracks]
        for a, b in zip(a_tracks, b_tracks):
            np.testing.assert_array_equal(a.waveform, b.waveform)
