"""The sync probe: which token time it labels, for each sync layout."""
from __future__ import annotations


import numpy as np
import pytest

from nag_model.encoders.demo import PixelVideoEncoder, PixelVideoEncoderConfig
from synthfoley.world import make_clip

import sync_probe as probe  # tests/conftest.py SHARED_MODULES


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
    assert "ROC AUC val (crowded), aligned, grid 16, motion x32" in out  # the per-kind table has a column for each


def test_the_probe_reports_motion_energy_sync_features(capsys):
    probe.main(["--train", "4", "--val", "3", "--sync-grid", "8", "--sync-features", "motion_energy"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| aligned")]
    assert [r.split(" | ")[0] for r in rows] == ["| aligned", "| aligned, grid 8, motion energy"]
    assert 0.0 <= float(rows[1].rstrip(" |").split(" | ")[-1]) <= 1.0


def test_the_probe_reports_several_sync_features_and_the_crowded_clips_of_each_kind(capsys):
    probe.main(["--train", "6", "--val", "6", "--per-kind", "--skip-layouts", "--sync-grid", "8",
                "--sync-features", "motion_energy", "motion_energy_rgb"])
    out = capsys.readouterr().out.splitlines()
    rows = [line for line in out if line.startswith("| aligned")]
    assert [r.split(" | ")[0] for r in rows] == ["| aligned, grid 8, motion energy", "| aligned, grid 8, motion energy rgb"]
    kinds = {line.split(" | ")[0][2:]: line for line in out if line.split(" | ")[0][2:] in probe.EVENT_KINDS}
    assert set(kinds) == set(probe.EVENT_KINDS)
    clips = [make_clip(int(s)) for s in probe.split_seeds("val", 6, 0)]
    for kind, line in kinds.items():
        cells = line.rstrip(" |").split(" | ")
        shown = [c for c in clips if any(i.on_screen and i.sounding and i.kind == kind for i in c.sources)]
        assert int(cells[1]) == len(shown)
        if cells[-1] != "(on screen in no clip of a split)":
            assert int(cells[3]) == sum(probe._crowded(c, kind) for c in shown)
            assert len(cells) == 6 and all(0.0 <= float(c.split(" (")[0]) <= 1.0 for c in cells[4:])


def test_a_clip_is_crowded_for_a_kind_when_another_kinds_event_source_is_on_screen():
    def source(kind, on_screen=True, sounding=True):
        return type("Source", (), {"kind": kind, "on_screen": on_screen, "sounding": sounding})()

    clip = type("Clip", (), {"sources": [source("ball"), source("walker", on_screen=False), source("fan")]})()
    assert not probe._crowded(clip, "ball")  # the walker is off screen, the fan is no event source
    clip.sources.append(source("drip", sounding=False))
    assert not probe._crowded(clip, "ball")  # a muted drip makes no event to confuse
    clip.sources.append(source("door"))
    assert probe._crowded(clip, "ball") and probe._crowded(clip, "door")
