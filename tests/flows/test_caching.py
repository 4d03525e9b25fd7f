"""Caching by inputs: captions and caption order are persisted and reused across flow runs."""
from __future__ import annotations

import dataclasses

from prefect import flow

from pipeline.handoffs import PreparedVideo
from pipeline.videos import describe_video
from storage.manifest import ManifestEntry
from tasks.captions import resolve_captions
from tasks.ordering import order_captions


@flow
def captions_and_order(entry: ManifestEntry, video: PreparedVideo, model: str, duration: float, order: str):
    captions = resolve_captions(entry, video, model, duration, return_state=True)
    ordered = order_captions(captions.result(), video, model, duration, order, 0, entry.video_id, return_state=True)
    return captions, ordered


def test_a_second_run_reuses_the_cached_results(h):
    from pipeline.models import register_model

    register_model("test:flows-evaluated", h.evaluated_bundle(), h.DURATION)
    video = describe_video(str(h.DEMO_DIR / "sf-10161943.mp4"), "test:flows-evaluated", h.DURATION)
    entry = ManifestEntry(1, "cache-me", video.video_uri, None)
    first = captions_and_order(entry, video, "test:flows-evaluated", h.DURATION, "descending")
    second = captions_and_order(entry, video, "test:flows-evaluated", h.DURATION, "descending")
    assert [s.name for s in first] == ["Completed", "Completed"]
    assert [s.name for s in second] == ["Cached", "Cached"]
    assert second[1].result() == first[1].result()
    assert list(first[1].result().captions) == ["A motor hums steadily.", "A lamp beeps softly."]  # longest first
    other = captions_and_order(dataclasses.replace(entry, captions=("b", "a")), video, "test:flows-evaluated", h.DURATION, "given")
    assert [s.name for s in other] == ["Completed", "Completed"]  # other inputs, other keys
