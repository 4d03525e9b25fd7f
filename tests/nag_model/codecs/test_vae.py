"""MMAudio's VAE: parity with the official code from raw (unconverted) weights, and the full-size layout."""
import pytest
import torch

from nag_model.codecs.vae import VAE, VAEConfig, convert_raw_state_dict


def _raw(fixture_dir, mode):
    return torch.load(fixture_dir / f"tiny_{mode}_vae.pth", weights_only=True)


@pytest.mark.parametrize("mode", ["16k", "44k"])
def test_encode_and_decode_match_the_official_vae(mode, official, fixture_dir, max_rel):
    fx = official(mode)
    vae = VAE(VAEConfig.preset(f"tiny_{mode}")).load_raw_state_dict(_raw(fixture_dir, mode)).eval()
    with torch.no_grad():
        mean, std = vae.encode(fx["outputs"]["mel_of_wav"])
        mel = vae.decode(fx["inputs"]["latent"].transpose(1, 2))
    assert max_rel(mean, fx["outputs"]["mean"]) < 1e-5
    assert max_rel(std, fx["outputs"]["std"]) < 1e-4
    assert max_rel(mel, fx["outputs"]["mel_decoded"]) < 1e-5


def test_the_44k_fixture_exercises_the_log_variance_clamp(official):
    """Its encoder gain is large: many log-variances hit the [-30, 20] clamp, so std takes both bounds."""
    std = official("44k")["outputs"]["std"]
    assert torch.isclose(std.max(), torch.tensor(20.0 / 2).exp(), rtol=1e-5)
    assert torch.isclose(std.min(), torch.tensor(-30.0 / 2).exp(), rtol=1e-5)


def test_raw_weights_must_be_converted(official, fixture_dir, max_rel):
    """Loading the raw file as is gives a different decoder: the one-time conversion is what makes parity."""
    fx = official("16k")
    vae = VAE(VAEConfig.preset("tiny_16k"))
    vae.load_state_dict(_raw(fixture_dir, "16k"))
    with torch.no_grad():
        mel = vae.decode(fx["inputs"]["latent"].transpose(1, 2))
    assert max_rel(mel, fx["outputs"]["mel_decoded"]) > 1e-2


def test_conversion_gives_unit_rows_and_leaves_the_input_alone(fixture_dir):
    raw = _raw(fixture_dir, "16k")
    before = {k: v.clone() for k, v in raw.items()}
    converted = convert_raw_state_dict(raw)
    assert all(torch.equal(raw[k], before[k]) for k in raw)
    w = converted["encoder.conv_in.weight"]  # (out, in, k)
    assert torch.allclose(w.flatten(1).norm(dim=1), torch.ones(w.shape[0]), atol=1e-3)
    assert torch.equal(converted["encoder.learnable_gain"], raw["encoder.learnable_gain"])
    assert torch.equal(converted["data_mean"], raw["data_mean"])


@pytest.mark.parametrize("mode", ["16k", "44k"])
def test_full_size_layout_matches_the_official_module(mode, key_table):
    table = key_table(f"vae_{mode}")
    with torch.device("meta"):
        vae = VAE(VAEConfig.preset(f"mmaudio_{mode}"))
    ours = {k: list(v.shape) for k, v in vae.state_dict().items()}
    assert list(ours) == list(table["keys"])  # same keys, same order
    assert ours == table["keys"]
    assert sum(p.numel() for p in vae.parameters()) == table["num_params"]


@pytest.mark.parametrize("mode", ["16k", "44k"])
def test_default_mel_statistics_are_the_official_ones(mode, fixture_dir):
    raw = _raw(fixture_dir, mode)  # built by the official class, which sets them from its tables
    vae = VAE(VAEConfig.preset(f"tiny_{mode}"))
    assert torch.equal(vae.data_mean, raw["data_mean"]) and torch.equal(vae.data_std, raw["data_std"])


def test_shapes_are_checked():
    vae = VAE(VAEConfig.preset("tiny_16k"))
    with pytest.raises(ValueError, match=r"\(B, 80, T >= 2\)"):
        vae.encode(torch.zeros(1, 128, 8))
    with pytest.raises(ValueError, match=r"\(B, 20, N\)"):
        vae.decode(torch.zeros(1, 8, 20))
    with pytest.raises(ValueError, match="data_dim"):
        VAEConfig("x", 64, 8, 16)
