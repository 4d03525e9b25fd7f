"""Real Prefect flow runs against one test server per session, real files, real Parquet and DuckDB.

The session runs one catalog over the demo videos plus every failure case (``catalog``); the
tests in this folder read it, and edits and the kill test use their own runs.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import foley_flow_invariants as INVARIANTS  # tests/conftest.py SHARED_MODULES
import foley_test_helpers as H

FAST = {"model": H.MODEL, "duration": H.DURATION, "steps": H.STEPS}
LONG_CAPTION = " ".join(["loud"] * 40)

# id -> (file key, captions cell, expected status, expected error fragment)
CASES: dict[str, tuple[str, str, str, str | None]] = {
    "sf-10109180": ("demo:sf-10109180.mp4", json.dumps(["The fan motor drones strongly.", "The crowd talks gently.",
                                                        "A person walks faintly."]), "ok", None),
    "sf-10161943": ("demo:sf-10161943.mp4", "The fan hums sharply. | The lamp beeps softly.", "ok", None),
    "vidéo-動画": ("demo:sf-10170532.mp4", json.dumps(["A small bird tweets loudly."]), "ok", None),
    "short-clip": ("case:short", "A ball bounces.", "ok", None),
    "sf-10125107": ("demo:sf-10125107.mp4", "", "failed", "captions: CaptionError: the manifest gives no captions"),
    "corrupt": ("case:corrupt", "x", "failed", "prepare: CorruptMedia"),
    "audio-only": ("case:audio_only", "x", "failed", "prepare: NoVideoStream"),
    "empty-file": ("case:empty", "x", "failed", "prepare: EmptyMedia"),
    "no-frames": ("case:no_frames", "x", "failed", "prepare: EmptyMedia"),
    "unreadable": ("case:missing", "x", "failed", "prepare: MediaUnreadable"),
    "empty-captions": ("demo:sf-10109180.mp4", "[]", "failed", "captions: CaptionError: the caption list is empty"),
    "long-caption": ("demo:sf-10109180.mp4", LONG_CAPTION, "failed", "captions: CaptionError: caption 1 has 40 words"),
    "sf-10109180@row13": ("demo:sf-10161943.mp4", "x", "failed", "duplicate id 'sf-10109180', already used by row 1"),
    "../../x": ("demo:sf-10109180.mp4", "x", "failed", "path separator"),
    "a/b": ("demo:sf-10109180.mp4", "x", "failed", "path separator"),
    "evil\u202eexe": ("demo:sf-10109180.mp4", "x", "failed", "U+202E"),
    "cafe\u0301": ("demo:sf-10109180.mp4", "x", "failed", "NFC"),
    "@row18": ("demo:sf-10109180.mp4", "x", "failed", "the id is empty"),
}
OK_TRACKS = {"sf-10109180": 3, "sf-10161943": 2, "vidéo-動画": 1, "short-clip": 1}


@pytest.fixture(scope="session", autouse=True)
def _prefect_server(prefect_api):
    """The session's Prefect test server (tests/conftest.py) for every test here."""
    yield


@pytest.fixture(scope="session")
def h():
    return H


@pytest.fixture(scope="session")
def cases():
    return CASES


@pytest.fixture(scope="session")
def ok_tracks():
    return OK_TRACKS


@pytest.fixture(scope="session")
def check_run_storage():
    """``check_run_storage(root, run_id)``: no duplicate rows, no orphaned or missing objects, no temporaries."""
    return INVARIANTS.check_run_storage


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    return H.write_media_cases(tmp_path_factory.mktemp("media"))


def write_manifest(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "video_uri", "captions"])
        w.writerows(rows)
    return path


@pytest.fixture(scope="session")
def catalog(tmp_path_factory, media):
    """The session's catalog run: 4 good videos and 14 failure cases, in one manifest (row order as CASES)."""
    from flows.catalog import catalog_run

    d = tmp_path_factory.mktemp("catalog")
    rows = []
    for video_id, (file, captions, _, _) in CASES.items():
        kind, name = file.split(":")
        uri = str(H.DEMO_DIR / name) if kind == "demo" else str(media[name])
        raw_id = {"sf-10109180@row13": "sf-10109180", "@row18": ""}.get(video_id, video_id)
        rows.append((raw_id, uri, captions))
    manifest = write_manifest(d / "manifest.csv", rows)
    storage_url = f"file://{d / 'out'}"
    result = catalog_run(str(manifest), storage_url=storage_url, run_id="session-run", **FAST)
    return {"storage_url": storage_url, "run_id": "session-run", "result": result, "manifest": str(manifest),
            "dir": d}
