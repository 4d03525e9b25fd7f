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

Per method it reports, over tracks 2..K (the ones that have earlier tracks):
  - leakage (tagger): share of (track, earlier caption of another kind) pairs where the audio
    tagger hears the earlier caption's kind (probability >= 0.5) in the track;
  - leakage (ground truth): the track's mel magnitudes are decomposed (non-negative least squares)
    onto the clip's true, time-aligned source stems (`gt_shares`); a pair leaks when the earlier
    source explains at least GT_SHARE (20%) of the track's energy; the mean share is reported too;
  - target presence: share of tracks where the tagger hears the caption's own kind, and (GT) where
    the caption's own stem explains at least 20% of the track;
  - A-A separability (the paper's): mean cosine (tagger embedding) between every pair of tracks of
    a video, lower is better;
  - audio-audio similarity to the ground truth: cosine between the track and its true stem;
  - text-audio similarity: cosine between the caption and the track in the tagger's joint space;
  - mix similarity: cosine between the sum of all generated tracks and the ground-truth mix.
The same numbers on the ground-truth stems are printed as a reference row.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import nnls
from tqdm import tqdm

from nag_model.bundle import load_bundle
from nag_model.generator import Track, TrackSettings
from nag_model.settings import DEFAULTS
from audio.loudness import normalize_loudness
from synthfoley.captions import parse_caption
from synthfoley.splits import split_seeds
from synthfoley.world import make_clip, plan_clip
from training.data import _clip_index

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


def test_clips(n: int, seed: int, min_captions: int = 3, max_captions: int = 5) -> list[int]:
    """The first n test-split clips (drawn with seed) that have min..max captions (cheap: plans only)."""
    out = []
    for s in split_seeds("test", 20 * n + 100, seed):
        if min_captions <= len(plan_clip(int(s)).captions) <= max_captions:
            out.append(int(s))
            if len(out) == n:
                break
    return out


GT_SHARE = 0.2  # a source "is in" a track when it explains at least this share of the track's mel energy


def _mel_magnitude(codec, wav: np.ndarray) -> np.ndarray:
    return (10.0 ** codec.encode(torch.from_numpy(np.array(wav, np.float32))[None])[0].double().numpy()).ravel()


def gt_shares(codec, track: np.ndarray, stems: list[np.ndarray]) -> np.ndarray:
    """Share of the track's mel magnitude explained by each ground-truth stem of the clip.

    The track's mel magnitudes (frames x bands, linear) are decomposed as a non-negative combination of
    the clip's true stems' mel magnitudes, each scaled to unit sum; weight j is then the magnitude that
    stem j explains, and dividing by the track's total gives a share in [0, 1] (the rest is unexplained:
    artefacts, or sound in the wrong place or time). Because the stems are time-aligned with the video,
    a leaked visible source shows up at its true event times."""
    basis = np.stack([_mel_magnitude(codec, s) for s in stems], 1)
    basis /= np.maximum(basis.sum(0, keepdims=True), 1e-12)
    y = _mel_magnitude(codec, track)
    weights, _ = nnls(basis, y, maxiter=50 * len(stems))
    return weights / max(float(y.sum()), 1e-12)


def evaluate_clip(bundle, clip, captions, tracks: list[Track], stems: dict[str, np.ndarray]) -> dict:
    """Per-pair and per-track numbers of one ordered set of tracks."""
    ev, codec = bundle.evaluator, bundle.codec
    labels = ev.labels
    wavs = np.stack([t.waveform for t in tracks])
    probs = ev.tag(wavs)
    emb = ev.embed_audio(wavs)
    gt_emb = ev.embed_audio(np.stack([stems[t.caption] for t in tracks]))
    text = ev.embed_text([t.caption for t in tracks])
    order = list(stems)
    shares = [gt_shares(codec, w, [stems[c] for c in order]) for w in wavs]  # (K, n_sources)
    kinds = [parse_caption(t.caption)[0] for t in tracks]
    leak_tag, leak_gt, leak_share, presence, presence_gt = [], [], [], [], []
    for k, t in enumerate(tracks):
        presence.append(float(probs[k, labels.index(kinds[k])] >= 0.5))
        presence_gt.append(float(shares[k][order.index(t.caption)] >= GT_SHARE))
        for j in range(k):
            if kinds[j] == kinds[k]:
                continue
            leak_tag.append(float(probs[k, labels.index(kinds[j])] >= 0.5))
            share = float(shares[k][order.index(tracks[j].caption)])
            leak_gt.append(float(share >= GT_SHARE))
            leak_share.append(share)
    mix = sum(t.waveform.astype(np.float64) for t in tracks)
    mix_emb = ev.embed_audio(normalize_loudness(mix, bundle.sample_rate, -20.0)[None].astype(np.float32))[0]
    gt_mix_emb = ev.embed_audio(np.asarray(clip.mix[:len(mix)], np.float32)[None])[0]
    return {"leak_tag": leak_tag, "leak_gt": leak_gt, "leak_share": leak_share, "presence_later": presence[1:],
            "presence_all": presence, "presence_gt": presence_gt,
            "aa": [float(emb[k] @ gt_emb[k]) for k in range(len(tracks))],
            "sep": [float(emb[i] @ emb[j]) for i in range(len(tracks)) for j in range(i)],
            "ta": [float(emb[k] @ text[k]) for k in range(len(tracks))],
            "mix": [float(mix_emb @ gt_mix_emb)]}


def _report(bundle_path, results, n_done, n_planned, steps, alpha, seed, seconds) -> dict:
    table = {m: {k: (round(float(np.mean(v)), 4) if v else None) for k, v in r.items()} | {"pairs": len(r.get("leak_tag", []))}
             for m, r in results.items()}
    return {"bundle": bundle_path, "clips": n_done, "clips_planned": n_planned, "steps": steps, "alpha": alpha,
            "seed": seed, "seconds": round(seconds, 1), "table": table}


def run_clip(bundle, clip_seed: int, steps: int, seed: int, alpha: float, methods: dict) -> dict:
    """Every method on one clip: {method: {metric: [values]}} (the ground-truth stems as one more method)."""
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
    out = {}
    for name, (kw, order) in methods.items():
        settings = TrackSettings(alpha=alpha, steps=steps, **kw)
        tracks = [cfg[orders[order][0]]]
        for c in orders[order][1:]:
            tracks.append(cfg[c] if kw["method"] == "independent" else
                          gen.generate_track(video, c, cap_seed[c], settings, context=tracks))
        out[name] = evaluate_clip(bundle, clip, captions, tracks, stems)
    gt_tracks = [Track(c, 0, TrackSettings(), stems[c], bundle.sample_rate) for c in desc]
    out["ground-truth stems"] = evaluate_clip(bundle, clip, captions, gt_tracks, stems)
    return out


_WORKER: dict = {}


def _init_worker(bundle_path: str, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER["bundle"] = load_bundle(bundle_path)


def _run_clip_in_worker(args: tuple) -> dict:
    return run_clip(_WORKER["bundle"], *args)


def run(bundle_path: str, n_clips: int, steps: int, seed: int, alpha: float, progress: bool = True,
        on_clip=None, methods: dict | None = None, workers: int = 1, threads: int = 1) -> dict:
    """on_clip(report) is called with the report so far after every clip (partial results survive a stop);
    methods: a subset of METHODS (default all); workers > 1 shares the clips among processes (each clip's
    results do not depend on which process ran it)."""
    methods = METHODS if methods is None else methods
    results: dict[str, dict[str, list[float]]] = {m: {} for m in [*methods, "ground-truth stems"]}
    seeds = test_clips(n_clips, seed)
    jobs = [(s, steps, seed, alpha, methods) for s in seeds]
    t0 = time.time()
    if workers > 1:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(bundle_path, threads))
        clip_results = pool.map(_run_clip_in_worker, jobs)
    else:
        _init_worker(bundle_path, threads)
        pool, clip_results = None, map(_run_clip_in_worker, jobs)
    try:
        for ci, clip_result in enumerate(tqdm(clip_results, total=len(jobs), desc="clips", disable=not progress)):
            for name, metrics in clip_result.items():
                for key, vals in metrics.items():
                    results[name].setdefault(key, []).extend(vals)
            if on_clip is not None:
                on_clip(_report(bundle_path, results, ci + 1, len(seeds), steps, alpha, seed, time.time() - t0))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return _report(bundle_path, results, len(seeds), len(seeds), steps, alpha, seed, time.time() - t0)


def markdown(report: dict) -> str:
    cols = [("leak_tag", "leakage (tagger)"), ("leak_gt", "leakage (GT)"), ("leak_share", "leaked energy share (GT)"),
            ("presence_later", "target presence (tracks 2..K)"), ("presence_all", "target presence (all)"),
            ("presence_gt", "target presence (GT)"), ("sep", "A-A separability (lower is better)"),
            ("aa", "A-A sim to GT stem"), ("ta", "T-A sim"), ("mix", "mix sim"),
            ("pairs", "pairs")]
    lines = ["| method | " + " | ".join(c for _, c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for m, r in report["table"].items():
        lines.append(f"| {m} | " + " | ".join(str(r.get(k)) for k, _ in cols) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default="demo")
    p.add_argument("--clips", type=int, default=100)
    p.add_argument("--steps", type=int, default=DEFAULTS.steps)
    p.add_argument("--alpha", type=float, default=DEFAULTS.alpha)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the clips")
    p.add_argument("--out", default=None, help="write the report as JSON here")
    p.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                   help="a subset of the methods, by name (e.g. 'independent' 'NAG beta 1.5'); default all")
    p.add_argument("--beta", type=float, nargs="+", default=(),
                   help="extra NAG betas to run in descending order (e.g. --beta 3 5)")
    args = p.parse_args(argv)
    command = "python benchmarks/nag_effect.py " + " ".join(argv if argv is not None else __import__("sys").argv[1:])

    def write(report: dict) -> None:
        if args.out:
            Path(args.out).write_text(json.dumps({**report, "command": command}, indent=2))

    methods = {m: METHODS[m] for m in args.methods} if args.methods else dict(METHODS)
    methods |= {f"NAG beta {b:g}": (dict(method="nag", beta=b), "descending") for b in args.beta}
    report = run(args.bundle, args.clips, args.steps, args.seed, args.alpha, on_clip=write, methods=methods,
                 workers=args.workers, threads=args.threads)
    write(report)
    print(markdown(report))


if __name__ == "__main__":
    main()
