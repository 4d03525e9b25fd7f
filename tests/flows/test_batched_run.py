"""Catalog runs with the synthesis batched across videos (--batch-videos) and placed on a device.

Five videos reach the synthesis (3, 2, 1, 1 and 2 tracks); one of them fails in its generation. With
batches of five they all wait for one ``generate_videos`` call, which fails, and each is then made alone:
the four good videos get the bytes they get with batches of one, the culprit gets a failed row.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from flows.catalog import catalog_run
from media.audio_io import audio_from_bytes
from nag_model.generator import StepByStepGenerator
from pipeline import delivery_workers, host_work, synthesis_batch, videos
from pipeline.objects import key_of
from storage.query import connect
from storage.root import open_root

CULPRIT = "The glass explodes."  # a caption whose generation fails (see `failing_generation`)
VIDEOS = {  # id -> (demo file, captions)
    "three": ("sf-10109180.mp4", ["The fan motor drones strongly.", "The crowd talks gently.", "A person walks faintly."]),
    "two": ("sf-10161943.mp4", ["The fan hums sharply.", "The lamp beeps softly."]),
    "one": ("sf-10170532.mp4", ["A small bird tweets loudly."]),
    "short": ("case:short", ["A ball bounces."]),
    "culprit": ("sf-10161943.mp4", ["A door creaks.", CULPRIT]),
}
BF16_MIN_CORRELATION = 0.97  # bf16 weights (fp32 sampler state) vs fp32, per stem as the model made it,
BF16_MAX_LEVEL_DB = 0.5  # and its RMS level. Measured on the CPU (tiny random model, 2 steps): correlation
# 0.981 (the 0.6-s clip) to 0.9995, levels within 0.21 dB.


@pytest.fixture(scope="module")
def batched_manifest(tmp_path_factory, h, media):
    import csv

    d = tmp_path_factory.mktemp("batched")
    path = d / "manifest.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "video_uri", "captions"])
        for vid, (file, captions) in VIDEOS.items():
            uri = str(media["short"]) if file == "case:short" else str(h.DEMO_DIR / file)
            w.writerow([vid, uri, json.dumps(captions)])
    return d, str(path)


@pytest.fixture(scope="module")
def failing_generation():
    """Generation fails for any batch holding the culprit's second track (an error inside generate_videos)."""
    real = StepByStepGenerator._launch
    mp = pytest.MonkeyPatch()

    def launch(self, requests):
        if any(r.caption == CULPRIT for r in requests):
            raise RuntimeError("the generator broke on this video")
        return real(self, requests)

    mp.setattr(StepByStepGenerator, "_launch", launch)
    yield
    mp.undo()


def _run(batched_manifest, h, name: str, batch_videos: int, **placement) -> dict:
    d, manifest = batched_manifest
    storage_url = f"file://{d / name}"
    synthesis_batch.clear()
    result = catalog_run(manifest, storage_url=storage_url, run_id=name, model=h.MODEL, duration=h.DURATION,
                         steps=h.STEPS, batch_videos=batch_videos, **placement)
    batches = [b.batches for b in synthesis_batch._batchers.values()]
    return {"result": result, "root": open_root(storage_url), "run_id": name, "batches": batches}


@pytest.fixture(scope="module")
def runs(batched_manifest, h, failing_generation):
    mp = pytest.MonkeyPatch()
    mp.setattr(synthesis_batch, "GATHER_S", 30.0)  # the five syntheses surely meet in one batch
    try:
        one = _run(batched_manifest, h, "batch-1", 1, device="cpu", precision="fp32")
        five = _run(batched_manifest, h, "batch-5", 5, device="cpu", precision="fp32")
    finally:
        mp.undo()
    return one, five


def _rows(run: dict, table: str, columns: str):
    con = connect(run["root"])
    return con.sql(f"SELECT {columns} FROM {table} WHERE run_id = $r ORDER BY ALL",  # noqa: S608 - fixed names
                   params={"r": run["run_id"]}).fetchall()


def _stems(run: dict) -> dict[tuple[str, str], np.ndarray]:
    """Every stem as the model made it (the storage gain undone), by (video, track)."""
    out = {}
    for video_id, track_id, uri, gain_db in _rows(run, "tracks", "video_id, track_id, uri, gain_db"):
        wav, _ = audio_from_bytes(run["root"].read_bytes(key_of(run["root"], uri)))
        out[(video_id, track_id)] = np.asarray(wav, np.float64) * 10.0 ** ((gain_db or 0.0) / 20.0)
    return out


def test_a_batch_of_five_writes_the_bytes_of_batches_of_one(runs):
    one, five = runs
    assert five["batches"] == [[5] + [1] * 5]  # one generate_videos call for all five, then each alone
    assert sorted(one["batches"][0]) == [1] * 5
    columns = "video_id, track_id, position, caption, seed, method, steps, sha256, gain_db, duration_s"
    tracks = _rows(one, "tracks", columns)
    assert len(tracks) == 3 + 2 + 1 + 1 and tracks == _rows(five, "tracks", columns)
    mixes = "video_id, track_ids, sha256, lufs, true_peak_db"
    assert _rows(one, "mixes", mixes) == _rows(five, "mixes", mixes)


def test_the_failing_video_fails_only_its_own_row(runs):
    for run in runs:
        assert (run["result"]["n_ok"], run["result"]["n_failed"]) == (4, 1)
        videos = dict(_rows(run, "videos", "video_id, error"))
        assert videos.pop("culprit").startswith("synthesis: RuntimeError: the generator broke on this video")
        assert set(videos.values()) == {None}


