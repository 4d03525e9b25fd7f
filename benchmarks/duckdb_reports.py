"""Time the canned DuckDB reports of storage.query on a synthetic catalog.

Builds, in a temporary folder, 1,000,000 ``tracks`` rows (50,000 videos in 5 runs; per video
18 tracks at version 1 and 2 of them regenerated at version 2), one ``clap_score`` metric per
track row plus one ``lufs`` mix metric per video (1,050,000 ``metrics`` rows) and 50,000
``videos`` rows (2 % failed). It writes them with ``storage.tables.write_rows`` as 100 units
per run (500 part files per table), times every report, compacts every partition (5 files per
table), and times them again. Each time is the median of ``--repeats`` runs on one
connection; CPU time is printed too, since wall time on a shared 2-core machine depends on
its load.

Usage: .venv/bin/python benchmarks/duckdb_reports.py [--repeats 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common.methods  # noqa: E402
from storage import query, tables  # noqa: E402
from storage.root import Root, open_root  # noqa: E402

RUNS = 5
VIDEOS_PER_RUN = 10_000
TRACKS_V1 = 18
TRACKS_V2 = 2
UNITS_PER_RUN = 100
CAPTIONS = [f"caption {i}: footsteps on gravel, take {i % 7}" for i in range(500)]
METHODS = np.array(common.methods.METHODS)


def synthetic_run(run: int, rng: np.random.Generator) -> dict[str, pa.Table]:
    """Arrow tables of one run: videos, tracks, metrics."""
    run_id = f"bench-run-{run}"
    n_videos = VIDEOS_PER_RUN
    video_ids = np.array([f"r{run}-video-{i:06d}" for i in range(n_videos)])
    failed = rng.random(n_videos) < 0.02
    videos = pa.table({
        "video_id": video_ids,
        "version": np.ones(n_videos, np.int32),
        "video_uri": np.char.add("s3://catalog/", video_ids),
        "status": np.where(failed, "failed", "ok"),
        "error": pa.array(np.where(failed, "decode error: moov atom not found", None)),
        "duration_s": rng.uniform(2, 30, n_videos),
        "fps": np.full(n_videos, 25.0),
        "width": np.full(n_videos, 640, np.int32),
        "height": np.full(n_videos, 360, np.int32),
        "has_audio": rng.random(n_videos) < 0.5,
        "n_captions": np.full(n_videos, TRACKS_V1, np.int32),
    })
    # Tracks: 18 slots at v1, the first 2 slots again at v2.
    slot = np.concatenate([np.arange(TRACKS_V1), np.arange(TRACKS_V2)])
    version = np.concatenate([np.ones(TRACKS_V1, np.int32), np.full(TRACKS_V2, 2, np.int32)])
    per_video = len(slot)
    video_index = np.repeat(np.arange(n_videos), per_video)
    slots = np.tile(slot, n_videos)
    versions = np.tile(version, n_videos)
    n = len(video_index)
    track_ids = np.char.add("t", slots.astype(str))
    tracks = pa.table({
        "video_id": video_ids[video_index],
        "track_id": track_ids,
        "version": versions,
        "supersedes": pa.array(np.where(versions > 1, versions - 1, None), pa.int32()),
        "position": slots.astype(np.int32),
        "caption": np.array(CAPTIONS)[rng.integers(0, len(CAPTIONS), n)],
        "seed": rng.integers(0, 2**31, n),
        "method": METHODS[rng.integers(0, 3, n)],
        "alpha": np.full(n, 0.25),
        "beta": np.full(n, 2.0),
        "steps": np.full(n, 25, np.int32),
        "uri": np.char.add("s3://out/", track_ids),
        "sha256": np.full(n, "0" * 64),
        "duration_s": np.full(n, 8.0),
        "sample_rate": np.full(n, 44_100, np.int32),
    })
    track_metrics = pa.table({
        "video_id": tracks["video_id"],
        "track_id": tracks["track_id"],
        "version": tracks["version"],
        "metric": np.full(n, "clap_score"),
        "value": rng.normal(0.3, 0.05, n),
        "model": np.full(n, "clap-630k"),
    })
    mix_metrics = pa.table({
        "video_id": video_ids,
        "track_id": pa.nulls(n_videos, pa.string()),
        "version": np.ones(n_videos, np.int32),
        "metric": np.full(n_videos, "lufs"),
        "value": rng.normal(-23, 1, n_videos),
        "model": pa.nulls(n_videos, pa.string()),
    })
    return {
        "run_id": run_id,
        "videos": videos,
        "tracks": tracks,
        "metrics": pa.concat_tables([track_metrics, mix_metrics]),
    }


def write_run(root: Root, data: dict) -> None:
    """Write one run as UNITS_PER_RUN units per table (a unit = a block of videos)."""
    run_id = data["run_id"]
    for table in ("videos", "tracks", "metrics"):
        rows = data[table]
        video_numbers = np.array([int(v.rsplit("-", 1)[1]) for v in rows["video_id"].to_pylist()])
        unit_of_row = video_numbers * UNITS_PER_RUN // VIDEOS_PER_RUN
        for unit in range(UNITS_PER_RUN):
            part = rows.filter(pa.array(unit_of_row == unit))
            tables.write_rows(root, table, run_id, part, unit=f"block-{unit}")


def median_seconds(fn, repeats: int) -> tuple[float, float]:
    """Median wall-clock and median CPU (all threads of this process) seconds of ``fn()``."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def time_reports(root: Root, label: str, repeats: int) -> None:
    t0 = time.perf_counter()
    con = query.connect(root)
    connect_s = time.perf_counter() - t0
    rows = con.sql("SELECT count(*) FROM tracks").fetchall()[0][0]
    print(f"\n[{label}] connect (list files, build views): {connect_s:.3f} s; tracks rows = {rows:,}")
    for name, report in query.REPORTS.items():
        result = report(con)
        wall, cpu = median_seconds(lambda report=report: report(con), repeats)
        print(f"  {name:20s} median {wall:.3f} s wall, {cpu:.3f} s CPU over {repeats} runs "
              f"({result.num_rows} result rows; load average {os.getloadavg()[0]:.1f})")
    con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="build the data here and keep it")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="foley-bench-"))
    root = open_root(str(folder))
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for run in range(RUNS):
        write_run(root, synthetic_run(run, rng))
    n_files = len(root.list("tables"))
    print(f"built {RUNS} runs in {time.perf_counter() - t0:.1f} s: {n_files} Parquet files under {folder}")
    time_reports(root, "500 part files per table", args.repeats)
    t0 = time.perf_counter()
    for run in range(RUNS):
        for table in ("videos", "tracks", "metrics"):
            tables.compact(root, table, f"bench-run-{run}")
    print(f"\ncompacted {RUNS * 3} partitions in {time.perf_counter() - t0:.1f} s")
    time_reports(root, "compacted: 5 files per table", args.repeats)
    if not args.keep:
        import shutil

        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
