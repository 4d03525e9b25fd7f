"""Run-level set metrics with the demo evaluator as an evaluation model: rows, reference sets, resume, edits."""
from __future__ import annotations

import uuid

import numpy as np
import pytest

from evaluation.registry import WeightRef, load_eval_model
from evaluation.run_sets import cut, model_features, reference_audio, score_run_sets, set_values
from evaluation.set_metrics import frechet_distance, inception_score_splits, kl_softmax_per_clip
from media.audio_io import audio_to_bytes
from pipeline.models import DEMO_MODEL_DIR
from storage import keys
from storage.query import connect
from storage.root import open_root
from storage.tables import read_table, write_rows

import foley_test_helpers as H  # tests/conftest.py SHARED_MODULES
RATE, SECONDS = 16000, 1.0
WEIGHTS = {"demo": WeightRef(str(DEMO_MODEL_DIR))}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("sources")
    return {"v0": str(H.write_video(d / "v0.mp4", 1.0, audio=True)), "v1": str(H.write_video(d / "v1.mp4", 1.0, audio=True)),
            "v2": str(H.write_video(d / "v2.mp4", 1.0, audio=True)), "v3": str(H.write_video(d / "v3.mp4", 1.0))}


@pytest.fixture
def root():
    r = open_root(f"memory://sets-{uuid.uuid4().hex[:8]}")
    yield r
    r.fs.rm(r.base, recursive=True)


def _store_video(root, run_id, vid, source, version, rng):
    unit = f"{vid}@v{version}"
    uris = []
    for key in [keys.track_key(run_id, vid, f"t{k}", version) for k in range(2)] + [keys.mix_key(run_id, vid, version)]:
        f = np.linspace(200, 3000, 3)[rng.integers(3)]
        wav = (0.3 * np.sin(2 * np.pi * f * np.arange(RATE) / RATE) + 0.05 * rng.normal(size=RATE)).astype(np.float32)
        uris.append(root.uri(key))
        root.put_atomic(key, audio_to_bytes(wav, RATE, format="flac"))
    write_rows(root, "tracks", run_id, [
        {"video_id": vid, "track_id": f"t{k}", "version": version, "position": k, "caption": f"c{k}", "seed": k,
         "method": "nag", "steps": 2, "uri": uris[k], "sha256": "x", "duration_s": 1.0, "sample_rate": RATE}
        for k in range(2)], unit=unit)
    write_rows(root, "mixes", run_id, [{"video_id": vid, "version": version, "track_ids": ["t0", "t1"],
                                        "track_versions": [version] * 2, "uri": uris[2], "sha256": "x"}], unit=unit)
    write_rows(root, "videos", run_id, [{"video_id": vid, "version": version, "video_uri": source, "status": "ok"}],
               unit=unit)
    return uris


class Counting:
    """The loader of score_run_sets, counting the clips each model is asked for."""

    def __init__(self):
        self.clips = 0

    def __call__(self, name, ref):
        model = load_eval_model(name, ref)
        outer = self

        class Wrapped:
            sample_rate, name = model.sample_rate, model.name

            def features(self, wavs):
                outer.clips += len(wavs)
                return model.features(wavs)
        return Wrapped()


def test_set_rows_against_the_source_audio_resume_and_edits(root, sources):
    rng = np.random.default_rng(0)
    uris = {v: _store_video(root, "r", v, sources[v], 1, rng) for v in sources}
    loader = Counting()
    rows = score_run_sets(root, "r", WEIGHTS, SECONDS, "nag", loader=loader)
    by = {(r["scope"], r["metric"]): r for r in rows}
    assert set(by) == {("mixes", "fd"), ("mixes", "kl"), ("mixes", "is"), ("tracks", "is")}
    assert all(r["model"] == "demo-tagger" and r["method"] == "nag" and r["video_ids"] == ["v0", "v1", "v2", "v3"]
               and r["video_versions"] == [1, 1, 1, 1] for r in rows)
    kl = by[("mixes", "kl")]  # v3 has no audio stream: no reference clip, no KL for it
    assert kl["n"] == 3 and kl["per_video"][3] is None and kl["value"] == pytest.approx(np.mean(kl["per_video"][:3]))
    assert by[("mixes", "fd")]["n"] == 4 and by[("mixes", "fd")]["n_reference"] == 3
    assert by[("mixes", "fd")]["reference"] == "source_audio" and by[("mixes", "is")]["reference"] is None
    assert by[("tracks", "is")]["n"] == 8 and loader.clips == 4 + 3 + 8

    # by hand: the same clips through the model and av-benchmark's formulas
    model = load_eval_model("demo", WEIGHTS["demo"])
    rate = model.sample_rate
    from pipeline.objects import read_audio
    gen = model.features(np.stack([cut(*read_audio(root, uris[v][2]), rate, SECONDS) for v in sources]))
    refs = reference_audio(sources, rate, SECONDS)
    assert sorted(refs) == ["v0", "v1", "v2"]
    ref = model.features(np.stack([cut(refs[v], rate, rate, SECONDS) for v in sorted(refs)]))
    assert by[("mixes", "fd")]["value"] == pytest.approx(frechet_distance(gen["embedding"], ref["embedding"], method="eigh"), rel=1e-6)
    assert kl["per_video"][:3] == pytest.approx(list(kl_softmax_per_clip(gen["logits"][:3], ref["logits"])), rel=1e-6)
    assert by[("mixes", "is")]["value"] == pytest.approx(inception_score_splits(gen["logits"], splits=1)[0], rel=1e-6)

    again = score_run_sets(root, "r", WEIGHTS, SECONDS, "nag", loader=loader)  # resumed: nothing recomputed
    assert loader.clips == 15 and len(again) == 4 and read_table(root, "run_metrics", "r").num_rows == 4
    _store_video(root, "r", "v1", sources["v1"], 2, rng)  # an edit: v1 is now at version 2
    edited = score_run_sets(root, "r", WEIGHTS, SECONDS, "nag", loader=loader)
    assert loader.clips > 15 and {tuple(r["video_versions"]) for r in edited} == {(1, 2, 1, 1)}
    assert read_table(root, "run_metrics", "r").num_rows == 4  # the unit replaced, no duplicate rows
    con = connect(root)
    assert con.execute("SELECT count(*), min(model) FROM run_metrics WHERE run_id = 'r' AND metric = 'kl'").fetchone() == (1, "demo-tagger")


