"""Planning edits from committed state (pure) and the retry policy of the tasks."""
from __future__ import annotations

import pytest
from prefect.states import Failed

from media.errors import CorruptMedia, MediaUnreadable
from pipeline.edit_plan import EditError, make_plan
from pipeline.tracks import track_seed
from tasks import manifest, mixing, prepare, record, reset, run_log, scoring, synthesis
from tasks.retry_policy import IO_RETRIES, is_transient

NEW = {"track_id": "new"}  # the generated track's row


def test_add_gets_a_new_id_goes_last_and_is_made_against_all(edit_state):
    plan = make_plan(edit_state(), "add", caption=" A door knocks. ")
    g = plan.generate
    assert g.track_id == "t8" and g.version == 1 and g.supersedes is None and g.position == 2
    assert g.caption == "A door knocks." and g.seed == track_seed(3, "v", "t8", 1)
    assert [t["track_id"] for t in plan.context] == ["t0", "t1"] and plan.tracks_after(NEW)[-1] is NEW
    assert plan.version == 2 and plan.supersedes_mix == 1


def test_regenerate_supersedes_and_is_made_against_the_others(edit_state):
    plan = make_plan(edit_state(3), "regenerate", track_id="t1", seed=11)
    g = plan.generate
    assert (g.track_id, g.version, g.supersedes, g.seed, g.caption) == ("t1", 2, 1, 11, "c1")
    assert [t["track_id"] for t in plan.context] == ["t0", "t2"]
    assert plan.tracks_after(NEW)[1] is NEW
    assert make_plan(edit_state(3), "regenerate", track_id="t1").generate.seed == track_seed(3, "v", "t1", 2)


def test_remove_drops_the_track_from_the_mix_only(edit_state):
    plan = make_plan(edit_state(3), "remove", track_id="t0")
    assert plan.generate is None and [t["track_id"] for t in plan.tracks_after()] == ["t1", "t2"]


@pytest.mark.parametrize("action, kwargs, fragment", [
    ("add", {}, "needs a caption"), ("regenerate", {"track_id": "t9"}, "not in the current mix"),
    ("swap", {}, "action must be one of"),
])
def test_impossible_edits_are_refused(action, kwargs, fragment, edit_state):
    with pytest.raises(EditError, match=fragment):
        make_plan(edit_state(), action, **kwargs)
    with pytest.raises(EditError, match="only track"):
        make_plan(edit_state(1), "remove", track_id="t0")


def test_io_tasks_retry_with_backoff_and_the_gpu_step_does_not():
    io_tasks = [manifest.read_manifest, prepare.prepare_video, mixing.mix_video, scoring.score_video,
                record.record_video, record.record_rejected, reset.reset_video, run_log.begin_run, run_log.finish_run]
    transient, permanent = OSError("connection reset"), FileNotFoundError(2, "No such file")
    for t in io_tasks:
        assert t.retries == IO_RETRIES == 3, t.name
        assert t.retry_delay_seconds == [2.0, 4.0, 8.0] and t.retry_jitter_factor == 0.2, t.name
        # The condition Prefect calls with the failed state: a network hiccup is retried, a missing file is not.
        assert t.retry_condition_fn(t, None, Failed(data=transient)) is True, t.name
        assert t.retry_condition_fn(t, None, Failed(data=permanent)) is False, t.name
        assert t.retry_condition_fn(t, None, Failed(data=ValueError("bad caption"))) is False, t.name
    for t in (synthesis.synthesize_tracks, synthesis.synthesize_track):
        assert t.retries == 0


def test_only_transient_errors_are_retried():
    assert is_transient(OSError("connection reset")) and is_transient(TimeoutError())
    assert is_transient(MediaUnreadable("s3 timeout"))
    missing = MediaUnreadable("cannot read x")
    missing.__cause__ = FileNotFoundError(2, "No such file")
    assert not is_transient(missing) and not is_transient(FileNotFoundError())
    assert not is_transient(CorruptMedia("bad")) and not is_transient(ValueError("caption")) and not is_transient(None)
