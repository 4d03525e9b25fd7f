"""The GPU benchmark's trace reading: the device's busy share and its idle gaps."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import gpu_synthesis as bench  # tests/conftest.py SHARED_MODULES


def _trace(path: Path, events: list[dict]) -> str:
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": events}, f)
    return str(path)


def test_device_idle_is_the_union_of_device_events_and_the_gaps_between_them(tmp_path):
    events = [
        {"cat": "kernel", "ts": 0, "dur": 4000},
        {"cat": "gpu_memcpy", "ts": 1000, "dur": 5000},  # overlaps the kernel: busy 0-6 ms
        {"cat": "cpu_op", "ts": 6000, "dur": 50000},  # host work is not device time
        {"cat": "kernel", "ts": 6500, "dur": 500},  # a 0.5-ms gap: not listed
        {"cat": "gpu_memset", "ts": 9000, "dur": 1000},  # a 2-ms gap
        {"cat": "kernel", "ts": 30000, "dur": 10000},  # a 20-ms gap
    ]
    report = bench.device_idle(_trace(tmp_path / "t.json.gz", events)).splitlines()
    assert report[0] == ("device busy 0.02 s of 0.04 s (44%); 2 idle gaps over 1 ms, 0.02 s in all")
    assert report[1:3] == ["  idle 20.0 ms from 0.010 s", "  idle 2.0 ms from 0.007 s"]


def test_device_idle_says_when_the_trace_has_no_device_events(tmp_path):
    assert bench.device_idle(_trace(tmp_path / "t.json.gz", [{"cat": "cpu_op", "ts": 0, "dur": 5}])) == \
        "no device events in the trace"
