"""The Foley artist's loop: add, regenerate and remove tracks as new versions; old rows stay."""
from __future__ import annotations

import pytest

from flows.catalog import catalog_run
from flows.edit import edit_video
from storage import keys, tables
from storage.query import connect
from storage.root import open_root
from storage.cleanup import unit
from pipeline.edit_plan import EditError

VIDEO = "sf-10109180"


@pytest.fixture(scope="module")
def edited_run(tmp_path_factory, h):
    d = tmp_path_factory.mktemp("edit")
    manifest = d / "m.jsonl"
    manifest.write_text(f'{{"id": "{VIDEO}", "video_uri": "{h.DEMO_DIR / "sf-10109180.mp4"}", '
                        '"captions": ["The fan motor drones strongly.", "The crowd talks gently."]}\n'
                        f'{{"id": "broken", "video_uri": "{d / "nope.mp4"}", "captions": ["x"]}}\n')
    storage_url = f"file://{d / 'out'}"
    catalog_run(str(manifest), storage_url=storage_url, run_id="edits", model=h.MODEL, duration=h.DURATION,
                steps=h.STEPS)
    return storage_url


def state(storage_url):
    con = connect(storage_url)
    tracks = con.sql("SELECT track_id, version, supersedes, caption, seed, active FROM tracks "
                     "WHERE video_id = $v ORDER BY track_id, version", params={"v": VIDEO}).fetchall()
    mixes = con.sql("SELECT version, supersedes, track_ids, active FROM mixes WHERE video_id = $v ORDER BY version",
                    params={"v": VIDEO}).fetchall()
    videos = con.sql("SELECT version, status, n_captions FROM videos WHERE video_id = $v ORDER BY version",
                     params={"v": VIDEO}).fetchall()
    return tracks, mixes, videos


def test_add_regenerate_remove_make_new_versions(edited_run, check_run_storage):
    root = open_root(edited_run)
    tracks0, _, _ = state(edited_run)
    first_mix = root.read_bytes(keys.mix_key("edits", VIDEO, 1))

    out = edit_video("edits", VIDEO, "add", caption="A door knocks twice.", storage_url=edited_run)
    assert out == {"run_id": "edits", "video_id": VIDEO, "version": 2, "action": "add", "track_id": "t2",
                   "track_ids": ["t0", "t1", "t2"]}
    tracks, mixes, videos = state(edited_run)
    assert tracks[:2] == tracks0 and tracks[2][:4] == ("t2", 1, None, "A door knocks twice.")
    assert mixes[-1] == (2, 1, ["t0", "t1", "t2"], True) and mixes[0][3] is False  # v1 stays, superseded
    assert root.read_bytes(keys.mix_key("edits", VIDEO, 1)) == first_mix  # never overwritten

    out = edit_video("edits", VIDEO, "regenerate", track_id="t1", storage_url=edited_run)
    assert out["version"] == 3 and out["track_ids"] == ["t0", "t1", "t2"]
    tracks, mixes, _ = state(edited_run)
    t1 = [t for t in tracks if t[0] == "t1"]
    assert [(t[1], t[2], t[5]) for t in t1] == [(1, None, False), (2, 1, True)] and t1[0][4] != t1[1][4]  # new seed
    assert root.exists(keys.track_key("edits", VIDEO, "t1", 1)) and root.exists(keys.track_key("edits", VIDEO, "t1", 2))

    out = edit_video("edits", VIDEO, "remove", track_id="t0", storage_url=edited_run)
    assert out["version"] == 4 and out["track_ids"] == ["t1", "t2"]
    tracks, mixes, videos = state(edited_run)
    assert [m[:3] for m in mixes] == [(1, None, ["t0", "t1"]), (2, 1, ["t0", "t1", "t2"]),
                                      (3, 2, ["t0", "t1", "t2"]), (4, 3, ["t1", "t2"])]
    assert [m[3] for m in mixes] == [False, False, False, True]
    assert videos == [(1, "ok", 2), (2, "ok", 3), (3, "ok", 3), (4, "ok", 2)]
    con = connect(edited_run)
    scored = set(con.sql("SELECT coalesce(track_id, 'mix'), version FROM metrics WHERE video_id = $v",
                         params={"v": VIDEO}).fetchall())
    # each edit scores only what it made: the new track version and the new mix
    assert scored == {("t0", 1), ("t1", 1), ("mix", 1), ("t2", 1), ("mix", 2), ("t1", 2), ("mix", 3), ("mix", 4)}
    check_run_storage(root, "edits")


def test_what_a_killed_edit_left_is_removed_by_the_next_edit(edited_run, check_run_storage):
    root = open_root(edited_run)
    version = connect(edited_run).sql("SELECT max(version) FROM videos WHERE video_id = $v",
                                      params={"v": VIDEO}).fetchall()[0][0]
    nxt = version + 1
    root.put_atomic(keys.track_key("edits", VIDEO, "t9", 1), b"a stem of an edit killed before its rows")
    root.put_atomic(keys.mix_key("edits", VIDEO, nxt), b"its mix")
    tables.write_rows(root, "metrics", "edits", [{"run_id": "edits", "video_id": VIDEO, "version": nxt,
                                                  "metric": "lufs", "value": 0.0}], unit=unit(VIDEO, nxt))
    out = edit_video("edits", VIDEO, "remove", track_id="t1", storage_url=edited_run)
    assert out["version"] == nxt and out["track_ids"] == ["t2"]
    assert not root.exists(keys.track_key("edits", VIDEO, "t9", 1))
    assert 0.0 not in connect(edited_run).sql("SELECT value FROM metrics WHERE metric = 'lufs' AND version = $n",
                                              params={"n": nxt}).fetchall()
    check_run_storage(root, "edits")


@pytest.mark.parametrize("video, action, kwargs, fragment", [
    (VIDEO, "regenerate", {"track_id": "t7"}, "not in the current mix"),
    (VIDEO, "add", {}, "needs a caption"),
    ("broken", "add", {"caption": "x"}, "no finished version"),
    ("nobody", "remove", {"track_id": "t0"}, "no finished version"),
])
def test_impossible_edits_fail_clearly_and_change_nothing(edited_run, video, action, kwargs, fragment):
    before = open_root(edited_run).list()
    with pytest.raises(EditError, match=fragment):
        edit_video("edits", video, action, storage_url=edited_run, **kwargs)
    assert open_root(edited_run).list() == before