def test_the_run_records_device_precision_and_batch_size(runs):
    _, five = runs
    (params_json,) = _rows(five, "runs", "params_json")[0]
    record = json.loads(params_json)
    assert (record["model"]["device"], record["model"]["precision"]) == ("cpu", "fp32")
    assert (record["params"]["device"], record["params"]["precision"], record["params"]["batch_videos"]) == \
        ("cpu", "fp32", 5)


def _assert_close(stems: dict, reference: dict, min_correlation: float, max_level_db: float) -> None:
    assert stems.keys() == reference.keys()
    stats = {}
    for key, ref in reference.items():
        got = stems[key]
        assert got.shape == ref.shape, key
        stats[key] = (round(float(np.corrcoef(got, ref)[0, 1]), 5),
                      round(float(10 * np.log10(np.mean(got ** 2) / np.mean(ref ** 2))), 3))
    assert all(c >= min_correlation and abs(db) <= max_level_db for c, db in stats.values()), list(stats.items())


def test_bf16_rows_stay_within_tolerance_of_fp32(runs, batched_manifest, h, failing_generation):
    one, _ = runs
    bf16 = _run(batched_manifest, h, "bf16-cpu", 5, device="cpu", precision="bf16")
    (params_json,) = _rows(bf16, "runs", "params_json")[0]
    assert json.loads(params_json)["model"]["precision"] == "bf16"
    columns = "video_id, track_id, caption, seed, method, duration_s"
    assert _rows(bf16, "tracks", columns) == _rows(one, "tracks", columns)
    _assert_close(_stems(bf16), _stems(one), BF16_MIN_CORRELATION, BF16_MAX_LEVEL_DB)


def _stored(run: dict, table: str, column: str) -> dict[str, str]:
    """SHA-256 of every object a column of the run's rows points to (muxed videos, say), by video."""
    import hashlib

    return {video_id: hashlib.sha256(run["root"].read_bytes(key_of(run["root"], uri))).hexdigest()
            for video_id, uri in _rows(run, table, f"video_id, {column}")}


def test_the_gpu_host_plan_delivers_the_bytes_of_the_cpu_plan(runs, batched_manifest, h, failing_generation,
                                                                 monkeypatch):
    """The host plan of a GPU run (videos prepared three at a time, delivery on two spawned worker processes),
    forced onto this CPU run: the same rows and the same stored bytes as the CPU plan's threads."""
    _, five = runs
    monkeypatch.setattr(host_work, "plan", lambda device: host_work.HostWork(prepare_at_once=3, delivery_processes=2))
    try:
        spread = _run(batched_manifest, h, "gpu-host-plan", 5, device="cpu", precision="fp32")
        assert videos.preparing_at_once() == 3 and delivery_workers.delivery_processes() == 2
        assert delivery_workers._pool._processes  # the workers were spawned: the mixes were made there
    finally:
        monkeypatch.undo()
        host_work.configure("cpu")
    assert delivery_workers.delivery_processes() == 0 and videos.preparing_at_once() == 1
    assert (spread["result"]["n_ok"], spread["result"]["n_failed"]) == (4, 1)
    columns = "video_id, track_id, position, caption, seed, sha256, gain_db"
    assert _rows(spread, "tracks", columns) == _rows(five, "tracks", columns)
    mixes = "video_id, track_ids, sha256, lufs, true_peak_db, limiter_gain_db, muxed_true_peak_db"
    assert _rows(spread, "mixes", mixes) == _rows(five, "mixes", mixes)
    assert _stored(spread, "mixes", "muxed_uri") == _stored(five, "mixes", "muxed_uri")


def test_a_gpu_gets_the_gpu_host_plan():
    cores = 16
    assert host_work.plan("cpu") == host_work.HostWork(prepare_at_once=1, delivery_processes=0)
    assert host_work.plan("cuda:0").prepare_at_once == host_work.PREPARE_ON_GPU
    assert host_work.delivery_processes_for(cores) == 8 and host_work.delivery_processes_for(2) == 2
    with pytest.raises(ValueError, match=">= 1"):
        videos.prepare_at_once(0)
    with pytest.raises(ValueError, match=">= 0"):
        delivery_workers.use_processes(-1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_run_writes_the_rows_of_a_cpu_run(runs, batched_manifest, h, failing_generation):
    """CUDA in bf16 (the default there), batched and fused: the same rows as the CPU in fp32, each stem within
    the bf16 tolerance; CUDA in fp32 within 0.999 correlation and 0.05 dB."""
    one, _ = runs
    columns = "video_id, track_id, caption, seed, method, duration_s"
    for name, precision, corr, level in (("cuda-bf16", "auto", BF16_MIN_CORRELATION, BF16_MAX_LEVEL_DB),
                                         ("cuda-fp32", "fp32", 0.999, 0.05)):
        cuda = _run(batched_manifest, h, name, 5, device="cuda", precision=precision)
        (params_json,) = _rows(cuda, "runs", "params_json")[0]
        model = json.loads(params_json)["model"]
        assert model["device"] == "cuda:0" and model["precision"] == ("bf16" if precision == "auto" else "fp32")
        assert (cuda["result"]["n_ok"], cuda["result"]["n_failed"]) == (4, 1)
        assert _rows(cuda, "tracks", columns) == _rows(one, "tracks", columns)
        _assert_close(_stems(cuda), _stems(one), corr, level)
