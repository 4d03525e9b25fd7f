"""The step-by-step generator: track 1 is plain CFG, NAG conditions on the earlier tracks' mix."""
import numpy as np
import pyloudnorm
import pytest
import torch

from nag_model.generator import StepByStepGenerator, TrackSettings, VideoFeatures
from audio.loudness import integrated_loudness

CAPTIONS = ["The ball bounces loudly.", "Wind blows softly.", "The bird chirps."]


@pytest.fixture
def generator(demo_parts):
    base, controlnet, codec, text = demo_parts
    return StepByStepGenerator(base, codec, text, controlnet=controlnet)


@pytest.fixture
def video(demo_parts):
    base = demo_parts[0]
    g = torch.Generator().manual_seed(7)
    return VideoFeatures(torch.randn(1, base.seq.clip, base.config.clip_dim, generator=g),
                         torch.randn(1, base.seq.sync, base.config.sync_dim, generator=g))


def test_track_one_equals_plain_cfg_with_the_same_seed(generator, video):
    settings = TrackSettings(method="nag", steps=3)
    done = []
    tracks = generator.generate(video, CAPTIONS[:2], seeds=[11, 12], settings=settings,
                                on_track=lambda k, track: done.append((k, track)))
    assert [(k, t.caption) for k, t in done] == [(0, CAPTIONS[0]), (1, CAPTIONS[1])]  # told as each is made
    assert all(track is tracks[k] for k, track in done)
    plain = generator.generate_track(video, CAPTIONS[0], 11, TrackSettings(method="independent", steps=3))
    assert np.array_equal(tracks[0].waveform, plain.waveform)
    assert tracks[0].against == () and tracks[1].against == (CAPTIONS[0],)
    # Track 2 is pushed away from track 1, so it differs from its independent generation.
    independent2 = generator.generate_track(video, CAPTIONS[1], 12, TrackSettings(method="independent", steps=3))
    assert not np.allclose(tracks[1].waveform, independent2.waveform)


def test_beta_zero_generation_equals_independent(generator, video):
    nag0 = generator.generate(video, CAPTIONS[:2], seeds=[1, 2], settings=TrackSettings(beta=0.0, steps=2))
    ind = generator.generate(video, CAPTIONS[:2], seeds=[1, 2], settings=TrackSettings(method="independent", steps=2))
    for a, b in zip(nag0, ind):
        assert np.array_equal(a.waveform, b.waveform)


def test_tracks_have_the_clip_length_and_record_their_settings(generator, video):
    tracks = generator.generate(video, CAPTIONS, seeds=[5, 6, 7], settings=TrackSettings(method="negative-prompt", steps=2))
    assert [t.waveform.shape for t in tracks] == [(generator.num_samples,)] * 3
    assert all(t.waveform.dtype == np.float32 and np.isfinite(t.waveform).all() for t in tracks)
    record = tracks[2].record()
    assert record["seed"] == 7 and record["method"] == "negative-prompt" and record["steps"] == 2
    assert record["against"] == CAPTIONS[:2] and record["caption"] == CAPTIONS[2]


def test_a_single_track_can_be_regenerated_against_the_others(generator, video):
    settings = TrackSettings(steps=2)
    tracks = generator.generate(video, CAPTIONS, seeds=[1, 2, 3], settings=settings)
    # Redoing track 3 with its own seed against the same context reproduces it exactly.
    again = generator.generate_track(video, CAPTIONS[2], 3, settings, context=tracks[:2])
    assert np.array_equal(again.waveform, tracks[2].waveform)
    # Regenerating track 2 against tracks 1 and 3 leaves them untouched and gives a new track.
    redo = generator.generate_track(video, CAPTIONS[1], 99, settings, context=[tracks[0], tracks[2]])
    assert redo.against == (CAPTIONS[0], CAPTIONS[2])
    assert not np.allclose(redo.waveform, tracks[1].waveform)


def test_condition_mix_is_loudness_normalised(generator):
    sr = generator.codec.sample_rate
    t = np.arange(generator.num_samples) / sr
    mix = generator.mix_condition([0.05 * np.sin(2 * np.pi * 440 * t), 0.02 * np.sin(2 * np.pi * 1000 * t)])
    assert abs(integrated_loudness(mix, sr) - (-20.0)) < 0.1
    silent = generator.mix_condition([np.zeros(generator.num_samples)])
    assert np.array_equal(silent, np.zeros_like(silent))


