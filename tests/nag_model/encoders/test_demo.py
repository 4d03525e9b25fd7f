"""Demo encoders and model bundles: MMAudio's rates and lengths, determinism, save/load."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from nag_model.bundle import load_bundle, random_bundle, save_bundle
from nag_model.checkpoint import WeightsNotFound
from nag_model.config import get_config
from nag_model.encoders.demo import (HashTextEncoder, HashTextEncoderConfig, PixelVideoEncoder, PixelVideoEncoderConfig,
                                     tokenize)
from nag_model.generator import TrackSettings


def test_text_encoder_is_deterministic_and_word_based():
    enc = HashTextEncoder(HashTextEncoderConfig(dim=32, seq_len=8))
    a, b = enc(["The ball bounces loudly.", "the BALL bounces loudly"])
    assert torch.equal(a, b)
    assert tokenize("Wind blows, softly!") == ["wind", "blows", "softly"]
    assert torch.count_nonzero(enc([""])) == 0
    assert a[4:].abs().sum() == 0 and a[:4].norm(dim=-1).min() > 0.5
    assert not torch.equal(enc(["wind blows"])[0, 0], enc(["rain blows"])[0, 0])


def test_text_encoder_keeps_word_vectors_and_a_bounded_number_of_them(monkeypatch):
    import nag_model.encoders.demo as demo

    enc, fresh = HashTextEncoder(), HashTextEncoder()
    first = enc(["wind blows over the wind"])
    assert torch.equal(enc(["wind blows over the wind"]), first)  # from the kept vectors: the same features
    assert torch.equal(fresh(["wind blows over the wind"]), first)
    assert sorted(enc._words) == ["blows", "over", "the", "wind"]
    monkeypatch.setattr(demo, "_MAX_WORDS", 2)
    bounded = HashTextEncoder()
    assert torch.equal(bounded(["wind blows over the wind"]), first)
    assert len(bounded._words) <= 2


def test_video_encoder_matches_mmaudio_sequence_lengths():
    seq = get_config("small_16k").seq_lengths(8.0)
    enc = PixelVideoEncoder()
    rng = np.random.default_rng(0)
    clip = enc.encode_clip(rng.integers(0, 255, (64, 64, 64, 3), dtype=np.uint8))
    sync = enc.encode_sync(rng.integers(0, 255, (200, 64, 64, 3), dtype=np.uint8))
    assert clip.shape == (1, seq.clip, 64) and sync.shape == (1, seq.sync, 64)
    assert torch.allclose(clip.norm(dim=-1), torch.ones(1, 64))
    # Motion shows up in the sync tokens: a static video differs from a flickering one.
    still = np.repeat(rng.integers(0, 255, (1, 64, 64, 3), dtype=np.uint8), 200, 0)
    flicker = still.copy()
    flicker[::2] = 255 - flicker[::2]
    assert not torch.allclose(enc.encode_sync(still), enc.encode_sync(flicker))
    with pytest.raises(ValueError, match="at least 16 frames"):
        enc.encode_sync(still[:10])
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        enc.encode_clip(still[..., 0])


def _flash_at(frame: int, n: int = 200) -> np.ndarray:
    """A dark video with one white frame."""
    video = np.zeros((n, 64, 64, 3), np.uint8)
    video[frame] = 255
    return video


def _token_of_latent_time(seconds: float, n_tokens: int, duration: float = 8.0) -> int:
    """The sync token MMAudio's nearest-exact upsampling gives the latent frame at `seconds`."""
    return min(int(seconds / duration * n_tokens), n_tokens - 1)


@pytest.mark.parametrize("frame", [12, 100, 187])
def test_aligned_sync_tokens_show_an_event_at_its_own_time(frame):
    """Latent frames read the sync token of their own time. With the aligned layout a one-frame flash shows
    in that token and its neighbours only; with Synchformer's segments it shows twice (the segments overlap),
    on both sides of its time in the middle of the clip and 3 or more tokens (0.12 s) off near the ends."""
    dark = np.zeros((200, 64, 64, 3), np.uint8)
    want = _token_of_latent_time((frame + 0.5) / 25, 192)
    shown = {}
    for layout in ("aligned", "segments"):
        enc = PixelVideoEncoder(PixelVideoEncoderConfig(sync_layout=layout))
        change = (enc.encode_sync(_flash_at(frame))[0] - enc.encode_sync(dark)[0]).norm(dim=-1)  # (192,)
        shown[layout] = change.nonzero().flatten()
    assert int(shown["aligned"].min()) >= want - 1 and int(shown["aligned"].max()) <= want + 1
    segments = shown["segments"].float()
    assert segments.max() - segments.min() >= 4  # two places
    if frame != 100:
        assert abs(float(segments.mean()) - want) >= 3


