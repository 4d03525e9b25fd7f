"""Table 1 (composite audio, per mix) and Table 2 (individual tracks) of the paper, from stored runs.

Inputs are the catalog runs of one evaluation (:mod:`evaluation.protocol`), read from the tables, the model's
audio evaluator (:class:`nag_model.bundle.AudioEvaluator`, the demo world's) and the configured evaluation
models (:mod:`evaluation.registry`); every row names the model it used.

* Table 1, ``scope='composite'``: ``fd`` (Fréchet distance of the mixes' embeddings against the reference
  set: the source videos' own audio, or a reference manifest), ``kl`` (per video, the mix's class
  distribution against its reference clip's, averaged), ``is`` (inception score of the mixes), ``ib_score`` and
  ``desync`` (per mix ``metrics`` rows of ImageBind and Synchformer).
* Table 2, ``scope='tracks'``: ``aa_similarity_mean`` (per video, the mean audio-audio cosine over its track
  pairs: CLAP A-A), ``is`` over all tracks, ``ta_similarity`` (track vs its caption: CLAP T-A), ``ib_score``
  (track vs video) and, for the demo evaluator, ``target_presence`` (tagger probability of the labels the
  caption names), from the ``metrics`` rows.

The demo evaluator's FD/KL/IS use its tag probabilities (:func:`evaluation.set_metrics.kl_per_clip`, one-split
IS); the evaluation models' use av-benchmark's forms over their logits (:func:`evaluation.run_sets.set_values`).
Only videos finished by every run are compared. Each method's difference from the independent run gets a
paired bootstrap 95% CI over videos (:func:`evaluation.stats.paired_mean_difference`) where the metric is a
mean over videos (or tracks); FD and IS are set metrics and get the difference only. Metrics whose model is
not configured are listed by :func:`skipped_lines`, never computed from something else.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from evaluation import run_sets
from evaluation.protocol import INDEPENDENT, Setting
from evaluation.registry import CLAP, EVAL_MODELS, IB, SET, SYNC, WeightRef, plan_eval_models
from evaluation.run_sets import SOURCE_AUDIO, RunAudio, cut, fd_method_of, model_features, reference_audio, set_values
from evaluation.set_metrics import frechet_distance, inception_score, kl_per_clip
from evaluation.stats import paired_mean_difference
from media.audio_io import resample
from media.decode import decode_audio
from media.errors import NoAudioStream
from pipeline.metrics import evaluator_name
from pipeline.objects import open_input, read_audio
from storage.root import Root
from storage.tables import read_table

REFERENCE = SOURCE_AUDIO
TRACK_METRICS = ("ta_similarity", "target_presence", "ib_score")  # per-track rows of the metrics table
MIX_METRICS = ("aa_similarity_mean", "ib_score", "desync")  # per-mix rows of the metrics table
COMPOSITE_MIX_METRICS = ("ib_score", "desync")  # mix rows that belong to Table 1 (the others: Table 2)
DOCS = "docs/metrics.md"


def skipped_lines(weights: Mapping[str, WeightRef] | None = None) -> list[str]:
    """One line per paper metric whose model is not configured or cannot be used."""
    return list(plan_eval_models(weights or {}).skipped)


def load_run(root: Root, run_id: str, model: str) -> RunAudio:
    """The latest ok version of each video of a run: mix, tracks (in mix order) and ``model``'s metric rows."""
    return run_sets.load_run(root, run_id, model, TRACK_METRICS, MIX_METRICS)


def _clip(wav: np.ndarray, rate: int, target: int, seconds: float) -> np.ndarray:
    x = resample(wav, rate, target) if rate != target else np.asarray(wav, np.float32)
    n = round(seconds * target)
    return np.pad(x[:n], (0, max(0, n - x.shape[-1])))  # (n,)


