"""The first stage of every video: probe, hash, decode and encode it (:mod:`pipeline.videos`), a few videos
at a time per worker (:mod:`pipeline.host_work`); returns the small :class:`PreparedVideo`."""
from __future__ import annotations

import os

from prefect import task
from prefect.cache_policies import NO_CACHE

from media.errors import MediaUnreadable
from pipeline.handoffs import PreparedVideo
from pipeline.videos import describe_video, with_preparation_slot
from tasks.retry_policy import IO_RETRY


@task(name="prepare-video", cache_policy=NO_CACHE, task_run_name="prepare-{video_uri}", **IO_RETRY)
def prepare_video(video_uri: str, model: str, duration: float, device: str = "cpu",
                  precision: str = "fp32") -> PreparedVideo:
    """Probe + sha256 + frames + features of one video (see :func:`describe_video`)."""
    if not os.fspath(video_uri):
        raise MediaUnreadable("no video URI")
    return with_preparation_slot(describe_video, video_uri, model, duration, device, precision)
