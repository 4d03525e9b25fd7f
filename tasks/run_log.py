"""The ``runs`` row of a catalog run: begin (and resume checks), finished videos, finish.

A run id can be run again to resume it: videos already finished are skipped. That is only sound
when the second call would produce the same outputs, so :func:`begin_run` refuses a rerun whose
output-affecting parameters differ from the stored ones (the manifest may change: new rows are
simply new videos).
"""
from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
from prefect import task
from prefect.cache_policies import NO_CACHE

from evaluation.registry import parse_eval_weights
from storage import tables, versions
from storage.root import open_root
from storage.cleanup import sweep_table_temporaries
from tasks.logs import logger
from tasks.ordering import ORDER_MODEL
from tasks.retry_policy import IO_RETRY

# Parameters that change what a run writes; a resumed run must repeat them exactly. The device, precision
# and videos per batch are recorded too (and the resolved device and precision in the model info), but a
# killed run may resume on another machine: they change the audio within the bf16 tolerance only.
OUTPUT_PARAMS = ("model", "method", "alpha", "beta", "steps", "order", "seed", "duration", "audio_format",
                 "bit_depth", "resample_48k", "stems_in_video", "max_caption_chars", "captioner")


class RunConflict(ValueError):
    """The run id exists with different output-affecting parameters."""


def code_version() -> str | None:
    """The git commit of the pipeline code, when it runs from a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _existing_run(root, run_id: str) -> dict | None:
    rows = tables.read_table(root, "runs", run_id).to_pylist()
    return rows[0] if rows else None


@task(name="begin-run", cache_policy=NO_CACHE, **IO_RETRY)
def begin_run(storage_url: str, run_id: str, params: dict[str, Any], manifest_uri: str, model: dict) -> dict:
    """Write the run's row as ``running`` (keeping the first start time on a resume).

    Args:
        params: every flow parameter (stored as JSON); ``model``: :func:`tasks.model_info.describe_model`.

    Raises:
        RunConflict: the run exists with different values of :data:`OUTPUT_PARAMS`.
    """
    root = open_root(storage_url)
    root.ensure_exists()
    previous = _existing_run(root, run_id)
    ranked = params.get("order") in ("descending", "ascending")
    can_rank = model["has_scorer"] or ORDER_MODEL in parse_eval_weights(params.get("eval_weights"))
    resolved_order = "given" if ranked and not can_rank else params.get("order")
    if resolved_order != params.get("order"):
        logger().warning("model %s has no caption scorer and ImageBind is not configured (--eval-weights "
                         "imagebind=PATH): captions keep their given order", model["model_id"])
    record = {"params": params, "model": model, "resolved": {"order": resolved_order}}
    if previous is not None:
        old = json.loads(previous["params_json"]).get("params", {})
        changed = [f"{k}: {old.get(k)!r} -> {params.get(k)!r}" for k in OUTPUT_PARAMS if old.get(k) != params.get(k)]
        if changed:
            raise RunConflict(f"run {run_id!r} already exists with other settings ({'; '.join(changed)}); "
                              "rerun it with the same settings to resume it, or use a new run id")
        logger().info("resuming run %r (started %s)", run_id, previous["created_at"])
    swept = sweep_table_temporaries(root, run_id)
    if swept:
        logger().info("removed %d temporary file(s) of interrupted table writes", len(swept))
    tables.write_rows(root, "runs", run_id, [{
        "run_id": run_id, "created_at": previous["created_at"] if previous else datetime.now(UTC),
        "status": "running", "model_id": model["model_id"], "params_json": json.dumps(record, sort_keys=True),
        "catalog_uri": manifest_uri, "code_version": code_version(),
    }], unit=run_id)
    return {"run_id": run_id, "resumed": previous is not None}


@task(name="finished-videos", cache_policy=NO_CACHE, **IO_RETRY)
def finished_videos(storage_url: str, run_id: str) -> list[str]:
    """Ids of the run's videos with a committed (``ok``) version: a resumed run skips them."""
    videos = tables.read_table(open_root(storage_url), "videos", run_id)
    return sorted(set(videos.filter(pc.equal(videos["status"], "ok"))["video_id"].to_pylist()))


@task(name="finish-run", cache_policy=NO_CACHE, **IO_RETRY)
def finish_run(storage_url: str, run_id: str, status: str, compact: bool = True) -> dict:
    """Write the run's final row (counts from the ``videos`` table) and optionally compact its tables.

    Returns ``{"run_id", "status", "n_videos", "n_ok", "n_failed"}``.
    """
    root = open_root(storage_url)
    previous = _existing_run(root, run_id)
    if previous is None:
        raise RuntimeError(f"run {run_id!r} has no row to finish; begin_run must run first")
    rows = tables.read_table(root, "videos", run_id).select(["run_id", "video_id", "version", "status"]).to_pylist()
    latest = versions.latest_rows(rows, versions.VIDEO_KEY)
    n_failed = sum(1 for r in latest.values() if r["status"] == "failed")
    tables.write_rows(root, "runs", run_id, [{
        **{k: previous[k] for k in ("run_id", "created_at", "model_id", "params_json", "catalog_uri", "code_version")},
        "status": status, "finished_at": datetime.now(UTC), "n_videos": len(latest), "n_failed": n_failed,
    }], unit=run_id)
    if compact and status == "completed":
        for table in tables.TABLES:
            tables.compact(root, table, run_id)
    sweep_table_temporaries(root, run_id)
    return {"run_id": run_id, "status": status, "n_videos": len(latest), "n_ok": len(latest) - n_failed,
            "n_failed": n_failed}


def name_flow_run(name: str) -> None:
    """Name the current Prefect flow run ``name`` (the run id), so the UI and ``prefect flow-run ls`` show
    the run, not a random pair of words. Outside a flow run it does nothing."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None or context.flow_run.name == name:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(context.flow_run.id, name=name)
