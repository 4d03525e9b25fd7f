"""One catalog of the bad and hostile inputs a tester tried (issue 11): odd codecs and sizes, broken files,
path-like, escape-laden and duplicate ids, captions meant for a shell or a SQL prompt or a terminal. The
run completes; every row is ok or failed with a clear error; an ok video's soundtrack is as long as its
picture and under the ceiling as delivered; no duplicate row, orphan or half-written object; and nothing
raw reaches the terminal."""
from __future__ import annotations

import io
import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from flows import cli
from media.mux import audio_true_peaks_db
from storage.root import open_root
from pipeline.objects import key_of, read_audio

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]
CONTROL = {"\x1b", "\x07", "\r", "\x08", "\u202e", "\x00", "\x9b", "\u200b"}


def _encode(path: Path, codec: str, seconds: float, size: tuple[int, int], fps: int = 25,
            container: str | None = None) -> Path:
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(max(1, round(seconds * fps))):
            img = np.full((size[1], size[0], 3), (i * 9) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _media(h, d: Path) -> dict[str, str]:
    d.mkdir(parents=True, exist_ok=True)
    good = h.write_video(d / "good.mp4", 0.8)
    files = {
        "one-frame": h.write_video(d / "one.mp4", 0.04),
        "vp9": _encode(d / "vp9.webm", "libvpx-vp9", 0.4, (64, 48)),
        "hevc": _encode(d / "hevc.mp4", "libx265", 0.4, (64, 64)),
        "full-hd": _encode(d / "hd.mp4", "libx264", 0.12, (1920, 1080)),
        "good": good,
        "audio-only": None, "corrupt": d / "corrupt.mp4", "truncated": d / "truncated.mp4",
        "text": d / "text.mp4", "png": d / "still.png", "empty": d / "empty.mp4", "folder": d,
        "missing": d / "nope.mp4",
    }
    cases = h.write_media_cases(d / "cases")
    files["audio-only"] = cases["audio_only"]
    files["corrupt"].write_bytes(np.random.default_rng(5).bytes(30_000))
    data = good.read_bytes()
    files["truncated"].write_bytes(data[: len(data) * 6 // 10])
    files["text"].write_text("this is not a video\n")
    Image.new("RGB", (64, 64), (200, 10, 10)).save(files["png"])
    files["empty"].write_bytes(b"")
    return {k: str(v) for k, v in files.items()}


# (id, media, captions) -> expected status and a fragment of the error
ROWS = [
    ("one-frame", "one-frame", ["A ball bounces."], "ok", None),
    ("vp9", "vp9", ["A ball bounces."], "ok", None),
    ("hevc", "hevc", ["A ball bounces."], "ok", None),
    ("full-hd", "full-hd", ["A ball bounces."], "ok", None),
    ("o'brien", "good", ["'; DROP TABLE tracks; --"], "ok", None),
    ("$(touch pwned)", "good", ["$(rm -rf ~) `id` ${HOME}"], "ok", None),
    ("emoji-🎬-動画", "good", ["A door creaks\x1b[2J\x1b]0;pwned\x07 then shuts.", "Rain\u202e falls."], "ok", None),
    ("quote\"and\\back", "good", ["x"], "failed", "path separator"),
    ("tab\tid", "good", ["x"], "failed", "control or invisible"),
    ("\x1b[31mred", "good", ["x"], "failed", "control or invisible"),
    ("zero\u200bwidth", "good", ["x"], "failed", "control or invisible"),
    (" lead", "good", ["x"], "failed", "whitespace"),
    ("..", "good", ["x"], "failed", "path component"),
    ("../../etc/passwd", "good", ["x"], "failed", "path separator"),
    ("x" * 300, "good", ["x"], "failed", "characters long"),
    ("o'brien", "good", ["x"], "failed", "duplicate id"),
    ("blank-caption", "good", ["   "], "failed", "blank"),
    ("audio-only", "audio-only", ["x"], "failed", "prepare: NoVideoStream"),
    ("corrupt", "corrupt", ["x"], "failed", "prepare: CorruptMedia"),
    ("truncated", "truncated", ["x"], "failed", "prepare: "),
    ("text", "text", ["x"], "failed", "prepare: CorruptMedia"),
    ("png", "png", ["A light hums."], "ok", None),
    ("empty", "empty", ["x"], "failed", "prepare: EmptyMedia"),
    ("folder", "folder", ["x"], "failed", "prepare: MediaUnreadable"),
    ("missing", "missing", ["x"], "failed", "prepare: MediaUnreadable"),
]


def test_a_hostile_catalog(h, tmp_path, check_run_storage):
    from flows.catalog import catalog_run

    media = _media(h, tmp_path / "media")
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"id": i, "video_uri": media[m], "captions": c}) + "\n"
                                for i, m, c, _, _ in ROWS))
    storage = f"file://{tmp_path / 'out'}"
    result = catalog_run(str(manifest), storage_url=storage, run_id="hostile", model=h.MODEL, steps=2,
                         duration=h.DURATION)
    ok = [r for r in ROWS if r[3] == "ok"]
    assert (result["status"], result["n_ok"]) == ("completed", len(ok))
    root = open_root(storage)
    con = check_run_storage(root, "hostile")
    got = {}
    for video_id, status, error in con.sql("SELECT video_id, status, error FROM videos").fetchall():
        got.setdefault(video_id.split("@row")[0] if video_id.endswith(tuple(f"@row{k}" for k in range(40))) else
                       video_id, []).append((status, error))
    for video_id, _, _, status, fragment in ROWS:
        assert any(s == status and (fragment is None or fragment in (e or "")) for s, e in got[video_id]), (
            video_id, got[video_id])
    assert not (Path.cwd() / "pwned").exists() and not (tmp_path / "pwned").exists()

    for video_id, uri, covered in con.sql("SELECT t.video_id, t.uri, v.duration_s FROM tracks t JOIN videos v "
                                         "USING (run_id, video_id) WHERE v.status = 'ok'").fetchall():
        wav, rate = read_audio(root, uri)
        assert wav.shape[-1] > 0, video_id
    for video_id, muxed, peak in con.sql("SELECT video_id, muxed_uri, muxed_true_peak_db FROM mixes").fetchall():
        assert peak <= -1.0 and audio_true_peaks_db(io.BytesIO(root.read_bytes(key_of(root, muxed))))[0] <= -1.0

    runner = CliRunner()
    for args in (["report", "captions"], ["report", "failures", "--run-id", "hostile"], ["query", "SELECT * FROM videos"]):
        out = runner.invoke(cli.app, [*args, "--storage", storage])
        assert out.exit_code == 0 and not set(out.output) & CONTROL, (args, out.output[-2000:])
