"""Catalog manifests, the bundled demo catalog, and the train/val/test splits."""
import csv
import json

import av
import numpy as np
import pytest

from synthfoley.catalog import DEMO_DIR, read_manifest, write_catalog, write_demo_catalog
from synthfoley.splits import SPLITS, iter_clips, split_seeds


def test_manifest_csv_and_jsonl(tmp_path):
    rows = write_catalog(tmp_path, 3, seed=1, wavs=False, uncaptioned=1)
    with (tmp_path / "manifest.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["id", "video_uri", "captions"]
        raw = list(reader)
    assert [r["id"] for r in raw] == [r["id"] for r in rows] and len(raw) == 3
    assert all(isinstance(json.loads(r["captions"]), list) for r in raw[:2]) and raw[2]["captions"] == ""
    assert read_manifest(tmp_path / "manifest.csv") == read_manifest(tmp_path / "manifest.jsonl") == rows
    assert rows[2]["captions"] is None
    for r in rows:
        meta = json.loads((tmp_path / r["video_uri"]).with_suffix(".json").read_text())
        assert r["captions"] in (None, meta["captions"]) and meta["id"] == r["id"]
        with av.open(str(tmp_path / r["video_uri"])) as c:
            assert c.streams.video[0].frames == 200


def test_uri_base_and_argument_checks(tmp_path):
    rows = write_catalog(tmp_path, 1, wavs=False, uri_base="s3://bucket/sf/")
    assert rows[0]["video_uri"] == f"s3://bucket/sf/{rows[0]['id']}.mp4"
    with pytest.raises(ValueError):
        write_catalog(tmp_path, 2, uncaptioned=3)


def test_demo_catalog_is_small_and_complete():
    files = sorted(p for p in DEMO_DIR.iterdir() if p.is_file())
    assert sum(p.stat().st_size for p in files) < 2_000_000
    rows = read_manifest(DEMO_DIR / "manifest.csv")
    assert len(rows) == 4 and any(r["captions"] for r in rows) and any(r["captions"] is None for r in rows)
    for r in rows:
        with av.open(str(DEMO_DIR / r["video_uri"])) as c:
            vs, aus = c.streams.video[0], c.streams.audio[0]
            assert vs.frames == 200 and vs.average_rate == 25 and (vs.width, vs.height) == (64, 64)
            assert aus.rate == 16_000


def test_demo_catalog_regenerates_identically(tmp_path):
    write_demo_catalog(tmp_path)
    provenance = json.loads((DEMO_DIR / "provenance.json").read_text())
    same_build = provenance["libavcodec"] == list(av.library_versions["libavcodec"])
    committed = sorted(p.name for p in DEMO_DIR.iterdir() if p.is_file())
    assert committed == sorted(p.name for p in tmp_path.iterdir())
    for name in committed:
        if name.endswith(".mp4") and not same_build:
            continue  # other FFmpeg builds may encode differently; the arrays are still identical
        if name != "provenance.json":
            assert (tmp_path / name).read_bytes() == (DEMO_DIR / name).read_bytes(), \
                f"{name} differs: if the generator changed on purpose, run python -m synthfoley.catalog --demo"


def test_splits_are_disjoint_and_deterministic():
    ranges = sorted(SPLITS.values(), key=lambda r: r.start)
    assert all(r.step == 1 and r.stop <= nxt.start for r, nxt in zip(ranges, ranges[1:]))
    seeds = {name: split_seeds(name, 500, seed=3) for name in SPLITS}
    for name, s in seeds.items():
        assert len(set(s)) == 500 and all(int(v) in SPLITS[name] for v in s)
    assert not set(seeds["train"]) & set(seeds["val"]) and not set(seeds["val"]) & set(seeds["test"])
    assert not set(seeds["train"]) & set(seeds["test"])
    assert np.array_equal(split_seeds("val", 50, 3), split_seeds("val", 50, 3))
    assert not np.array_equal(split_seeds("val", 50, 3), split_seeds("val", 50, 4))
    with pytest.raises(ValueError):
        split_seeds("holdout", 1)


def test_iter_clips_in_memory():
    clips = list(iter_clips("val", 2, seed=5, with_frames=False))
    assert [c.seed for c in clips] == [int(s) for s in split_seeds("val", 2, 5)]
    assert all(c.frames is None and c.mix.shape == (128_000,) for c in clips)