def test_batched_and_unbatched_generation_agree(demo_parts, video):
    base, controlnet, codec, text = demo_parts
    settings = TrackSettings(steps=2)
    a = StepByStepGenerator(base, codec, text, controlnet=controlnet, batched=True).generate(video, CAPTIONS[:2], settings=settings)
    b = StepByStepGenerator(base, codec, text, controlnet=controlnet, batched=False).generate(video, CAPTIONS[:2], settings=settings)
    for x, y in zip(a, b):
        # Griffin-Lim amplifies tiny latent differences; compare in a loudness-independent way.
        assert np.corrcoef(x.waveform, y.waveform)[0, 1] > 0.999


def test_no_video_uses_the_null_tokens(generator, video):
    base, settings = generator.base, TrackSettings(steps=2)
    track = generator.generate_track(VideoFeatures.none(), CAPTIONS[0], 0, settings)
    null = VideoFeatures(base.empty_clip_feat.expand(base.seq.clip, -1)[None].clone(),
                         base.empty_sync_feat.expand(base.seq.sync, -1)[None].clone())
    assert np.array_equal(track.waveform, generator.generate_track(null, CAPTIONS[0], 0, settings).waveform)
    assert not np.allclose(track.waveform, generator.generate_track(video, CAPTIONS[0], 0, settings).waveform)


def _spy_on_the_controlnet(monkeypatch, controlnet) -> tuple[list, list]:
    """Record the reference latents the ControlNet encodes, and the reference tokens its blocks then read."""
    latents, tokens = [], []
    encode, forward = controlnet.preprocess_reference, controlnet.forward

    def preprocess_reference(ref_latent):
        latents.append(ref_latent.clone())
        return encode(ref_latent)

    def spy_forward(h, global_c, rot, reference):
        tokens.append(reference)
        return forward(h, global_c, rot, reference)

    monkeypatch.setattr(controlnet, "preprocess_reference", preprocess_reference)
    monkeypatch.setattr(controlnet, "forward", spy_forward)
    return latents, tokens


def _expected_reference(generator, waveforms) -> torch.Tensor:
    """Section 5.1, computed here without the generator: sum the waveforms, scale the sum to -20 LUFS
    (pyloudnorm's BS.1770 meter), encode it with the codec and normalise it like the base's latents."""
    total = np.sum([np.asarray(w, np.float64) for w in waveforms], axis=0)
    lufs = pyloudnorm.Meter(generator.codec.sample_rate).integrated_loudness(total)
    mix = torch.from_numpy((total * 10.0 ** ((-20.0 - lufs) / 20.0)).astype(np.float32))
    return generator.base.normalize(generator.codec.encode(mix[None]))  # (1, N, C)


