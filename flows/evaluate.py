"""``foley evaluate``: the paper's evaluation protocol over a manifest of captioned videos.

For every setting of :func:`evaluation.protocol.protocol_settings` (independent, negative prompting, NAG at
each beta and caption order) run one ordinary catalog run on the same videos, captions, seeds and steps;
then compute Table 1 (composite) and Table 2 (per track) with paired bootstrap CIs against independent
(:mod:`evaluation.paper_tables`) and store them as ``evaluations`` rows under the evaluation id. Runs that
already finished are resumed (their finished videos skipped), so an evaluation can be run again by id.
"""
from __future__ import annotations

from typing import Any, Callable

from evaluation.paper_tables import paper_table_rows
from evaluation.registry import EvalModelUnavailable, load_eval_model, parse_eval_weights, plan_eval_models
from evaluation.protocol import PAPER_ALPHA, PAPER_BETA, PAPER_STEPS, protocol_settings
from flows.catalog import catalog_run, new_run_id
from pipeline.models import load_model
from pipeline.params import check_run_id
from storage.root import open_root
from storage.tables import write_rows


def evaluate(manifest_uri: str, storage_url: str = "file://./foley-out", evaluation_id: str | None = None,
             model: str = "demo", alpha: float = PAPER_ALPHA, betas: tuple[float, ...] = (PAPER_BETA,),
             steps: int = PAPER_STEPS, orders: tuple[str, ...] = ("descending",), seed: int = 0,
             duration: float = 8.0, n_resamples: int = 2000,
             on_run: Callable[[str], None] | None = None, eval_weights: list[str] | None = None,
             reference_manifest: str | None = None) -> dict[str, Any]:
    """Run every setting as a catalog run, then compute, store and return the paper's tables.

    Args:
        manifest_uri: the captioned videos (id, video_uri, captions).
        storage_url: where the runs and the ``evaluations`` rows go.
        evaluation_id: names the evaluation; its runs are ``<id>-<setting>`` (default: a new id).
        model, alpha, steps, seed, duration: as for :func:`flows.catalog.catalog_run`, the same for every run.
        betas, orders: NAG's beta sweep and caption orders (the baseline runs at ``orders[0]``).
        n_resamples: bootstrap resamples per CI.
        on_run: called with each run id before it starts (the CLI prints it).
        eval_weights: the paper's evaluation models (:mod:`evaluation.registry` entries); each catalog run
            scores with them, and the tables get their rows (a model that is not configured or cannot be used:
            one ``skipped`` line, no row).
        reference_manifest: the reference set of FD and KL (default: the source videos' own audio).

    Returns:
        ``{"evaluation_id", "runs": [(label, run_id, status)], "rows": [...], "skipped": [lines]}``.
    """
    evaluation_id = check_run_id(evaluation_id) if evaluation_id else new_run_id().replace("run-", "eval-", 1)
    storage_url = open_root(storage_url).url
    settings = protocol_settings(tuple(betas), tuple(orders))
    plan = plan_eval_models(parse_eval_weights(eval_weights))
    runs = []
    for setting in settings:
        run_id = check_run_id(setting.run_id(evaluation_id))
        if on_run is not None:
            on_run(run_id)
        result = catalog_run(manifest_uri, storage_url=storage_url, run_id=run_id, model=model,
                             method=setting.method, alpha=alpha, beta=setting.beta if setting.beta is not None
                             else PAPER_BETA, steps=steps, order=setting.order, seed=seed, duration=duration,
                             report=False, eval_weights=plan.entries(), reference_manifest=reference_manifest)
        runs.append((setting, run_id, result["status"]))
    evaluator = load_model(model, duration).evaluator
    skipped = list(plan.skipped)
    models = {}
    for name, ref in plan.usable.items():
        try:
            models[name] = load_eval_model(name, ref)
        except EvalModelUnavailable as exc:
            skipped.append(f"skipped: {exc}")
    rows = []
    if evaluator is None and not models:
        skipped.insert(0, f"skipped: every metric: model {model!r} has no audio evaluator and no evaluation model "
                          f"is configured (--eval-weights)")
    else:
        rows = paper_table_rows(open_root(storage_url), [(s, r) for s, r, _ in runs], evaluator, duration,
                                n_resamples=n_resamples, eval_models=models, reference_manifest=reference_manifest)
        rows = [{**r, "alpha": float(alpha), "steps": int(steps)} for r in rows]
        for label in dict.fromkeys(r["model"] for r in rows):
            mine = {r["metric"] for r in rows if r["model"] == label and r["scope"] == "composite"}
            for metric, least in (("fd", 2), ("kl", 1)):
                if "is" in mine and metric not in mine:
                    skipped.append(f"skipped: {metric} ({label}): needs the reference audio of at least {least} "
                                   f"compared video(s); too few of them have one")
        write_rows(open_root(storage_url), "evaluations", evaluation_id, rows, unit="tables")
    return {"evaluation_id": evaluation_id, "storage_url": storage_url,
            "runs": [(s.label, r, status) for s, r, status in runs], "rows": rows, "skipped": skipped}
