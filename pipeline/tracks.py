"""Track ids and seeds: how a catalog run names its tracks and derives their noise seeds."""
from __future__ import annotations

import hashlib


def track_id_for(position: int) -> str:
    """Track ids of a catalog run: ``t0``, ``t1``, ... by generation position (stable across versions)."""
    return f"t{position}"


def track_seed(run_seed: int, video_id: str, track_id: str, version: int = 1) -> int:
    """A track's noise seed from the run seed, video id, track id and version (63-bit, deterministic)."""
    digest = hashlib.sha256(f"track-seed\x00{run_seed}\x00{video_id}\x00{track_id}\x00{version}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)