def test_aligned_sync_keeps_the_token_count_and_interpolates():
    enc = PixelVideoEncoder(PixelVideoEncoderConfig(sync_layout="aligned"))
    rng = np.random.default_rng(2)
    video = rng.integers(0, 255, (100, 64, 64, 3), dtype=np.uint8)  # a 4-s half, as the ControlNet stage reads
    assert enc.encode_sync(video).shape == PixelVideoEncoder().encode_sync(video).shape == (1, 88, 64)
    feats = torch.arange(10.0)[:, None]  # per-frame features 0..9
    tokens = enc._at_token_times(feats, 5)  # token centres at frames 0.5, 2.5, ..., 8.5
    assert torch.allclose(tokens[:, 0], torch.tensor([0.5, 2.5, 4.5, 6.5, 8.5]))
    with pytest.raises(ValueError, match="sync_layout"):
        PixelVideoEncoderConfig(sync_layout="diagonal")


def test_bundle_keeps_the_sync_layout_and_old_cards_load_as_segments(tmp_path):
    bundle = random_bundle("tiny", duration=2.0)
    bundle.video_encoder = PixelVideoEncoder(replace(bundle.video_encoder.config, sync_layout="aligned"))
    save_bundle(bundle, str(tmp_path / "b"))
    assert load_bundle(str(tmp_path / "b"), duration=2.0).video_encoder.config.sync_layout == "aligned"
    card_path = tmp_path / "b" / "bundle.json"
    card = json.loads(card_path.read_text())
    del card["video_encoder"]["sync_layout"]  # a bundle saved before the option existed
    card_path.write_text(json.dumps(card))
    assert load_bundle(str(tmp_path / "b"), duration=2.0).video_encoder.config.sync_layout == "segments"


def test_sync_grid_and_motion_gain_change_only_the_sync_features():
    rng = np.random.default_rng(3)
    still = np.repeat(rng.integers(0, 255, (1, 64, 64, 3), dtype=np.uint8), 50, 0)
    moving = rng.integers(0, 255, (50, 64, 64, 3), dtype=np.uint8)
    default = PixelVideoEncoder()
    assert torch.equal(default.encode_sync(moving), PixelVideoEncoder(PixelVideoEncoderConfig(sync_grid=8)).encode_sync(moving))
    strong = PixelVideoEncoder(PixelVideoEncoderConfig(motion_gain=32.0))
    assert torch.allclose(strong.encode_sync(still), default.encode_sync(still))  # no motion: the gain does nothing
    assert not torch.allclose(strong.encode_sync(moving), default.encode_sync(moving))
    fine = PixelVideoEncoder(PixelVideoEncoderConfig(sync_grid=16))
    assert fine.encode_sync(moving).shape == default.encode_sync(moving).shape == (1, 40, 64)
    assert torch.equal(fine.encode_clip(moving), default.encode_clip(moving))  # the clip features keep their grid


def test_a_fine_sync_grid_sees_a_small_motion_that_the_coarse_one_averages_away():
    """A 2x2-pixel drop moving one pixel a frame, as SynthFoley's drips fall: its motion term is 4x larger in
    4x4-pixel cells than in 8x8 ones (the pooled change is the moved pixels' share of the cell)."""
    frames = np.zeros((20, 64, 64, 3), np.uint8)
    for t in range(20):
        frames[t, 20 + t: 22 + t, 30:32] = 255
    motion = {}
    for grid in (8, 16):
        pooled = PixelVideoEncoder._pool(frames, grid)
        motion[grid] = float((pooled[1:] - pooled[:-1]).abs().max())
    assert motion[16] == pytest.approx(4 * motion[8])
    with pytest.raises(ValueError, match="sync_grid"):
        PixelVideoEncoderConfig(sync_grid=0)
    with pytest.raises(ValueError, match="motion_gain"):
        PixelVideoEncoderConfig(motion_gain=0.0)


def test_bundle_keeps_the_sync_features_options_and_old_cards_load_as_before(tmp_path):
    bundle = random_bundle("tiny", duration=2.0)
    bundle.video_encoder = PixelVideoEncoder(replace(bundle.video_encoder.config, sync_grid=16, motion_gain=32.0))
    save_bundle(bundle, str(tmp_path / "b"))
    config = load_bundle(str(tmp_path / "b"), duration=2.0).video_encoder.config
    assert (config.sync_grid, config.motion_gain) == (16, 32.0)
    card_path = tmp_path / "b" / "bundle.json"
    card = json.loads(card_path.read_text())
    for key in ("sync_grid", "motion_gain", "sync_features"):  # a bundle saved before the options existed
        del card["video_encoder"][key]
    card_path.write_text(json.dumps(card))
    config = load_bundle(str(tmp_path / "b"), duration=2.0).video_encoder.config
    assert (config.sync_grid, config.motion_gain, config.sync_features) == (None, 4.0, "projected")


