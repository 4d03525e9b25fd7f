"""The run report: one self-contained HTML page per run, written into the run's storage.

``foley report html RUN_ID`` writes it, and every catalog run (and edit) writes it when it ends, to
``storage.keys.report_key(run_id)`` (``reports/<run>/index.html``). It shows

* per run: status, model and parameters; the mean of every track metric by method with a 95% confidence
  interval (Student t over the track versions measured); the failed videos with their errors; the loudness
  and true-peak status of every active mix (target -20 LUFS within :data:`LUFS_TOLERANCE`, peak at most
  :data:`TRUE_PEAK_CEILING_DB` dBTP);
* per video: the muxed video, a player for the mix and for each track, the stacked spectrograms, the captions
  in generation order with method, alpha, beta, seed and version and the per-track metrics, where the captions
  came from (manifest or captioner, its model and raw answer), and the edit history: which track was added,
  regenerated or removed, and every version of the mix with its own player.

The page has no script and embeds its pictures (spectrogram PNGs as data URLs). Audio and video are linked,
not embedded: on local storage by paths relative to the report, so the folder can be moved or served as is; on
S3 by presigned URLs (valid ``presign_s`` seconds, 7 days by default, the S3 maximum), so the page works from a
private bucket; for other file systems by their URLs.
"""
from __future__ import annotations

import base64
import math
import posixpath
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from scipy import stats

from storage import keys, tables
from storage.root import Root
from storage.versions import VIDEO_KEY, latest_rows

LUFS_TARGET = -20.0
LUFS_TOLERANCE = 0.5  # LU
TRUE_PEAK_CEILING_DB = -1.0
PRESIGN_S = 7 * 24 * 3600
TEMPLATE = "run_report.html.j2"


@dataclass(frozen=True)
class MetricSummary:
    """Mean of one metric over the measured track versions of one method, with a 95% confidence interval."""

    method: str
    metric: str
    n: int
    mean: float
    low: float | None
    high: float | None


def summarise(method: str, metric: str, values: list[float]) -> MetricSummary:
    """Mean and two-sided 95% Student-t interval (none for a single value)."""
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return MetricSummary(method, metric, n, mean, None, None)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return MetricSummary(method, metric, n, mean, mean - half, mean + half)


@dataclass
class VideoReport:
    video_id: str
    status: str
    error: str | None
    version: int
    source_uri: str
    tracks: list[dict] = field(default_factory=list)  # the active mix's tracks, in generation order
    mixes: list[dict] = field(default_factory=list)  # every version, newest first
    history: list[str] = field(default_factory=list)  # one line per edit
    captions: dict | None = None  # the captions row
    mix_metrics: list[dict] = field(default_factory=list)
    spectrogram: str | None = None  # data URL

    @property
    def anchor(self) -> str:
        return "video-" + keys.id_segment(self.video_id)


def _key_of(root: Root, uri: str | None) -> str | None:
    prefix = root.url.rstrip("/") + "/"
    return uri[len(prefix):] if uri and uri.startswith(prefix) else None


class _Links:
    """Where the page links an object: relative path (local), presigned URL (S3) or the object's URL."""

    def __init__(self, root: Root, report_key: str, presign_s: int):
        self.root, self.base, self.presign_s = root, posixpath.dirname(report_key), presign_s

    def __call__(self, uri: str | None) -> str | None:
        key = _key_of(self.root, uri)
        if key is None:
            return uri
        if self.root.protocol == "file":
            return posixpath.relpath(key, self.base)
        if self.root.protocol == "s3":
            return self.root.fs.sign(self.root.path(key), expiration=self.presign_s)
        return uri


def _latest(rows: list[dict]) -> dict[str, dict]:
    """The latest-version row of each video of one run (:func:`storage.versions.latest_rows`), by video id."""
    return {row["video_id"]: row for row in latest_rows(rows, VIDEO_KEY).values()}


