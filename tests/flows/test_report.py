"""The run report of a real run with edits: written by the flows, published as a Prefect artifact, and opened
in Debian's headless Chromium, where every player must load and play, with no console error."""
from __future__ import annotations

import os
import re

import pytest
import torch
from prefect.client.orchestration import get_client

from flows.catalog import catalog_run
from flows.edit import edit_video
from storage import keys
from storage.query import connect
from storage.root import open_root

import foley_chromium as chromium  # tests/conftest.py SHARED_MODULES

VIDEO = "sf-10109180"


@pytest.fixture(scope="module")
def reported_run(tmp_path_factory, h):
    """Three demo videos, the last without captions (a tiny random Qwen2.5-VL proposes them), and a missing
    file (a failure); then an add, a regenerate and a remove on the first."""
    from captioning.captioner import CaptionerSettings

    d = tmp_path_factory.mktemp("report")
    manifest = d / "m.jsonl"
    manifest.write_text(f'{{"id": "{VIDEO}", "video_uri": "{h.DEMO_DIR / "sf-10109180.mp4"}", '
                        '"captions": ["The fan motor drones strongly.", "The crowd talks gently."]}\n'
                        f'{{"id": "sf-10161943", "video_uri": "{h.DEMO_DIR / "sf-10161943.mp4"}", '
                        '"captions": ["The lamp beeps softly."]}\n'
                        f'{{"id": "uncaptioned", "video_uri": "{h.DEMO_DIR / "sf-10125107.mp4"}"}}\n'
                        f'{{"id": "missing", "video_uri": "{d / "nope.mp4"}", "captions": ["x"]}}\n')
    import foley_tiny_vlm as tiny

    captioner = CaptionerSettings(kind="local", path=str(tiny.build_tiny_vlm(d / "tiny-vlm")), n_frames=2,
                                  max_tokens=200)
    storage_url = f"file://{d / 'out'}"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models, token by token: a second thread only waits (and is slow when busy)
    try:
        result = catalog_run(str(manifest), storage_url=storage_url, run_id="report-run", model=h.MODEL,
                             duration=h.DURATION, steps=h.STEPS, captioner=captioner)
    finally:
        torch.set_num_threads(threads)
    first_report = open_root(storage_url).read_bytes(keys.report_key("report-run")).decode()
    edit_video("report-run", VIDEO, "add", caption="A door knocks twice.", storage_url=storage_url)
    edit_video("report-run", VIDEO, "regenerate", track_id="t1", storage_url=storage_url)
    edit_video("report-run", VIDEO, "remove", track_id="t0", storage_url=storage_url)
    return {"storage_url": storage_url, "result": result, "first_report": first_report}


def active_tracks(storage_url: str) -> dict[str, int]:
    con = connect(storage_url)
    return dict(con.sql("SELECT video_id, len(track_ids) FROM mixes WHERE active").fetchall())


def test_the_run_writes_its_report_and_publishes_an_artifact(reported_run):
    root = open_root(reported_run["storage_url"])
    assert reported_run["result"]["report_uri"] == root.uri(keys.report_key("report-run"))
    assert (reported_run["result"]["n_ok"], reported_run["result"]["n_failed"]) == (3, 1)
    page = reported_run["first_report"]
    n_tracks = page.count('<td class="metrics">')
    assert n_tracks >= 4 and page.count("<audio") == n_tracks + 3 and page.count("<video") == 3  # + mix per video
    assert "prepare: MediaUnreadable" in page  # the failure, with its error
    assert "captions from local (<code>tiny-vlm</code>)" in page and "Noun + Verb + Adverbs" in page
    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts()  # latest per key
    ours = [a for a in artifact if a.key == f"foley-run-{keys.id_segment('report-run')}"]
    assert ours and ours[0].type == "markdown"
    assert "**Report:**" in ours[0].data and root.uri(keys.report_key("report-run")) in ours[0].data
    assert "| nag |" in ours[0].data and "missing" in ours[0].data


def test_the_captioner_is_traced_in_the_captions_table(reported_run):
    rows = {r["video_id"]: r for r in connect(reported_run["storage_url"]).sql(
        "SELECT * FROM captions").to_arrow_table().to_pylist()}
    assert set(rows) == {VIDEO, "sf-10161943", "uncaptioned"}  # the missing file never got to its captions
    assert rows[VIDEO]["source"] == "manifest" and rows[VIDEO]["model"] is None
    vlm = rows["uncaptioned"]
    assert vlm["source"] == "local" and vlm["model"] == "tiny-vlm" and vlm["attempts"] >= 2
    assert vlm["prompt"].startswith("Task:") and vlm["raw_answer"] and vlm["structured_answer"].startswith('{"captions"')
    assert vlm["captions"] and active_tracks(reported_run["storage_url"])["uncaptioned"] == len(vlm["captions"])


def test_the_report_shows_the_edit_history(reported_run):
    page = open_root(reported_run["storage_url"]).read_bytes(keys.report_key("report-run")).decode()
    history = re.findall(r"<li>(mix v\d+: [^<]+)</li>", page)
    assert [line.split(":")[0] for line in history] == ["mix v2", "mix v3", "mix v4"]
    assert "added t2 v1" in history[0] and "A door knocks twice." in history[0]
    assert "regenerated t1: v1 → v2" in history[1] and history[2] == "mix v4: removed t0 v1"
    assert "mix v4 (current)" not in page and "v4 (current)" in page  # every mix version listed, newest first
    links = re.findall(r'src="(\.\./[^"]+)"', page)
    assert links and all(not link.startswith("/") for link in links)  # relative: the folder can move


def test_every_player_loads_and_plays_in_chromium(reported_run, tmp_path):
    if chromium.find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: apt-get install -y chromium")
        pytest.skip("no chromium on this machine (apt-get install -y chromium)")
    root = open_root(reported_run["storage_url"])
    page = chromium.inspect_page(root.uri(keys.report_key("report-run")))
    assert page.title == "Run report-run: Foley report"
    tags = sorted(m["tag"] for m in page.media)
    tracks = active_tracks(reported_run["storage_url"])
    assert tracks[VIDEO] == 2  # after add, regenerate, remove
    # a player per track and per mix, and one per mix version in the edited video's history (4)
    assert tags.count("video") == 3 and tags.count("audio") == sum(tracks.values()) + 3 + 4
    for m in page.media:
        assert m["readyState"] >= 2 and m["error"] is None and m["played"], m
    assert page.images and all(i["ok"] for i in page.images)
    assert page.errors == []
    (tmp_path / "report.png").write_bytes(page.screenshot)
    assert page.screenshot[:8] == b"\x89PNG\r\n\x1a\n" and len(page.screenshot) > 10_000