def test_motion_energy_sync_features_are_each_cells_change_at_its_own_time():
    """One dimension per cell: the mean over RGB of the cell's absolute change from the previous frame, times
    motion_gain, at the token of its time (aligned layout); nothing where nothing moves."""
    frames = np.zeros((200, 64, 64, 3), np.uint8)
    frames[100:, 8:12, 20:24] = 255  # a 4x4-pixel square appears at frame 100: cell (row 2, column 5) of 16 x 16
    frames[150:, 8:12, 20:24, 0] = 0  # ... and loses its red at frame 150
    config = PixelVideoEncoderConfig(sync_layout="aligned", sync_grid=16, sync_dim=256, motion_gain=4.0,
                                     sync_features="motion_energy")
    feats = PixelVideoEncoder(config).encode_sync(frames)[0]  # (192, 256)
    assert feats.shape == (192, 256)
    cell = 2 * 16 + 5
    assert set(feats.nonzero()[:, 1].tolist()) == {cell}
    t100, t150 = (_token_of_latent_time((f + 0.5) / 25, 192) for f in (100, 150))
    assert float(feats[:, cell].max()) == pytest.approx(4.0 * 2.0, rel=0.05)  # pooled values in [-1, 1]: a full flip is 2
    peaks = feats[:, cell].nonzero().flatten().tolist()
    assert min(peaks) >= t100 - 1 and max(peaks) <= t150 + 1
    assert float(feats[t150, cell]) == pytest.approx(float(feats[t100, cell]) / 3, rel=0.2)  # one channel of three
    with pytest.raises(ValueError, match="sync_dim must be 256"):
        PixelVideoEncoderConfig(sync_grid=16, sync_features="motion_energy")
    with pytest.raises(ValueError, match="sync_features"):
        PixelVideoEncoderConfig(sync_features="optical_flow")


def test_bundle_round_trip_and_short_videos(tmp_path):
    bundle = random_bundle("tiny", duration=2.0)
    save_bundle(bundle, str(tmp_path / "b"))
    loaded = load_bundle(str(tmp_path / "b"), duration=2.0)
    assert loaded.controlnet is not None and loaded.sample_rate == 16000 and loaded.duration == pytest.approx(2.016)
    frames = np.random.default_rng(1).integers(0, 255, (10, 64, 64, 3), dtype=np.uint8)
    video = loaded.video_features(frames[:3], frames)  # shorter than the model's 2 s: last frame repeated
    assert video.clip_f.shape[1] == loaded.base.seq.clip and video.sync_f.shape[1] == loaded.base.seq.sync
    a = bundle.generator().generate_track(video, "a dog barks", 3, TrackSettings(steps=2))
    b = loaded.generator().generate_track(video, "a dog barks", 3, TrackSettings(steps=2))
    assert np.array_equal(a.waveform, b.waveform)
    with pytest.raises(WeightsNotFound, match="bundle card"):
        load_bundle(str(tmp_path / "missing"))


def test_rgb_motion_energy_keeps_each_colour_channels_change_apart():
    """Three dimensions per cell, channel-major like the pooled frame: a square that loses only its red
    changes only the red dimension of its cell; the channels' mean is the motion_energy feature."""
    frames = np.zeros((200, 64, 64, 3), np.uint8)
    frames[100:, 8:12, 20:24] = 255
    frames[150:, 8:12, 20:24, 0] = 0
    common = dict(sync_layout="aligned", sync_grid=16, motion_gain=4.0)
    rgb = PixelVideoEncoder(PixelVideoEncoderConfig(sync_dim=768, sync_features="motion_energy_rgb", **common))
    mean = PixelVideoEncoder(PixelVideoEncoderConfig(sync_dim=256, sync_features="motion_energy", **common))
    feats = rgb.encode_sync(frames)[0]  # (192, 768)
    cell = 2 * 16 + 5
    t150 = _token_of_latent_time(150.5 / 25, 192)
    assert set(feats.nonzero()[:, 1].tolist()) == {cell, 256 + cell, 512 + cell}
    assert float(feats[t150, cell]) > 0 and float(feats[t150, 256 + cell]) == float(feats[t150, 512 + cell]) == 0
    torch.testing.assert_close(feats.view(192, 3, 256).mean(1), mean.encode_sync(frames)[0])
    with pytest.raises(ValueError, match="sync_dim must be 768"):
        PixelVideoEncoderConfig(sync_grid=16, sync_dim=256, sync_features="motion_energy_rgb")
