"""The scoring stage: ``metrics`` rows for a video's new track versions and its new mix version
(which metrics, and how: :mod:`pipeline.metrics`; the evaluation models configured with ``eval_weights`` are
loaded once per process by :mod:`evaluation.registry`)."""
from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from evaluation.registry import CLAP, EVAL_MODELS, IB, SYNC, load_eval_model, model_label, parse_eval_weights
from pipeline.handoffs import OrderedCaptions, PreparedVideo
from pipeline.metrics import (LEVEL_MODEL, clap_metrics, desync_metrics, evaluator_metrics, evaluator_name,
                              frame_request, ib_metrics, level_metrics, metric_row, model_frames)
from pipeline.models import load_model, model_id
from pipeline.objects import read_audio
from storage.root import open_root
from tasks.retry_policy import IO_RETRY


@task(name="score-video", cache_policy=NO_CACHE, task_run_name="score-{video_id}", **IO_RETRY)
def score_video(storage_url: str, run_id: str, video_id: str, tracks: list[dict], mix: dict, model: str,
                duration: float, ordered: OrderedCaptions | None = None, score_track_ids: list[str] | None = None,
                video: PreparedVideo | None = None, eval_weights: list[str] | None = None) -> list[dict]:
    """``metrics`` rows for ``tracks`` (all tracks of the mix, in order) and ``mix`` (its ``mixes`` row).

    Args:
        ordered: :func:`tasks.ordering.order_captions`' result (its scores align with ``tracks``), if any.
        score_track_ids: which tracks get per-track rows (new versions only in an edit); None = all.
        video: the source video (IB-score and DeSync need its frames; without it they are not computed).
        eval_weights: the usable evaluation models (``evaluation.registry.EvalPlan.entries``): CLAP, ImageBind
            and DeSync rows (the set models' rows are run-level, :mod:`tasks.run_scoring`).
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
        scorer = ordered.scorer if ordered is not None and ordered.scorer else (
            evaluator_name(bundle.scorer) if bundle.scorer is not None else None)  # ImageBind or the model's
        if caption_scores is not None and scorer is not None and k < len(caption_scores):  # the score that ordered it
            rows.append(metric_row(t["track_id"], t["version"], "caption_score", caption_scores[k], scorer))
    mix_wav, mix_rate = read_audio(root, mix["uri"])
    rows += level_metrics(mix_wav, mix_rate, None, mix["version"])
    rows.append(metric_row(None, mix["version"], "limiter_gain_db", mix.get("limiter_gain_db", 0.0), LEVEL_MODEL))
    if bundle.evaluator is not None:
        rows += evaluator_metrics(bundle.evaluator, waves, int(rate), [t["caption"] for t in tracks],
                                  [t["track_id"] for t in tracks], [t["version"] for t in tracks], score_ids,
                                  mix["version"])
    if eval_weights:
        rows += _eval_model_rows(eval_weights, waves, int(rate), mix_wav, int(mix_rate), tracks, mix, score_ids,
                                 video, duration)
    return [{"run_id": run_id, "video_id": video_id, **r} for r in rows if r is not None]


def _eval_model_rows(eval_weights: list[str], waves: list, rate: int, mix_wav, mix_rate: int, tracks: list[dict],
                     mix: dict, score_ids: set[str], video: PreparedVideo | None, duration: float) -> list[dict]:
    """Rows of the configured CLAP, ImageBind and DeSync models over the first ``duration`` seconds."""
    mix_wav = mix_wav if mix_wav.ndim == 1 else mix_wav.mean(axis=0)
    waves = [w[: round(duration * rate)] for w in waves]
    mix_wav = mix_wav[: round(duration * mix_rate)]
    if mix_rate != rate:  # the tracks' rate for every model below
        from media.audio_io import resample

        mix_wav = resample(mix_wav, mix_rate, rate)
    ids, versions = [t["track_id"] for t in tracks], [t["version"] for t in tracks]
    rows: list[dict] = []
    frame_models = []
    for name, ref in parse_eval_weights(eval_weights).items():
        roles = EVAL_MODELS[name].roles
        if not ({CLAP, IB, SYNC} & set(roles)):
            continue
        model = load_eval_model(name, ref)
        label = model_label(name, model)
        if CLAP in roles:
            rows += clap_metrics(model, label, waves, rate, [t["caption"] for t in tracks], ids, versions, score_ids,
                                 mix["version"])
        for role in (IB, SYNC):
            if role in roles and video is not None and video.width and video.height:
                frame_models.append((role, model, label, frame_request(model, role, video.height, video.width)))
    if frame_models:
        frames = model_frames(video.video_uri, [r for *_, r in frame_models], duration)
        for (role, model, label, _), f in zip(frame_models, frames):
            if role == IB:
                rows += ib_metrics(model, label, f, waves, mix_wav, rate, ids, versions, score_ids, mix["version"])
            else:
                rows += desync_metrics(model, label, f, mix_wav, rate, mix["version"])
    return rows
