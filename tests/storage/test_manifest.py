"""Manifest reading: formats, caption syntaxes, relative URIs, rejected rows (hostile and duplicate ids)."""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage.manifest import (
    ManifestEntry,
    ManifestError,
    id_problem,
    load_manifest,
    parse_captions,
    resolve_video_uri,
)
from tasks.manifest import read_manifest

DEMO_DIR = Path(__file__).resolve().parents[2] / "synthfoley" / "demo_catalog"


@pytest.fixture(scope="module")
def h():
    """What these tests use of tests/tasks/helpers.py: the demo catalog's folder."""
    return SimpleNamespace(DEMO_DIR=DEMO_DIR)


def test_demo_catalog_csv_reads_as_four_entries(h):
    entries = load_manifest(str(h.DEMO_DIR / "manifest.csv"))
    assert [e.video_id for e in entries] == ["sf-10109180", "sf-10161943", "sf-10170532", "sf-10125107"]
    assert all(e.error is None for e in entries)
    assert entries[0].captions == ("The fan motor drones strongly.", "The crowd talks gently.", "A person walks faintly.")
    assert entries[3].captions is None  # empty cell: ask the captioner
    assert entries[0].video_uri == str(h.DEMO_DIR / "sf-10109180.mp4")  # relative to the manifest's folder


@pytest.mark.parametrize("name", ["manifest.jsonl", "manifest.parquet", "manifest.csv.gz"])
def test_jsonl_parquet_and_compressed_csv_read_the_same(tmp_path, h, name):
    rows = [{"id": "a", "video_uri": "a.mp4", "captions": ["x y", "z"]}, {"id": "b", "video_uri": "s3://bkt/b.mp4",
                                                                         "captions": None}]
    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    elif name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        text = "id,video_uri,captions\na,a.mp4,x y | z\nb,s3://bkt/b.mp4,\n"
        path.write_bytes(gzip.compress(text.encode()))
    entries = load_manifest(str(path))
    assert [(e.video_id, e.captions) for e in entries] == [("a", ("x y", "z")), ("b", None)]
    assert entries[0].video_uri == str(tmp_path / "a.mp4") and entries[1].video_uri == "s3://bkt/b.mp4"


def test_read_manifest_task_returns_plain_dicts(h):
    rows = read_manifest.fn(str(h.DEMO_DIR / "manifest.jsonl"))
    assert ManifestEntry.from_dict(rows[0]).video_id == "sf-10109180"
    assert json.loads(json.dumps(rows)) == rows  # small and serialisable: a reference, not data


@pytest.mark.parametrize("value, expected", [
    (None, None), ("", None), ("  ", None), ('["a", "b"]', ("a", "b")), ("a | b|c", ("a", "b", "c")),
    (["a"], ("a",)), ([], ()), ("[]", ()),
])
def test_caption_syntaxes(value, expected):
    assert parse_captions(value) == expected


@pytest.mark.parametrize("value", ['["a", ', [1, "b"], 3])
def test_unparseable_captions_raise(value):
    with pytest.raises(ValueError, match="captions"):
        parse_captions(value)


@pytest.mark.parametrize("raw, fragment", [
    ("../../x", "path separator"), ("a/b", "path separator"), ("a\\b", "path separator"), ("..", "path component"),
    ("", "empty"), (" padded", "whitespace"), ("evil\u202eexe", "U+202E"), ("zero\u200bwidth", "U+200B"),
    ("nul\x00", "U+0000"), ("cafe\u0301", "NFC"), ("x" * 300, "limit"),
])
def test_hostile_ids_are_rejected_with_a_reason(raw, fragment):
    assert fragment in id_problem(raw)


@pytest.mark.parametrize("raw", ["sf-10109180", "vidéo-01", "動画_7", "A.B=C", "id with spaces"])
def test_ordinary_and_unicode_ids_are_accepted(raw):
    assert id_problem(raw) is None


def test_rejected_rows_keep_the_rest(tmp_path):
    lines = [
        {"id": "ok", "video_uri": "v.mp4", "captions": ["a"]},
        {"id": "ok", "video_uri": "other.mp4", "captions": ["b"]},  # duplicate of row 1
        {"id": "../../x", "video_uri": "v.mp4"},
        {"id": "no-uri", "video_uri": ""},
        {"id": "bad-captions", "video_uri": "v.mp4", "captions": [1, 2]},
        {"video_uri": "v.mp4"},  # no id
        {"id": 7, "video_uri": "v.mp4"},  # integer ids are read as strings
    ]
    text = "\n".join(json.dumps(l) for l in lines[:3]) + "\n{not json\n" + "\n".join(json.dumps(l) for l in lines[3:])
    path = tmp_path / "m.jsonl"
    path.write_text(text)
    entries = load_manifest(str(path))
    by_row = {e.row: e for e in entries}
    assert by_row[1].error is None and by_row[1].video_id == "ok"
    assert by_row[2].video_id == "ok@row2" and "duplicate id 'ok', already used by row 1" in by_row[2].error
    assert "path separator" in by_row[3].error and by_row[3].video_id == "../../x"
    assert "not JSON" in by_row[4].error and by_row[4].video_id == "@row4"
    assert "no video_uri" in by_row[5].error
    assert "captions must be strings" in by_row[6].error
    assert "empty" in by_row[7].error and by_row[7].video_id == "@row7"
    assert by_row[8].video_id == "7" and by_row[8].error is None
    assert len({e.video_id for e in entries}) == len(entries)  # every row gets its own id


def test_synthetic_ids_never_collide_with_real_ones(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("id,video_uri\nx,a.mp4\nx,b.mp4\nx@row2,c.mp4\n")
    ids = [e.video_id for e in load_manifest(str(path))]
    assert len(set(ids)) == 3 and "x@row2.2" in ids


def test_a_manifest_without_the_required_columns_fails_as_a_whole(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("name,file\na,b.mp4\n")
    with pytest.raises(ManifestError, match="missing columns"):
        load_manifest(str(path))
    with pytest.raises(ManifestError, match="unknown manifest format"):
        load_manifest(str(tmp_path / "m.txt"))
    with pytest.raises(FileNotFoundError):
        load_manifest(str(tmp_path / "absent.csv"))


def test_relative_uris_resolve_against_the_manifest_folder():
    assert resolve_video_uri("v/a.mp4", "s3://bkt/cat/m.csv") == "s3://bkt/cat/v/a.mp4"
    assert resolve_video_uri("../a.mp4", "/data/cat/m.csv") == "/data/a.mp4"
    assert resolve_video_uri("a.mp4", "file:///data/m.csv") == "/data/a.mp4"
    assert resolve_video_uri("/abs/a.mp4", "s3://bkt/m.csv") == "/abs/a.mp4"
    assert resolve_video_uri("memory://x/a.mp4", "/data/m.csv") == "memory://x/a.mp4"
