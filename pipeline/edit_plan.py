"""What an edit of one video changes, worked out from its committed rows (the Foley artist's loop).

* ``add``: a new track for a new caption, generated with NAG against all tracks of the current mix;
  it gets a new track id (ids are never reused) and goes last.
* ``regenerate``: a new version of one track (same id, ``supersedes`` = its current version), made
  against all the other tracks, with a new seed unless one is given (and a new caption if given).
* ``remove``: the track leaves the mix; its rows stay (the current soundtrack is the latest mix's
  ``track_ids``).

Every edit makes version ``n + 1`` of the video (``n``: its latest committed version) and mix version
``n + 1`` superseding the current mix; earlier rows are never changed.
"""
from __future__ import annotations

import json
import re
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from storage import tables, versions
from storage.root import open_root
from tasks.retry_policy import IO_RETRY
from tasks.synthesis import track_id_for, track_seed

ACTIONS = ("add", "regenerate", "remove")
_TRACK_NUMBER = re.compile(r"t(\d+)")


class EditError(ValueError):
    """The edit cannot be made (unknown run, video or track; missing caption; last track)."""


def _rows(root, table: str, run_id: str, video_id: str) -> list[dict]:
    return tables.read_video(root, table, run_id, video_id).to_pylist()


def load_video_state(storage_url: str, run_id: str, video_id: str) -> dict[str, Any]:
    """The committed state of a video: run parameters, latest ok ``videos`` row, current mix and tracks.

    Call it after :func:`tasks.cleanup.reset_video_state`, which removes uncommitted rows.
    """
    root = open_root(storage_url)
    runs = tables.read_table(root, "runs", run_id).to_pylist()
    if not runs:
        raise EditError(f"no run {run_id!r} under {root.url}")
    params = json.loads(runs[0]["params_json"])["params"]
    videos = _rows(root, "videos", run_id, video_id)
    committed = versions.committed_version(videos)
    if not committed:
        raise EditError(f"video {video_id!r} has no finished version in run {run_id!r}; only finished videos "
                        "can be edited (see `foley report failures`)")
    video = next(r for r in videos if r["version"] == committed and r["status"] == "ok")
    (mix,) = versions.latest_rows(_rows(root, "mixes", run_id, video_id), versions.VERSIONED["mixes"]).values()
    track_rows = _rows(root, "tracks", run_id, video_id)
    tracks = {(row["track_id"], row["version"]): row for row in track_rows}
    latest = {k[-1]: r["version"] for k, r in versions.latest_rows(track_rows, versions.VERSIONED["tracks"]).items()}
    # ``latest`` fills in the track versions of mixes written before ``track_versions`` existed
    in_mix = list(zip(mix["track_ids"], mix["track_versions"] or [latest.get(t) for t in mix["track_ids"]],
                      strict=True))  # the exact track versions the mix was built from
    missing = [f"{t} v{v}" for t, v in in_mix if (t, v) not in tracks]
    if missing:
        raise EditError(f"mix v{mix['version']} of {video_id!r} names tracks {missing} that have no rows")
    strip = {"created_at"}
    return {"params": params, "video": {k: v for k, v in video.items() if k not in strip},
            "mix": {k: v for k, v in mix.items() if k not in strip},
            "tracks": [{k: v for k, v in tracks[t].items() if k not in strip} for t in in_mix],
            "used_track_ids": sorted(latest)}


def make_plan(state: dict[str, Any], action: str, *, caption: str | None = None, track_id: str | None = None,
              seed: int | None = None) -> dict[str, Any]:
    """The edit as data (pure function): the new version, the track to generate (if any) and its context.

    Returns ``{"version", "supersedes_mix", "generate": {...} | None, "context": [track rows],
    "tracks_after": [track rows or "<new>"], "video": video row}``.
    """
    if action not in ACTIONS:
        raise EditError(f"action must be one of {ACTIONS}, got {action!r}")
    tracks, video_id = state["tracks"], state["video"]["video_id"]
    version = int(state["video"]["version"]) + 1
    run_seed = int(state["params"].get("seed", 0))
    ids = [t["track_id"] for t in tracks]
    plan: dict[str, Any] = {"version": version, "supersedes_mix": int(state["mix"]["version"]), "generate": None,
                            "context": [], "tracks_after": list(tracks), "video": state["video"]}
    if action == "add":
        if not caption or not caption.strip():
            raise EditError("adding a track needs a caption")
        numbers = [int(m.group(1)) for t in state["used_track_ids"] if (m := _TRACK_NUMBER.fullmatch(t))]
        new_id = track_id_for(max(numbers, default=-1) + 1)
        while new_id in state["used_track_ids"]:
            new_id += "x"
        position = max((int(t["position"]) for t in tracks), default=-1) + 1
        plan["generate"] = {"track_id": new_id, "version": 1, "supersedes": None, "position": position,
                            "caption": caption.strip(),
                            "seed": track_seed(run_seed, video_id, new_id, 1) if seed is None else int(seed)}
        plan["context"] = list(tracks)
        plan["tracks_after"] = [*tracks, "<new>"]
        return plan
    if track_id not in ids:
        raise EditError(f"track {track_id!r} is not in the current mix of {video_id!r}; its tracks are {ids}")
    old = tracks[ids.index(track_id)]
    if action == "remove":
        if len(tracks) == 1:
            raise EditError(f"{track_id!r} is the only track of {video_id!r}; a video keeps at least one track")
        plan["tracks_after"] = [t for t in tracks if t["track_id"] != track_id]
        return plan
    new_version = int(old["version"]) + 1
    text = caption.strip() if caption and caption.strip() else old["caption"]
    plan["generate"] = {"track_id": track_id, "version": new_version, "supersedes": int(old["version"]),
                        "position": int(old["position"]), "caption": text,
                        "seed": track_seed(run_seed, video_id, track_id, new_version) if seed is None else int(seed)}
    plan["context"] = [t for t in tracks if t["track_id"] != track_id]
    plan["tracks_after"] = [t if t["track_id"] != track_id else "<new>" for t in tracks]
    return plan


@task(name="plan-edit", cache_policy=NO_CACHE, task_run_name="plan-{video_id}-{action}", **IO_RETRY)
def plan_edit(storage_url: str, run_id: str, video_id: str, action: str, caption: str | None = None,
              track_id: str | None = None, seed: int | None = None) -> dict[str, Any]:
    """Read the video's committed state and plan the edit: ``{"params", "plan"}`` (see :func:`make_plan`)."""
    state = load_video_state(storage_url, run_id, video_id)
    return {"params": state["params"], "plan": make_plan(state, action, caption=caption, track_id=track_id, seed=seed)}
