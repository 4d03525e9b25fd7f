"""The task that plans an edit of one video from its committed rows (:mod:`pipeline.edit_plan`)."""
from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline.edit_plan import EditPlan, load_video_state, make_plan
from tasks.retry_policy import IO_RETRY


@task(name="plan-edit", cache_policy=NO_CACHE, task_run_name="plan-{video_id}-{action}", **IO_RETRY)
def plan_edit(storage_url: str, run_id: str, video_id: str, action: str, caption: str | None = None,
              track_id: str | None = None, seed: int | None = None) -> EditPlan:
    """Read the video's committed state and plan the edit (:func:`pipeline.edit_plan.make_plan`)."""
    state = load_video_state(storage_url, run_id, video_id)
    return make_plan(state, action, caption=caption, track_id=track_id, seed=seed)