def _history(tracks: list[dict], mixes: list[dict]) -> list[str]:
    """One line per mix version after the first: what changed between it and the version before."""
    lines = []
    by_version = {(t["track_id"], t["version"]): t for t in tracks}
    ordered = sorted(mixes, key=lambda m: m["version"])
    for before, after in zip(ordered, ordered[1:]):
        # rows written before track_versions existed do not say which version of a track they hold
        old = dict(zip(before["track_ids"], before["track_versions"] or [None] * len(before["track_ids"])))
        new = dict(zip(after["track_ids"], after["track_versions"] or [None] * len(after["track_ids"])))

        def named(tid: str, version: int | None) -> str:
            return tid if version is None else f"{tid} v{version}"

        changes = []
        for tid, version in new.items():
            caption = by_version.get((tid, version), {}).get("caption")
            label = named(tid, version) + (f" “{caption}”" if caption else "")
            if tid not in old:
                changes.append(f"added {label}")
            elif None not in (old[tid], version) and old[tid] != version:
                changes.append(f"regenerated {tid}: v{old[tid]} → v{version}" + (f" “{caption}”" if caption else ""))
        changes += [f"removed {named(tid, old[tid])}" for tid in old if tid not in new]
        lines.append(f"mix v{after['version']}: " + ("; ".join(changes) or "rebuilt with the same tracks"))
    return lines


def gather(root: Root, run_id: str, links) -> dict[str, Any]:
    """Everything the template shows, read from the run's tables (local or S3 alike)."""
    run_rows = tables.read_table(root, "runs", run_id).to_pylist()
    if not run_rows:
        raise LookupError(f"no run {run_id!r} under {root.url}")
    run = run_rows[0]
    read = {t: tables.read_table(root, t, run_id).to_pylist() for t in ("videos", "tracks", "mixes", "metrics",
                                                                         "captions")}
    videos = _latest(read["videos"])
    captions = _latest(read["captions"])
    tracks_by_video, mixes_by_video = defaultdict(list), defaultdict(list)
    for t in read["tracks"]:
        tracks_by_video[t["video_id"]].append(t)
    for m in read["mixes"]:
        mixes_by_video[m["video_id"]].append(m)
    metrics = defaultdict(list)  # (video, track or None, version) -> rows
    for m in read["metrics"]:
        metrics[(m["video_id"], m["track_id"], m["version"])].append(m)

    reports, per_method = [], defaultdict(list)
    for vid in sorted(videos):
        v = videos[vid]
        report = VideoReport(vid, v["status"], v["error"], v["version"], v["video_uri"], captions=captions.get(vid))
        mixes = sorted(mixes_by_video.get(vid, []), key=lambda m: -m["version"])
        tracks = tracks_by_video.get(vid, [])
        if mixes and v["status"] == "ok":
            active = mixes[0]
            index = {(t["track_id"], t["version"]): t for t in tracks}
            versions = active["track_versions"] or [  # older rows: the newest version made before the mix
                max(t["version"] for t in tracks if t["track_id"] == tid and t["created_at"] <= active["created_at"])
                for tid in active["track_ids"]]
            for tid, version in zip(active["track_ids"], versions):
                t = dict(index[(tid, version)])
                t["metrics"] = sorted(metrics.get((vid, tid, version), []), key=lambda m: m["metric"])
                t["link"] = links(t["uri"])
                report.tracks.append(t)
            report.tracks.sort(key=lambda t: t["position"])
            for m in mixes:
                report.mixes.append({**m, "link": links(m["uri"]), "video_link": links(m["muxed_uri"]),
                                     "status": mix_status(m)})
            report.mix_metrics = sorted(metrics.get((vid, None, active["version"]), []), key=lambda m: m["metric"])
            report.history = _history(tracks, mixes)
            spectrogram = keys.spectrogram_key(run_id, vid, active["version"])
            if root.exists(spectrogram):
                report.spectrogram = "data:image/png;base64," + base64.b64encode(root.read_bytes(spectrogram)).decode()
        reports.append(report)
    for t in read["tracks"]:  # every measured track version counts once, per method
        for m in metrics.get((t["video_id"], t["track_id"], t["version"]), []):
            per_method[(m["metric"], t["method"])].append(m["value"])
    summary = [summarise(method, metric, values) for (metric, method), values in sorted(per_method.items())]
    return {"run": run, "videos": reports, "metrics": summary,
            "failures": [v for v in reports if v.status == "failed"],
            "mixes": [(v, v.mixes[0]) for v in reports if v.mixes],
            "n_ok": sum(v.status == "ok" for v in reports), "generated_at": datetime.now(UTC)}


