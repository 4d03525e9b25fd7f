"""Do the stem judges call a mistimed sound leakage? A check of the NAG-effect judges (issue 12).

    python benchmarks/judge_timing_check.py --split val --clips 60

For clips with 3 to 5 captions it judges, for each sounding source, three versions of its own true
stem, none of which holds any other source:
  - the true stem;
  - its round trip through the demo codec (encode, Griffin-Lim decode);
  - the true stem moved later in time by --shift seconds (circularly): the right sound at the wrong times,
    which is what a generated track whose events the model did not place at the video's times looks like.
Each version is judged against every other source of the clip of another kind, as the NAG-effect
benchmark judges a track against an earlier caption, by the time-aligned NNLS judge (GT), the same
decomposition on time-averaged spectra (time-free NNLS) and the null-calibrated correlation judge, and
its own presence by the same judges. A judge of leakage should find none in any version; the rates are
reported separately for other sources that sound all the time (fan, car, wind, rain, crowd) and for
event sources.

With --leak-db, it also plants real leakage: the true stem, and the moved one, plus the other source's
true stem at each level (its RMS that many dB from the stem's), judged against that source alone. A
judge of leakage should find these: the rate is its sensitivity at that level.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.nag_effect import N_SAMPLES, null_judge, select_clips  # noqa: E402
from nag_model.bundle import load_bundle  # noqa: E402
from synthfoley.judges import NNLS_SHARE, StemMels  # noqa: E402
from synthfoley.world import SR, make_clip  # noqa: E402

CONTINUOUS = frozenset({"fan", "car", "wind", "rain", "crowd"})  # kinds that sound through the whole clip
VERSIONS = ("true stem", "codec round trip", "moved in time")
JUDGES = ("gt", "timefree", "corr")


def versions(codec, stem: np.ndarray, shift_s: float) -> dict[str, np.ndarray]:
    """The three versions of one true stem (float32, N_SAMPLES)."""
    with torch.inference_mode():
        trip = codec.decode(codec.encode(torch.tensor(stem)[None]))[0].numpy()[:len(stem)]
    return {"true stem": stem, "codec round trip": np.ascontiguousarray(trip, np.float32),
            "moved in time": np.roll(stem, int(round(shift_s * SR)))}


def planted(wav: np.ndarray, own: np.ndarray, other: np.ndarray, level_db: float) -> np.ndarray:
    """``wav`` plus ``other`` scaled so that its RMS is ``level_db`` from ``own``'s."""
    rms = lambda x: float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))  # noqa: E731
    gain = 10 ** (level_db / 20) * rms(own) / max(rms(other), 1e-12)
    return (wav + gain * other).astype(np.float32)


def _pair_row(base: dict, kinds: list[str], j: int, gt: np.ndarray, tf: np.ndarray, verdict) -> dict:
    """A track judged against source j: each judge's leakage verdict (``verdict``: the calibrated judge's)."""
    return base | {"other": kinds[j], "continuous": kinds[j] in CONTINUOUS, "gt_share": float(gt[j]),
                   "gt": bool(gt[j] >= NNLS_SHARE), "timefree": bool(tf[j] >= NNLS_SHARE), "corr": verdict.detected}


def _planted_row(stem_mels, judge, stems, kinds, k, j, version: str, wav: np.ndarray, base: dict) -> dict:
    """One pair row: ``wav`` (a version of stem k holding stem j) judged against source j."""
    gt, tf = stem_mels.shares(wav)
    _, (leak,) = judge.judge(wav, stems[k], [stems[j]], kinds)
    return _pair_row(base | {"version": version}, kinds, j, gt, tf, leak)


def check_clip(codec, judge, clip_seed: int, shift_s: float, leak_db: tuple[float, ...] = ()
               ) -> tuple[list[dict], list[dict]]:
    """(pair rows, presence rows) of one clip: every version of every source against the others, and with
    ``leak_db`` the true and moved stems holding each other source at each level (planted leakage)."""
    clip = make_clip(clip_seed, with_frames=False)
    infos = [i for i in clip.sources if i.sounding]
    stems = [np.asarray(s[:N_SAMPLES], np.float32) for i, s in zip(clip.sources, clip.stems) if i.sounding]
    kinds = [i.kind for i in infos]
    stem_mels = StemMels(codec, stems)
    pairs, presence = [], []
    for k, stem in enumerate(stems):
        others = [j for j in range(len(stems)) if kinds[j] != kinds[k]]
        for name, wav in versions(codec, stem, shift_s).items():
            gt, tf = stem_mels.shares(wav)
            own, leaks = judge.judge(wav, stem, [stems[j] for j in others], kinds)
            base = {"clip_seed": clip_seed, "version": name, "kind": kinds[k]}
            presence.append(base | {"continuous": kinds[k] in CONTINUOUS, "gt": bool(gt[k] >= NNLS_SHARE),
                                    "timefree": bool(tf[k] >= NNLS_SHARE), "corr": own.detected})
            pairs += [_pair_row(base, kinds, j, gt, tf, v) for j, v in zip(others, leaks)]
            if name == "codec round trip":
                continue
            for j in others:
                for level in leak_db:
                    pairs.append(_planted_row(stem_mels, judge, stems, kinds, k, j, leak_version(name, level),
                                              planted(wav, stem, stems[j], level), base))
    return pairs, presence


def leak_version(name: str, level_db: float) -> str:
    return f"{name} + the other source at {level_db:+g} dB"


def summarise(rows: list[dict]) -> dict[tuple[str, bool], dict[str, float]]:
    """(version, continuous) -> {n, and the rate of each judge}."""
    out = {}
    for name in dict.fromkeys(r["version"] for r in rows):  # in the order met
        for cont in (False, True):
            sel = [r for r in rows if r["version"] == name and r["continuous"] == cont]
            if sel:
                out[(name, cont)] = {"n": len(sel), **{j: float(np.mean([r[j] for r in sel])) for j in JUDGES}}
    return out


def table(summary: dict, what: str) -> str:
    lines = [f"| version | {what} | n | GT NNLS | time-free NNLS | calibrated corr |", "|---|---|---|---|---|---|"]
    for (name, cont), r in summary.items():
        lines.append(f"| {name} | {'continuous' if cont else 'event'} | {r['n']} | "
                     + " | ".join(f"{r[j]:.3f}" for j in JUDGES) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default="demo", help="whose codec makes the round trip")
    p.add_argument("--split", default="val")
    p.add_argument("--clips", type=int, default=60)
    p.add_argument("--null-clips", type=int, default=60, help="clips whose stems form the calibrated judge's null")
    p.add_argument("--shift", type=float, default=2.5, help="seconds the moved version is moved by")
    p.add_argument("--leak-db", type=float, nargs="*", default=[],
                   help="plant the other source at these levels (dB from the stem's RMS) to measure sensitivity")
    args = p.parse_args(argv)
    codec = load_bundle(args.bundle).codec
    clips, null = select_clips(args.clips, 0, split=args.split, null_clips=args.null_clips)
    judge = null_judge(null)
    pairs, presence = [], []
    for s in tqdm(clips, desc="clips"):
        a, b = check_clip(codec, judge, s, args.shift, tuple(args.leak_db))
        pairs += a
        presence += b
    print("Leakage called against another source of the clip (only the planted versions hold any):\n")
    print(table(summarise(pairs), "other source"))
    print("\nPresence of the source itself:\n")
    print(table(summarise(presence), "own source"))


if __name__ == "__main__":
    main()
