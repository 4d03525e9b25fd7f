"""The task that clears an unfinished attempt of a video before it is (re)processed (:mod:`storage.cleanup`)."""
from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.cleanup import reset_video_state
from storage.root import open_root
from tasks.logs import logger
from tasks.retry_policy import IO_RETRY


@task(name="reset-video", cache_policy=NO_CACHE, task_run_name="reset-{video_id}", **IO_RETRY)
def reset_video(storage_url: str, run_id: str, video_id: str, committed: int | None = None) -> dict:
    """Clear an unfinished attempt of ``video_id`` (:func:`storage.cleanup.reset_video_state`)."""
    state = reset_video_state(open_root(storage_url), run_id, video_id, committed)
    if state["removed"]:
        logger().info("removed %d object(s) of an unfinished attempt of %r", len(state["removed"]), video_id)
    return state
