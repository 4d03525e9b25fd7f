"""NAG-effect benchmark in the SynthFoley world (issue 3): does Negative Audio Guidance cut
cross-track leakage while keeping the target?

    python benchmarks/nag_effect.py --bundle demo --clips 100 --steps 25 --out docs/nag_effect.json

For held-out test clips with 3 to 5 captions it generates one track per caption, step by step:
  - independent (beta = 0: every track is plain CFG, the paper's MMAudio baseline),
  - negative prompting (the earlier captions as the negative prompt, paper form),
  - NAG with beta 1.0, 1.5, 2.0 (alpha 4.5),
all in the scorer's descending order, and NAG beta 1.5 also in ascending and random order.
A caption keeps its noise seed in every method and order, and the first track of any order is
the same CFG track, so it is generated once per caption.

Per method it reports, over tracks 2..K (the ones that have earlier tracks):
  - leakage (tagger): share of (track, earlier caption of another kind) pairs where the audio
    tagger hears the earlier caption's kind (probability >= 0.5) in the track;
  - leakage (ground truth): share of those pairs where the track's log-mel is closer (Pearson
    correlation) to the earlier source's ground-truth stem than to its own source's stem;
  - target presence: share of tracks where the tagger hears the caption's own kind;
  - audio-audio similarity: cosine (tagger embedding) between the track and its ground-truth stem;
  - text-audio similarity: cosine between the caption and the track in the tagger's joint space;
  - mix similarity: cosine between the sum of all generated tracks and the ground-truth mix.
The same numbers on the ground-truth stems are printed as a reference row.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from nag_model.bundle import load_bundle
from nag_model.generator import Track, TrackSettings
from nag_model.loudness import normalize_loudness
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


def _rel_mel(codec, wav: np.ndarray) -> np.ndarray:
    lm = codec.encode(torch.from_numpy(np.asarray(wav, np.float32))[None])[0]
    return (lm - lm.max()).clamp(min=-4).numpy().ravel()


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    d = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / d) if d > 0 else 0.0


def evaluate_clip(bundle, clip, captions, tracks: list[Track], stems: dict[str, np.ndarray]) -> dict:
    """Per-pair and per-track numbers of one ordered set of tracks."""
    ev, codec = bundle.evaluator, bundle.codec
    labels = ev.labels
    wavs = np.stack([t.waveform for t in tracks])
    probs = ev.tag(wavs)
    emb = ev.embed_audio(wavs)
    gt_emb = ev.embed_audio(np.stack([stems[t.caption] for t in tracks]))
    text = ev.embed_text([t.caption for t in tracks])
    mels = [_rel_mel(codec, w) for w in wavs]
    gt_mels = {c: _rel_mel(codec, stems[c]) for c in captions}
    kinds = [parse_caption(t.caption)[0] for t in tracks]
    leak_tag, leak_gt, presence = [], [], []
    for k, t in enumerate(tracks):
        presence.append(float(probs[k, labels.index(kinds[k])] >= 0.5))
        for j in range(k):
            if kinds[j] == kinds[k]:
                continue
            leak_tag.append(float(probs[k, labels.index(kinds[j])] >= 0.5))
            leak_gt.append(float(_corr(mels[k], gt_mels[tracks[j].caption]) > _corr(mels[k], gt_mels[t.caption])))
    mix = sum(t.waveform.astype(np.float64) for t in tracks)
    mix_emb = ev.embed_audio(normalize_loudness(mix, bundle.sample_rate, -20.0)[None].astype(np.float32))[0]
    gt_mix_emb = ev.embed_audio(np.asarray(clip.mix[:len(mix)], np.float32)[None])[0]
    return {"leak_tag": leak_tag, "leak_gt": leak_gt, "presence_later": presence[1:], "presence_all": presence,
            "aa": [float(emb[k] @ gt_emb[k]) for k in range(len(tracks))],
            "ta": [float(emb[k] @ text[k]) for k in range(len(tracks))],
            "mix": [float(mix_emb @ gt_mix_emb)]}


def _report(bundle_path, results, n_done, n_planned, steps, alpha, seed, seconds) -> dict:
    table = {m: {k: (round(float(np.mean(v)), 4) if v else None) for k, v in r.items()} | {"pairs": len(r.get("leak_tag", []))}
             for m, r in results.items()}
    return {"bundle": bundle_path, "clips": n_done, "clips_planned": n_planned, "steps": steps, "alpha": alpha,
            "seed": seed, "seconds": round(seconds, 1), "table": table}


def run(bundle_path: str, n_clips: int, steps: int, seed: int, alpha: float, progress: bool = True,
        on_clip=None) -> dict:
    """on_clip(report) is called with the report so far after every clip (partial results survive a stop)."""
    bundle = load_bundle(bundle_path)
    gen = bundle.generator()
    rng = np.random.default_rng(seed)
    results: dict[str, dict[str, list[float]]] = {m: {} for m in [*METHODS, "ground-truth stems"]}
    seeds = test_clips(n_clips, seed)
    t0 = time.time()
    for ci, clip_seed in enumerate(seeds):
        clip = make_clip(clip_seed)
        video = bundle.video_features(clip.frames[_clip_index(len(clip.frames))], clip.frames)
        stems = {}
        for info, stem in zip(clip.sources, clip.stems):
            if info.sounding:
                stems[info.caption] = np.asarray(stem[:gen.num_samples], np.float32)
        captions = list(clip.captions)
        scores = bundle.scorer.score(video.clip_f, captions)
        desc = [c for _, c in sorted(zip(scores, captions), key=lambda x: -x[0])]
        orders = {"descending": desc, "ascending": desc[::-1], "random": list(rng.permutation(desc))}
        cap_seed = {c: clip_seed * 10 + i for i, c in enumerate(captions)}
        cfg = {c: gen.generate_track(video, c, cap_seed[c], TrackSettings(method="independent", alpha=alpha, steps=steps))
               for c in captions}
        for name, (kw, order) in METHODS.items():
            settings = TrackSettings(alpha=alpha, steps=steps, **kw)
            tracks = [cfg[orders[order][0]]]
            for c in orders[order][1:]:
                tracks.append(cfg[c] if kw["method"] == "independent" else
                              gen.generate_track(video, c, cap_seed[c], settings, context=tracks))
            for key, vals in evaluate_clip(bundle, clip, captions, tracks, stems).items():
                results[name].setdefault(key, []).extend(vals)
        gt_tracks = [Track(c, 0, TrackSettings(), stems[c], bundle.sample_rate) for c in desc]
        for key, vals in evaluate_clip(bundle, clip, captions, gt_tracks, stems).items():
            results["ground-truth stems"].setdefault(key, []).extend(vals)
        if progress:
            print(f"clip {ci + 1}/{len(seeds)} ({len(captions)} captions) {time.time() - t0:.0f}s", flush=True)
        if on_clip is not None:
            on_clip(_report(bundle_path, results, ci + 1, len(seeds), steps, alpha, seed, time.time() - t0))
    return _report(bundle_path, results, len(seeds), len(seeds), steps, alpha, seed, time.time() - t0)


def markdown(report: dict) -> str:
    cols = [("leak_tag", "leakage (tagger)"), ("leak_gt", "leakage (GT)"), ("presence_later", "target presence (tracks 2..K)"),
            ("presence_all", "target presence (all)"), ("aa", "A-A sim"), ("ta", "T-A sim"), ("mix", "mix sim"),
            ("pairs", "pairs")]
    lines = ["| method | " + " | ".join(c for _, c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for m, r in report["table"].items():
        lines.append(f"| {m} | " + " | ".join(str(r.get(k)) for k, _ in cols) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default="demo")
    p.add_argument("--clips", type=int, default=100)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--alpha", type=float, default=4.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="write the report as JSON here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python benchmarks/nag_effect.py " + " ".join(argv if argv is not None else __import__("sys").argv[1:])

    def write(report: dict) -> None:
        if args.out:
            Path(args.out).write_text(json.dumps({**report, "command": command}, indent=2))

    report = run(args.bundle, args.clips, args.steps, args.seed, args.alpha, on_clip=write)
    write(report)
    print(markdown(report))


if __name__ == "__main__":
    main()
