"""BigVGAN v1 (16 kHz) and v2 (44 kHz): parity with the official generators, and the full-size layouts."""
import pytest
import torch

from nag_model.codecs.bigvgan import BigVGAN, BigVGANConfig, fold_weight_norm


def _vocoder(fixture_dir, mode) -> BigVGAN:
    state = torch.load(fixture_dir / f"tiny_{mode}_vocoder.pt", weights_only=True)["generator"]
    return BigVGAN(BigVGANConfig.preset(f"tiny_{mode}")).load_official_state_dict(state).eval()


@pytest.mark.parametrize("mode", ["16k", "44k"])
def test_vocoder_matches_the_official_generator(mode, official, fixture_dir, max_rel):
    """16k: a file in the weight_g / weight_v layout (BigVGAN v1); 44k: the parametrizations layout."""
    fx = official(mode)
    vocoder = _vocoder(fixture_dir, mode)
    with torch.no_grad():
        from_decoded = vocoder(fx["outputs"]["mel_decoded"])
        from_audio = vocoder(fx["outputs"]["mel_of_wav"])
    assert max_rel(from_decoded, fx["outputs"]["wav_decoded"]) < 1e-4
    assert max_rel(from_audio, fx["outputs"]["wav_vocoded_from_mel_of_wav"]) < 1e-4
    hop = {"16k": 256, "44k": 512}[mode]
    assert vocoder.config.hop_length == hop and from_audio.shape[-1] == fx["outputs"]["mel_of_wav"].shape[-1] * hop


def test_fresh_filters_equal_the_files(fixture_dir):
    """The anti-aliasing filters are buffers in the files; a freshly built vocoder computes the same ones."""
    state = torch.load(fixture_dir / "tiny_44k_vocoder.pt", weights_only=True)["generator"]
    fresh = BigVGAN(BigVGANConfig.preset("tiny_44k")).state_dict()
    filters = [k for k in fresh if k.endswith("filter")]
    assert len(filters) == 2 * (6 * 2 * 6 + 1)  # up and down, per activation: 6 per AMP block, 12 blocks, + post
    for k in filters:
        torch.testing.assert_close(fresh[k], state[k], rtol=0, atol=1e-7)


def test_both_weight_norm_layouts_fold_to_the_same_weights():
    g, v = torch.rand(4, 1, 1) + 0.5, torch.randn(4, 3, 5)
    old = fold_weight_norm({"conv.weight_g": g, "conv.weight_v": v, "conv.bias": torch.zeros(4)})
    new = fold_weight_norm({"conv.parametrizations.weight.original0": g,
                            "conv.parametrizations.weight.original1": v, "conv.bias": torch.zeros(4)})
    assert set(old) == set(new) == {"conv.weight", "conv.bias"}
    torch.testing.assert_close(old["conv.weight"], new["conv.weight"])
    torch.testing.assert_close(old["conv.weight"].flatten(1).norm(dim=1), g.flatten())
    with pytest.raises(KeyError, match="incomplete"):
        fold_weight_norm({"conv.weight_g": g})


def _old_layout(keys: dict) -> dict:
    return {k.replace(".parametrizations.weight.original0", ".weight_g")
             .replace(".parametrizations.weight.original1", ".weight_v"): s for k, s in keys.items()}


@pytest.mark.parametrize("name, preset", [("bigvgan_v1_16k", "v1_16k"), ("bigvgan_v2_44k", "v2_44k")])
def test_full_size_official_layout_loads_strictly(name, preset, key_table):
    """The official module's state dict (weight norm applied), in either layout, folds to ours exactly."""
    table = key_table(name)["keys"]
    with torch.device("meta"):
        ours = BigVGAN(BigVGANConfig.preset(preset))
        expected = {k: list(v.shape) for k, v in ours.state_dict().items()}
        for layout in (table, _old_layout(table)):
            folded = fold_weight_norm({k: torch.empty(s) for k, s in layout.items()})
            assert {k: list(v.shape) for k, v in folded.items()} == expected
            ours.load_state_dict(folded, strict=True, assign=True)