def _features(evaluator, waves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) audio embeddings and (N, C) class probabilities of equal-length clips."""
    batch = np.stack(waves).astype(np.float32)  # (N, L)
    return np.asarray(evaluator.embed_audio(batch), np.float64), np.asarray(evaluator.tag(batch), np.float64)


def reference_features(evaluator, video_uris: dict[str, str],
                       seconds: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Embedding and class probabilities of each source video's own audio (videos without audio left out)."""
    out = {}
    for vid, uri in sorted(video_uris.items()):
        try:
            with open_input(uri) as source:
                wav = decode_audio(source, int(evaluator.sample_rate), duration=seconds)
        except NoAudioStream:  # a silent source video: no reference for it
            continue
        emb, tags = _features(evaluator, [_clip(wav, int(evaluator.sample_rate), int(evaluator.sample_rate), seconds)])
        out[vid] = (emb[0], tags[0])
    return out


def _row(scope, metric, model, setting: Setting, run_id, n, value, diff=None, ci=None, reference=None) -> dict:
    return {"scope": scope, "metric": metric, "model": model, "method": setting.method, "beta": setting.beta,
            "caption_order": setting.order, "source_run_id": run_id, "n": int(n), "value": float(value),
            "diff": None if diff is None else float(diff), "diff_low": None if ci is None else float(ci.low),
            "diff_high": None if ci is None else float(ci.high), "reference": reference}


PerVideo = dict[tuple[str, str], dict[str, tuple[float, int]]]  # (scope, metric) -> video -> (sum, count)
SetVals = dict[tuple[str, str], tuple[float, int, str | None]]  # (scope, metric) -> (value, n, reference)


def _metric_rows(run: RunAudio, common: list[str], pv: PerVideo) -> None:
    """Per-video values of the ``metrics`` rows of one run (already filtered to one model) into ``pv``."""
    for metric, values in run.mix_values.items():
        scope = "composite" if metric in COMPOSITE_MIX_METRICS else "tracks"
        pv[(scope, metric)] = {v: (values[v], 1) for v in common if v in values}
    for metric, values in run.track_values.items():
        pv[("tracks", metric)] = {v: (float(np.sum(values[v])), len(values[v])) for v in common if v in values}


def _demo_values(root: Root, loaded, common: list[str], evaluator,
                 seconds: float) -> tuple[list[PerVideo], list[SetVals]]:
    """Table 1/2 values from the bundle's audio evaluator (the demo world's): its embeddings and tag
    probabilities (:func:`evaluation.set_metrics.kl_per_clip`, one-split IS) and its ``metrics`` rows."""
    rate = int(evaluator.sample_rate)
    reference = reference_features(evaluator, {v: loaded[0][1].video_uri[v] for v in common}, seconds)
    with_ref = [v for v in common if v in reference]
    per_video, set_vals = [], []
    for setting, run in loaded:
        pv: PerVideo = defaultdict(dict)
        sv: SetVals = {}
        mixes = [_clip(*read_audio(root, run.mix_uri[v]), rate, seconds) for v in common]
        mix_emb, mix_tags = _features(evaluator, mixes)  # (V, D), (V, C)
        sv[("composite", "is")] = (inception_score(mix_tags), len(common), None)
        idx = [common.index(v) for v in with_ref]
        if len(with_ref) >= 2:
            ref_emb = np.stack([reference[v][0] for v in with_ref])
            sv[("composite", "fd")] = (frechet_distance(mix_emb[idx], ref_emb), len(with_ref), REFERENCE)
        if with_ref:
            kl = kl_per_clip(mix_tags[idx], np.stack([reference[v][1] for v in with_ref]))
            pv[("composite", "kl")] = {v: (float(k), 1) for v, k in zip(with_ref, kl)}
        waves = [_clip(*read_audio(root, u), rate, seconds) for v in common for u in run.track_uris[v]]
        sv[("tracks", "is")] = (inception_score(_features(evaluator, waves)[1]), len(waves), None)
        _metric_rows(run, common, pv)
        per_video.append(pv)
        set_vals.append(sv)
    return per_video, set_vals


