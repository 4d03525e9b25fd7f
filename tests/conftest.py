"""Shared test settings: hermetic Prefect home, no telemetry, deterministic torch."""
import os
import tempfile
import uuid

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_UI_ENABLED", "false")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))

import importlib.abc
import importlib.util
import sys
from pathlib import Path

import torch

_TESTS = Path(__file__).resolve().parent
_ROOT = _TESTS.parent
# Modules the tests import by name that are files, not packages (the suite runs with --import-mode=importlib): the
# shared test helpers and fakes, and the benchmark and script files whose functions are tested.
SHARED_MODULES = {
    "foley_test_helpers": _TESTS / "tasks" / "helpers.py",
    "foley_flow_invariants": _TESTS / "flows" / "invariants.py",
    "tiny_mmaudio": _TESTS / "nag_model" / "tiny_mmaudio.py",
    "foley_tiny_vlm": _TESTS / "captioning" / "tiny_vlm.py",
    "foley_fault_proxy": _TESTS / "hostile" / "faultproxy.py",
    "foley_chromium": _TESTS / "reports" / "chromium.py",
    "gpu_synthesis": _ROOT / "benchmarks" / "gpu_synthesis.py",
    "nag_effect_benchmark": _ROOT / "benchmarks" / "nag_effect.py",
    "presence_diagnosis": _ROOT / "benchmarks" / "presence_diagnosis.py",
    "judge_timing_check": _ROOT / "benchmarks" / "judge_timing_check.py",
    "sync_probe": _ROOT / "benchmarks" / "sync_probe.py",
    "mutation_script": _ROOT / "scripts" / "mutation.py",
}


class _SharedModules(importlib.abc.MetaPathFinder):
    """``import foley_test_helpers`` and the like load the file of ``SHARED_MODULES``, once per session."""

    def find_spec(self, name, path=None, target=None):
        file = SHARED_MODULES.get(name)
        return importlib.util.spec_from_file_location(name, file) if file else None


sys.meta_path.append(_SharedModules())

# FOLEY_TEST_THREADS=1: one thread per process, for runs that fork workers (scripts/mutation.py); OpenMP's
# thread pool does not survive a fork.
torch.set_num_threads(int(os.environ.get("FOLEY_TEST_THREADS") or max(1, min(2, os.cpu_count() or 1))))

if os.environ.get("FOLEY_TEST_WARMUP"):
    # scripts/mutation.py: mutmut forks each mutant's pytest from a server that has imported this file. The demo
    # codec's first decode imports librosa and loads numba's compiled Griffin-Lim (about 1 s, measured); done here,
    # it is paid once in that server instead of once per mutant.
    from nag_model.codecs.demo_mel import MelCodec

    _codec = MelCodec()
    _codec.decode(torch.zeros(1, 4, _codec.config.n_mels))
    del _codec


def pytest_collection_modifyitems(config, items):
    """Three settings of mutation runs (scripts/mutation.py); a plain run is unchanged.

    - MUTANT_UNDER_TEST=<a mutant's name> (mutmut sets it): keep only the tests paired with the mutated file in
      ``[tool.foley.mutation_tests]`` of pyproject.toml; the others are deselected.
    - FOLEY_MUTATION=1 (the script sets it for every step of mutmut's run): the S3 cases (marker ``s3``) run only for
      the files of ``[tool.foley.mutation_s3] files`` (and in the runs that map and check the tests: stats, clean).
    - FOLEY_TEST_ORDER=<mutmut-stats.json>: run the fastest tests first, by their recorded durations, so that a
      mutant is usually killed by a quick test."""
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    mutation = _mutation_config(config.rootpath) if os.environ.get("FOLEY_MUTATION") or "__mutmut_" in mutant else None
    if mutation is not None:
        pairs, s3_files = mutation["mutation_tests"], mutation["mutation_s3"]["files"]
        s3_tests = {t for f in s3_files for t in pairs.get(f, ())}
        mutated = mutant.rsplit(".", 1)[0].replace(".", "/") + ".py" if "__mutmut_" in mutant else None
        paired = set(pairs.get(mutated, ())) if mutated else None
        kept, dropped = [], []
        for item in items:
            path = item.nodeid.split("::")[0]
            keep = paired is None or path in paired
            if keep and item.get_closest_marker("s3") is not None:
                keep = path in s3_tests and (mutated is None or mutated in s3_files)
            (kept if keep else dropped).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept
    stats = os.environ.get("FOLEY_TEST_ORDER")
    if not stats or not os.path.exists(stats):
        return
    import json

    with open(stats) as f:
        durations = json.load(f).get("duration_by_test", {})
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))


def _mutation_config(rootpath) -> dict:
    """``[tool.foley]`` of pyproject.toml: the pairing of mutated files and tests, and the files run with S3."""
    import tomllib

    with open(rootpath / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["foley"]


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def prefect_api():
    """One Prefect test server for the whole session, shared by every folder that runs flows (their
    conftests use it autouse); flow heartbeats off (they cost ~1 s per flow)."""
    from prefect.concurrency.services import ConcurrencySlotAcquisitionWithLeaseService
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from pipeline import gpu_slot as gpu

    with prefect_test_harness(server_startup_timeout=120):
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield
        for holder in list(gpu._holders.values()):  # release lingering GPU slots while the server is up
            holder.close()
        ConcurrencySlotAcquisitionWithLeaseService.drain_all(timeout=10)


@pytest.fixture
def root():
    """A fresh memory:// storage root (tests/storage overrides it with one of each kind)."""
    from storage.root import open_root

    r = open_root(f"memory://test-{uuid.uuid4().hex[:8]}")
    yield r
    if r.fs.exists(r.base):
        r.fs.rm(r.base, recursive=True)


@pytest.fixture
def edit_state():
    """edit_state(n_tracks=2) -> the committed state of video 'v' that an edit starts from (as
    pipeline.edit_plan.load_video_state returns it): tracks t0..t<n-1> at version 1 in one mix, run seed 3,
    and a removed track t7 whose id stays used."""

    def build(n_tracks: int = 2) -> dict:
        tracks = [{"track_id": f"t{k}", "version": 1, "position": k, "caption": f"c{k}", "seed": k, "uri": f"u{k}"}
                  for k in range(n_tracks)]
        return {"params": {"seed": 3}, "video": {"video_id": "v", "version": 1, "video_uri": "/v.mp4"},
                "mix": {"version": 1, "track_ids": [t["track_id"] for t in tracks]}, "tracks": tracks,
                "used_track_ids": [t["track_id"] for t in tracks] + ["t7"]}

    return build
