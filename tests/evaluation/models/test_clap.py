"""LAION-CLAP: parity with laion_clap on a tiny seeded model, the log-mel front end, clip fitting, key tables, loading."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from evaluation.models.clap import UNUSED_KEYS, ClapTokenizer, LaionClap, fit_to_clip, get_clap_config
from nag_model import checkpoint
from nag_model.checkpoint import ChecksumMismatch, CorruptWeights, IncompatibleWeights, WeightFile, WeightsNotFound

FIXTURES = Path(__file__).parents[2] / "fixtures" / "clap"


def noise_clip(seed: int, n: int) -> np.ndarray:
    """The fixture's inputs: uniform noise under a linear ramp (numpy's legacy generator is stream-stable)."""
    rs = np.random.RandomState(seed)
    return (rs.uniform(-0.5, 0.5, n) * np.linspace(0.1, 1.0, n)).astype(np.float32)


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(FIXTURES / "tiny_parity.npz"))


@pytest.fixture(scope="module")
def captions():
    return json.loads((FIXTURES / "captions.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def official_state():
    """The tiny official model's state dict as laion_clap saves it (its fixed buffers come from our model)."""
    torch.manual_seed(0)
    state = dict(LaionClap("tiny").state_dict())
    state.update(load_file(FIXTURES / "tiny_weights.safetensors"))
    return state


@pytest.fixture(scope="module")
def tiny(official_state):
    tokenizer = ClapTokenizer.from_dir(str(FIXTURES / "tokenizer"))
    return LaionClap("tiny", tokenizer).load_official_state(official_state).eval()


def test_repeat_padded_clip_matches_laion_clap(tiny, ref, rel_err):
    # 3.1 s: tiled 3 times, then 33 600 zeros
    out = tiny.embed_audio(noise_clip(1, 148_800)[None], remove_dc=False)
    assert out.shape == (1, 24) and out.dtype == np.float32
    assert rel_err(out, ref["emb_a"]) < 1e-4


def test_batch_of_eight_second_clips_matches_laion_clap(tiny, ref, rel_err):
    wavs = np.stack([noise_clip(3, 384_000), noise_clip(4, 384_000)])
    out = tiny.embed_audio(wavs, remove_dc=False)
    assert rel_err(out, ref["emb_c"]) < 1e-4
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(tiny.embed_audio(torch.from_numpy(wavs), remove_dc=False, batch_size=1), out, atol=1e-6)


def test_long_clip_is_cropped_like_laion_clap(tiny, ref, rel_err):
    # laion_clap drew the offset from np.random after np.random.seed(77); RandomState(77) draws the same
    wav = noise_clip(2, 504_000)
    out = tiny.embed_audio([wav], remove_dc=False, crop_rng=np.random.RandomState(77))
    assert rel_err(out, ref["emb_b_seed77"]) < 1e-4
    assert rel_err(tiny.embed_audio([wav], remove_dc=False), ref["emb_b_seed77"]) > 1e-3  # offset 0 differs


def test_dc_removal_ignores_a_constant_offset(tiny):
    wav = noise_clip(5, 110_000)  # 4 tiles, then zeros: an offset would leave a step at the padding
    wavs = np.stack([wav, wav + 0.25])
    removed = tiny.embed_audio(wavs)
    np.testing.assert_allclose(removed[1], removed[0], atol=1e-5)
    kept = tiny.embed_audio(wavs, remove_dc=False)
    assert np.abs(kept[1] - kept[0]).max() > 1e-4  # 9e-4 on this tiny model


def test_text_matches_laion_clap(tiny, ref, captions, rel_err):
    ids, mask = tiny.tokenizer(captions)
    np.testing.assert_array_equal(ids.numpy(), ref["input_ids"])  # incl. truncation of the third caption to 77
    np.testing.assert_array_equal(mask.numpy(), ref["attention_mask"])
    out = tiny.embed_text(captions)
    assert out.shape == (3, 24) and rel_err(out, ref["emb_text"]) < 1e-4
    np.testing.assert_allclose(tiny.embed_text(captions, batch_size=2), out, atol=1e-6)


def test_log_mel_matches_torchlibrosa(tiny, ref):
    padded = torch.stack([fit_to_clip(torch.from_numpy(noise_clip(s, n)), 480_000)
                          for s, n in ((1, 148_800), (3, 384_000))])
    np.testing.assert_array_equal(padded[0, :2000].numpy(), ref["padded_a_first"])
    logmel = tiny.logmel(padded).numpy()  # (2, 1001, 64)
    assert logmel.shape == (2, 1001, 64)
    assert np.abs(logmel - ref["logmel"][:, 0]).max() < 1e-3  # dB; values reach -100 dB in the zero padding
    np.testing.assert_allclose(tiny.logmel.mel_basis.numpy(), ref["melW"], rtol=0, atol=1e-7)


def test_swin_buffers_match_official(tiny, ref):
    state = tiny.state_dict()
    np.testing.assert_array_equal(state["audio_branch.layers.0.blocks.1.attn_mask"].numpy(), ref["attn_mask_l0b1"])
    np.testing.assert_array_equal(state["audio_branch.layers.2.blocks.1.attn_mask"].numpy(), ref["attn_mask_l2b1"])
    np.testing.assert_array_equal(state["audio_branch.layers.0.blocks.0.attn.relative_position_index"].numpy(),
                                  ref["rel_index"])
    assert "audio_branch.layers.3.blocks.1.attn_mask" not in state  # 8 x 8 map = one window: no shift