def _stored_values(root: Root, run: RunAudio, common: list[str], label: str, reference: str,
                   seconds: float) -> tuple[PerVideo, SetVals] | None:
    """The run's own ``run_metrics`` rows of model ``label`` when they cover exactly the common videos at their
    current versions, with the same reference set and clip length (then nothing is recomputed); else None."""
    versions = [run.version[v] for v in common]
    rows = [r for r in read_table(root, "run_metrics", run.run_id).to_pylist() if r["model"] == label]
    if not rows or any(r["video_ids"] != common or r["video_versions"] != versions or r["seconds"] != seconds
                       or r["reference"] not in (reference, None) for r in rows):
        return None
    pv: PerVideo = defaultdict(dict)
    sv: SetVals = {}
    for r in rows:
        scope = "composite" if r["scope"] == "mixes" else "tracks"
        if r["per_video"] is not None:
            pv[(scope, r["metric"])] = {v: (x, 1) for v, x in zip(r["video_ids"], r["per_video"]) if x is not None}
        else:
            sv[(scope, r["metric"])] = (r["value"], r["n"], r["reference"])
    return pv, sv


def _set_model_values(root: Root, loaded, common: list[str], model: Any, seconds: float,
                      reference_manifest: str | None, fd_method: str) -> tuple[list[PerVideo], list[SetVals]]:
    """Table 1 FD/KL/IS and Table 2 IS of one ``set`` evaluation model on the common videos
    (:func:`evaluation.run_sets.set_values`: av-benchmark's forms), taken from a run's ``run_metrics`` rows where
    they cover exactly these videos (:func:`_stored_values`), else computed here."""
    rate = int(model.sample_rate)
    label = reference_manifest or REFERENCE
    name = str(getattr(model, "name", ""))
    reference: dict[str, Any] = {}

    def ref_features():
        if not reference:
            refs = reference_audio({v: loaded[0][1].video_uri[v] for v in common}, rate, seconds, reference_manifest)
            reference["ids"] = sorted(refs)
            reference["feats"] = (model_features(model, [cut(refs[v], rate, rate, seconds) for v in reference["ids"]])
                                  if refs else None)
        return reference["feats"], reference["ids"]

    per_video, set_vals = [], []
    for setting, run in loaded:
        stored = _stored_values(root, run, common, name, label, float(seconds)) if name else None
        if stored is not None:
            per_video.append(stored[0])
            set_vals.append(stored[1])
            continue
        pv: PerVideo = defaultdict(dict)
        sv: SetVals = {}
        gen = model_features(model, [cut(*read_audio(root, run.mix_uri[v]), rate, seconds) for v in common])
        for metric, value in set_values(gen, common, *ref_features(), fd_method=fd_method).items():
            if value.per_video is not None:
                pv[("composite", metric)] = {v: (x, 1) for v, x in value.per_video.items()}
            else:
                sv[("composite", metric)] = (value.value, value.n, None if metric == "is" else label)
        tracks = [cut(*read_audio(root, u), rate, seconds) for v in common for u in run.track_uris[v]]
        if tracks and "is" in (tv := set_values(model_features(model, tracks), [], None, [])):
            sv[("tracks", "is")] = (tv["is"].value, tv["is"].n, None)
        per_video.append(pv)
        set_vals.append(sv)
    return per_video, set_vals


def _rows(model: str, loaded, common: list[str], per_video: list[PerVideo], set_vals: list[SetVals],
          reference: str, n_resamples: int) -> list[dict]:
    """The ``evaluations`` rows of one model: set metrics with their difference, means over videos with the
    difference's paired bootstrap CI."""
    rows = []
    base_pv, base_sv = per_video[0], set_vals[0]
    for (setting, run), pv, sv in zip(loaded, per_video, set_vals):
        for key, (value, n, ref) in sv.items():
            diff = None if setting.method == INDEPENDENT or key not in base_sv else value - base_sv[key][0]
            rows.append(_row(*key, model, setting, run.run_id, n, value, diff, None, ref))
        for key, values in pv.items():
            if not values:
                continue
            vids = [v for v in common if v in values and v in base_pv.get(key, {})]
            total, count = sum(values[v][0] for v in values), sum(values[v][1] for v in values)
            diff = ci = None
            if setting.method != INDEPENDENT and vids:
                a, b = [values[v] for v in vids], [base_pv[key][v] for v in vids]
                ci = paired_mean_difference([s for s, _ in a], [n for _, n in a], [s for s, _ in b], [n for _, n in b],
                                            n_resamples=n_resamples)
                diff = ci.estimate
            rows.append(_row(*key, model, setting, run.run_id, len(values), total / count, diff, ci,
                             reference if key[1] == "kl" else None))
    return rows


