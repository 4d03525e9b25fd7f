"""The run report of a real run with edits: written by the flows, published as a Prefect artifact, and opened
in Debian's headless Chromium, where every player must load and play, with no console error."""
from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from flows.catalog import catalog_run
from flows.edit import edit_video
from storage import keys
from storage.root import open_root

_spec = importlib.util.spec_from_file_location("foley_chromium", Path(__file__).resolve().parents[1] / "reports" /
                                               "chromium.py")
chromium = sys.modules.setdefault("foley_chromium", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(chromium)

VIDEO = "sf-10109180"


@pytest.fixture(scope="module")
def reported_run(tmp_path_factory, h):
    """Two demo videos (one without captions, which the random model cannot caption: a failure), then an add,
    a regenerate and a remove on the first."""
    d = tmp_path_factory.mktemp("report")
    manifest = d / "m.jsonl"
    manifest.write_text(f'{{"id": "{VIDEO}", "video_uri": "{h.DEMO_DIR / "sf-10109180.mp4"}", '
                        '"captions": ["The fan motor drones strongly.", "The crowd talks gently."]}\n'
                        f'{{"id": "sf-10161943", "video_uri": "{h.DEMO_DIR / "sf-10161943.mp4"}", '
                        '"captions": ["The lamp beeps softly."]}\n'
                        f'{{"id": "uncaptioned", "video_uri": "{h.DEMO_DIR / "sf-10125107.mp4"}"}}\n')
    storage_url = f"file://{d / 'out'}"
    result = catalog_run(str(manifest), storage_url=storage_url, run_id="report-run", model=h.MODEL,
                         duration=h.DURATION, steps=h.STEPS)
    first_report = open_root(storage_url).read_bytes(keys.report_key("report-run")).decode()
    edit_video("report-run", VIDEO, "add", caption="A door knocks twice.", storage_url=storage_url)
    edit_video("report-run", VIDEO, "regenerate", track_id="t1", storage_url=storage_url)
    edit_video("report-run", VIDEO, "remove", track_id="t0", storage_url=storage_url)
    return {"storage_url": storage_url, "result": result, "first_report": first_report}


def test_the_run_writes_its_report_and_publishes_an_artifact(reported_run):
    root = open_root(reported_run["storage_url"])
    assert reported_run["result"]["report_uri"] == root.uri(keys.report_key("report-run"))
    page = reported_run["first_report"]
    assert page.count("<audio") == 2 + 1 + 1 + 1 and page.count("<video") == 2  # tracks and mix of each ok video
    assert "the manifest gives no captions for &#39;uncaptioned&#39;" in page  # the failure, with its error
    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts()  # latest per key
    ours = [a for a in artifact if a.key == f"foley-run-{keys.id_segment('report-run')}"]
    assert ours and ours[0].type == "markdown"
    assert "**Report:**" in ours[0].data and root.uri(keys.report_key("report-run")) in ours[0].data
    assert "| nag |" in ours[0].data and "uncaptioned" in ours[0].data


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
    # edited video: 2 tracks, its mix, 4 mix versions in the history; the other: 1 track and its mix
    assert tags.count("video") == 2 and tags.count("audio") == 2 + 1 + 4 + 1 + 1
    for m in page.media:
        assert m["readyState"] >= 2 and m["error"] is None and m["played"], m
    assert page.images and all(i["ok"] for i in page.images)
    assert page.errors == []
    (tmp_path / "report.png").write_bytes(page.screenshot)
    assert page.screenshot[:8] == b"\x89PNG\r\n\x1a\n" and len(page.screenshot) > 10_000
