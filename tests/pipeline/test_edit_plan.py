"""Edit planning (pipeline.edit_plan): the details of each plan, and the committed state an edit starts from,
read from stored rows."""
from __future__ import annotations

import json

import pytest

from pipeline.edit_plan import EditError, load_video_state, make_plan
from pipeline.tracks import track_seed
from storage import tables


def test_the_details_of_each_plan(edit_state):
    added = make_plan(edit_state(), "add", caption="Rain.", seed=42)
    assert added.generate.seed == 42 and added.video == edit_state()["video"] and added.params == {"seed": 3}
    first = make_plan({**edit_state(0), "used_track_ids": ["intro"]}, "add", caption="Rain.")  # no t<n> id used yet
    assert (first.generate.track_id, first.generate.position) == ("t0", 0)
    taken = make_plan({**edit_state(0), "used_track_ids": ["t0x", "t3", "t4"]}, "add", caption="Rain.")
    assert taken.generate.track_id == "t5"
    unseeded = make_plan({**edit_state(), "params": {}}, "add", caption="Rain.")  # a run without a seed: seed 0
    assert unseeded.generate.seed == track_seed(0, "v", "t8", 1)
    redo = make_plan(edit_state(3), "regenerate", track_id="t1", caption=" A louder fan. ")
    g = redo.generate
    assert (g.caption, g.position, g.supersedes) == ("A louder fan.", 1, 1)
    assert [t["track_id"] for t in redo.tracks_after({"track_id": "<new>"})] == ["t0", "<new>", "t2"]
    assert make_plan(edit_state(3), "regenerate", track_id="t1", caption="  ").generate.caption == "c1"  # blank: kept
    removed = make_plan(edit_state(3), "remove", track_id="t1")
    assert removed.context == () and removed.video == edit_state()["video"] and removed.supersedes_mix == 1
    assert removed.version == 2 and removed.new_at is None
    with pytest.raises(ValueError, match="^the generated track's row is needed exactly when the edit generates one$"):
        removed.tracks_after({"track_id": "x"})
    with pytest.raises(ValueError, match="exactly when the edit generates one"):
        redo.tracks_after()


@pytest.mark.parametrize("action, kwargs, message", [
    ("add", {}, "^adding a track needs a caption$"), ("add", {"caption": " "}, "^adding a track needs a caption$"),
    ("regenerate", {"track_id": "t9"}, r"^track 't9' is not in the current mix of 'v'; its tracks are \['t0', 't1'\]$"),
    ("swap", {}, r"^action must be one of \('add', 'regenerate', 'remove'\), got 'swap'$"),
])
def test_impossible_edits_are_refused_with_their_reason(action, kwargs, message, edit_state):
    with pytest.raises(EditError, match=message):
        make_plan(edit_state(), action, **kwargs)
    with pytest.raises(EditError, match=r"^'t0' is the only track of 'v'; a video keeps at least one track$"):
        make_plan(edit_state(1), "remove", track_id="t0")


# --- the committed state an edit starts from (load_video_state, on stored rows) -----------------------------


def _track(track_id: str, version: int, supersedes: int | None = None, position: int = 0) -> dict:
    return {"video_id": "v", "track_id": track_id, "version": version, "supersedes": supersedes,
            "position": position, "caption": f"{track_id} v{version}", "seed": version, "method": "nag", "steps": 2,
            "uri": f"memory://x/{track_id}/v{version}.flac", "sha256": "0" * 64, "duration_s": 1.0,
            "sample_rate": 16000, "gain_db": 1.5}


def _commit(root, version: int, tracks: list[dict], mix_tracks: list[tuple[str, int]] | None, status: str = "ok",
            legacy_mix: bool = False) -> None:
    """One version's rows: new track rows, the mix of ``mix_tracks`` (track id, version) and the videos row."""
    u = tables.video_unit("v", version)
    if tracks:
        tables.write_rows(root, "tracks", "r", tracks, unit=u)
    if mix_tracks is not None:
        tables.write_rows(root, "mixes", "r", [{
            "video_id": "v", "version": version, "supersedes": version - 1 if version > 1 else None,
            "track_ids": [t for t, _ in mix_tracks], "track_versions": None if legacy_mix else [v for _, v in mix_tracks],
            "uri": f"memory://x/mix/v{version}.flac", "sha256": "0" * 64}], unit=u)
    tables.write_rows(root, "videos", "r", [{"video_id": "v", "version": version, "video_uri": "/v.mp4",
                                            "status": status, "n_captions": len(mix_tracks or [])}], unit=u)


