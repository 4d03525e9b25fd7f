"""Table 1 (composite audio, per mix) and Table 2 (individual tracks) of the paper, from stored runs.

Inputs are the catalog runs of one evaluation (:mod:`evaluation.protocol`), read from the tables, and the
model's audio evaluator (:class:`nag_model.bundle.AudioEvaluator`), whose features stand in for the paper's
models until those are configured; every row names the model it used.

* Table 1, ``scope='composite'``: ``fd`` (Fréchet distance of the mixes' audio embeddings against the
  source videos' own audio), ``kl`` (per video, the mix's class distribution against its source audio's,
  averaged) and ``is`` (inception score of the mixes' class probabilities).
* Table 2, ``scope='tracks'``: ``aa_similarity_mean`` (per video, the mean audio-audio cosine over its track
  pairs: CLAP A-A), ``is`` over all tracks, ``ta_similarity`` (track vs its caption: CLAP T-A) and
  ``target_presence`` (tagger probability of the labels the caption names), from the ``metrics`` rows.

Only videos finished by every run are compared. Each method's difference from the independent run gets a
paired bootstrap 95% CI over videos (:func:`evaluation.stats.paired_mean_difference`) where the metric is a
mean over videos (or tracks); FD and IS are set metrics and get the difference only. Metrics of models that
are not configured are listed in :data:`NOT_CONFIGURED`, never computed from something else.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from evaluation.protocol import INDEPENDENT, Setting
from evaluation.set_metrics import frechet_distance, inception_score, kl_per_clip
from evaluation.stats import paired_mean_difference
from media.audio_io import resample
from media.decode import decode_audio
from media.errors import NoAudioStream
from pipeline.metrics import evaluator_name
from pipeline.objects import open_input, read_audio
from storage.root import Root
from storage.tables import read_table

REFERENCE = "source_audio"
TRACK_METRICS = ("ta_similarity", "target_presence")  # per-track rows of the metrics table
MIX_METRICS = ("aa_similarity_mean",)  # per-mix rows of the metrics table (CLAP A-A)
DOCS = "docs/evaluation.md"
NOT_CONFIGURED = (  # (paper's columns, model): no loader for these weights yet (issue 13, item 1)
    ("FD_PANNs, KL_PANNs, IS", "PANNs CNN14"),
    ("FD_VGG", "VGGish"),
    ("KL_PaSST", "PaSST"),
    ("IB-score", "ImageBind"),
    ("DeSync", "Synchformer (DeSync)"),
    ("CLAP A-A, CLAP T-A", "LAION-CLAP"),
)


def skipped_lines() -> list[str]:
    """One line per paper metric whose model is not configured."""
    return [f"skipped: {cols}: no {model} weights configured (see {DOCS})" for cols, model in NOT_CONFIGURED]


@dataclass
class RunAudio:
    """What one run delivered for each finished video: its mix, its tracks and their metric rows."""

    run_id: str
    video_uri: dict[str, str] = field(default_factory=dict)
    mix_uri: dict[str, str] = field(default_factory=dict)
    track_uris: dict[str, list[str]] = field(default_factory=dict)
    track_values: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # metric -> video -> values
    mix_values: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> video -> value


def _latest(rows: list[dict], key: tuple[str, ...]) -> dict[tuple, dict]:
    out: dict[tuple, dict] = {}
    for r in rows:
        k = tuple(r[c] for c in key)
        if k not in out or r["version"] > out[k]["version"]:
            out[k] = r
    return out


def load_run(root: Root, run_id: str, model: str) -> RunAudio:
    """The latest ok version of each video of a run: mix, tracks (in mix order) and ``model``'s metrics."""
    run = RunAudio(run_id)
    videos = _latest(read_table(root, "videos", run_id).to_pylist(), ("video_id",))
    mixes = _latest(read_table(root, "mixes", run_id).to_pylist(), ("video_id",))
    tracks = {(r["video_id"], r["track_id"], r["version"]): r for r in read_table(root, "tracks", run_id).to_pylist()}
    for (vid,), v in videos.items():
        mix = mixes.get((vid,))
        if v["status"] != "ok" or mix is None or mix["version"] != v["version"]:
            continue
        run.video_uri[vid], run.mix_uri[vid] = v["video_uri"], mix["uri"]
        run.track_uris[vid] = [tracks[(vid, t, n)]["uri"] for t, n in zip(mix["track_ids"], mix["track_versions"])]
    wanted_tracks = {(vid, t, n) for vid in run.mix_uri
                     for t, n in zip(mixes[(vid,)]["track_ids"], mixes[(vid,)]["track_versions"])}
    for m in read_table(root, "metrics", run_id).to_pylist():
        vid = m["video_id"]
        if m["model"] != model or vid not in run.mix_uri:
            continue
        if m["track_id"] is None and m["metric"] in MIX_METRICS and m["version"] == mixes[(vid,)]["version"]:
            run.mix_values.setdefault(m["metric"], {})[vid] = m["value"]
        elif m["metric"] in TRACK_METRICS and (vid, m["track_id"], m["version"]) in wanted_tracks:
            run.track_values.setdefault(m["metric"], {}).setdefault(vid, []).append(m["value"])
    return run


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


