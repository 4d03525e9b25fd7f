"""Demo encoders and model bundles: MMAudio's rates and lengths, determinism, save/load."""
import numpy as np
import pytest
import torch

from nag_model.bundle import load_bundle, random_bundle, save_bundle
from nag_model.checkpoint import WeightsNotFound
from nag_model.config import get_config
from nag_model.encoders.demo import HashTextEncoder, HashTextEncoderConfig, PixelVideoEncoder, tokenize
from nag_model.generator import TrackSettings


def test_text_encoder_is_deterministic_and_word_based():
    enc = HashTextEncoder(HashTextEncoderConfig(dim=32, seq_len=8))
    a, b = enc(["The ball bounces loudly.", "the BALL bounces loudly"])
    assert torch.equal(a, b)
    assert tokenize("Wind blows, softly!") == ["wind", "blows", "softly"]
    assert torch.count_nonzero(enc([""])) == 0
    assert a[4:].abs().sum() == 0 and a[:4].norm(dim=-1).min() > 0.5
    assert not torch.equal(enc(["wind blows"])[0, 0], enc(["rain blows"])[0, 0])


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