@pytest.fixture
def edited(root):
    """Run r, video v: v1 made t0, t1, t2; v2 regenerated t1; v3 removed t2; a v4 attempt failed."""
    tables.write_rows(root, "runs", "r", [{"status": "completed", "model_id": "m",
                                          "params_json": json.dumps({"params": {"seed": 3, "steps": 2}})}], unit="r")
    _commit(root, 1, [_track("t0", 1), _track("t1", 1, position=1), _track("t2", 1, position=2)],
            [("t0", 1), ("t1", 1), ("t2", 1)])
    _commit(root, 2, [_track("t1", 2, supersedes=1, position=1)], [("t0", 1), ("t1", 2), ("t2", 1)])
    _commit(root, 3, [], [("t0", 1), ("t1", 2)])
    _commit(root, 4, [], None, status="failed")
    return root


def test_the_state_is_the_latest_finished_version_and_the_exact_track_versions_of_its_mix(edited):
    state = load_video_state(edited.url, "r", "v")
    assert state["params"] == {"seed": 3, "steps": 2}
    assert state["video"]["version"] == 3 and state["video"]["status"] == "ok" and "created_at" not in state["video"]
    assert state["mix"]["version"] == 3 and state["mix"]["track_ids"] == ["t0", "t1"]
    assert [(t["track_id"], t["version"]) for t in state["tracks"]] == [("t0", 1), ("t1", 2)]
    assert state["tracks"][1]["caption"] == "t1 v2" and state["tracks"][1]["gain_db"] == 1.5
    assert all("created_at" not in t for t in [state["mix"], *state["tracks"]])
    assert state["used_track_ids"] == ["t0", "t1", "t2"]  # a removed track's id is never reused
    plan = make_plan(state, "add", caption="A door knocks.")
    assert plan.generate.track_id == "t3" and plan.version == 4 and plan.supersedes_mix == 3


def test_a_mix_written_before_track_versions_uses_each_tracks_latest_version(root):
    tables.write_rows(root, "runs", "r", [{"status": "completed", "model_id": "m",
                                          "params_json": json.dumps({"params": {}})}], unit="r")
    _commit(root, 1, [_track("t0", 1), _track("t1", 1, position=1)], [("t0", 1), ("t1", 1)])
    _commit(root, 2, [_track("t0", 2, supersedes=1)], [("t0", 2), ("t1", 1)], legacy_mix=True)
    state = load_video_state(root.url, "r", "v")
    assert [(t["track_id"], t["version"]) for t in state["tracks"]] == [("t0", 2), ("t1", 1)]


def test_an_edit_of_what_is_not_there_is_refused(edited):
    with pytest.raises(EditError, match="no run 'other'"):
        load_video_state(edited.url, "other", "v")
    with pytest.raises(EditError, match=r"video 'w' has no finished version in run 'r'; only finished videos can be "
                                         r"edited \(see `foley report failures`\)$"):
        load_video_state(edited.url, "r", "w")
    _commit(edited, 5, [], [("t0", 1), ("t1", 7)])  # names a track version that has no row
    with pytest.raises(EditError, match=r"mix v5 of 'v' names tracks \['t1 v7'\] that have no rows"):
        load_video_state(edited.url, "r", "v")


def test_a_mix_row_whose_track_versions_do_not_match_its_tracks_is_refused(edited):
    tables.write_rows(edited, "mixes", "r", [{"video_id": "v", "version": 5, "track_ids": ["t0", "t1"],
                                             "track_versions": [1], "uri": "memory://x/m", "sha256": "0" * 64}],
                      unit=tables.video_unit("v", 5))
    _commit(edited, 5, [], None)
    with pytest.raises(ValueError, match="zip"):
        load_video_state(edited.url, "r", "v")
