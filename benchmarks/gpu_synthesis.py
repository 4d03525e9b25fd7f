"""Synthesis speed on one device, with random small_16k-shaped weights (sampling and conditioning only).

    python benchmarks/gpu_synthesis.py                                  # on a GPU: the full run (< 5 min)
    python benchmarks/gpu_synthesis.py --official /path/to/MMAudio      # plus the official CFG step
    python benchmarks/gpu_synthesis.py --device cpu --duration 2 --steps 4 --batches 1 4 --videos 4 --captions 3

Prints four tables and writes them as JSON (--out):
1. step: median ms per guided Euler step of our CFG (2 branches) and NAG (3 branches + ControlNet)
   with B tracks per forward, eager and replayed from a CUDA graph, the NAG/CFG ratio, peak memory,
   and the official MMAudio CFG step (`ode_wrapper`, two forwards, eager) at the same B and precision;
2. latency: one NAG track (track 2 of a video, so the ControlNet is active) at batch 1, sampling
   only (x0 -> x1) and end to end through `generate_tracks` (conditions, the earlier track's mix,
   its reference, sampling, decoding);
3. catalog: tracks/s of step-by-step NAG (`generate_videos`, 5 captions per video) over a synthetic
   catalog with B videos per forward (first tracks are CFG, later ones NAG against the earlier ones);
   small B run a prefix of the catalog (the count is printed) to keep the run short.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nag_model import layers  # noqa: E402
from nag_model.bundle import random_bundle  # noqa: E402
from nag_model.cuda_graphs import GraphedSampler  # noqa: E402
from nag_model.device import GpuSampler, precision_name, resolve_device, resolve_dtype  # noqa: E402
from nag_model.flow_matching import time_grid  # noqa: E402
from nag_model.generator import TrackRequest, TrackSettings, VideoFeatures, VideoJob  # noqa: E402
from nag_model.guidance import ClassifierFreeGuidance, ConditionSet, NegativeAudioGuidance  # noqa: E402
from nag_model.track_batch import PreparedTrack, TrackBatch  # noqa: E402

WORDS = ("dog", "barks", "wind", "blows", "door", "creaks", "rain", "falls", "bird", "chirps", "car", "passes",
         "ball", "bounces", "water", "splashes", "glass", "breaks", "crowd", "cheers", "engine", "hums")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def wall(fn, device: torch.device):
    """(fn(), its wall seconds), with the device drained before and after the call."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def timed(fn, device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median wall seconds of fn() with the device drained before and after each call."""
    for _ in range(warmup):
        fn()
    return statistics.median(wall(fn, device)[1] for _ in range(repeats))


def graph_step_ms(batch: TrackBatch, grid: torch.Tensor, device: torch.device, repeats: int) -> float:
    """Median ms per step of sampling ``grid`` with the batch replayed from a fresh CUDA graph."""
    sampler = GraphedSampler()
    ms = 1000 * timed(lambda: sampler.sample(batch, grid), device, repeats) / (len(grid) - 1)
    del sampler
    return ms


def random_video(base, g: torch.Generator, device: torch.device | str = "cpu") -> VideoFeatures:
    c, s = base.config, base.seq
    return VideoFeatures(torch.randn(1, s.clip, c.clip_dim, generator=g).to(device),
                         torch.randn(1, s.sync, c.sync_dim, generator=g).to(device))


