"""Edit one video of a finished run: the Foley artist's loop.

Add a track for a new caption (generated with NAG against the current mix), regenerate one track
(against all the others, with a new seed by default), or remove one. The mix, the muxed video, the
spectrograms and the metrics are rebuilt as a new version; every earlier row stays as it was (new
rows say which version they supersede). The run's own settings (model, duration, alpha, beta,
steps, formats) are reused so the edited soundtrack stays consistent with the rest of the run.
"""
from __future__ import annotations

import contextlib
from typing import Any

from prefect import flow

from evaluation.registry import SET, parse_eval_weights, plan_eval_models
from nag_model.settings import DEFAULTS
from pipeline.gpu_slot import GPU_SLOT, release_gpu_slots
from pipeline.models import check_placement_names
from pipeline.params import AudioOutput, TrackSettings
from storage.manifest import ManifestEntry
from storage.root import open_root
from tasks.captions import DEFAULT_MAX_CAPTION_CHARS, resolve_captions
from tasks.gpu_slot import ensure_gpu_slots
from tasks.mixing import mix_video
from tasks.plan import plan_edit
from tasks.prepare import prepare_video
from tasks.record import record_edit
from tasks.report import publish_report
from tasks.reset import reset_video
from tasks.run_scoring import score_run
from tasks.scoring import score_video
from tasks.synthesis import synthesize_track


@flow(name="edit-video", flow_run_name="{run_id}: {action} on {video_id}",
      on_completion=[release_gpu_slots], on_failure=[release_gpu_slots], on_crashed=[release_gpu_slots])
def edit_video(
    run_id: str,
    video_id: str,
    action: str,
    caption: str | None = None,
    track_id: str | None = None,
    seed: int | None = None,
    storage_url: str = "file://./foley-out",
    model: str | None = None,
    method: str = DEFAULTS.method,
    gpu_slot: str | None = GPU_SLOT,
    device: str = "auto",
    precision: str = "auto",
) -> dict[str, Any]:
    """Add, regenerate or remove one track of a finished video and rebuild its mix as a new version.

    Args:
        action: ``"add"`` (needs ``caption``), ``"regenerate"`` (needs ``track_id``; ``caption`` replaces
            the track's caption) or ``"remove"`` (needs ``track_id``).
        seed: the new track's seed; by default derived from the run seed, video, track and version.
        model: defaults to the run's model.
        method: how the new track is generated (NAG by default).
        device, precision: where the new track is generated (as :func:`flows.catalog.catalog_run`'s).

    Returns:
        ``{"run_id", "video_id", "version", "action", "track_id", "track_ids"}``: the new video/mix version
        and the tracks of the new mix.
    """
    check_placement_names(device, precision)
    storage_url = open_root(storage_url).url
    reset_video(storage_url, run_id, video_id)  # what an interrupted edit left behind goes first
    plan = plan_edit(storage_url, run_id, video_id, action, caption, track_id, seed)
    params = plan.params
    model, duration = model or params["model"], params["duration"]
    synthesis = TrackSettings(method, params["alpha"], params["beta"], params["steps"])
    output = AudioOutput(params["audio_format"], params["bit_depth"], params["resample_48k"], params["stems_in_video"])
    version, new = plan.version, plan.generate
    eval_weights = params.get("eval_weights") or None  # the run's evaluation models, as it scored them
    try:
        video, new_rows = plan.video["video_uri"], []
        if new is not None:
            video = prepare_video(video, model, duration, device, precision)
            resolve_captions(ManifestEntry(0, video_id, video.video_uri, (new.caption,)), video, model, duration,
                             params.get("max_caption_chars", DEFAULT_MAX_CAPTION_CHARS))
            if gpu_slot:
                ensure_gpu_slots(gpu_slot)
            new_rows = [synthesize_track(storage_url, run_id, video_id, video, new, list(plan.context), model=model,
                                         duration=duration, synthesis=synthesis, output=output,
                                         gpu_slot_name=gpu_slot, device=device, precision=precision)]
        tracks = plan.tracks_after(new_rows[0] if new_rows else None)
        mix = mix_video(storage_url, run_id, video_id, video, tracks, output, version=version,
                        supersedes=plan.supersedes_mix)
        metrics = score_video(storage_url, run_id, video_id, tracks, mix, model, duration,
                              score_track_ids=[r["track_id"] for r in new_rows],
                              video=video if new is not None else None, eval_weights=eval_weights)
        record_edit(storage_url, run_id, video_id, version,
                    {**plan.video, "version": version, "n_captions": len(tracks)}, new_rows, mix, metrics)
    except Exception:
        with contextlib.suppress(Exception):  # the first error is the one to report
            reset_video(storage_url, run_id, video_id)  # no partial version stays behind
        raise
    if eval_weights and plan_eval_models(parse_eval_weights(eval_weights)).with_role(SET):
        score_run(storage_url, run_id, eval_weights, duration, params["method"], params.get("reference_manifest"),
                  return_state=True)  # the run's set metrics now cover the new version (a failure is logged)
    publish_report(storage_url, run_id, return_state=True)  # the report shows the new version and its history
    return {"run_id": run_id, "video_id": video_id, "version": version, "action": action,
            "track_id": new.track_id if new else track_id, "track_ids": [t["track_id"] for t in tracks]}