def test_a_reference_manifest_pairs_by_id(root, sources, tmp_path):
    rng = np.random.default_rng(1)
    for v in ("v0", "v1"):
        _store_video(root, "r", v, sources[v], 1, rng)
    manifest = tmp_path / "reference.csv"
    manifest.write_text(f"id,video_uri\nv1,{sources['v2']}\nv9,{sources['v0']}\nv0,{sources['v1']}\n")
    rows = score_run_sets(root, "r", WEIGHTS, SECONDS, "independent", reference_manifest=str(manifest))
    by = {(r["scope"], r["metric"]): r for r in rows}
    assert by[("mixes", "fd")]["n_reference"] == 3 and by[("mixes", "fd")]["reference"] == str(manifest)
    assert by[("mixes", "kl")]["n"] == 2 and None not in by[("mixes", "kl")]["per_video"]


def test_set_values_need_enough_clips():
    logits = np.random.default_rng(0).normal(size=(1, 5))
    only = set_values({"embedding": np.ones((1, 3)), "logits": logits}, ["a"], {"embedding": np.ones((1, 3)),
                                                                              "logits": logits}, ["b"])
    assert set(only) == {"is"}  # one clip: no FD; no id in common: no KL
    frames = set_values({"frames": [np.random.default_rng(1).normal(size=(3, 4))]}, ["a"],
                        {"frames": [np.random.default_rng(2).normal(size=(4, 4))]}, ["a"])
    assert set(frames) == {"fd"} and frames["fd"].n == 3 and frames["fd"].n_reference == 4  # VGGish: every example


def test_model_features_keep_the_order_of_clips_of_different_lengths():
    class Echo:
        def features(self, wavs):
            return {"embedding": np.stack([[w.shape[-1], w[0]] for w in wavs]), "logits": np.zeros((len(wavs), 2))}
    waves = [np.full(n, i, np.float32) for i, n in enumerate((5, 3, 5, 4))]
    assert model_features(Echo(), waves)["embedding"].tolist() == [[5, 0], [3, 1], [5, 2], [4, 3]]


def test_the_tables_reuse_a_runs_stored_set_rows_and_give_the_same_numbers(root, sources):
    from evaluation.paper_tables import paper_table_rows
    from evaluation.protocol import Setting

    rng = np.random.default_rng(3)
    for run_id in ("e-base", "e-nag"):
        for v in ("v0", "v1", "v2"):
            _store_video(root, run_id, v, sources[v], 1, rng)
    runs = [(Setting("independent", "descending"), "e-base"), (Setting("nag", "descending", 1.5), "e-nag")]
    model = load_eval_model("demo", WEIGHTS["demo"])
    computed = paper_table_rows(root, runs, None, SECONDS, n_resamples=200, eval_models={"demo": model})
    for run_id, method in (("e-base", "independent"), ("e-nag", "nag")):
        score_run_sets(root, run_id, WEIGHTS, SECONDS, method)

    class NoFeatures:  # the stored rows must be enough: features() would fail
        name, sample_rate = model.name, model.sample_rate

        def features(self, wavs):
            raise AssertionError("recomputed although the run's rows cover the videos")
    stored = paper_table_rows(root, runs, None, SECONDS, n_resamples=200, eval_models={"demo": NoFeatures()})
    key = lambda r: (r["scope"], r["metric"], r["method"])
    assert {key(r) for r in stored} == {key(r) for r in computed} == {
        (s, m, meth) for meth in ("independent", "nag") for s, m in (("composite", "fd"), ("composite", "kl"),
                                                                     ("composite", "is"), ("tracks", "is"))}
    by = {key(r): r for r in computed}
    for r in stored:
        for col in ("value", "n", "diff", "diff_low", "diff_high", "reference"):
            want = by[key(r)][col]
            assert r[col] == (want if want is None or isinstance(want, str) else pytest.approx(want, rel=1e-9)), \
                (key(r), col)


def test_is_takes_ten_splits_and_one_below_ten_clips():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(12, 5)) * 3
    assert set_values({"logits": logits}, [], None, [])["is"].value == pytest.approx(
        inception_score_splits(logits, splits=10)[0])
    few = logits[:4]
    value = set_values({"logits": few}, [], None, [])["is"].value
    assert value == pytest.approx(inception_score_splits(few, splits=1)[0]) and value > 1.0


def test_other_weights_for_the_same_model_recompute(root, sources):
    rng = np.random.default_rng(5)
    for v in ("v0", "v1"):
        _store_video(root, "r", v, sources[v], 1, rng)
    loader = Counting()
    score_run_sets(root, "r", WEIGHTS, SECONDS, "nag", loader=loader)
    first = loader.clips
    other = {"demo": WeightRef(str(DEMO_MODEL_DIR) + "/")}  # another entry (the same files): recomputed
    rows = score_run_sets(root, "r", other, SECONDS, "nag", loader=loader)
    assert loader.clips == 2 * first and {r["weights"] for r in rows} == {f"demo={DEMO_MODEL_DIR}/"}
    assert read_table(root, "run_metrics", "r").num_rows == len(rows)
