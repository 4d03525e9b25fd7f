"""The sync probe: which token time it labels, for each sync layout."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from nag_model.encoders.demo import PixelVideoEncoder, PixelVideoEncoderConfig
from synthfoley.world import make_clip

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "sync_probe.py"
_spec = importlib.util.spec_from_file_location("sync_probe", _PATH)
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)


def test_nominal_spans_tile_the_clip_as_the_upsampling_reads_them():
    spans = probe.nominal_spans(192, 8.0)
    assert spans[0] == (0.0, 8.0 / 192) and spans[-1][1] == pytest.approx(8.0)
    assert all(a[1] == pytest.approx(b[0]) for a, b in zip(spans, spans[1:]))


def test_labels_mark_each_on_screen_event_once_at_its_nominal_time():
    clip = next(c for c in map(make_clip, range(200))
                if any(i.on_screen and i.sounding and i.kind in probe.EVENT_KINDS and i.event_times for i in c.sources))
    times = sorted(e for i in clip.sources if i.on_screen and i.sounding and i.kind in probe.EVENT_KINDS
                   for e in i.event_times)
    for layout in ("segments", "aligned"):
        x, y = probe.clip_xy(PixelVideoEncoder(PixelVideoEncoderConfig(sync_layout=layout)), clip, "nominal")
        assert x.shape == (192, 3 * 64) and y.shape == (192,)
        assert sorted(np.flatnonzero(y)) == sorted({int(e / 8.0 * 192) for e in times})
    with pytest.raises(ValueError, match="segments layout"):
        probe.clip_xy(PixelVideoEncoder(PixelVideoEncoderConfig(sync_layout="aligned")), clip, "content")


def test_the_probe_reports_other_sync_features_beside_the_committed_ones(capsys):
    probe.main(["--train", "4", "--val", "3", "--per-kind", "--sync-grid", "16", "--motion-gain", "32"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| aligned")]
    assert [r.split(" | ")[0] for r in rows] == ["| aligned", "| aligned, grid 16, motion x32"]
    auc = [float(r.rstrip(" |").split(" | ")[-1]) for r in rows]
    assert all(0.0 <= a <= 1.0 for a in auc)
    assert "ROC AUC val, aligned, grid 16, motion x32" in out  # the per-kind table has a column for each


def test_the_probe_reports_motion_energy_sync_features(capsys):
    probe.main(["--train", "4", "--val", "3", "--sync-grid", "8", "--sync-features", "motion_energy"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| aligned")]
    assert [r.split(" | ")[0] for r in rows] == ["| aligned", "| aligned, grid 8, motion energy"]
    assert 0.0 <= float(rows[1].rstrip(" |").split(" | ")[-1]) <= 1.0
