"""MMAudio's codec behind AudioCodec: the official FeaturesUtils path, 8-s shapes, loading and its errors."""
import shutil

import fsspec
import numpy as np
import pytest
import torch

from nag_model.checkpoint import ChecksumMismatch, IncompatibleWeights, WeightsNotFound
from nag_model.codecs.base import AudioCodec, num_latents, num_samples
from nag_model.codecs.mmaudio import (CODEC_FILES, CorruptWeights, MMAudioCodec, MMAudioCodecConfig,
                                      load_codec)
from nag_model.controlnet import AudioControlNet
from nag_model.generator import StepByStepGenerator, TrackSettings, VideoFeatures
from nag_model.network import build_mmaudio


def _tiny(fixture_dir, mode, **kw):
    return load_codec(mode, vae=str(fixture_dir / f"tiny_{mode}_vae.pth"),
                      vocoder=str(fixture_dir / f"tiny_{mode}_vocoder.pt"), size="tiny", **kw)


@pytest.mark.parametrize("mode", ["16k", "44k"])
def test_codec_matches_the_official_encode_audio_and_decode_vocode(mode, official, fixture_dir, max_rel):
    fx = official(mode)
    codec = _tiny(fixture_dir, mode)
    with torch.inference_mode():
        mean, std = codec.encode_distribution(fx["inputs"]["wav"])  # (B, N, C)
        latent = codec.encode(fx["inputs"]["wav"])
        wav = codec.decode(fx["inputs"]["latent"])
    assert max_rel(mean, fx["outputs"]["mean"].transpose(1, 2)) < 1e-5
    assert max_rel(std, fx["outputs"]["std"].transpose(1, 2)) < 1e-4
    assert torch.equal(latent, mean)
    assert max_rel(wav, fx["outputs"]["wav_decoded"].squeeze(1)) < 1e-4


@pytest.mark.parametrize("mode, rate, spl, latents, channels", [
    ("16k", 16_000, 512, 250, 20), ("44k", 44_100, 1024, 345, 40)])
def test_eight_seconds_have_the_official_shapes(mode, rate, spl, latents, channels):
    """Encoding runs for real on the tiny codec; the full-size VAE and vocoder run on the meta device."""
    tiny = MMAudioCodec(MMAudioCodecConfig.preset(mode, "tiny"))
    assert isinstance(tiny, AudioCodec)
    assert (tiny.sample_rate, tiny.samples_per_latent, tiny.latent_dim) == (rate, spl, channels)
    assert num_latents(tiny, 8.0) == latents and num_samples(tiny, latents) == latents * spl
    wav = 0.1 * torch.randn(1, 8 * rate, generator=torch.Generator().manual_seed(0))  # 352 800 at 44.1 kHz
    with torch.inference_mode():
        mel = tiny.mel(tiny.pad_waveform(wav))  # (1, n_mels, 2N): 44k pads to 353 280 samples
        z = tiny.encode(wav)
        with torch.device("meta"):
            full = MMAudioCodec(MMAudioCodecConfig.preset(mode, "full"))
            mean, std = full.vae.encode(mel.to("meta"))
            out = full.decode(torch.zeros(1, latents, channels))
    assert mel.shape == (1, full.config.mel.n_mels, 2 * latents)
    assert z.shape == mean.transpose(1, 2).shape == std.transpose(1, 2).shape == (1, latents, channels)
    assert out.shape == (1, latents * spl)


def test_the_generator_runs_nag_on_the_codec(randomize, text_encoder_cls, fixture_dir):
    """The mix of earlier tracks is encoded by the real VAE (the generator's reference step)."""
    torch.manual_seed(0)
    base = randomize(build_mmaudio("demo_16k", duration=1.0), seed=1, scale=0.5).eval()
    controlnet = randomize(AudioControlNet.from_base(base), seed=2, scale=0.5).eval()
    text = text_encoder_cls(base.config.text_seq_len, base.config.text_dim)
    codec = _tiny(fixture_dir, "16k")
    generator = StepByStepGenerator(base, codec, text, controlnet=controlnet)
    video = VideoFeatures(torch.randn(1, base.seq.clip, base.config.clip_dim),
                          torch.randn(1, base.seq.sync, base.config.sync_dim))
    tracks = generator.generate(video, ["a ball bounces", "wind blows"], seeds=[1, 2],
                                settings=TrackSettings(method="nag", steps=2))
    assert tracks[1].against == ("a ball bounces",)
    assert all(t.waveform.shape == (base.seq.latent * 512,) and np.isfinite(t.waveform).all() for t in tracks)
    assert not np.allclose(tracks[0].waveform, tracks[1].waveform)


def test_fsspec_urls_load_the_same_weights(fixture_dir):
    fs = fsspec.filesystem("memory")
    for name in ("tiny_16k_vae.pth", "tiny_16k_vocoder.pt"):
        fs.pipe(f"/codec/{name}", (fixture_dir / name).read_bytes())
    remote = load_codec("16k", vae="memory://codec/tiny_16k_vae.pth", vocoder="memory://codec/tiny_16k_vocoder.pt",
                        size="tiny")
    local = _tiny(fixture_dir, "16k")
    assert all(torch.equal(a, b) for a, b in zip(remote.state_dict().values(), local.state_dict().values()))


