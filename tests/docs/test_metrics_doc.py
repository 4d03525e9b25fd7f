"""docs/metrics.md names every evaluation model, and every registered weight file with its checksums."""
from __future__ import annotations

from pathlib import Path

from evaluation.registry import EVAL_MODELS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()


def test_every_evaluation_model_and_its_registered_file_is_documented():
    for spec in EVAL_MODELS.values():
        assert f"`{spec.name}`" in DOC, spec.name
        f = spec.weight_file
        if f is not None:
            assert f.filename in DOC, f.filename
            for checksum in (f.md5, f.sha256):
                assert checksum is None or checksum in DOC, (spec.name, checksum)
    for metric in {m for s in EVAL_MODELS.values() for m in s.metrics}:
        assert f"`{metric}`" in DOC, metric
