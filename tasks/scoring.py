"""The scoring stage: ``metrics`` rows for a video's new track versions and its new mix version
(which metrics, and how: :mod:`pipeline.metrics`)."""
from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline.handoffs import OrderedCaptions
from pipeline.metrics import LEVEL_MODEL, evaluator_metrics, evaluator_name, level_metrics, metric_row
from pipeline.models import load_model, model_id
from pipeline.objects import read_audio
from storage.root import open_root
from tasks.retry_policy import IO_RETRY


@task(name="score-video", cache_policy=NO_CACHE, task_run_name="score-{video_id}", **IO_RETRY)
def score_video(storage_url: str, run_id: str, video_id: str, tracks: list[dict], mix: dict, model: str,
                duration: float, ordered: OrderedCaptions | None = None, score_track_ids: list[str] | None = None) -> list[dict]:
    """``metrics`` rows for ``tracks`` (all tracks of the mix, in order) and ``mix`` (its ``mixes`` row).

    Args:
        ordered: :func:`tasks.ordering.order_captions`' result (its scores align with ``tracks``), if any.
        score_track_ids: which tracks get per-track rows (new versions only in an edit); None = all.
    """
    root = open_root(storage_url)
    bundle = load_model(model, duration)
    caption_scores = ordered.scores if ordered is not None else None
    score_ids = {t["track_id"] for t in tracks} if score_track_ids is None else set(score_track_ids)
    waves, rate = [], None
    rows: list[dict] = []
    for k, t in enumerate(tracks):
        wav, rate = read_audio(root, t["uri"])
        wav = wav if wav.ndim == 1 else wav.mean(axis=0)
        waves.append(wav)
        if t["track_id"] not in score_ids:
            continue
        rows += level_metrics(wav, rate, t["track_id"], t["version"])
        if "generation_s" in t:
            rows.append(metric_row(t["track_id"], t["version"], "generation_s", t["generation_s"], model_id(bundle)))
        if "limiter_gain_db" in t:
            rows.append(metric_row(t["track_id"], t["version"], "limiter_gain_db", t["limiter_gain_db"], LEVEL_MODEL))
        if caption_scores is not None and bundle.scorer is not None and k < len(caption_scores):
            rows.append(metric_row(t["track_id"], t["version"], "caption_score", caption_scores[k],
                             evaluator_name(bundle.scorer)))
    mix_wav, mix_rate = read_audio(root, mix["uri"])
    rows += level_metrics(mix_wav, mix_rate, None, mix["version"])
    rows.append(metric_row(None, mix["version"], "limiter_gain_db", mix.get("limiter_gain_db", 0.0), LEVEL_MODEL))
    if bundle.evaluator is not None:
        rows += evaluator_metrics(bundle.evaluator, waves, int(rate), [t["caption"] for t in tracks],
                                  [t["track_id"] for t in tracks], [t["version"] for t in tracks], score_ids,
                                  mix["version"])
    return [{"run_id": run_id, "video_id": video_id, **r} for r in rows if r is not None]
