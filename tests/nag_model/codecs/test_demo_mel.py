"""Tests for nag_model.codecs.demo_mel: the AudioCodec interface and the demo MelCodec."""
from __future__ import annotations

import dataclasses
import time

import librosa
import numpy as np
import pytest
import torch

from nag_model.codecs.demo_mel import AudioCodec, MelCodec, MelCodecConfig, num_latents, num_samples

SR = 16000
HOP = 512


@pytest.fixture(scope="module")
def codec() -> MelCodec:
    return MelCodec(MelCodecConfig.demo_16k())


def _time(seconds: float) -> np.ndarray:
    return np.arange(round(seconds * SR)) / SR


def _foley_like(seconds: float, seed: int = 0) -> torch.Tensor:
    """(1, L) test clip: a rising chirp over amplitude-modulated noise, never digitally silent."""
    t = _time(seconds)
    rng = np.random.default_rng(seed)
    chirp = 0.3 * np.sin(2 * np.pi * (200 * t + 300 * t**2 / 8))
    noise = 0.1 * rng.standard_normal(t.size) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    return torch.from_numpy(chirp + noise).float()[None]


def _click(position: int, seconds: float = 8.0) -> torch.Tensor:
    wav = torch.zeros(1, round(seconds * SR))
    wav[0, position] = 0.9
    return wav


def _energy_centroid(wav: np.ndarray, around: int, half_width: int = 4 * HOP) -> float:
    segment = wav[around - half_width : around + half_width].astype(np.float64) ** 2
    return around - half_width + float((segment * np.arange(segment.size)).sum() / segment.sum())


class _StubCodec:
    """Shape-only stand-in for MMAudio's VAE + vocoder codecs."""

    def __init__(self, sample_rate: int, samples_per_latent: int, latent_dim: int) -> None:
        self.sample_rate = sample_rate
        self.samples_per_latent = samples_per_latent
        self.latent_dim = latent_dim

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


# --- interface and sequence arithmetic ---------------------------------------------------------


def test_mel_codec_implements_the_protocol(codec):
    assert isinstance(codec, AudioCodec)
    assert (codec.sample_rate, codec.samples_per_latent, codec.latent_dim) == (16000, 512, 20)
    assert not isinstance(object(), AudioCodec)


@pytest.mark.parametrize(
    ("sample_rate", "samples_per_latent", "latent_dim", "latents", "samples"),
    [(16000, 512, 20, 250, 128000), (44100, 1024, 40, 345, 353280)],
    ids=["mmaudio_16k", "mmaudio_44k"],
)
def test_num_latents_matches_mmaudio_sequence_config(
    sample_rate, samples_per_latent, latent_dim, latents, samples
):
    stub = _StubCodec(sample_rate, samples_per_latent, latent_dim)
    assert isinstance(stub, AudioCodec)
    assert num_latents(stub, 8.0) == latents
    assert num_samples(stub, latents) == samples


def test_num_latents_rejects_bad_durations(codec):
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="duration_s"):
            num_latents(codec, bad)


def test_config_is_frozen_with_a_demo_preset():
    demo = MelCodecConfig.demo_16k()
    assert demo == MelCodecConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        demo.n_mels = 80  # type: ignore[misc]
    assert dataclasses.replace(demo, griffin_lim_iters=8).griffin_lim_iters == 8
    assert demo.griffin_lim_iters == 32
    with pytest.raises(ValueError, match="hop_length"):
        MelCodecConfig(hop_length=300, n_fft=1024 + 1)
    with pytest.raises(ValueError, match="f_max"):
        MelCodecConfig(f_max=9000.0)


def test_derived_buffers_stay_out_of_the_state_dict(codec):
    assert dict(codec.state_dict()) == {}
    assert codec.mel_basis.shape == (20, 513)


# --- shapes ------------------------------------------------------------------------------------


def test_eight_seconds_is_the_small_16k_latent_shape(codec):
    wav = torch.zeros(2, 8 * SR)
    latent = codec.encode(wav)
    assert latent.shape == (2, 250, 20)
    assert latent.dtype == torch.float32
    assert num_latents(codec, 8.0) == 250


@pytest.mark.parametrize(
    ("length", "frames"), [(1, 1), (511, 1), (512, 1), (513, 2), (52800, 104), (128001, 251)]
)
def test_encode_rounds_up_to_whole_latents(codec, length, frames):
    assert codec.encode(torch.zeros(1, length)).shape == (1, frames, 20)
    assert num_latents(codec, length / SR) == frames


def test_ceil_padding_is_zeros_at_the_end(codec):
    wav = _foley_like(3.3)  # 52 800 samples -> 104 latents = 53 248 samples
    padded = torch.nn.functional.pad(wav, (0, 104 * HOP - wav.shape[1]))
    torch.testing.assert_close(codec.encode(wav), codec.encode(padded), rtol=0, atol=0)


