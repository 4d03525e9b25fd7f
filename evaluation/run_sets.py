"""Set metrics of one catalog run against a reference set (FD, KL, IS), as av-benchmark computes them, stored
as run-level rows of the ``run_metrics`` table.

The generated set is the run's latest finished version of each video: its mix (``scope='mixes'``: FD, KL, IS
of Table 1) and all its tracks (``scope='tracks'``: IS of Table 2). Every clip is the first ``seconds`` of the
audio (av-benchmark's 8 s), cut, not padded (the models pad where av-benchmark does), resampled to the model's
rate. The reference set (``reference``) is

* ``source_audio``: each source video's own audio track (videos without an audio stream are left out), or
* a reference manifest (CSV/JSONL/Parquet with ``id, video_uri``; the URI may be any audio or video file):
  its ids pair reference clips with the run's videos for KL; FD uses all of its clips.

Per model with the ``set`` role (:mod:`evaluation.registry`) and its ``features(wavs)``:

* ``fd``: Fréchet distance of the generated embeddings (``embedding``, or every VGGish example of
  ``frames``) against the reference ones (:func:`evaluation.set_metrics.frechet_distance`, av-benchmark's
  ``scipy.linalg.sqrtm`` form for the paper's models, the exact eigen-decomposition form for the demo's);
* ``kl``: per video, ``KL(softmax(reference logits) || softmax(generated logits))``, averaged over the videos
  that have a reference clip (``per_video`` holds each one, for paired CIs);
* ``is``: inception score of the generated logits, 10 shuffled splits (:func:`inception_score_splits`); with
  fewer than 10 clips (where av-benchmark's empty splits give NaN) one split over all of them, the plain IS.

Writes (:func:`score_run_sets`): one unit per (run, model) (``set@<model>``), replaced atomically, so a rerun
never duplicates rows; each row names the video versions it covers (``video_ids``, ``video_versions``) and the
reference, and a unit whose rows already cover the run's current versions with the same reference, length and
weights entry is not recomputed (a resumed or repeated run costs nothing; an edit makes it recompute).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from evaluation.registry import EVAL_MODELS, SET, WeightRef, load_eval_model, model_label
from evaluation.set_metrics import frechet_distance, inception_score_splits, kl_softmax_per_clip
from media.audio_io import resample
from media.decode import decode_audio
from media.errors import NoAudioStream
from pipeline.objects import open_input, read_audio
from storage.manifest import load_manifest
from storage.root import Root
from storage.tables import read_table, write_rows

SOURCE_AUDIO = "source_audio"
BATCH = 16  # clips per features() call


@dataclass
class RunAudio:
    """What one run delivered for each finished video: its mix, its tracks and their metric rows."""

    run_id: str
    video_uri: dict[str, str] = field(default_factory=dict)
    version: dict[str, int] = field(default_factory=dict)
    mix_uri: dict[str, str] = field(default_factory=dict)
    track_uris: dict[str, list[str]] = field(default_factory=dict)
    track_values: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # metric -> video -> values
    mix_values: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> video -> value


def _latest(rows: list[dict], key: tuple[str, ...]) -> dict[tuple, dict]:
    out: dict[tuple, dict] = {}
    for r in rows:
        k = tuple(r[c] for c in key)
        if k not in out or r["version"] > out[k]["version"]:
            out[k] = r
    return out


def load_run(root: Root, run_id: str, model: str | None = None, track_metrics: Sequence[str] = (),
             mix_metrics: Sequence[str] = ()) -> RunAudio:
    """The latest ok version of each video of a run: mix, tracks (in mix order) and ``model``'s metric rows
    (``track_metrics`` per track, ``mix_metrics`` per mix)."""
    run = RunAudio(run_id)
    videos = _latest(read_table(root, "videos", run_id).to_pylist(), ("video_id",))
    mixes = _latest(read_table(root, "mixes", run_id).to_pylist(), ("video_id",))
    tracks = {(r["video_id"], r["track_id"], r["version"]): r for r in read_table(root, "tracks", run_id).to_pylist()}
    for (vid,), v in videos.items():
        mix = mixes.get((vid,))
        if v["status"] != "ok" or mix is None or mix["version"] != v["version"]:
            continue
        run.video_uri[vid], run.mix_uri[vid], run.version[vid] = v["video_uri"], mix["uri"], v["version"]
        run.track_uris[vid] = [tracks[(vid, t, n)]["uri"] for t, n in zip(mix["track_ids"], mix["track_versions"])]
    if model is None:
        return run
    wanted_tracks = {(vid, t, n) for vid in run.mix_uri
                     for t, n in zip(mixes[(vid,)]["track_ids"], mixes[(vid,)]["track_versions"])}
    for m in read_table(root, "metrics", run_id).to_pylist():
        vid = m["video_id"]
        if m["model"] != model or vid not in run.mix_uri:
            continue
        if m["track_id"] is None and m["metric"] in mix_metrics and m["version"] == mixes[(vid,)]["version"]:
            run.mix_values.setdefault(m["metric"], {})[vid] = m["value"]
        elif (m["track_id"] is not None and m["metric"] in track_metrics
              and (vid, m["track_id"], m["version"]) in wanted_tracks):
            run.track_values.setdefault(m["metric"], {}).setdefault(vid, []).append(m["value"])
    return run


def cut(wav: np.ndarray, rate: int, target: int, seconds: float) -> np.ndarray:
    """Mono ``wav`` at ``target`` Hz, its first ``seconds`` (not padded)."""
    x = np.asarray(wav, np.float32)
    x = x if x.ndim == 1 else x.mean(axis=0)
    x = x[: int(np.ceil(seconds * rate))]
    x = resample(x, rate, target) if rate != target else x
    return np.ascontiguousarray(x[: round(seconds * target)], np.float32)


def model_features(model: Any, waves: Sequence[np.ndarray]) -> dict[str, Any]:
    """``model.features`` over clips of any lengths (equal lengths batched together), in the input order:
    ``{"embedding": (N, D), "logits": (N, C)}`` or ``{"frames": [(n_i, D)]}``."""
    order: dict[int, list[int]] = {}
    for i, w in enumerate(waves):
        order.setdefault(w.shape[-1], []).append(i)
    parts: dict[int, dict[str, Any]] = {}
    for idx in order.values():
        for s in range(0, len(idx), BATCH):
            chunk = idx[s:s + BATCH]
            out = model.features(np.stack([waves[i] for i in chunk]))
            for j, i in enumerate(chunk):
                parts[i] = {k: v[j] for k, v in out.items()}
    keys = parts[0].keys() if parts else ()
    return {k: ([parts[i][k] for i in range(len(waves))] if k == "frames"
                else np.stack([np.asarray(parts[i][k], np.float64) for i in range(len(waves))])) for k in keys}


def _embeddings(feats: Mapping[str, Any]) -> np.ndarray | None:
    if "frames" in feats:
        return np.concatenate([np.asarray(f, np.float64) for f in feats["frames"]]) if len(feats["frames"]) else None
    return feats.get("embedding")


@dataclass(frozen=True)
class SetValue:
    """One set metric: its value, the clips it is over, and per video values where it is a mean over videos."""

    value: float
    n: int
    n_reference: int | None = None
    per_video: dict[str, float] | None = None


IS_SPLITS = 10  # av-benchmark's


def set_values(generated: Mapping[str, Any], gen_ids: Sequence[str], reference: Mapping[str, Any] | None,
               ref_ids: Sequence[str], *, fd_method: str = "sqrtm") -> dict[str, SetValue]:
    """FD, KL and IS of the generated features against the reference features (whichever the features allow:
    FD needs embeddings and 2+ clips on each side, KL logits and a reference clip with the same id, IS logits).
    ``fd_method``: ``"sqrtm"`` (av-benchmark's) or ``"eigh"`` (:func:`evaluation.set_metrics.frechet_distance`)."""
    out: dict[str, SetValue] = {}
    emb = _embeddings(generated)
    ref_emb = None if reference is None else _embeddings(reference)
    if emb is not None and ref_emb is not None and len(emb) >= 2 and len(ref_emb) >= 2:
        out["fd"] = SetValue(frechet_distance(emb, ref_emb, method=fd_method), len(emb), len(ref_emb))
    logits = generated.get("logits")
    if logits is not None and reference is not None and reference.get("logits") is not None:
        ref_index = {v: i for i, v in enumerate(ref_ids)}
        pairs = [(i, ref_index[v]) for i, v in enumerate(gen_ids) if v in ref_index]
        if pairs:
            kl = kl_softmax_per_clip(logits[[i for i, _ in pairs]], reference["logits"][[j for _, j in pairs]])
            per = {gen_ids[i]: float(k) for (i, _), k in zip(pairs, kl)}
            out["kl"] = SetValue(float(np.mean(kl)), len(pairs), len(pairs), per)
    if logits is not None and len(logits):
        splits = IS_SPLITS if len(logits) >= IS_SPLITS else 1
        out["is"] = SetValue(inception_score_splits(logits, splits=splits)[0], len(logits))
    return out


def reference_audio(video_uris: Mapping[str, str], rate: int, seconds: float,
                    manifest: str | None = None) -> dict[str, np.ndarray]:
    """The reference clips at ``rate``: the source videos' own audio (those without an audio stream left out),
    or the clips of a reference manifest (all of them, by id)."""
    uris = dict(video_uris) if manifest is None else {e.video_id: e.video_uri for e in load_manifest(manifest)
                                                       if not e.error}
    out = {}
    for vid, uri in sorted(uris.items()):
        try:
            with open_input(uri) as source:
                out[vid] = np.asarray(decode_audio(source, rate, duration=seconds), np.float32)
        except NoAudioStream:
            continue
    return out


Loader = Callable[[str, WeightRef], Any]


def fd_method_of(name: str) -> str:
    """av-benchmark's FD (``sqrtm``) for the paper's models; the exact form for the demo's (few clips, singular)."""
    return "sqrtm" if EVAL_MODELS[name].paper else "eigh"


def _unit(model_name: str) -> str:
    return f"set@{model_name}"


def _up_to_date(unit_rows: list[dict], ids: list[str], versions: list[int], reference: str, seconds: float,
                weights: str) -> bool:
    return bool(unit_rows) and all(r["video_ids"] == ids and r["video_versions"] == versions
                                   and r["seconds"] == seconds and r["reference"] in (reference, None)
                                   and r["weights"] == weights for r in unit_rows)


def score_run_sets(root: Root, run_id: str, weights: Mapping[str, WeightRef], seconds: float, method: str, *,
                   reference_manifest: str | None = None, loader: Loader = load_eval_model) -> list[dict]:
    """Compute (or keep, when up to date) and store the ``run_metrics`` rows of every ``set`` model in
    ``weights``; returns the run's rows of those models.

    Raises:
        ValueError: the run has no finished video.
    """
    run = load_run(root, run_id)
    ids = sorted(run.mix_uri)
    if not ids:
        raise ValueError(f"run {run_id!r} has no finished video to score")
    versions = [run.version[v] for v in ids]
    reference = reference_manifest or SOURCE_AUDIO
    existing = read_table(root, "run_metrics", run_id).to_pylist()
    mixes = {v: read_audio(root, run.mix_uri[v]) for v in ids}
    tracks = [read_audio(root, u) for v in ids for u in run.track_uris[v]]
    refs_by_rate: dict[int, dict[str, np.ndarray]] = {}
    rows: list[dict] = []
    for name, ref in sorted(weights.items()):
        if SET not in EVAL_MODELS[name].roles:
            continue
        model = loader(name, ref)
        label = model_label(name, model)
        mine = [r for r in existing if r["model"] == label]
        if _up_to_date(mine, ids, versions, reference, float(seconds), ref.entry(name)):
            rows += mine
            continue
        rate = int(model.sample_rate)
        if rate not in refs_by_rate:
            refs_by_rate[rate] = reference_audio(run.video_uri, rate, seconds, reference_manifest)
        refs = refs_by_rate[rate]
        ref_ids = sorted(refs)
        ref_feats = model_features(model, [cut(refs[v], rate, rate, seconds) for v in ref_ids]) if refs else None
        gen = model_features(model, [cut(*mixes[v], rate, seconds) for v in ids])
        fd_method = fd_method_of(name)
        values = {("mixes", m): v for m, v in set_values(gen, ids, ref_feats, ref_ids, fd_method=fd_method).items()}
        if tracks:
            track_feats = model_features(model, [cut(w, r, rate, seconds) for w, r in tracks])
            if "is" in (tv := set_values(track_feats, [], None, [])):
                values[("tracks", "is")] = tv["is"]
        unit_rows = [{"scope": scope, "metric": metric, "model": label, "method": method, "n": v.n,
                      "value": v.value, "reference": None if metric == "is" else reference,
                      "n_reference": v.n_reference, "video_ids": ids, "video_versions": versions,
                      "per_video": None if v.per_video is None else [v.per_video.get(x) for x in ids],
                      "seconds": float(seconds), "weights": ref.entry(name)}
                     for (scope, metric), v in values.items()]
        write_rows(root, "run_metrics", run_id, unit_rows, unit=_unit(label))
        rows += unit_rows
    return rows
