"""The run-level scoring stage: FD, KL and IS of a run's mixes and tracks against a reference set, per
configured evaluation model, as ``run_metrics`` rows (which, and how: :mod:`evaluation.run_sets`)."""
from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from evaluation.registry import parse_eval_weights
from evaluation.run_sets import score_run_sets
from storage.root import open_root
from tasks.retry_policy import IO_RETRY


@task(name="score-run", cache_policy=NO_CACHE, task_run_name="score-run-{run_id}", **IO_RETRY)
def score_run(storage_url: str, run_id: str, eval_weights: list[str], duration: float, method: str,
              reference_manifest: str | None = None) -> list[dict]:
    """Write (or keep, when up to date) the run's ``run_metrics`` rows; returns them.

    Args:
        eval_weights: the usable evaluation models (``evaluation.registry.EvalPlan.entries``); those with the
            ``set`` role are used.
        duration: every clip is cut to this many seconds (the generation window).
        method: the run's method, recorded in each row.
        reference_manifest: the reference set (default: the source videos' own audio).
    """
    return score_run_sets(open_root(storage_url), run_id, parse_eval_weights(eval_weights), duration, method,
                          reference_manifest=reference_manifest)