def paper_table_rows(root: Root, runs: list[tuple[Setting, str]], evaluator, seconds: float, *,
                     n_resamples: int = 2000) -> list[dict]:
    """The ``evaluations`` rows (without run id, alpha, steps) of every setting; ``runs[0]`` is the baseline.

    Args:
        root: the storage of the runs.
        runs: (setting, catalog run id), the independent run first.
        evaluator: the model's audio evaluator.
        seconds: the length every clip is cut (or padded) to for the set metrics (the generation window).
    """
    if not runs or runs[0][0].method != INDEPENDENT:
        raise ValueError("the first run must be the independent baseline")
    model = evaluator_name(evaluator)
    loaded = [(s, load_run(root, run_id, model)) for s, run_id in runs]
    common = sorted(set.intersection(*(set(r.mix_uri) for _, r in loaded)))
    if not common:
        raise ValueError(f"no video finished in every run of {[r for _, r in runs]}")
    rate = int(evaluator.sample_rate)
    reference = reference_features(evaluator, {v: loaded[0][1].video_uri[v] for v in common}, seconds)
    with_ref = [v for v in common if v in reference]

    per_video: list[dict[tuple[str, str], dict[str, tuple[float, int]]]] = []  # (scope, metric) -> vid -> (sum, n)
    set_values: list[dict[tuple[str, str], tuple[float, int, str | None]]] = []
    for setting, run in loaded:
        pv: dict[tuple[str, str], dict[str, tuple[float, int]]] = defaultdict(dict)
        sv: dict[tuple[str, str], tuple[float, int, str | None]] = {}
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
        for metric, values in run.mix_values.items():
            pv[("tracks", metric)] = {v: (values[v], 1) for v in common if v in values}
        for metric, values in run.track_values.items():
            pv[("tracks", metric)] = {v: (float(np.sum(values[v])), len(values[v])) for v in common if v in values}
        per_video.append(pv)
        set_values.append(sv)

    rows = []
    for (setting, run), pv, sv in zip(loaded, per_video, set_values):
        base_pv, base_sv = per_video[0], set_values[0]
        for key, (value, n, ref) in sv.items():
            diff = None if setting.method == INDEPENDENT or key not in base_sv else value - base_sv[key][0]
            rows.append(_row(*key, model, setting, run.run_id, n, value, diff, None, ref))
        for key, values in pv.items():
            vids = [v for v in common if v in values and v in base_pv.get(key, {})]
            total, count = sum(values[v][0] for v in values), sum(values[v][1] for v in values)
            diff = ci = None
            if setting.method != INDEPENDENT and vids:
                a, b = [values[v] for v in vids], [base_pv[key][v] for v in vids]
                ci = paired_mean_difference([s for s, _ in a], [n for _, n in a], [s for s, _ in b], [n for _, n in b],
                                            n_resamples=n_resamples)
                diff = ci.estimate
            rows.append(_row(*key, model, setting, run.run_id, len(values), total / count, diff, ci,
                             REFERENCE if key[1] == "kl" else None))
    order = {("composite", m): i for i, m in enumerate(("fd", "kl", "is"))}
    order.update({("tracks", m): 10 + i for i, m in enumerate(("aa_similarity_mean", "is", "ta_similarity",
                                                               "target_presence"))})
    settings = {s: i for i, (s, _) in enumerate(loaded)}
    return sorted(rows, key=lambda r: (r["scope"] != "composite", order.get((r["scope"], r["metric"]), 99),
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