def test_missing_files_name_themselves_their_size_checksum_and_source(tmp_path):
    (tmp_path / "v1-44.pth").write_bytes(b"not the VAE")
    with pytest.raises(WeightsNotFound) as err:
        load_codec("44k", vae=str(tmp_path / "v1-44.pth"), vocoder=str(tmp_path / "bigvgan_generator.pt"))
    msg = str(err.value)
    known = CODEC_FILES[("44k", "vocoder")]
    for part in ("bigvgan_generator.pt", "489041291 bytes", "sha256", known.digest, "huggingface.co/nvidia"):
        assert part in msg
    assert "v1-44.pth" not in msg  # the VAE exists: only the missing file is reported
    with pytest.raises(WeightsNotFound) as err:
        load_codec("16k", vae=str(tmp_path / "v1-16.pth"), vocoder=str(tmp_path / "best_netG.pt"))
    for part in ("v1-16.pth", "655M", "69f56803f59a549a1a507c93859fd4d7", "best_netG.pt", "429M",
                 "eeaf372a38a9c31c362120aba2dde292", "github.com/hkchengrex/MMAudio/releases"):
        assert part in str(err.value)


def test_a_wrong_file_fails_the_checksum(fixture_dir, tmp_path):
    vae, voc = tmp_path / "v1-16.pth", tmp_path / "best_netG.pt"
    shutil.copy(fixture_dir / "tiny_16k_vae.pth", vae)
    shutil.copy(fixture_dir / "tiny_16k_vocoder.pt", voc)
    with pytest.raises(ChecksumMismatch, match=r"expected 69f56803f59a549a1a507c93859fd4d7.*v1-16\.pth") as err:
        load_codec("16k", vae=str(vae), vocoder=str(voc))
    assert f"({vae.stat().st_size} bytes)" in str(err.value)


def test_wrong_mode_or_size_lists_the_mismatched_keys(fixture_dir):
    def files(vae_mode, vocoder_mode):
        return dict(vae=str(fixture_dir / f"tiny_{vae_mode}_vae.pth"),
                    vocoder=str(fixture_dir / f"tiny_{vocoder_mode}_vocoder.pt"))

    with pytest.raises(IncompatibleWeights, match=r"data_mean: file \(1, 80, 1\) vs network \(1, 128, 1\)"):
        load_codec("44k", **files("16k", "44k"), size="tiny")
    with pytest.raises(IncompatibleWeights,
                       match=r"(?s)vocoder weights .*unexpected keys: conv_post.bias.*shape mismatches: conv_pre.weight"):
        load_codec("44k", **files("44k", "16k"), size="tiny")
    with pytest.raises(IncompatibleWeights, match=r"(?s)do not fit mmaudio_16k:.*mismatches: encoder.conv_in.weight"):
        load_codec("16k", **files("16k", "16k"), verify_checksum=False)  # tiny files for the full size


def test_a_truncated_file_is_reported(fixture_dir, tmp_path):
    data = (fixture_dir / "tiny_16k_vae.pth").read_bytes()
    cut = tmp_path / "v1-16.pth"
    cut.write_bytes(data[: len(data) // 2])
    voc = str(fixture_dir / "tiny_16k_vocoder.pt")
    with pytest.raises(CorruptWeights, match=rf"\({len(data) // 2} bytes\) is not a readable PyTorch checkpoint; "
                                             "it may be truncated"):
        load_codec("16k", vae=str(cut), vocoder=voc, size="tiny")
    with pytest.raises(ChecksumMismatch, match="incomplete"):
        load_codec("16k", vae=str(cut), vocoder=voc)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown MMAudio mode"):
        MMAudioCodecConfig.preset("22k")
    with pytest.raises(ValueError, match="unknown codec size"):
        MMAudioCodecConfig.preset("16k", "small")
    codec = MMAudioCodec(MMAudioCodecConfig.preset("16k", "tiny"))
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        codec.encode(torch.zeros(100))
    with pytest.raises(ValueError, match=r"\(B, N, 20\)"):
        codec.decode(torch.zeros(1, 4, 40))


def test_a_bf16_codec_tracks_the_official_fp32_outputs(fixture_dir, official, max_rel):
    """Cast to bf16, the VAE and vocoder run in bf16 while the mel front end stays float32."""
    fx = official("16k")
    codec = _tiny(fixture_dir, "16k").to(torch.bfloat16)
    assert codec.vae.encoder.conv_in.weight.dtype == torch.bfloat16
    assert codec.mel.mel_basis.dtype == torch.float32
    assert torch.equal(codec.mel.mel_basis, _tiny(fixture_dir, "16k").mel.mel_basis)
    with torch.inference_mode():
        mean = codec.encode(fx["inputs"]["wav"])
        wav = codec.decode(fx["inputs"]["latent"])
    assert mean.dtype == wav.dtype == torch.float32
    assert max_rel(mean, fx["outputs"]["mean"].transpose(1, 2)) < 0.05
    assert max_rel(wav, fx["outputs"]["wav_decoded"].squeeze(1)) < 0.05