def mix_status(mix: dict) -> str:
    """'ok', or what is off: loudness away from -20 LUFS, true peak over the ceiling, or not measured."""
    lufs, peak = mix.get("lufs"), mix.get("true_peak_db")
    if lufs is None or peak is None:
        return "not measured"
    problems = []
    if abs(lufs - LUFS_TARGET) > LUFS_TOLERANCE:
        problems.append(f"{lufs:.1f} LUFS, target {LUFS_TARGET:.0f}")
    if peak > TRUE_PEAK_CEILING_DB + 0.05:
        problems.append(f"true peak {peak:.2f} dBTP over {TRUE_PEAK_CEILING_DB:.0f}")
    return "; ".join(problems) or "ok"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = lambda v, fmt="{:.3g}": "" if v is None else fmt.format(v)
    return env


def render(root: Root, run_id: str, presign_s: int = PRESIGN_S) -> str:
    """The report page of ``run_id`` as HTML text (links relative to :func:`storage.keys.report_key`)."""
    context = gather(root, run_id, _Links(root, keys.report_key(run_id), presign_s))
    return _environment().get_template(TEMPLATE).render(**context, lufs_target=LUFS_TARGET,
                                                        ceiling=TRUE_PEAK_CEILING_DB)


def write_report(root: Root, run_id: str, presign_s: int = PRESIGN_S) -> str:
    """Render the report and store it atomically; returns its URI."""
    key = keys.report_key(run_id)
    root.put_atomic(key, render(root, run_id, presign_s).encode("utf-8"))
    return root.uri(key)


def summary_markdown(root: Root, run_id: str, report_uri: str) -> str:
    """The run summary as Markdown (for a Prefect artifact): counts, metric means by method, failures, report."""
    context = gather(root, run_id, lambda uri: uri)
    run = context["run"]
    lines = [f"# Run `{run_id}`: {run['status']}", "",
             f"{len(context['videos'])} videos: {context['n_ok']} ok, {len(context['failures'])} failed; "
             f"model `{run['model_id']}`.", "", f"**Report:** [{report_uri}]({report_uri})", ""]
    if context["metrics"]:
        lines += ["| method | metric | n | mean | 95% CI |", "|---|---|---|---|---|"]
        for m in context["metrics"]:
            ci = f"{m.low:.3g} … {m.high:.3g}" if m.low is not None else ""
            lines.append(f"| {m.method} | {m.metric} | {m.n} | {m.mean:.3g} | {ci} |")
        lines.append("")
    if context["mixes"]:
        off = [(v.video_id, mix_status(m)) for v, m in context["mixes"] if mix_status(m) != "ok"]
        lines.append(f"Mixes at {LUFS_TARGET:.0f} LUFS under {TRUE_PEAK_CEILING_DB:.0f} dBTP: "
                     f"{len(context['mixes']) - len(off)} of {len(context['mixes'])}.")
        lines += [f"- `{vid}`: {status}" for vid, status in off]
        lines.append("")
    if context["failures"]:
        lines += ["| failed video | error |", "|---|---|"]
        lines += [f"| `{v.video_id}` | {(v.error or '').replace('|', '/')[:200]} |" for v in context["failures"]]
    return "\n".join(lines)
