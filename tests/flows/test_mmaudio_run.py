"""Real MMAudio end to end on tiny production-architecture files: `foley weights check`, then
`foley run --model mmaudio-small-16k --weights DIR` writes audio, rows and scores (NAG with our ControlNet
file), and NAG is refused up front when the folder has no ControlNet."""
from __future__ import annotations

import json
import shutil

import pytest
import soundfile as sf
from typer.testing import CliRunner

from flows.cli import app
from storage.query import connect

import tiny_mmaudio  # tests/conftest.py SHARED_MODULES

runner = CliRunner()
VIDEO = "sf-10109180"


def invoke(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture()
def weights(tmp_path, monkeypatch):
    """A tiny weights folder with a ControlNet trained on (saved for) its network."""
    import nag_model.mmaudio_bundle as mb
    from nag_model.checkpoint import save_controlnet
    from nag_model.controlnet import AudioControlNet
    from pipeline.models import clear_caches

    folder = tiny_mmaudio.write_tiny_weights(tmp_path / "weights")
    tiny_mmaudio.use_tiny_weights(monkeypatch, folder)
    base = mb.load_mmaudio_bundle("mmaudio-small-16k", str(folder), controlnet=False).base
    save_controlnet(AudioControlNet.from_base(base), base, str(folder / "controlnet_small_16k"))
    clear_caches()
    yield folder
    clear_caches()


def test_weights_check_lists_each_file_and_fails_on_an_incomplete_bundle(weights):
    code, out = invoke("weights", "check", str(weights), "--model", "mmaudio-small-16k")
    assert code == 0, out
    assert out.count(" ok ") == 5 and "unverified" in out and "mmaudio-small-16k: complete" in out
    code, out = invoke("weights", "check", str(weights), "--model", "mmaudio-small-44k")
    assert code == 1 and "missing" in out and "v1-44.pth" in out and "mmaudio-small-44k: incomplete" in out
    (weights / "best_netG.pt").write_bytes(b"truncated")
    code, out = invoke("weights", "check", str(weights), "--model", "mmaudio-small-16k")
    assert code == 1 and "corrupt" in out


def test_run_needs_weights_for_an_mmaudio_model(tmp_path, h):
    code, out = invoke("run", str(h.DEMO_DIR / "manifest.csv"), "--model", "mmaudio-small-16k",
                       "--storage", f"file://{tmp_path}")
    assert code == 2 and "needs --weights" in out


def test_catalog_run_on_real_mmaudio_modules_writes_audio_rows_and_scores(weights, tmp_path, h):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(f'{{"id": "{VIDEO}", "video_uri": "{h.DEMO_DIR / "sf-10109180.mp4"}", '
                        '"captions": ["The fan motor drones strongly.", "The crowd talks gently."]}\n')
    storage = f"file://{tmp_path / 'out'}"
    code, out = invoke("run", str(manifest), "--model", "mmaudio-small-16k", "--weights", str(weights),
                       "--storage", storage, "--run-id", "real", "--duration", "2", "--steps", "2", "--no-progress")
    assert code == 0, out
    con = connect(storage)
    assert con.sql("SELECT status FROM videos WHERE run_id = 'real'").fetchall() == [("ok",)]
    model_id, params = con.sql("SELECT model_id, params_json FROM runs WHERE run_id = 'real'").fetchall()[0]
    assert model_id.startswith("mmaudio-small-16k@") and json.dumps(f"mmaudio-small-16k:{weights}") in params
    tracks = con.sql("SELECT track_id, method, uri FROM tracks WHERE run_id = 'real' ORDER BY track_id").fetchall()
    assert [(t[0], t[1]) for t in tracks] == [("t0", "nag"), ("t1", "nag")]
    for *_, uri in tracks:
        wav, rate = sf.read(uri.removeprefix("file://"))
        assert rate == 16_000 and len(wav) == 128_000 and abs(wav).max() > 0  # the whole 8-s video, 2-s windows
    n_metrics = con.sql("SELECT count(*) FROM metrics WHERE run_id = 'real'").fetchall()[0][0]
    assert n_metrics > 0
    assert con.sql("SELECT count(*) FROM mixes WHERE run_id = 'real' AND active").fetchall()[0][0] == 1


def test_nag_is_refused_up_front_without_a_controlnet(weights, tmp_path, h):
    folder = tmp_path / "no-controlnet"
    shutil.copytree(weights, folder, ignore=shutil.ignore_patterns("controlnet_*"))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(f'{{"id": "{VIDEO}", "video_uri": "{h.DEMO_DIR / "sf-10109180.mp4"}", "captions": ["x"]}}\n')
    code, out = invoke("run", str(manifest), "--model", "mmaudio-small-16k", "--weights", str(folder),
                       "--storage", f"file://{tmp_path / 'out'}", "--duration", "2", "--steps", "2", "--no-progress")
    assert code == 2 and "has no audio ControlNet" in out and "--method independent" in out
