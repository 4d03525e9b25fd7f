"""NAG-effect benchmark in the SynthFoley world (issue 3): does Negative Audio Guidance cut
cross-track leakage while keeping the target?

    python benchmarks/nag_effect.py --bundle demo --clips 100 --steps 25 --out docs/nag_effect.json

For held-out test clips with 3 to 5 captions it generates one track per caption, step by step:
  - independent (beta = 0: every track is plain CFG, the paper's MMAudio baseline),
  - negative prompting (the earlier captions as the negative prompt, paper form),
  - NAG with beta 1.0, 1.5, 2.0 (alpha 4.5),
all in the scorer's descending order, and NAG beta 1.5 also in ascending and random order and in
the ground-truth order of prominence (loudest source first: what a perfect scorer would give).
A caption keeps its noise seed in every method and order, and the first track of any order is
the same CFG track, so it is generated once per caption.

Per method it reports leakage (tracks 2..K against their earlier tracks) and target presence by four judges:
  - the demo audio tagger: a (track, earlier caption of another kind) pair leaks when the tagger
    hears the earlier caption's kind (probability >= 0.5) in the track; the target is present when
    it hears the caption's own kind;
  - the ground-truth NNLS judge (`synthfoley.judges.StemMels`): the track's mel magnitudes are
    decomposed (non-negative least squares) onto the clip's true, time-aligned source stems; a pair
    leaks when the earlier source explains at least 20% of the track's energy (the mean share is
    reported too), the target is present when its own stem explains at least 20%;
  - the null-calibrated stem-correlation judge (`synthfoley.judges.StemCorrelationJudge`): remove the
    track's own true stem by NNLS (|STFT| 1024/256, power 0.5, unit-normalised), correlate the rest with
    the earlier source's true stem; a pair leaks when that is above the 95th percentile of the same score
    against stems of kinds absent from the clip, taken from other clips (`--null-clips`); presence
    correlates the track with its own stem against the same null. Its false-alarm rate on the null
    (leave one out) is reported as corr_null_false_alarm;
  - the time-free NNLS judge (`StemMels` too): the same decomposition on the
    time-averaged mel spectra, so a sound counts wherever in time it is. The time-aligned judges call a
    mistimed sound the leakage of whatever sounds at those times (`benchmarks/judge_timing_check.py`);
    this one does not;
and presence by the two NNLS judges together, as the picture allows (`presence_video`): the time-aligned
verdict where the picture fixes when the source sounds (on screen, or a continuous sound:
`SourceInfo.timed_by_video`), the time-free one for off-screen event sources, whose times nothing shows;
and the paper's A-A separability (mean cosine, tagger embedding, between every pair of tracks of a
video, lower is better), the cosine between track and true stem (A-A sim to GT), between caption and
track (T-A sim), and between the sum of all tracks and the ground-truth mix (mix sim). The same
numbers on the ground-truth stems are a reference row.

Leakage is counted over (track, earlier track) pairs, so which pairs exist depends on the order: a
method in another order is compared with independent generation judged over the same pairs. The
independent tracks do not depend on the order, so they are judged once per order used
("independent, ascending", ...; plain "independent" is the descending order). Every method's
difference from independent generation in its own order gets a paired bootstrap 95% CI over clips
(`evaluation.stats.paired_rate_difference`; relative too for leakage). With --out the per-track,
per-pair and per-clip rows are written as Parquet beside the JSON, so the table can be recomputed
or re-analysed. Clips come from a split (`--split`, default test) or any seed range (`--seeds`).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from nag_model.bundle import load_bundle
from nag_model.generator import Track, TrackSettings
from nag_model.settings import DEFAULTS
from audio.loudness import normalize_loudness
from synthfoley.captions import parse_caption
from synthfoley.judges import NNLS_SHARE as GT_SHARE, StemCorrelationJudge, StemMels, as_the_picture_allows
from synthfoley.splits import SPLITS, captioned_seeds, seed_range, split_seeds
from evaluation.stats import paired_rate_difference
from synthfoley.world import SR, make_clip, plan_clip
from training.data import _clip_index

N_SAMPLES = 8 * SR  # the demo model's 8 s

METHODS = {  # name -> (settings kwargs, order)
    "independent": (dict(method="independent"), "descending"),
    "negative prompt": (dict(method="negative-prompt"), "descending"),
    "NAG beta 1.0": (dict(method="nag", beta=1.0), "descending"),
    "NAG beta 1.5": (dict(method="nag", beta=1.5), "descending"),
    "NAG beta 2.0": (dict(method="nag", beta=2.0), "descending"),
    "NAG beta 1.5, ascending": (dict(method="nag", beta=1.5), "ascending"),
    "NAG beta 1.5, random": (dict(method="nag", beta=1.5), "random"),
    "NAG beta 1.5, loudest first (oracle)": (dict(method="nag", beta=1.5), "loudest"),
}
ORDER_LABELS = {"ascending": "ascending", "random": "random", "loudest": "loudest first (oracle)"}  # descending: none
BASELINE = "independent"


def baseline_name(order: str) -> str:
    """The name of independent generation judged in `order` (its pairs are that order's pairs)."""
    return BASELINE if order == "descending" else f"{BASELINE}, {ORDER_LABELS[order]}"


def select_clips(n: int, seed: int = 0, *, split: str = "test", seeds: str | None = None, null_clips: int = 40,
                 min_captions: int = 3, max_captions: int = 5) -> tuple[list[int], list[int]]:
    """(clip seeds to evaluate, clip seeds whose stems form the calibrated judge's null); cheap: plans only.

    The evaluated clips are the first n with min..max captions among `split`'s seeds drawn with `seed`
    (the same clips for the same arguments as before the null existed), or among the seeds of the range
    `seeds` ('START:STOP'). The null clips are the next `null_clips` candidates after the last evaluated
    one (any number of captions; past STOP when the range runs out), so the two sets never overlap."""
    if seeds is not None:
        rng = seed_range(seeds)
        candidates = [*rng, *range(rng.stop, rng.stop + null_clips)]
        chosen = captioned_seeds(rng, n, min_captions, max_captions)
    else:
        candidates = [int(s) for s in split_seeds(split, 20 * n + 100, seed)]
        chosen = captioned_seeds(candidates, n, min_captions, max_captions)
    if not chosen:
        raise ValueError(f"no clip with {min_captions}..{max_captions} captions among the candidates")
    after = candidates.index(chosen[-1]) + 1
    return chosen, candidates[after:after + null_clips]


def test_clips(n: int, seed: int, min_captions: int = 3, max_captions: int = 5) -> list[int]:
    """The first n test-split clips (drawn with seed) that have min..max captions."""
    return select_clips(n, seed, min_captions=min_captions, max_captions=max_captions, null_clips=0)[0]


def null_judge(seeds: list[int]) -> StemCorrelationJudge:
    """The calibrated judge whose null stems are every sounding stem of these clips (first 8 s)."""
    stems, kinds = [], []
    for s in seeds:
        clip = make_clip(s, with_frames=False)
        for info, stem in zip(clip.sources, clip.stems):
            if info.sounding:
                stems.append(np.asarray(stem[:N_SAMPLES], np.float32))
                kinds.append(info.kind)
    return StemCorrelationJudge(np.stack(stems), kinds)


def evaluate_clip(bundle, judge, clip, tracks: list[Track], stems: dict[str, np.ndarray], method: str,
                  order: str = "descending") -> dict:
    """Rows of one ordered set of tracks: {"tracks": [...], "pairs": [...], "clip": {...}}.

    A track row holds its target presence by each judge, a pair row (track k, earlier track j) its
    leakage by each judge (for pairs of different kinds) and the two tracks' A-A similarity."""
    ev, codec = bundle.evaluator, bundle.codec
    labels = ev.labels
    wavs = np.stack([t.waveform for t in tracks])
    probs = ev.tag(wavs)
    emb = ev.embed_audio(wavs)
    gt_emb = ev.embed_audio(np.stack([stems[t.caption] for t in tracks]))
    text = ev.embed_text([t.caption for t in tracks])
    stem_captions = list(stems)
    clip_kinds = [parse_caption(c)[0] for c in stem_captions]
    kinds = [parse_caption(t.caption)[0] for t in tracks]
    base = {"clip_seed": int(clip.seed), "method": method}
    stem_mels = StemMels(codec, [stems[c] for c in stem_captions])
    timed = {i.caption: i.timed_by_video for i in clip.sources if i.sounding}
    track_rows, pair_rows = [], []
    for k, t in enumerate(tracks):
        shares, spectral = stem_mels.shares(wavs[k])
        others = [j for j in range(k) if kinds[j] != kinds[k]]
        presence, leaks = judge.judge(wavs[k], stems[t.caption], [stems[tracks[j].caption] for j in others], clip_kinds)
        own, own_timefree = float(shares[stem_captions.index(t.caption)]), float(spectral[stem_captions.index(t.caption)])
        track_rows.append(base | {
            "position": k, "caption": t.caption, "kind": kinds[k],
            "tag_prob": float(probs[k, labels.index(kinds[k])]), "presence_tag": bool(probs[k, labels.index(kinds[k])] >= 0.5),
            "own_share": own, "presence_gt": own >= GT_SHARE,
            "presence_timefree": own_timefree >= GT_SHARE, "timed_by_video": timed[t.caption],
            "presence_video": as_the_picture_allows(timed[t.caption], own, own_timefree) >= GT_SHARE,
            "corr_score": presence.score, "corr_threshold": presence.threshold, "presence_corr": presence.detected,
            "aa": float(emb[k] @ gt_emb[k]), "ta": float(emb[k] @ text[k])})
        verdicts = dict(zip(others, leaks))
        for j in range(k):
            row = base | {"position": k, "earlier": j, "caption": t.caption, "earlier_caption": tracks[j].caption,
                          "same_kind": kinds[j] == kinds[k], "sep": float(emb[k] @ emb[j])}
            if j in verdicts:
                share, v = float(shares[stem_captions.index(tracks[j].caption)]), verdicts[j]
                row |= {"tag_prob": float(probs[k, labels.index(kinds[j])]),
                        "leak_tag": bool(probs[k, labels.index(kinds[j])] >= 0.5),
                        "leak_share": share, "leak_gt": share >= GT_SHARE,
                        "leak_timefree": bool(spectral[stem_captions.index(tracks[j].caption)] >= GT_SHARE),
                        "corr_score": v.score, "corr_threshold": v.threshold, "leak_corr": v.detected,
                        "corr_null_false_alarm": v.null_false_alarm}
            pair_rows.append(row)
    mix = sum(t.waveform.astype(np.float64) for t in tracks)
    mix_emb = ev.embed_audio(normalize_loudness(mix, bundle.sample_rate, -20.0)[None].astype(np.float32))[0]
    gt_mix_emb = ev.embed_audio(np.asarray(clip.mix[:len(mix)], np.float32)[None])[0]
    return {"tracks": track_rows, "pairs": pair_rows,
            "clip": base | {"order": order, "tracks": len(tracks), "mix": float(mix_emb @ gt_mix_emb)}}


# metric -> (table, column, which rows: "all", "later" (tracks 2..K) or "leak" (pairs of different kinds))
METRICS: dict[str, tuple[str, str, str]] = {
    "leak_tag": ("pairs", "leak_tag", "leak"),
    "leak_gt": ("pairs", "leak_gt", "leak"),
    "leak_share": ("pairs", "leak_share", "leak"),
    "leak_corr": ("pairs", "leak_corr", "leak"),
    "leak_timefree": ("pairs", "leak_timefree", "leak"),
    "presence_later": ("tracks", "presence_tag", "later"),
    "presence_all": ("tracks", "presence_tag", "all"),
    "presence_gt": ("tracks", "presence_gt", "all"),
    "presence_corr": ("tracks", "presence_corr", "all"),
    "presence_timefree": ("tracks", "presence_timefree", "all"),
    "presence_video": ("tracks", "presence_video", "all"),
    "sep": ("pairs", "sep", "all"),
    "aa": ("tracks", "aa", "all"),
    "ta": ("tracks", "ta", "all"),
    "mix": ("clips", "mix", "all"),
    "corr_null_false_alarm": ("pairs", "corr_null_false_alarm", "leak"),
}
# metrics whose difference from independent gets a paired bootstrap CI (relative too for leakage)
CI_METRICS = ("leak_tag", "leak_gt", "leak_corr", "leak_timefree", "presence_later", "presence_gt", "presence_corr",
              "presence_timefree", "presence_video")


def _values(rows: dict, metric: str, method: str) -> list[tuple[int, float]]:
    """(clip seed, value) of every item a metric averages over, for one method."""
    table, column, which = METRICS[metric]
    out = []
    for r in rows[table]:
        if r["method"] != method or (which == "later" and r["position"] == 0):
            continue
        if r.get(column) is None:  # not a pair of different kinds, or rows from before this judge
            continue
        out.append((r["clip_seed"], float(r[column])))
    return out


def _per_clip(values: list[tuple[int, float]], clips: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(sum, count) of the values of each clip, in `clips` order."""
    index = {c: i for i, c in enumerate(clips)}
    num, den = np.zeros(len(clips)), np.zeros(len(clips))
    for c, v in values:
        num[index[c]] += v
        den[index[c]] += 1
    return num, den


def summarise(rows: dict, *, n_resamples: int = 2000, seed: int = 0) -> tuple[dict, dict]:
    """(table: {method: {metric: mean}}, ci: {method: {"baseline": name, metric: {diff: [est, low, high], rel: [...]}}}).

    A method's baseline is independent generation judged in the method's order (`baseline_name`)."""
    methods = list(dict.fromkeys(r["method"] for r in rows["clips"]))
    clips = list(dict.fromkeys(r["clip_seed"] for r in rows["clips"]))
    table = {}
    for m in methods:
        table[m] = {}
        for metric in METRICS:
            vals = [v for _, v in _values(rows, metric, m)]
            table[m][metric] = round(float(np.mean(vals)), 4) if vals else None
        table[m]["pairs"] = len(_values(rows, "leak_tag", m))
    ci = {}
    order = {r["method"]: r.get("order", "descending") for r in rows["clips"]}  # rows before orders: descending
    for m in methods:
        base = baseline_name(order[m])
        if base not in methods or base == m or m.startswith(f"{BASELINE}, "):
            continue
        ci[m] = {"baseline": base}
        for metric in CI_METRICS:
            ours, theirs = _values(rows, metric, m), _values(rows, metric, base)
            if not ours or not theirs:  # a judge these rows predate
                continue
            a, b = _per_clip(ours, clips), _per_clip(theirs, clips)
            entry = {"diff": paired_rate_difference(*a, *b, n_resamples=n_resamples, seed=seed)}
            if metric.startswith("leak"):
                entry["rel"] = paired_rate_difference(*a, *b, relative=True, n_resamples=n_resamples, seed=seed)
            ci[m][metric] = {k: [round(x, 4) for x in (v.estimate, v.low, v.high)] for k, v in entry.items()}
    return table, ci


def _report(bundle_path, rows, n_done, n_planned, steps, alpha, seed, seconds, selection: dict) -> dict:
    table, ci = summarise(rows, seed=seed) if rows["clips"] else ({}, {})
    return {"bundle": bundle_path, "clips": n_done, "clips_planned": n_planned, "steps": steps, "alpha": alpha,
            "seed": seed, "seconds": round(seconds, 1), **selection, "table": table, "ci": ci}


def run_clip(bundle, judge, clip_seed: int, steps: int, seed: int, alpha: float, methods: dict) -> dict:
    """Every method on one clip, plus the ground-truth stems as one more method: {"tracks", "pairs", "clips"} rows."""
    gen = bundle.generator()
    clip = make_clip(clip_seed)
    video = bundle.video_features(clip.frames[_clip_index(len(clip.frames))], clip.frames)
    stems = {info.caption: np.asarray(stem[:gen.num_samples], np.float32)
             for info, stem in zip(clip.sources, clip.stems) if info.sounding}
    captions = list(clip.captions)
    scores = bundle.scorer.score(video.clip_f, captions)
    desc = [c for _, c in sorted(zip(scores, captions), key=lambda x: -x[0])]
    rng = np.random.default_rng([seed, clip_seed])
    orders = {"descending": desc, "ascending": desc[::-1], "random": list(rng.permutation(desc)),
              "loudest": captions}  # the world's captions are loudest first: the order a perfect scorer gives
    cap_seed = {c: clip_seed * 10 + i for i, c in enumerate(captions)}
    cfg = {c: gen.generate_track(video, c, cap_seed[c], TrackSettings(method="independent", alpha=alpha, steps=steps))
           for c in captions}
    out: dict[str, list] = {"tracks": [], "pairs": [], "clips": []}

    def add(result: dict) -> None:
        out["tracks"] += result["tracks"]
        out["pairs"] += result["pairs"]
        out["clips"].append(result["clip"])

    for name, (kw, order) in methods.items():
        settings = TrackSettings(alpha=alpha, steps=steps, **kw)
        tracks = [cfg[orders[order][0]]]
        for c in orders[order][1:]:
            tracks.append(cfg[c] if kw["method"] == "independent" else
                          gen.generate_track(video, c, cap_seed[c], settings, context=tracks))
        add(evaluate_clip(bundle, judge, clip, tracks, stems, name, order))
    for order in dict.fromkeys(o for _, o in methods.values()):  # independent, judged over each order's pairs
        if order != "descending":
            add(evaluate_clip(bundle, judge, clip, [cfg[c] for c in orders[order]], stems, baseline_name(order), order))
    gt_tracks = [Track(c, 0, TrackSettings(), stems[c], bundle.sample_rate) for c in desc]
    add(evaluate_clip(bundle, judge, clip, gt_tracks, stems, "ground-truth stems"))
    return out


_WORKER: dict = {}


def _init_worker(bundle_path: str, threads: int, null_seeds: list[int]) -> None:
    torch.set_num_threads(threads)
    _WORKER["bundle"] = load_bundle(bundle_path)
    _WORKER["judge"] = null_judge(null_seeds)


def _run_clip_in_worker(args: tuple) -> dict:
    return run_clip(_WORKER["bundle"], _WORKER["judge"], *args)


def write_rows(rows: dict, out_json: str) -> list[str]:
    """The rows as Parquet beside the JSON: <stem>.tracks.parquet, <stem>.pairs.parquet, <stem>.clips.parquet."""
    stem = str(Path(out_json).with_suffix(""))
    paths = []
    for name, table in rows.items():
        columns = list(dict.fromkeys(k for r in table for k in r))  # every key, in first-seen order
        path = f"{stem}.{name}.parquet"
        pq.write_table(pa.Table.from_pylist([{k: r.get(k) for k in columns} for r in table]), path)
        paths.append(path)
    return paths


def read_rows(out_json: str) -> dict:
    """The rows `write_rows` wrote beside this JSON (`with_video_presence` added)."""
    stem = str(Path(out_json).with_suffix(""))
    rows = {name: pq.read_table(f"{stem}.{name}.parquet").to_pylist() for name in ("tracks", "pairs", "clips")}
    return with_video_presence(rows)


def with_video_presence(rows: dict) -> dict:
    """Track rows written before `presence_video` existed gain it and `timed_by_video`, from the clips' plans
    (`plan_clip`: cheap, nothing rendered). Rows from before the time-free judge are left without it."""
    timed: dict[int, dict[str, bool]] = {}
    for r in rows["tracks"]:
        if r.get("presence_video") is not None or r.get("presence_timefree") is None:
            continue
        if r["clip_seed"] not in timed:
            timed[r["clip_seed"]] = {i.caption: i.timed_by_video for i in plan_clip(r["clip_seed"]).infos if i.sounding}
        r["timed_by_video"] = timed[r["clip_seed"]][r["caption"]]
        r["presence_video"] = bool(as_the_picture_allows(r["timed_by_video"], r["presence_gt"], r["presence_timefree"]))
    return rows


def run(bundle_path: str, n_clips: int, steps: int, seed: int, alpha: float, progress: bool = True,
        on_clip=None, methods: dict | None = None, workers: int = 1, threads: int = 1, split: str = "test",
        seeds: str | None = None, null_clips: int = 40) -> tuple[dict, dict]:
    """(report, rows). on_clip(report, rows) is called after every clip (partial results survive a stop);
    methods: a subset of METHODS (default all); split / seeds: where the clips come from (`select_clips`);
    workers > 1 shares the clips among processes (each clip's results do not depend on which process ran it)."""
    methods = METHODS if methods is None else methods
    clip_seeds, null_seeds = select_clips(n_clips, seed, split=split, seeds=seeds, null_clips=null_clips)
    selection = {"split": None if seeds else split, "seed_range": seeds, "clip_seeds": clip_seeds,
                 "null_clip_seeds": null_seeds}
    rows: dict[str, list] = {"tracks": [], "pairs": [], "clips": []}
    jobs = [(s, steps, seed, alpha, methods) for s in clip_seeds]
    t0 = time.time()
    if workers > 1:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(bundle_path, threads, null_seeds))
        clip_results = pool.map(_run_clip_in_worker, jobs)
    else:
        _init_worker(bundle_path, threads, null_seeds)
        pool, clip_results = None, map(_run_clip_in_worker, jobs)
    try:
        for ci, clip_result in enumerate(tqdm(clip_results, total=len(jobs), desc="clips", disable=not progress)):
            for name, table in clip_result.items():
                rows[name] += table
            if on_clip is not None:
                on_clip(_report(bundle_path, rows, ci + 1, len(clip_seeds), steps, alpha, seed, time.time() - t0,
                                selection), rows)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return _report(bundle_path, rows, len(clip_seeds), len(clip_seeds), steps, alpha, seed, time.time() - t0,
                   selection), rows


COLUMNS = [("leak_tag", "leakage (tagger)"), ("leak_gt", "leakage (GT NNLS)"), ("leak_share", "leaked energy share (GT)"),
           ("leak_corr", "leakage (calibrated corr)"), ("leak_timefree", "leakage (time-free NNLS)"),
           ("presence_later", "target presence (tagger, tracks 2..K)"),
           ("presence_all", "target presence (tagger, all)"), ("presence_gt", "target presence (GT NNLS)"),
           ("presence_corr", "target presence (calibrated corr)"), ("presence_timefree", "target presence (time-free NNLS)"),
           ("presence_video", "target presence (GT NNLS where the picture times the source, else time-free)"),
           ("sep", "A-A separability (lower is better)"),
           ("aa", "A-A sim to GT stem"), ("ta", "T-A sim"), ("mix", "mix sim"), ("pairs", "pairs")]


def _fmt(entry: list[float], percent: bool) -> str:
    est, low, high = (100 * v if percent else v for v in entry)
    unit = "%" if percent else ""
    return f"{est:+.{0 if percent else 3}f}{unit} ({low:+.{0 if percent else 3}f}{unit}, {high:+.{0 if percent else 3}f}{unit})"


def markdown(report: dict) -> str:
    """The means table, then the paired bootstrap 95% CIs of every method's difference from independent."""
    lines = ["| method | " + " | ".join(c for _, c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for m, r in report["table"].items():
        lines.append(f"| {m} | " + " | ".join(str(r.get(k)) for k, _ in COLUMNS) + " |")
    if report.get("ci"):
        names = dict(COLUMNS)
        lines += ["", "Difference from independent generation in the same order (its pairs are the method's pairs), "
                      "paired bootstrap over clips, 95% CI (leakage: also relative):", "",
                  "| method | compared with | " + " | ".join(names[k] for k in CI_METRICS) + " |",
                  "|---" * (len(CI_METRICS) + 2) + "|"]
        for m, r in report["ci"].items():
            cells = [r.get("baseline", BASELINE)]
            for k in CI_METRICS:
                if k not in r:  # rows from before this judge
                    cells.append("n/a")
                    continue
                cell = _fmt(r[k]["diff"], False)
                if "rel" in r[k] and all(np.isfinite(r[k]["rel"])):
                    cell += "; " + _fmt(r[k]["rel"], True)
                cells.append(cell)
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default="demo")
    p.add_argument("--clips", type=int, default=100, help="clips with 3 to 5 captions to evaluate")
    p.add_argument("--split", default="test", choices=sorted(SPLITS), help="draw the clips from this split")
    p.add_argument("--seeds", default=None, metavar="START:STOP",
                   help="take the clips from these clip seeds instead of a split (any range, e.g. 20000000:20001000)")
    p.add_argument("--null-clips", type=int, default=60,
                   help="clips (after the evaluated ones) whose stems form the calibrated judge's null")
    p.add_argument("--steps", type=int, default=DEFAULTS.steps)
    p.add_argument("--alpha", type=float, default=DEFAULTS.alpha)
    p.add_argument("--seed", type=int, default=0, help="draws the split's clips, the random order and the bootstrap")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the clips")
    p.add_argument("--out", default=None,
                   help="write the report as JSON here, and the per-item rows as <stem>.{tracks,pairs,clips}.parquet")
    p.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                   help="a subset of the methods, by name (e.g. 'independent' 'NAG beta 1.5'); default all")
    p.add_argument("--beta", type=float, nargs="+", default=(),
                   help="extra NAG betas to run in descending order (e.g. --beta 3 5)")
    p.add_argument("--from-rows", default=None, metavar="JSON",
                   help="generate nothing: recompute the table and CIs from the Parquet rows beside this JSON "
                        "(and write them to --out if given)")
    args = p.parse_args(argv)
    if args.from_rows:
        rows = read_rows(args.from_rows)
        table, ci = summarise(rows, seed=args.seed)
        report = json.loads(Path(args.from_rows).read_text()) | {"table": table, "ci": ci}
        if args.out:  # the recomputed report, and the rows with any column added since they were written
            Path(args.out).write_text(json.dumps(report, indent=2))
            write_rows(rows, args.out)
        print(markdown(report))
        return
    command = "python benchmarks/nag_effect.py " + shlex.join(argv if argv is not None else sys.argv[1:])

    def write(report: dict, rows: dict) -> None:
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({**report, "command": command}, indent=2))
            write_rows(rows, args.out)

    methods = {m: METHODS[m] for m in args.methods} if args.methods else dict(METHODS)
    methods |= {f"NAG beta {b:g}": (dict(method="nag", beta=b), "descending") for b in args.beta}
    report, rows = run(args.bundle, args.clips, args.steps, args.seed, args.alpha, on_clip=write, methods=methods,
                       workers=args.workers, threads=args.threads, split=args.split, seeds=args.seeds,
                       null_clips=args.null_clips)
    write(report, rows)
    print(markdown(report))


if __name__ == "__main__":
    main()
