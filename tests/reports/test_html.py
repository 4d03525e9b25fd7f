"""The report's numbers: confidence intervals, mix status, edit history lines."""
from __future__ import annotations

import pytest

from reports.html import _history, mix_status, summarise


def test_the_interval_is_a_student_t_interval():
    s = summarise("nag", "clap", [1.0, 2.0, 3.0, 4.0])
    assert s.mean == 2.5 and s.n == 4
    half = 3.182446305284263 * (1.6666666666666667 ** 0.5) / 2  # t(0.975, 3) * sd / sqrt(n)
    assert s.low == pytest.approx(2.5 - half) and s.high == pytest.approx(2.5 + half)
    one = summarise("nag", "clap", [0.3])
    assert one.low is None and one.high is None and one.mean == 0.3


@pytest.mark.parametrize("lufs, peak, status", [
    (-20.0, -1.0, "ok"), (-20.4, -3.0, "ok"), (-21.0, -3.0, "-21.0 LUFS, target -20"),
    (-20.0, -0.5, "true peak -0.50 dBTP over -1"), (None, -2.0, "not measured"),
])
def test_mix_status(lufs, peak, status):
    assert mix_status({"lufs": lufs, "true_peak_db": peak}) == status


def test_history_names_added_regenerated_and_removed_tracks():
    tracks = [{"track_id": "t0", "version": 1, "caption": "Rain falls."}, {"track_id": "t1", "version": 1, "caption": "A"},
              {"track_id": "t1", "version": 2, "caption": "Wind blows."}, {"track_id": "t2", "version": 1, "caption": "B"}]
    mixes = [{"version": 1, "track_ids": ["t0", "t1"], "track_versions": [1, 1]},
             {"version": 2, "track_ids": ["t0", "t1", "t2"], "track_versions": [1, 1, 1]},
             {"version": 3, "track_ids": ["t0", "t1", "t2"], "track_versions": [1, 2, 1]},
             {"version": 4, "track_ids": ["t1", "t2"], "track_versions": None}]  # an older row: versions unknown
    assert _history(tracks, list(reversed(mixes))) == [
        "mix v2: added t2 v1 “B”", "mix v3: regenerated t1: v1 → v2 “Wind blows.”",
        "mix v4: removed t0 v1"]


def test_s3_links_are_presigned_and_local_links_relative(monkeypatch, tmp_path):
    from reports.html import _Links
    from storage import keys
    from storage.root import open_root

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    monkeypatch.setenv("FOLEY_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    root = open_root("s3://studio/out")  # presigning is local: no request is made
    key = keys.mix_key("r", "v", 1)
    link = _Links(root, keys.report_key("r"), 3600)(root.uri(key))
    import re
    import time

    assert link.startswith("http://127.0.0.1:9/studio/out/runs/") and "Signature=" in link  # SigV2 or SigV4 query auth
    expires = re.search(r"(?:X-Amz-)?Expires=(\d+)", link).group(1)
    assert int(expires) == 3600 or abs(int(expires) - (time.time() + 3600)) < 120
    assert "not-a-real-secret" not in link
    local = open_root(f"file://{tmp_path}")
    assert _Links(local, keys.report_key("r"), 3600)(local.uri(key)) == "../../" + key
    assert _Links(local, keys.report_key("r"), 3600)("https://elsewhere/x.mp4") == "https://elsewhere/x.mp4"
