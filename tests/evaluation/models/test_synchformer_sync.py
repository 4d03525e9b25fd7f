"""DeSync with the whole Synchformer: parity with av-benchmark's official code, key tables, scoring rules, loading."""
import hashlib
import json
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch

from evaluation.models.synchformer_sync import (SYNC_PRESETS, SynchformerSync, desync_of, get_sync_config,
                                                load_synchformer_sync, mel_filters, patch_embed_2d_keys)
from nag_model.checkpoint import (OFFICIAL_WEIGHTS, ChecksumMismatch, CorruptWeights, IncompatibleWeights,
                                  WeightsNotFound)
from nag_model.encoders.synchformer import SynchformerEncoder, unused_keys

FIXTURES = Path(__file__).parents[2] / "fixtures"
TINY_FILE = str(FIXTURES / "synchformer_sync" / "tiny_state_dict.pth")
TOL = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def parity():
    return torch.load(FIXTURES / "synchformer_sync" / "tiny_parity.pt", weights_only=True)


@pytest.fixture(scope="module")
def clips(parity):
    """The fixture's two clips: 203 frames of 36x40 and 134000 samples each (a little over 8 s)."""
    bank, index = parity["frame_bank"].numpy(), parity["frame_index"].numpy()
    frames = [bank[b][index[b]] for b in range(len(bank))]
    wavs = parity["wavs_pcm16"].numpy().astype(np.float32) / 32768
    return frames, wavs


@pytest.fixture(scope="module")
def tiny():
    return SynchformerSync.from_file(TINY_FILE, "tiny", verify_checksum=False)


@pytest.fixture(scope="module")
def logits(tiny, clips):
    return tiny.window_logits(*clips)


def _save(state, path):
    torch.save(state, path)
    return str(path)


# ------------------------------------------------------------------------------------- parity
def test_mel_front_end_matches_torchaudio(tiny, clips, parity):
    spec = tiny.log_mel(clips[1])
    assert spec.shape == (2, 24, 128, 66)
    torch.testing.assert_close(spec[:, parity["log_mel_segments"]], parity["log_mel"], **TOL)
    assert torch.all(spec[..., -1] == spec[0, 0, 0, -1])  # the 66th frame is padding: log 0 -> 0, normalised
    # the mel filters against torchaudio's MelSpectrogram of the first segment (power, before the log)
    seg = torch.from_numpy(clips[1][:, :10240])
    power = torch.stft(seg, 1024, 160, 400, torch.hann_window(400), return_complex=True).abs().pow(2)
    mel = torch.from_numpy(mel_filters(16000, 1024, 128)).T @ power  # (2, 128, 65)
    torch.testing.assert_close(mel, parity["mel_power_seg0"], rtol=1e-4, atol=1e-4 * float(mel.max()))


def test_audio_features_match_official(tiny, clips, parity):
    torch.testing.assert_close(tiny.audio_features(clips[1]), parity["audio_features"], **TOL)


def test_video_features_match_official(tiny, clips, parity):
    out = tiny.video_features(clips[0])
    torch.testing.assert_close(out, parity["video_features"], **TOL)
    # another batch size changes the matmuls' blocking: 1.4e-6 seen on an AVX2-only CPU
    torch.testing.assert_close(tiny.video_features(clips[0], batch_size=5), out, rtol=1e-5, atol=1e-5)


def test_offset_logits_offsets_and_desync_match_official(tiny, clips, logits, parity):
    torch.testing.assert_close(logits, parity["logits"], **TOL)  # first and last 14 segments
    assert parity["sanity"]["min_top2_logit_margin"] > 1e3 * float((logits - parity["logits"]).abs().max())
    np.testing.assert_array_equal(tiny.offsets(*clips), parity["offsets"].numpy())
    np.testing.assert_allclose(tiny.desync(*clips), parity["desync"].numpy(), rtol=1e-12)


def test_only_the_first_eight_seconds_count(tiny, clips, logits):
    frames, wavs = clips
    cut = tiny.window_logits([f[:200] for f in frames], torch.from_numpy(wavs[:, :128000]))
    torch.testing.assert_close(cut, logits, rtol=0, atol=1e-6)
    as_list = tiny.window_logits(np.stack(frames), list(wavs))  # one (B, T, H, W, 3) array; a list of 1-D waveforms
    torch.testing.assert_close(as_list, logits, rtol=0, atol=1e-6)


