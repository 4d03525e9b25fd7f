"""Scoring time per 8-s track of each evaluation model on this machine, and its share of a catalog run.

    python benchmarks/scoring_time.py [--eval-weights panns=/w/Cnn14_16k_mAP=0.438.pth ...] [--models panns clap]
        [--device cpu|cuda] [--repeats 3] [--threads N] [--run-id RUN --storage URL]

For every model of ``evaluation.registry.EVAL_MODELS`` (or ``--models``): with ``--eval-weights`` it loads the
configured file (checksummed, as a run would); without, it builds the class at full size with random weights
(``cls.random(seed=0)`` when the class has it, else ``cls()``), which takes the same time per clip, and says
so (``weights: random``). A model whose class cannot be imported or built is listed as skipped, with why.

Timed per model, median of ``--repeats`` after one warm-up, on one 8-s clip (batch 1):
``per_track`` = what each track costs (set features for the tracks' IS, CLAP audio + text, ImageBind audio),
``per_mix`` = what each mix costs (set features, CLAP A-A is free, ImageBind audio, DeSync),
``per_video`` = once per video (ImageBind video embedding; set features of the reference clip).
With ``--run-id``, the run's wall time (``runs.finished_at - created_at``) and its tracks, mixes and videos give
the estimated scoring seconds of the timed models and their share of a run that also scores with them
(``scoring / (run wall + scoring)``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any, Callable

import numpy as np
import torch

from evaluation.registry import (CLAP, EVAL_MODELS, IB, SET, SYNC, EvalModelUnavailable, load_eval_model,
                                 model_class, parse_eval_weights)

CLIP_S = 8.0
CAPTION = "A dog barks twice while rain falls on a tin roof."


def timed(fn: Callable[[], Any], repeats: int, device: torch.device) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` runs, after one untimed warm-up."""
    def run():
        with torch.inference_mode():
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build(name: str, weights: dict, device: str) -> tuple[Any, str]:
    """The model and where its weights come from ('official file' or 'random')."""
    if name == "demo" and name not in weights:  # the demo evaluator's own (trained) weights, in the repository
        from evaluation.registry import WeightRef
        from pipeline.models import DEMO_MODEL_DIR

        weights = {**weights, "demo": WeightRef(str(DEMO_MODEL_DIR))}
    if name in weights:
        return load_eval_model(name, weights[name], device), f"file {weights[name].path}"
    cls = model_class(EVAL_MODELS[name])
    torch.manual_seed(0)
    if hasattr(cls, "random"):
        model = cls.random(seed=0)
    else:
        try:
            model = cls()
        except TypeError as exc:
            raise EvalModelUnavailable(f"{name}: no weights given and {cls.__name__} cannot be built without them "
                                       f"({exc})") from exc
    return (model.eval() if hasattr(model, "eval") else model).to(device), "random (full size; times only)"


def time_model(name: str, model: Any, repeats: int, device: torch.device, notes: list[str]) -> dict[str, float]:
    roles = EVAL_MODELS[name].roles
    rate = int(model.sample_rate)
    wav = (0.1 * np.random.default_rng(0).standard_normal((1, round(CLIP_S * rate)))).astype(np.float32)
    track = mix = video = 0.0
    if SET in roles:
        t = timed(lambda: model.features(wav), repeats, device)
        track, mix, video = track + t, mix + t, video + t  # the tracks' IS, the mixes' FD/KL/IS, the reference
    if CLAP in roles:
        track += timed(lambda: model.embed_audio(wav), repeats, device)
        try:
            model.embed_text([CAPTION])
        except Exception as exc:  # a randomly built CLAP has no tokenizer files: its text tower is not timed
            notes.append(f"{name}: text embedding not timed ({type(exc).__name__}: {exc})")
        else:
            track += timed(lambda: model.embed_text([CAPTION]), repeats, device)
    if IB in roles:
        t = timed(lambda: model.embed_audio(wav), repeats, device)
        frames = np.random.default_rng(1).integers(0, 256, (round(CLIP_S * 0.5), 224, 398, 3), dtype=np.uint8)
        track, mix = track + t, mix + t
        video += timed(lambda: model.embed_video([frames]), repeats, device)
    if SYNC in roles:
        frames = np.random.default_rng(2).integers(0, 256, (round(CLIP_S * 25), 224, 224, 3), dtype=np.uint8)
        mix += timed(lambda: model.desync([frames], wav), repeats, device)
    return {"per_track": track, "per_mix": mix, "per_video": video}


def run_counts(storage: str, run_id: str) -> tuple[float, int, int, int]:
    """Wall seconds, tracks, mixes and videos of a stored run."""
    from storage.query import connect, sql_string

    con = connect(storage)
    rid = sql_string(run_id)
    wall = con.execute(f"SELECT epoch(finished_at) - epoch(created_at) FROM runs WHERE run_id = {rid}").fetchone()
    if wall is None or wall[0] is None:
        raise SystemExit(f"run {run_id!r} not found or not finished in {storage}")
    tracks = con.execute(f"SELECT count(*) FROM tracks WHERE run_id = {rid}").fetchone()[0]
    mixes = con.execute(f"SELECT count(*) FROM mixes WHERE run_id = {rid}").fetchone()[0]
    videos = con.execute(f"SELECT count(DISTINCT video_id) FROM mixes WHERE run_id = {rid}").fetchone()[0]
    return float(wall[0]), int(tracks), int(mixes), int(videos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-weights", action="append", default=[], help="as foley run's (NAME=PATH, folder)")
    parser.add_argument("--models", nargs="+", default=list(EVAL_MODELS), choices=list(EVAL_MODELS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--run-id", default=None, help="a finished catalog run: the share of scoring in it")
    parser.add_argument("--storage", default="file://./foley-out")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    weights = parse_eval_weights(args.eval_weights)
    print(f"device {device}, torch threads {torch.get_num_threads()}, load average before {os.getloadavg()[0]:.2f}")
    print(f"{'model':10s} {'per_track_s':>11s} {'per_mix_s':>9s} {'per_video_s':>11s}  weights")
    results, skipped = {}, []
    for name in args.models:
        try:
            model, source = build(name, weights, str(device))
            results[name] = time_model(name, model, args.repeats, device, skipped)
        except (EvalModelUnavailable, NotImplementedError) as exc:
            skipped.append(f"skipped: {exc}")
            continue
        r = results[name]
        print(f"{name:10s} {r['per_track']:11.3f} {r['per_mix']:9.3f} {r['per_video']:11.3f}  {source}")
        del model
    for line in skipped:
        print(line)
    print(f"load average after {os.getloadavg()[0]:.2f}")
    if args.run_id:
        wall, n_tracks, n_mixes, n_videos = run_counts(args.storage, args.run_id)
        scoring = sum(r["per_track"] * n_tracks + r["per_mix"] * n_mixes + r["per_video"] * n_videos
                      for r in results.values())
        print(f"run {args.run_id}: {wall:.1f} s wall, {n_tracks} tracks, {n_mixes} mixes, {n_videos} videos; "
              f"scoring with {', '.join(results) or 'no model'}: {scoring:.1f} s estimated, "
              f"{100 * scoring / (wall + scoring):.1f}% of a run that scores with them")


if __name__ == "__main__":
    main()
