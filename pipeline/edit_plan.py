"""What an edit of one video changes, worked out from its committed rows (the Foley artist's loop).

* ``add``: a new track for a new caption, generated with NAG against all tracks of the current mix;
  it gets a new track id (ids are never reused) and goes last.
* ``regenerate``: a new version of one track (same id, ``supersedes`` = its current version), made
  against all the other tracks, with a new seed unless one is given (and a new caption if given).
* ``remove``: the track leaves the mix; its rows stay (the current soundtrack is the latest mix's
  ``track_ids``).

Every edit makes version ``n + 1`` of the video (``n``: its latest committed version) and mix version
``n + 1`` superseding the current mix; earlier rows are never changed. (Library code; the task is
:func:`tasks.plan.plan_edit`.)
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pipeline.tracks import track_id_for, track_seed
from storage import tables, versions
from storage.root import open_root

ACTIONS = ("add", "regenerate", "remove")
_TRACK_NUMBER = re.compile(r"t(\d+)")


class EditError(ValueError):
    """The edit cannot be made (unknown run, video or track; missing caption; last track)."""


@dataclass(frozen=True)
class NewTrack:
    """The track an edit generates: its id, version (``supersedes`` the one it replaces), mix position,
    caption and seed."""

    track_id: str
    version: int
    supersedes: int | None
    position: int
    caption: str
    seed: int


@dataclass(frozen=True)
class EditPlan:
    """An edit as data: the run's parameters, the new version of the video and of its mix, the track to
    generate (if any) and the rows it is generated against, and the tracks of the new mix.

    The new mix is ``kept`` (``tracks`` rows, in order) with the generated track at index ``new_at``
    (None: the edit generates nothing); :meth:`tracks_after` puts its row there.
    """

    params: dict[str, Any]
    version: int
    supersedes_mix: int
    video: dict[str, Any]
    generate: NewTrack | None
    context: tuple[dict, ...]
    kept: tuple[dict, ...]
    new_at: int | None

    def tracks_after(self, new_row: dict | None = None) -> list[dict]:
        """The ``tracks`` rows of the new mix in order, ``new_row`` (the generated track's row) included."""
        if (new_row is None) != (self.new_at is None):
            raise ValueError("the generated track's row is needed exactly when the edit generates one")
        rows = list(self.kept)
        if new_row is not None:
            rows.insert(self.new_at, new_row)  # type: ignore[arg-type]
        return rows


def _rows(root, table: str, run_id: str, video_id: str) -> list[dict]:
    return tables.read_video(root, table, run_id, video_id).to_pylist()


def load_video_state(storage_url: str, run_id: str, video_id: str) -> dict[str, Any]:
    """The committed state of a video: run parameters, latest ok ``videos`` row, current mix and tracks.

    Call it after :func:`storage.cleanup.reset_video_state`, which removes uncommitted rows.
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
              seed: int | None = None) -> EditPlan:
    """The edit as data (pure function; ``state`` from :func:`load_video_state`)."""
    if action not in ACTIONS:
        raise EditError(f"action must be one of {ACTIONS}, got {action!r}")
    tracks, video_id = state["tracks"], state["video"]["video_id"]
    version = int(state["video"]["version"]) + 1
    run_seed = int(state["params"].get("seed", 0))
    ids = [t["track_id"] for t in tracks]
    common = {"params": state["params"], "version": version, "supersedes_mix": int(state["mix"]["version"]),
              "video": state["video"]}
    if action == "add":
        if not caption or not caption.strip():
            raise EditError("adding a track needs a caption")
        numbers = [int(m.group(1)) for t in state["used_track_ids"] if (m := _TRACK_NUMBER.fullmatch(t))]
        new_id = track_id_for(max(numbers, default=-1) + 1)
        while new_id in state["used_track_ids"]:
            new_id += "x"
        position = max((int(t["position"]) for t in tracks), default=-1) + 1
        new = NewTrack(new_id, 1, None, position, caption.strip(),
                       track_seed(run_seed, video_id, new_id, 1) if seed is None else int(seed))
        return EditPlan(**common, generate=new, context=tuple(tracks), kept=tuple(tracks), new_at=len(tracks))
    if track_id not in ids:
        raise EditError(f"track {track_id!r} is not in the current mix of {video_id!r}; its tracks are {ids}")
    old = tracks[ids.index(track_id)]
    if action == "remove":
        if len(tracks) == 1:
            raise EditError(f"{track_id!r} is the only track of {video_id!r}; a video keeps at least one track")
        kept = tuple(t for t in tracks if t["track_id"] != track_id)
        return EditPlan(**common, generate=None, context=(), kept=kept, new_at=None)
    new_version = int(old["version"]) + 1
    text = caption.strip() if caption and caption.strip() else old["caption"]
    new = NewTrack(track_id, new_version, int(old["version"]), int(old["position"]), text,
                   track_seed(run_seed, video_id, track_id, new_version) if seed is None else int(seed))
    others = tuple(t for t in tracks if t["track_id"] != track_id)
    return EditPlan(**common, generate=new, context=others, kept=others, new_at=ids.index(track_id))
