"""The first stage of every video: probe, hash, decode and encode it (:mod:`pipeline.videos`), one video
at a time per worker; returns the small :class:`PreparedVideo`."""
from __future__ import annotations

import os

from prefect import task
from prefect.cache_policies import NO_CACHE

from media.errors import MediaUnreadable
from pipeline.handoffs import PreparedVideo
from pipeline.videos import describe_video, one_at_a_time
from tasks.retry_policy import IO_RETRY


@task(name="prepare-video", cache_policy=NO_CACHE, task_run_name="prepare-{video_uri}", **IO_RETRY)
def prepare_video(video_uri: str, model: str, duration: float) -> PreparedVideo:
    """Probe + sha256 + frames + features of one video (see :func:`describe_video`)."""
    if not os.fspath(video_uri):
        raise MediaUnreadable("no video URI")
    return one_at_a_time(describe_video, video_uri, model, duration)
