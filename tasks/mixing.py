"""The mixing stage: the paper's mix (sum of the tracks at -20 LUFS under a -1 dBTP true-peak ceiling),
the muxed video and the spectrograms of one video, on a delivery worker
(:mod:`pipeline.delivery`, :mod:`pipeline.delivery_workers`)."""
from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline.delivery import mix_and_deliver
from pipeline.delivery_workers import on_delivery_worker
from pipeline.handoffs import PreparedVideo
from pipeline.params import AudioOutput
from tasks.retry_policy import IO_RETRY


@task(name="mix-video", cache_policy=NO_CACHE, task_run_name="mix-{video_id}-v{version}", **IO_RETRY)
def mix_video(storage_url: str, run_id: str, video_id: str, video: PreparedVideo | str, tracks: list[dict],
              output: AudioOutput, version: int = 1, supersedes: int | None = None) -> dict:
    """Mix ``tracks`` (``tracks`` rows in generation order, each with its ``gain_db``) into mix version
    ``version`` and store it all. ``video``: the prepared video, or its URI alone (an edit that generates
    nothing does not prepare it).

    Returns:
        The ``mixes`` row.
    """
    if not tracks:
        raise ValueError(f"{video_id}: nothing to mix (no tracks)")
    video_uri = video if isinstance(video, str) else video.video_uri
    return on_delivery_worker(mix_and_deliver, storage_url, run_id, video_id, video_uri, tracks, output, version,
                              supersedes)