def test_fit_to_clip_tiles_pads_and_crops():
    wav = torch.arange(1.0, 4.0)  # 3 samples
    assert fit_to_clip(wav, 8).tolist() == [1, 2, 3, 1, 2, 3, 0, 0]
    assert fit_to_clip(wav, 3).tolist() == [1, 2, 3]
    long = torch.arange(10.0)
    assert fit_to_clip(long, 4).tolist() == [0, 1, 2, 3]
    start = np.random.RandomState(3).randint(0, 7)
    assert fit_to_clip(long, 4, np.random.RandomState(3)).tolist() == list(range(start, start + 4))
    with pytest.raises(ValueError, match="empty"):
        fit_to_clip(torch.zeros(0), 4)


def test_full_model_has_the_official_keys_and_shapes():
    table = json.loads((FIXTURES / "full_state_shapes.json").read_text())
    with torch.device("meta"):
        model = LaionClap("htsat-base")
    state = model.state_dict()
    expected = {k: v for k, v in table.items() if not k.startswith(UNUSED_KEYS)}
    assert sorted(state) == sorted(expected)
    assert len(table) - len(expected) == 17  # the projection heads, logit scales, AudioSet head, STFT/mel matrices
    for key, (shape, dtype) in expected.items():
        assert list(state[key].shape) == shape and str(state[key].dtype) == f"torch.{dtype}", key
    assert model.sample_rate == 48_000 and model.config.joint_dim == 512 and model.config.audio_features == 1024


def test_bad_inputs_are_refused(tiny):
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        tiny.embed_audio(np.zeros((1, 2, 100), np.float32))
    with pytest.raises(TypeError, match="list of captions"):
        tiny.embed_text("a dog barks")
    with pytest.raises(RuntimeError, match="no tokenizer"):
        LaionClap("tiny").embed_text(["a dog barks"])
    with pytest.raises(ValueError, match="unknown LAION-CLAP preset"):
        get_clap_config("huge")


# --- loading from files ------------------------------------------------------------------------------


@pytest.fixture()
def weights_dir(tmp_path, official_state):
    """A folder as a user would have it: the checkpoint as laion_clap's trainer saved it, and the tokenizer files."""
    wrapped = {"epoch": 15, "state_dict": {f"module.{k}": v for k, v in official_state.items()}}
    wrapped["state_dict"]["module.text_branch.embeddings.position_ids"] = torch.arange(80)[None]
    torch.save(wrapped, tmp_path / "clap.pt")
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(FIXTURES / "tokenizer" / name, tmp_path / name)
    return tmp_path


def test_from_file_loads_the_wrapped_checkpoint_and_the_tokenizer_beside_it(weights_dir, ref, captions, rel_err):
    model = LaionClap.from_file(str(weights_dir / "clap.pt"), "tiny")
    assert not model.training
    assert rel_err(model.embed_audio(noise_clip(1, 148_800)[None], remove_dc=False), ref["emb_a"]) < 1e-4
    assert rel_err(model.embed_text(captions), ref["emb_text"]) < 1e-4


def test_from_file_reads_fsspec_urls(weights_dir, ref, captions, rel_err):
    url = f"file://{weights_dir}/clap.pt"
    model = LaionClap.from_file(url, "tiny", tokenizer_dir=f"file://{FIXTURES / 'tokenizer'}")
    assert rel_err(model.embed_text(captions), ref["emb_text"]) < 1e-4


def test_missing_weights_name_the_file_and_where_to_get_it(tmp_path):
    with pytest.raises(WeightsNotFound, match=r"music_speech_audioset_epoch_15_esc_89\.98\.pt.*huggingface\.co/lukewys"):
        LaionClap.from_file(str(tmp_path / "missing.pt"))


def test_missing_tokenizer_files_are_named(weights_dir):
    (weights_dir / "merges.txt").unlink()
    with pytest.raises(WeightsNotFound, match=r"merges\.txt.*FacebookAI/roberta-base"):
        LaionClap.from_file(str(weights_dir / "clap.pt"), "tiny")


def test_corrupt_checkpoint(tmp_path):
    (tmp_path / "clap.pt").write_bytes(b"not a checkpoint" * 64)
    with pytest.raises(CorruptWeights, match="clap.pt"):
        LaionClap.from_file(str(tmp_path / "clap.pt"), "tiny")


def test_wrong_checksum_is_refused_before_building(tmp_path, monkeypatch):
    (tmp_path / "clap.pt").write_bytes(b"x" * 100)
    known = WeightFile("music_speech_audioset_epoch_15_esc_89.98.pt", "0" * 32, "2.35G", "https://example.invalid/c.pt")
    monkeypatch.setitem(checkpoint.OFFICIAL_WEIGHTS, "laion_clap", known)
    with pytest.raises(ChecksumMismatch, match="md5"):
        LaionClap.from_file(str(tmp_path / "clap.pt"))


def test_incompatible_checkpoint_names_the_keys(official_state):
    state = {k: v for k, v in official_state.items() if k != "audio_projection.0.weight"}
    state["text_projection.2.bias"] = torch.zeros(7)
    with pytest.raises(IncompatibleWeights, match=r"missing keys: audio_projection\.0\.weight(.|\n)*text_projection\.2\.bias"):
        LaionClap("tiny").load_official_state(state)


def test_registry_entries():
    entry = checkpoint.OFFICIAL_WEIGHTS["laion_clap"]
    assert entry.filename == "music_speech_audioset_epoch_15_esc_89.98.pt" and entry.url.endswith(entry.filename)
    assert checkpoint.OFFICIAL_WEIGHTS["roberta_base_vocab"].filename == "vocab.json"
    assert checkpoint.OFFICIAL_WEIGHTS["roberta_base_merges"].filename == "merges.txt"