def test_decode_length_is_latents_times_hop(codec):
    latent = torch.full((2, 7, 20), -2.0)
    wav = codec.decode(latent)
    assert wav.shape == (2, 7 * HOP) == (2, num_samples(codec, 7))
    assert wav.dtype == torch.float32


def test_shape_and_dtype_errors_show_the_shape(codec):
    with pytest.raises(ValueError, match=r"\(16000,\)"):
        codec.encode(torch.zeros(16000))
    with pytest.raises(ValueError, match=r"\(1, 2, 16000\)"):
        codec.encode(torch.zeros(1, 2, 16000))
    with pytest.raises(TypeError, match="int16"):
        codec.encode(torch.zeros(1, 16000, dtype=torch.int16))
    with pytest.raises(ValueError, match=r"\(1, 250, 80\)"):
        codec.decode(torch.zeros(1, 250, 80))
    with pytest.raises(ValueError, match=r"\(250, 20\)"):
        codec.decode(torch.zeros(250, 20))
    with pytest.raises(ValueError, match="NaN"):
        codec.decode(torch.full((1, 4, 20), float("nan")))


# --- encoder numerics --------------------------------------------------------------------------


def test_encode_matches_an_independent_librosa_mel(codec):
    """Parity with librosa's STFT + mel on the same reflect-padded frames (fact sheet 5.7)."""
    wav = _foley_like(2.0, seed=1).numpy()[0, : 62 * HOP]  # whole frames: no end padding
    padded = np.pad(wav, (256, 256), mode="reflect")
    spec = librosa.stft(padded, n_fft=1024, hop_length=HOP, window="hann", center=False)
    magnitude = np.sqrt(np.abs(spec) ** 2 + 1e-9)  # MMAudio's eps under the root
    basis = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=20, fmin=0.0, fmax=8000.0)  # Slaney
    mel = basis @ magnitude  # (20, N)
    expected = np.log10(np.maximum(mel, 1e-5)).T
    got = codec.encode(torch.from_numpy(wav)[None])[0].numpy()
    assert got.shape == expected.shape == (62, 20)
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize(("freq", "band"), [(1000.0, 6), (3000.0, 13)])
def test_sine_energy_lands_in_its_mel_band(codec, freq, band):
    # Slaney mel over 0..8 kHz: 22 edges equally spaced in mel from 0 to mel(8000) = 45.25
    # (linear 200/3 Hz per mel below 1 kHz, log above). Band k peaks at edge k+1:
    # band 6 peaks at 1005 Hz; bands 13 and 14 peak at 2835 and 3233 Hz.
    t = _time(64 * HOP / SR)  # whole frames: no zero padding (a step there is broadband)
    wav = torch.from_numpy(0.5 * np.sin(2 * np.pi * freq * t)).float()[None]
    latent = codec.encode(wav)[0]  # (N, 20)
    assert (latent.argmax(dim=1) == band).all()
    latent = latent[1:-1]  # the edge frames see the kink of the reflect padding: broadband
    others = torch.cat([latent[:, :band], latent[:, band + 1 :]], dim=1)
    margin = (latent[:, band] - others.max(dim=1).values).min()
    assert margin > 0.15  # the weakest case, 3 kHz between two bands, measures 0.31 (6 dB)
    far = torch.cat([latent[:, : band - 2], latent[:, band + 3 :]], dim=1)
    assert (latent[:, band:band + 1] - far).min() > 3.0  # > 60 dB above bands two away


def test_click_lands_in_the_frames_that_cover_it(codec):
    # Frame n covers samples [n*512 - 256, n*512 + 768); 48 000 is in frames 93 and 94 and
    # nearer the centre of 93 (47 872) than of 94 (48 384).
    frame_energy = (10 ** codec.encode(_click(48000))[0]).sum(dim=1)
    assert frame_energy.argmax().item() == 93


# --- decoder -----------------------------------------------------------------------------------


def test_round_trip_keeps_the_log_mel_close(codec):
    """encode -> decode -> encode on 8 s of chirp + noise.

    Measured (log10 units; 1 unit = 20 dB): mean abs error 0.077 over all cells, 0.038 over cells
    within 40 dB of the clip maximum, 0.017 within 20 dB. The error is concentrated in quiet
    low bands that Griffin-Lim leaks into.
    """
    latent = codec.encode(_foley_like(8.0))
    again = codec.encode(codec.decode(latent))
    err = (again - latent).abs()
    loud = latent > latent.max() - 1.0
    audible = latent > latent.max() - 2.0
    assert err[loud].mean() < 0.04
    assert err[audible].mean() < 0.08
    assert err.mean() < 0.15
    assert err.quantile(0.9) < 0.3