def test_both_windows_and_both_streams_matter(tiny, clips, logits):
    frames, wavs = clips
    assert not torch.allclose(logits[:, 0], logits[:, 1])
    swapped = tiny.window_logits(frames, wavs[::-1].copy())  # each video with the other clip's audio
    assert (swapped - logits).abs().max() > 1e-3


def test_one_video_scored_against_many_tracks(tiny, clips, logits):
    frames, wavs = clips
    vis, aud = tiny.video_features(frames[:1]), tiny.audio_features(wavs)  # video 0; the tracks of both clips
    out = tiny.feature_logits(vis, aud)
    torch.testing.assert_close(out[0], logits[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(out[1], tiny.window_logits(frames[:1], wavs[1:])[0], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(tiny.offsets_from_features(vis, aud), tiny.config.offset_grid[out.argmax(-1).numpy()])
    np.testing.assert_allclose(desync_of([[-0.2, 0.6], [0.0, -2.0]]), [0.4, 1.0], rtol=1e-12)


# ------------------------------------------------------------------------------------- scoring rules
def test_the_winning_class_gives_its_offset_in_seconds(clips):
    model = SynchformerSync.from_file(TINY_FILE, "tiny", verify_checksum=False)
    frames, wavs = [clips[0][0]], clips[1][:1]
    for cls in (0, 13, 20):
        with torch.no_grad():
            model.transformer.off_head.weight.zero_()
            model.transformer.off_head.bias.copy_(torch.nn.functional.one_hot(torch.tensor(cls), 21).float())
        expected = np.float32(-2 + 0.2 * cls)
        offsets = model.offsets(frames, wavs)
        assert offsets.shape == (1, 2)
        np.testing.assert_allclose(offsets, expected, atol=1e-6)
        np.testing.assert_allclose(model.desync(frames, wavs), abs(expected), atol=1e-6)


def test_offset_grid_is_av_benchmarks():
    grid = SYNC_PRESETS["synchformer"].offset_grid
    assert grid.dtype == np.float32 and len(grid) == 21
    np.testing.assert_array_equal(grid, np.linspace(-2, 2, 21).astype(np.float32))


def test_interface():
    cfg = get_sync_config("synchformer")
    assert (SynchformerSync.sample_rate, SynchformerSync.video_fps) == (16000, 25)
    assert (cfg.num_samples, cfg.num_frames, cfg.audio_grid, cfg.sync_positions) == (128000, 200, (12, 6), 198)
    with torch.device("meta"):
        assert SynchformerSync("synchformer").name == "synchformer-desync"
    with pytest.raises(KeyError, match="unknown"):
        get_sync_config("huge")


def test_inputs_are_checked(tiny, clips):
    frames, wavs = clips
    with pytest.raises(ValueError, match="T >= 200"):
        tiny.offsets([f[:199] for f in frames], wavs)
    with pytest.raises(ValueError, match="L >= 128000"):
        tiny.offsets(frames, wavs[:, :127999])
    with pytest.raises(ValueError, match="at least 128000 samples"):
        tiny.offsets(frames, [wavs[0], wavs[1][:1000]])
    with pytest.raises(ValueError, match="2 videos but 1 waveforms"):
        tiny.offsets(frames, wavs[:1])
    with pytest.raises(ValueError, match="same number"):
        tiny.feature_logits(torch.zeros(2, 14, 8, 32), torch.zeros(2, 15, 6, 32))
    with pytest.raises(ValueError, match="compares 14 segments"):
        tiny.sync_logits(torch.zeros(1, 13, 8, 32), torch.zeros(1, 13, 6, 32))


# ------------------------------------------------------------------------------------- weights
def test_full_size_keys_match_the_official_table():
    official = json.loads((FIXTURES / "synchformer" / "keys.json").read_text())["full_synchformer"]
    with torch.device("meta"):
        model = SynchformerSync("synchformer")
        visual = SynchformerEncoder("synchformer")
    own = {k: list(v.shape) for k, v in model.state_dict().items()}
    dropped = {k: list(s) for k, s in patch_embed_2d_keys(model.config).items()}
    assert not set(own) & set(dropped)
    assert {**own, **dropped} == official["keys"] and official["num_entries"] == 513
    assert sum(p.numel() for p in model.parameters()) + sum(
        torch.Size(s).numel() for s in dropped.values()) == official["num_params"]
    # the same table as nag_model's: the visual branch plus what MMAudio leaves unused
    assert {**own, **dropped} == {**{k: list(v.shape) for k, v in visual.state_dict().items()},
                                  **{k: list(s) for k, s in unused_keys().items()}}


def test_full_size_official_layout_loads_strictly(tmp_path):
    official = json.loads((FIXTURES / "synchformer" / "keys.json").read_text())["full_synchformer"]["keys"]
    state = {k: torch.zeros(()).expand(s) for k, s in official.items()}  # one-element stride-0 placeholders
    model = load_synchformer_sync(_save(state, tmp_path / "synchformer_state_dict.pth"), verify_checksum=False)
    assert model.transformer.pos_emb_cfg.pos_emb.shape == (1, 198, 768)
    assert model.afeat_extractor.ast.encoder.layer[11].attention.attention.query.weight.shape == (768, 768)
    assert not any(p.is_meta for p in model.parameters()) and not model.training


def test_loads_from_an_fsspec_url(tiny):
    with fsspec.open("memory://weights/synchformer_state_dict.pth", "wb") as f:
        f.write(Path(TINY_FILE).read_bytes())
    model = SynchformerSync.from_file("memory://weights/synchformer_state_dict.pth", "tiny", verify_checksum=False)
    loaded, reference = model.state_dict(), tiny.state_dict()
    assert loaded.keys() == reference.keys() and all(torch.equal(loaded[k], reference[k]) for k in loaded)


def test_missing_file_says_what_and_where_to_get_it(tmp_path):
    known = OFFICIAL_WEIGHTS["synchformer"]
    with pytest.raises(WeightsNotFound) as err:
        SynchformerSync.from_file(str(tmp_path / "nothing.pth"))
    for part in (known.filename, known.size, known.md5, known.url, "nothing.pth"):
        assert part in str(err.value)


def test_checksum_is_verified_for_the_official_preset():
    digest = hashlib.md5(Path(TINY_FILE).read_bytes()).hexdigest()
    with pytest.raises(ChecksumMismatch) as err:
        SynchformerSync.from_file(TINY_FILE)
    for part in (digest, OFFICIAL_WEIGHTS["synchformer"].md5, OFFICIAL_WEIGHTS["synchformer"].url):
        assert part in str(err.value)


def test_truncated_file_is_reported(tmp_path):
    data = Path(TINY_FILE).read_bytes()
    path = tmp_path / "synchformer_state_dict.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptWeights, match=rf"\({len(data) // 2} bytes\): truncated or not a PyTorch checkpoint"):
        SynchformerSync.from_file(str(path), "tiny", verify_checksum=False)
    with pytest.raises(ChecksumMismatch):  # with the official preset the checksum catches it first
        SynchformerSync.from_file(str(path))


def test_wrong_preset_lists_the_mismatched_keys():
    with pytest.raises(IncompatibleWeights) as err:
        SynchformerSync.from_file(TINY_FILE, "synchformer", verify_checksum=False)
    assert "vfeat_extractor.patch_embed.proj.weight: file (32, 3, 8, 8) vs expected (768, 3, 16, 16)" in str(err.value)


def test_missing_unexpected_and_misshaped_entries_are_named(tmp_path):
    state = torch.load(TINY_FILE, weights_only=True)
    del state["afeat_extractor.freq_attn_agg.cls_token"]
    state["transformer.extra_head.weight"] = torch.zeros(2, 2)
    state["transformer.off_head.bias"] = torch.zeros(20)
    with pytest.raises(IncompatibleWeights) as err:
        SynchformerSync.from_file(_save(state, tmp_path / "edited.pth"), "tiny", verify_checksum=False)
    msg = str(err.value)
    assert "1 missing keys: afeat_extractor.freq_attn_agg.cls_token" in msg
    assert "1 unexpected keys: transformer.extra_head.weight" in msg
    assert "transformer.off_head.bias: file (20,) vs network (21,)" in msg
    state = torch.load(TINY_FILE, weights_only=True)
    del state["vfeat_extractor.patch_embed.proj.bias"]  # unused by the forward pass, but part of the file
    with pytest.raises(IncompatibleWeights, match=r"vfeat_extractor.patch_embed.proj.bias: missing"):
        SynchformerSync.from_file(_save(state, tmp_path / "edited.pth"), "tiny", verify_checksum=False)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda(tiny, clips, logits):
    model = SynchformerSync.from_file(TINY_FILE, "tiny", verify_checksum=False).to("cuda")
    out = model.window_logits(*clips)
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), logits, rtol=1e-3, atol=1e-3)