def paper_table_rows(root: Root, runs: list[tuple[Setting, str]], evaluator, seconds: float, *,
                     n_resamples: int = 2000, eval_models: Mapping[str, Any] | None = None,
                     reference_manifest: str | None = None) -> list[dict]:
    """The ``evaluations`` rows (without run id, alpha, steps) of every setting; ``runs[0]`` is the baseline.

    Args:
        root: the storage of the runs.
        runs: (setting, catalog run id), the independent run first.
        evaluator: the model's audio evaluator (the demo world's), or None.
        seconds: the length every clip is cut to for the set metrics (the generation window).
        n_resamples: bootstrap resamples per CI.
        eval_models: loaded evaluation models by registry name (:mod:`evaluation.registry`): ``set`` models give
            FD/KL/IS (computed here on the common videos), the others' per-track and per-mix ``metrics`` rows
            (CLAP T-A/A-A, IB-score, DeSync) are read back.
        reference_manifest: the reference set of FD/KL for the evaluation models (default: the source audio).
    """
    if not runs or runs[0][0].method != INDEPENDENT:
        raise ValueError("the first run must be the independent baseline")
    plain = [(s, run_sets.load_run(root, run_id)) for s, run_id in runs]
    common = sorted(set.intersection(*(set(r.mix_uri) for _, r in plain)))
    if not common:
        raise ValueError(f"no video finished in every run of {[r for _, r in runs]}")
    rows: list[dict] = []
    if evaluator is not None:
        model = evaluator_name(evaluator)
        loaded = [(s, load_run(root, run_id, model)) for s, run_id in runs]
        rows += _rows(model, loaded, common, *_demo_values(root, loaded, common, evaluator, seconds), REFERENCE,
                      n_resamples)
    for name, m in (eval_models or {}).items():
        label = str(getattr(m, "name", None) or name)
        loaded = [(s, load_run(root, run_id, label)) for s, run_id in runs]
        per_video, set_vals = [], []
        if SET in EVAL_MODELS[name].roles:
            per_video, set_vals = _set_model_values(root, loaded, common, m, seconds, reference_manifest,
                                                    fd_method_of(name))
        else:
            per_video, set_vals = [defaultdict(dict) for _ in loaded], [{} for _ in loaded]
        if {CLAP, IB, SYNC} & set(EVAL_MODELS[name].roles):
            for (_, run), pv in zip(loaded, per_video):
                _metric_rows(run, common, pv)
        rows += _rows(label, loaded, common, per_video, set_vals, reference_manifest or REFERENCE, n_resamples)
    order = {("composite", m): i for i, m in enumerate(("fd", "kl", "is", "ib_score", "desync"))}
    order.update({("tracks", m): 10 + i for i, m in enumerate(("aa_similarity_mean", "is", "ta_similarity",
                                                               "ib_score", "target_presence"))})
    settings = {s: i for i, (s, _) in enumerate(plain)}
    models = list(dict.fromkeys(r["model"] for r in rows))
    return sorted(rows, key=lambda r: (r["scope"] != "composite", order.get((r["scope"], r["metric"]), 99),
                                       models.index(r["model"]),
                                       settings[Setting(r["method"], r["caption_order"], r["beta"])]))


def display_table(rows: list[dict], scope: str) -> pa.Table:
    """One scope's rows as printed: setting, metric, model, n, value, diff vs independent, its 95% CI."""
    out = []
    for r in rows:
        if r["scope"] != scope:
            continue
        ci = "" if r["diff_low"] is None else f"[{r['diff_low']:+.4g}, {r['diff_high']:+.4g}]"
        out.append({"metric": r["metric"], "setting": Setting(r["method"], r["caption_order"], r["beta"]).label,
                    "model": r["model"], "n": r["n"], "value": r["value"],
                    "diff_vs_independent": "" if r["diff"] is None else f"{r['diff']:+.4g}", "ci95": ci})
    return pa.Table.from_pylist(out, schema=pa.schema([("metric", pa.string()), ("setting", pa.string()),
                                                       ("model", pa.string()), ("n", pa.int32()),
                                                       ("value", pa.float64()), ("diff_vs_independent", pa.string()),
                                                       ("ci95", pa.string())]))