def test_click_at_three_seconds_comes_back_on_time(codec):
    # The mel keeps only which frames hold the click, so the decoded energy is pulled towards
    # the centre of frame 93 (47 872): measured centroid 47 903 (-97 samples), within one hop.
    position = 3 * SR
    decoded = codec.decode(codec.encode(_click(position)))[0].numpy()
    assert abs(_energy_centroid(decoded, position) - position) < HOP
    near = decoded[position - HOP : position + HOP]
    assert (near**2).sum() > 0.99 * (decoded**2).sum()


def test_click_at_a_frame_centre_has_no_timing_shift(codec):
    # At the centre of frame 93 the only error left is Griffin-Lim's (measured +11 samples);
    # decoding with frames misplaced by half a hop (center=True framing) would be 256 off.
    position = 93 * HOP + HOP // 2
    decoded = codec.decode(codec.encode(_click(position, seconds=4.0)))[0].numpy()
    assert abs(_energy_centroid(decoded, position) - position) < HOP // 8


def test_silence_decodes_to_silence(codec):
    latent = codec.encode(torch.zeros(1, 2 * SR))
    assert torch.allclose(latent, torch.tensor(-5.0))
    assert codec.decode(latent).abs().max() < 1e-6
    # Just above the floor is faint, not silent: -4.9 is 1.26e-5 per band.
    quiet = codec.decode(torch.full((1, 62, 20), -4.9))
    assert 0 < quiet.abs().max() < 1e-3


def _log_mel_ceiling(codec: MelCodec) -> torch.Tensor:
    """(n_mels,) largest reachable log-mel: |STFT| <= sum(window) = 512 in every bin."""
    return torch.log10(codec.mel_basis.sum(dim=1) * codec.window.sum())


def test_no_waveform_encodes_above_the_ceiling(codec):
    t = _time(2.0)
    square = np.sign(np.sin(2 * np.pi * 1000 * t))
    loud_noise = 10 * np.random.default_rng(0).standard_normal(t.size)  # clamped to [-1, 1]
    wav = torch.from_numpy(np.stack([square, loud_noise])).float()
    latent = codec.encode(wav)
    ceiling = _log_mel_ceiling(codec)
    assert torch.allclose(ceiling, torch.tensor(1.52), atol=0.01)  # equal-area Slaney filters
    assert (latent <= ceiling).all()
    assert latent.max() > ceiling.max() - 1.0  # and the bound is not loose by more than 20 dB


def test_out_of_range_latents_are_clamped_and_decode_quickly(codec):
    # A random network's outputs: before the clamp, 10**x up to 1e9 made the NNLS take minutes.
    latent = 3.0 * torch.randn(1, 62, 20, generator=torch.Generator().manual_seed(0)) + 3.0
    start = time.perf_counter()
    wav = codec.decode(latent)
    assert time.perf_counter() - start < 10.0  # measured 0.2 s (2 s of audio)
    assert torch.isfinite(wav).all()
    # Everything above the ceiling (1.52) is the same to the decoder, however far above.
    further = torch.where(latent > 2.0, latent + 100.0, latent)
    assert torch.equal(wav, codec.decode(further))
    # Not bounded by [-1, 1]: every band at the ceiling is louder than any real waveform.
    assert wav.abs().max() > 1.0


def test_decode_is_deterministic_and_leaves_global_rngs_alone(codec):
    latent = codec.encode(_foley_like(2.0))
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    first = codec.decode(latent)
    second = codec.decode(latent)
    assert torch.equal(first, second)
    assert torch.equal(torch_state, torch.get_rng_state())
    assert np.array_equal(np_state[1], np.random.get_state()[1])


def test_batch_of_two_equals_two_singles(codec):
    wav = torch.cat([_foley_like(2.0, seed=1), 0.5 * _foley_like(2.0, seed=2).flip(1)])
    latents = codec.encode(wav)
    singles = torch.cat([codec.encode(wav[:1]), codec.encode(wav[1:])])
    torch.testing.assert_close(latents, singles, rtol=0, atol=1e-5)
    assert not torch.allclose(latents[0], latents[1])
    decoded = codec.decode(latents)
    decoded_singles = torch.cat([codec.decode(latents[:1]), codec.decode(latents[1:])])
    torch.testing.assert_close(decoded, decoded_singles, rtol=0, atol=1e-6)


def test_encode_does_not_touch_the_callers_tensor(codec):
    wav = 1.5 * _foley_like(1.0)  # out of range: encode clamps a copy
    before = wav.clone()
    codec.encode(wav.double())
    codec.encode(wav)
    assert torch.equal(wav, before)