def caption(g: torch.Generator) -> str:
    i = torch.randint(0, len(WORDS) // 2, (3,), generator=g).tolist()
    return " ".join(f"A {WORDS[2 * a]} {WORDS[2 * a + 1]}" for a in i[:1]) + f" near the {WORDS[2 * i[1]]}."


def prepared_tracks(gen, n: int, nag: bool, seed: int) -> list[PreparedTrack]:
    """n tracks with random video and text features; NAG ones carry a random reference (track k > 1)."""
    base, cn = gen.base, gen.controlnet
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        v = random_video(base, g)
        full = gen._conditions(v, torch.randn(1, base.config.text_seq_len, base.config.text_dim, generator=g))
        empty = gen._empty_conditions()
        x0 = gen.initial_noise(seed * 1000 + i)
        if nag:
            video_only = gen._conditions(v, base.empty_string_feat[None])
            ref = cn.preprocess_reference(gen._to_device(torch.randn(1, base.seq.latent, base.config.latent_dim, generator=g)))
            cs = ConditionSet(full=full, empty=empty, video_only=video_only, reference=ref)
            out.append(PreparedTrack.from_condition_set(NegativeAudioGuidance(4.5, 1.5), cs, x0))
        else:
            out.append(PreparedTrack.from_condition_set(ClassifierFreeGuidance(4.5), ConditionSet(full=full, empty=empty), x0))
    return out


def load_official(path: str | None):
    if not path:
        return None
    sys.path.insert(0, path)
    try:
        from mmaudio.model.networks import get_my_mmaudio  # the official network code, for timing only
    except Exception as exc:  # noqa: BLE001
        print(f"(official MMAudio not importable from {path}: {type(exc).__name__}: {exc})")
        return None
    return get_my_mmaudio


def official_step_ms(factory, preset: str, batch: int, device, dtype, repeats: int) -> float:
    net = factory(preset).to(device, dtype).eval()
    g = torch.Generator().manual_seed(0)
    clip = torch.randn(batch, net.clip_seq_len, 1024, generator=g).to(device, dtype)
    sync_f = torch.randn(batch, net.sync_seq_len, 768, generator=g).to(device, dtype)
    text = torch.randn(batch, 77, 1024, generator=g).to(device, dtype)
    x = torch.randn(batch, net.latent_seq_len, 20, generator=g).to(device, dtype)
    cond = net.preprocess_conditions(clip, sync_f, text)
    empty = net.get_empty_conditions(batch)
    t = torch.tensor(0.5, device=device, dtype=dtype)
    ms = 1000 * timed(lambda: x + 0.04 * net.ode_wrapper(t, x, cond, empty, 4.5), device, repeats, warmup=2)
    del net
    return ms


@torch.inference_mode()
def step_table(bundle, args, device, factory) -> list[dict]:
    gen = bundle.generator(batch_mode="fused")
    rows = []
    for b in args.batches:
        row = {"batch": b}
        for name, nag in (("cfg", False), ("nag", True)):
            batch = TrackBatch(bundle.base, bundle.controlnet, prepared_tracks(gen, b, nag, seed=b))
            x, t = batch.tensors["x0"], torch.tensor(0.5, device=device)
            row[f"{name}_eager_ms"] = 1000 * timed(lambda: x + 0.04 * batch.velocity(t, x), device, args.repeats)
            if device.type == "cuda":
                grid = time_grid(args.graph_steps, device=device)
                torch.cuda.reset_peak_memory_stats(device)
                row[f"{name}_graph_ms"] = graph_step_ms(batch, grid, device, args.repeats)
                row[f"{name}_peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
                if args.compare_reference:  # the same graph with the CPU's reference formulations of the layers
                    fast, layers.fast_path = layers.fast_path, lambda x: False
                    try:
                        row[f"{name}_graph_ref_ms"] = graph_step_ms(batch, grid, device, args.repeats)
                    finally:
                        layers.fast_path = fast
            del batch
        best = "graph" if device.type == "cuda" else "eager"
        row["nag_over_cfg"] = row[f"nag_{best}_ms"] / row[f"cfg_{best}_ms"]
        row["nag_over_cfg_eager"] = row["nag_eager_ms"] / row["cfg_eager_ms"]
        if factory is not None:
            row["official_cfg_ms"] = official_step_ms(factory, args.preset, b, device, bundle.dtype, args.repeats)
        rows.append(row)
        print("  step", json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


@torch.inference_mode()
def latency(bundle, args, device) -> dict:
    gen = bundle.generator(batch_mode="fused", max_batch=1)
    g = torch.Generator().manual_seed(1)
    video = random_video(bundle.base, g)
    settings = TrackSettings("nag", 4.5, 1.5, steps=args.steps)
    first = gen.generate_track(video, "A dog barks loudly.", 1, settings)
    request = TrackRequest(video, "Wind blows softly.", 2, settings, (first,))
    end_to_end = timed(lambda: gen.generate_tracks([request]), device, args.repeats)
    batch = TrackBatch(bundle.base, bundle.controlnet, prepared_tracks(gen, 1, True, seed=7))
    grid = time_grid(args.steps, device=device)
    sample = (lambda: gen.sampler.sample(batch, grid)) if gen.sampler is not None else (lambda: batch.sample(grid))
    return {"steps": args.steps, "sampling_s": timed(sample, device, args.repeats), "end_to_end_s": end_to_end}


# The generator's stages whose host time `host_timers` reports. `_launch` makes the mixes and conditions
# and queues sampling and decoding, which on CUDA run on the generator's queue thread (so their time is
# not inside `_launch` there, and "sampler" is mostly the graph launch waiting for the driver's room).
STAGES = ("_launch", "_finish", "_mixes", "condition_sets", "text_encoder", "_sample", "sampler", "decode")


@contextmanager
def host_timers(gen):
    """Wall seconds the host spends in each of the generator's `STAGES` (patched on this instance, its
    codec and its sampler, and restored on exit). `_finish` is the one stage that waits for the device;
    launch time near the wall time means the host, not the GPU, sets the pace, and the sub-stages of
    `_launch` say where."""
    spent = dict.fromkeys(STAGES, 0.0)

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start
        return wrapper

    targets = [(gen, name, name) for name in ("_launch", "_finish", "_mixes", "condition_sets", "_sample", "text_encoder")]
    targets.append((gen, "condition_set", "condition_sets"))  # one request at a time (B = 1): the same stage
    targets.append((gen.codec, "decode", "decode"))
    if gen.sampler is not None:
        targets.append((gen.sampler, "sample", "sampler"))
    saved = [(obj, attr, vars(obj).get(attr)) for obj, attr, _ in targets]  # None: the class's method
    for obj, attr, name in targets:
        setattr(obj, attr, timed(name, getattr(obj, attr)))
    try:
        yield spent
    finally:
        for obj, attr, original in saved:
            if original is None:
                delattr(obj, attr)
            else:
                setattr(obj, attr, original)


@torch.inference_mode()
def catalog(bundle, args, device) -> list[dict]:
    """One row per batch size: the catalog from a fresh generator ("cold": its CUDA graphs are captured
    during the run), then with `--warm` the same catalog again on the same generator (graphs replayed,
    as in a long run)."""
    g = torch.Generator().manual_seed(2)
    settings = TrackSettings("nag", 4.5, 1.5, steps=args.steps)
    # Features live on the device, as the pipeline's cached features would.
    jobs = [VideoJob(random_video(bundle.base, g, device), tuple(caption(g) for _ in range(args.captions)),
                     tuple(range(v * 10, v * 10 + args.captions)), settings) for v in range(args.videos)]
    rows = []
    for b in args.batches:
        n_videos = min(len(jobs), max(args.min_videos, b * args.chunks_per_round)) if args.prefix else len(jobs)
        gen = bundle.generator(batch_mode="fused", max_batch=b, prep_stream=args.prep_stream == "on")
        for run in ("cold", "warm") if args.warm else ("cold",):
            captures = (gen.sampler.captures, _capture_s(gen.sampler)) if gen.sampler is not None else None
            with host_timers(gen) as host, GpuSampler(str(device)) if device.type == "cuda" else nullcontext() as busy:
                start = time.perf_counter()
                out, seconds = wall(lambda: gen.generate_videos(jobs[:n_videos]), device)
            n_tracks = sum(len(t) for t in out)
            finite = all(np.isfinite(t.waveform).all() for ts in out for t in ts)
            row = {"batch": b, "run": run, "videos": n_videos, "tracks": n_tracks, "wall_s": seconds,
                   "tracks_per_s": n_tracks / seconds, "finite": finite,
                   **{f"{name.strip('_')}_s": v for name, v in host.items()}}
            if busy is not None:
                row["gpu_busy_pct"] = busy.mean(start, start + seconds)  # NVML: share of time with a kernel running
            if captures is not None:  # this run's (the bundle's generators share one sampler)
                row["graph_captures"] = gen.sampler.captures - captures[0]
                row["graph_capture_s"] = _capture_s(gen.sampler) - captures[1]
            rows.append(row)
            print("  catalog", json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    return rows


def _capture_s(sampler) -> float:
    """Seconds the sampler's kept graphs took to capture."""
    return sum(e.capture_s for e in sampler._graphs.values())


def profile_catalog(bundle, args, device) -> None:
    """The catalog at the largest batch under torch.profiler: where the host time of ``_launch`` goes."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    runs = argparse.Namespace(**{**vars(args), "batches": [max(args.batches)], "warm": False})
    with profile(activities=activities) as prof:
        catalog(bundle, runs, device)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), flush=True)
    prof.export_chrome_trace(args.profile)
    print(f"Chrome trace: {args.profile}")
    print(device_idle(args.profile))


def device_idle(trace: str, show: int = 10) -> str:
    """The device's busy share over a Chrome trace (the union of its kernels, copies and memsets, from
    the first to the last) and its longest idle gaps, with when they began."""
    import gzip

    with (gzip.open if trace.endswith(".gz") else open)(trace, "rt") as f:
        events = json.load(f)["traceEvents"]
    spans = sorted((e["ts"], e["ts"] + e.get("dur", 0)) for e in events
                   if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset"))
    if not spans:
        return "no device events in the trace"
    busy, gaps = 0.0, []
    start, end = spans[0]
    for s, e in spans[1:]:
        if s > end:
            busy, gaps = busy + end - start, gaps + [(end, s - end)]
            start, end = s, e
        else:
            end = max(end, e)
    busy += end - start
    span = spans[-1][1] - spans[0][0]
    gaps.sort(key=lambda g: -g[1])
    lines = [f"device busy {busy / 1e6:.2f} s of {span / 1e6:.2f} s ({100 * busy / span:.0f}%); "
             f"{sum(g > 1000 for _, g in gaps)} idle gaps over 1 ms, {sum(g for _, g in gaps if g > 1000) / 1e6:.2f} s in all"]
    lines += [f"  idle {g / 1e3:.1f} ms from {(t - spans[0][0]) / 1e6:.3f} s" for t, g in gaps[:show]]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto", help="bf16 | fp32 | auto (bf16 on CUDA)")
    ap.add_argument("--preset", default="small_16k")
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 128])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--graph-steps", type=int, default=5, help="steps of the graph that times one step in the step table")
    ap.add_argument("--videos", type=int, default=256, help="synthetic catalog size")
    ap.add_argument("--captions", type=int, default=5, help="tracks per video")
    ap.add_argument("--min-videos", type=int, default=8, help="small batches run a prefix of at least this many videos")
    ap.add_argument("--chunks-per-round", type=int, default=8, help="...and of this many batches per round")
    ap.add_argument("--no-prefix", dest="prefix", action="store_false", help="run the whole catalog at every batch size")
    ap.add_argument("--warm", action="store_true",
                    help="run each catalog a second time on the same generator (CUDA graphs already captured)")
    ap.add_argument("--prep-stream", choices=["on", "off"], default="on",
                    help="catalog: prepare each batch's conditions on a CUDA stream of their own (the generator's "
                         "default on CUDA) or on the default stream, behind the batch being sampled")
    ap.add_argument("--official", default=None, help="path of an official MMAudio checkout (timed, never imported by the project)")
    ap.add_argument("--layers", choices=["fast", "reference"], default="fast",
                    help="reference: run everything with the CPU's formulations of the layers (nag_model.layers.fast_path off)")
    ap.add_argument("--compare-reference", action="store_true",
                    help="also time the step graphs with the reference (CPU) formulations of the layers")
    ap.add_argument("--skip", nargs="*", default=[], choices=["step", "latency", "catalog"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--profile", default=None, metavar="TRACE",
                    help="profile the catalog at the largest batch (torch.profiler, host and device): print the "
                         "operations that take the most host time and write a Chrome trace (.json.gz) here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.layers == "reference":
        layers.fast_path = lambda x: False
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.precision, device)
    torch.manual_seed(0)
    bundle = random_bundle(args.preset, duration=args.duration).to(device, dtype)
    info = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
            "torch": torch.__version__, "precision": precision_name(dtype), "preset": args.preset,
            "duration": args.duration, "steps": args.steps, "layers": args.layers, "prep_stream": args.prep_stream,
            "base_params_m": sum(p.numel() for p in bundle.base.parameters()) / 1e6,
            "controlnet_params_m": sum(p.numel() for p in bundle.controlnet.parameters()) / 1e6}
    print(json.dumps(info), flush=True)
    results = {"info": info}
    started = time.perf_counter()
    if "step" not in args.skip:
        results["step"] = step_table(bundle, args, device, load_official(args.official))
    if "latency" not in args.skip:
        results["latency"] = latency(bundle, args, device)
        print("  latency", json.dumps(results["latency"]), flush=True)
    if "catalog" not in args.skip:
        results["catalog"] = catalog(bundle, args, device)
    if args.profile:
        profile_catalog(bundle, args, device)
    results["info"]["bench_s"] = time.perf_counter() - started
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    print_tables(results)


def print_tables(r: dict) -> None:
    i = r["info"]
    print(f"\n{i['device']}, torch {i['torch']}, {i['precision']}, {i['preset']} {i['duration']} s, {i['steps']} steps; "
          f"base {i['base_params_m']:.2f} M, ControlNet {i['controlnet_params_m']:.2f} M params; {i['bench_s']:.0f} s")
    if "step" in r:
        print("| batch | official CFG step | our CFG step (eager / graph) | our NAG step (eager / graph) | NAG/CFG | NAG tracks/s (sampling) | peak GiB (NAG) |")
        print("|---|---|---|---|---|---|---|")
        for s in r["step"]:
            nag = s.get("nag_graph_ms", s["nag_eager_ms"])
            off = f"{s['official_cfg_ms']:.1f} ms" if "official_cfg_ms" in s else "n/a"
            cfg = f"{s['cfg_eager_ms']:.1f} / {s['cfg_graph_ms']:.1f} ms" if "cfg_graph_ms" in s else f"{s['cfg_eager_ms']:.1f} ms"
            nags = f"{s['nag_eager_ms']:.1f} / {s['nag_graph_ms']:.1f} ms" if "nag_graph_ms" in s else f"{s['nag_eager_ms']:.1f} ms"
            mem = f"{s['nag_peak_gib']:.2f}" if "nag_peak_gib" in s else "n/a"
            if "nag_graph_ref_ms" in s:
                nags += f" (reference layers {s['nag_graph_ref_ms']:.1f})"
                cfg += f" (reference layers {s['cfg_graph_ref_ms']:.1f})"
            print(f"| {s['batch']} | {off} | {cfg} | {nags} | {s['nag_over_cfg']:.2f} | "
                  f"{s['batch'] / (nag / 1000 * i['steps']):.1f} | {mem} |")
    if "latency" in r:
        lat = r["latency"]
        print(f"NAG track at batch 1 ({lat['steps']} steps): sampling {lat['sampling_s'] * 1000:.0f} ms, "
              f"end to end {lat['end_to_end_s'] * 1000:.0f} ms")
    if "catalog" in r:
        print("| B | run | videos | tracks | wall s | tracks/s | host in _launch s: mixes / conditions (text) / "
              "sampling (sampler) / decode | host in _finish s | graph captures (s) | GPU busy (NVML) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for c in r["catalog"]:
            print(f"| {c['batch']} | {c.get('run', 'cold')} | {c['videos']} | {c['tracks']} | {c['wall_s']:.1f} | "
                  f"{c['tracks_per_s']:.1f} | {c['launch_s']:.1f}: {c['mixes_s']:.1f} / {c['condition_sets_s']:.1f} "
                  f"({c['text_encoder_s']:.1f}) / {c['sample_s']:.1f} ({c['sampler_s']:.1f}) / {c['decode_s']:.1f} | "
                  f"{c['finish_s']:.1f} | {c.get('graph_captures', 0)} ({c.get('graph_capture_s', 0.0):.1f}) | "
                  f"{c.get('gpu_busy_pct', float('nan')):.0f}% |"
                  + ("" if c["finite"] else " (non-finite audio!)"))

if __name__ == "__main__":
    main()