def test_the_nag_reference_is_the_normalised_sum_of_all_earlier_tracks(generator, video, monkeypatch):
    latents, tokens = _spy_on_the_controlnet(monkeypatch, generator.controlnet)
    tracks = generator.generate(video, CAPTIONS, seeds=[1, 2, 3], settings=TrackSettings(steps=2))
    assert len(latents) == 2  # tracks 2 and 3; track 1 has no earlier audio
    for k, latent in ((1, latents[0]), (2, latents[1])):
        expected = _expected_reference(generator, [t.waveform for t in tracks[:k]])
        assert torch.allclose(latent, expected, atol=1e-4), (k, (latent - expected).abs().max())
    # Track 3 is pushed away from tracks 1 AND 2: the last track alone is a different reference.
    assert not torch.allclose(latents[1], _expected_reference(generator, [tracks[1].waveform]), atol=1e-2)
    # The ControlNet's blocks read the tokens of that reference, at every step.
    with torch.inference_mode():
        want = generator.controlnet.preprocess_reference(latents[1])
    last_track_tokens = tokens[len(tokens) // 2:]
    assert len(tokens) == 2 * 2 and all(torch.equal(got, w) for r in last_track_tokens
                                         for got, w in zip(r.keys + r.values, want.keys + want.values))


def test_a_regenerated_track_is_pushed_away_from_all_the_others(generator, video, monkeypatch):
    tracks = generator.generate(video, CAPTIONS, seeds=[1, 2, 3], settings=TrackSettings(steps=1))
    latents, _ = _spy_on_the_controlnet(monkeypatch, generator.controlnet)
    generator.generate_track(video, CAPTIONS[1], 9, TrackSettings(steps=1), context=[tracks[0], tracks[2]])
    expected = _expected_reference(generator, [tracks[0].waveform, tracks[2].waveform])
    assert len(latents) == 1 and torch.allclose(latents[0], expected, atol=1e-4)


def test_clear_errors(demo_parts, generator, video):
    base, controlnet, codec, text = demo_parts
    with pytest.raises(ValueError, match="non-empty"):
        generator.generate_track(video, "  ", 0)
    with pytest.raises(ValueError, match="seeds"):
        generator.generate(video, CAPTIONS, seeds=[1])
    with pytest.raises(ValueError, match="method must be one of"):
        TrackSettings(method="louder")
    no_cn = StepByStepGenerator(base, codec, text)
    first = no_cn.generate_track(video, CAPTIONS[0], 0, TrackSettings(steps=1))  # step 1 is CFG: fine
    with pytest.raises(ValueError, match="needs an AudioControlNet"):
        no_cn.generate_track(video, CAPTIONS[1], 1, TrackSettings(steps=1), context=[first])
    bad_video = VideoFeatures(torch.randn(1, 3, base.config.clip_dim), torch.randn(1, base.seq.sync, base.config.sync_dim))
    with pytest.raises(ValueError, match=r"clip_f must have shape \(B, 16, 64\).*got \(1, 3, 64\)"):
        generator.generate_track(bad_video, CAPTIONS[0], 0)


def test_the_codec_must_match_the_base(demo_parts):
    from nag_model.codecs.demo_mel import MelCodec, MelCodecConfig

    base, controlnet, _, text = demo_parts
    name = base.config.name
    for config, codec in ((MelCodecConfig(n_mels=24), "24 channels, 512"), (MelCodecConfig(hop_length=256), "20 channels, 256")):
        with pytest.raises(ValueError) as raised:
            StepByStepGenerator(base, MelCodec(config), text)
        assert str(raised.value) == f"codec ({codec} samples/latent) does not match {name} (20, 512)"
    assert StepByStepGenerator(base, MelCodec(MelCodecConfig()), text).codec.latent_dim == 20  # the matching codec


def test_batch_option_messages_and_the_smallest_batch(demo_parts):
    base, controlnet, codec, text = demo_parts
    with pytest.raises(ValueError) as raised:
        StepByStepGenerator(base, codec, text, batch_mode="sometimes")
    assert str(raised.value) == "batch_mode must be 'auto', 'fused' or 'exact', got 'sometimes'"
    with pytest.raises(ValueError) as raised:
        StepByStepGenerator(base, codec, text, max_batch=0)
    assert str(raised.value) == "max_batch must be >= 1, got 0"
    assert StepByStepGenerator(base, codec, text, batch_mode="fused", max_batch=1).max_batch == 1


def test_the_generator_puts_its_networks_in_eval_mode(demo_parts):
    base, controlnet, codec, text = demo_parts
    base.train(), controlnet.train()
    try:
        StepByStepGenerator(base, codec, text, controlnet=controlnet)
        assert not base.training and not controlnet.training
    finally:
        base.eval(), controlnet.eval()


def test_caption_and_seed_messages_in_full(generator, video):
    from nag_model.generator import VideoJob, step_by_step

    for bad in ("", "  "):
        with pytest.raises(ValueError) as raised:
            generator.generate_track(video, bad, 0)
        assert str(raised.value) == "caption must be a non-empty string"
        with pytest.raises(ValueError) as raised:
            generator.generate_videos([VideoJob(video, (CAPTIONS[0], bad))])
        assert str(raised.value) == "caption must be a non-empty string"
    with pytest.raises(ValueError) as raised:
        step_by_step(lambda *a: None, CAPTIONS, [1])
    assert str(raised.value) == "got 3 captions but 1 seeds"
    with pytest.raises(ValueError) as raised:
        VideoJob(video, tuple(CAPTIONS[:2]), (1, 2, 3)).seed_list()
    assert str(raised.value) == "got 2 captions but 3 seeds"
    assert VideoJob(video, tuple(CAPTIONS)).seed_list() == [0, 1, 2]
    assert VideoJob(video, tuple(CAPTIONS), (5, 4, 3)).seed_list() == [5, 4, 3]


def test_step_by_step_hands_each_track_the_earlier_ones_and_reports_them():
    from nag_model.generator import step_by_step

    calls, seen = [], []

    def make_track(caption, seed, context):
        calls.append((caption, seed, [t for t in context]))
        return (caption, seed)

    out = step_by_step(make_track, ["a", "b", "c"], on_track=lambda k, t: seen.append((k, t)))
    assert out == [("a", 0), ("b", 1), ("c", 2)]
    assert calls == [("a", 0, []), ("b", 1, [("a", 0)]), ("c", 2, [("a", 0), ("b", 1)])]
    assert seen == [(0, ("a", 0)), (1, ("b", 1)), (2, ("c", 2))]
    assert step_by_step(make_track, ["x"], seeds=[7]) == [("x", 7)]


def test_the_reference_is_made_at_the_tracks_target_loudness(generator, video, monkeypatch):
    settings = TrackSettings(steps=1, target_lufs=-26.0)
    tracks = generator.generate(video, CAPTIONS[:1], seeds=[1], settings=settings)
    latents, _ = _spy_on_the_controlnet(monkeypatch, generator.controlnet)
    generator.generate_track(video, CAPTIONS[1], 2, settings, context=tracks)
    total = np.asarray(tracks[0].waveform, np.float64)
    lufs = pyloudnorm.Meter(generator.codec.sample_rate).integrated_loudness(total)
    mix = torch.from_numpy((total * 10.0 ** ((-26.0 - lufs) / 20.0)).astype(np.float32))
    expected = generator.base.normalize(generator.codec.encode(mix[None]))
    assert len(latents) == 1 and torch.allclose(latents[0], expected, atol=1e-4)


def test_mix_condition_pads_short_and_cuts_long_tracks(generator):
    n, sr = generator.num_samples, generator.codec.sample_rate
    rng = np.random.default_rng(0)
    short, long = 0.1 * rng.standard_normal(n // 2), 0.1 * rng.standard_normal(n + 100)
    total = np.zeros(n)
    total[: n // 2] += short
    total += long[:n]
    want = total * 10.0 ** ((-20.0 - pyloudnorm.Meter(sr).integrated_loudness(total)) / 20.0)
    got = generator.mix_condition([short.astype(np.float32).reshape(1, -1), long])
    assert got.shape == (n,) and got.dtype == np.float32
    assert np.allclose(got, want, atol=1e-5)
    louder = generator.mix_condition([short, long], target_lufs=-14.0)
    assert abs(integrated_loudness(louder, sr) - (-14.0)) < 0.1


def test_each_track_records_what_it_was_pushed_away_from(generator, video):
    from nag_model.generator import TrackRequest

    tracks = generator.generate(video, CAPTIONS[:2], seeds=[1, 2], settings=TrackSettings(steps=1))
    made = []
    out = generator.generate_tracks([
        TrackRequest(video, CAPTIONS[2], 3, TrackSettings("independent", steps=1), tuple(tracks)),
        TrackRequest(video, CAPTIONS[2], 3, TrackSettings("negative-prompt", steps=1), tuple(tracks)),
        TrackRequest(video, CAPTIONS[2], 3, TrackSettings("nag", steps=2), tuple(tracks)),
        TrackRequest(video, CAPTIONS[2], 3, TrackSettings("nag", steps=1))], on_track=lambda i, t: made.append((i, t)))
    assert [t.against for t in out] == [(), tuple(CAPTIONS[:2]), tuple(CAPTIONS[:2]), ()]
    assert sorted(i for i, _ in made) == [0, 1, 2, 3] and all(out[i] is t for i, t in made)
    assert all(t.sample_rate == generator.codec.sample_rate and t.seed == 3 for t in out)
    assert [t.settings.method for t in out] == ["independent", "negative-prompt", "nag", "nag"]


def test_initial_noise_is_the_seeds_normal_draw_in_the_models_dtype(demo_parts):
    import copy

    base, controlnet, codec, text = demo_parts
    half = copy.deepcopy(base).to(torch.bfloat16)
    gen = StepByStepGenerator(half, codec, text)
    shape = (1, base.seq.latent, base.config.latent_dim)
    want = torch.randn(shape, generator=torch.Generator().manual_seed(5)).to(torch.bfloat16)
    assert gen.initial_noise(5).dtype == torch.bfloat16 and torch.equal(gen.initial_noise(5), want)
    noises = gen._initial_noises([5, 6])
    assert noises.dtype == torch.bfloat16 and torch.equal(noises[:1], want) and noises.shape == (2, *shape[1:])


def test_half_a_video_is_no_video(generator, video):
    """Features with one of the two streams missing are generated as no video (the null tokens), never half."""
    settings = TrackSettings(method="independent", steps=1)
    none = generator.generate_track(VideoFeatures.none(), CAPTIONS[0], 4, settings).waveform
    for half in (VideoFeatures(video.clip_f, None), VideoFeatures(None, video.sync_f)):
        assert np.array_equal(generator.generate_track(half, CAPTIONS[0], 4, settings).waveform, none)
