"""``foley``: run a catalog, edit a video, query the tables, print reports, or run the demo.

    foley demo                                   # the bundled demo catalog, end to end, under ./foley-out
    foley run MANIFEST [--storage URL] [--run-id ID] [--model M] [--method nag] [--alpha 4.5] ... [--dask local:2]
    foley run MANIFEST --model mmaudio-small-16k --weights s3://models/mmaudio/   # real MMAudio weights
    foley weights check DIR [--model mmaudio-small-16k]                            # present / missing / corrupt
    foley weights list [--eval-weights panns=/w/Cnn14_16k_mAP=0.438.pth ...]       # every weight file, configured?
    foley run MANIFEST --eval-weights panns=/w/Cnn14_16k_mAP=0.438.pth --eval-weights clap=s3://w/clap.pt
    foley edit RUN_ID VIDEO_ID add --caption "A door creaks."
    foley edit RUN_ID VIDEO_ID regenerate --track t1 [--seed 7]
    foley edit RUN_ID VIDEO_ID remove --track t2
    foley query "SELECT video_id, status, error FROM videos" [--storage URL] [--timeout 60]
    foley report {methods|failures|captions} [--run-id ID]
    foley report html RUN_ID [--storage URL]     # the run's HTML report, written into its storage
    foley run MANIFEST --device cuda --precision bf16 --batch-videos 32   # on a GPU (auto: the GPU if any)
    foley evaluate MANIFEST [--steps 25] [--beta 1.5 --beta 1.0] [--order descending --order ascending] \
        [--eval-weights /w/eval/] [--reference-manifest REF] [--n-resamples 2000]
    foley run MANIFEST --captioner endpoint --captioner-url http://vlm:8000/v1 --captioner-model Qwen/Qwen2.5-VL-7B-Instruct

Every command defaults to the same storage, ``./foley-out``, where the demo writes. ``query`` reads the
tables and nothing else (``storage.query.connect_readonly``). An unreachable storage fails in seconds
with one line and exit code 2. Ids and captions are printed through :func:`flows.terminal.printable`.

Flows run on Prefect's ephemeral server unless ``PREFECT_API_URL`` names one; it is started as a child
that dies with this process. Telemetry is off and ``PREFECT_HOME`` defaults to a writable folder
(see :mod:`flows.env`).
"""
from __future__ import annotations

from flows import env

env.apply_defaults(quiet_console=True)  # before Prefect is imported anywhere

import contextlib  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
from enum import Enum  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Optional  # noqa: E402

import typer  # noqa: E402

from flows.terminal import printable  # noqa: E402

from captioning.captioner import KINDS as CAPTIONER_KINDS  # noqa: E402
from nag_model.settings import DEFAULTS, METHODS  # noqa: E402
from nag_model.device import PRECISIONS  # noqa: E402
from pipeline.params import AUDIO_FORMATS, ORDERS  # noqa: E402

DEFAULT_STORAGE = "file://./foley-out"  # every command, the demo included
DEMO_STORAGE = DEFAULT_STORAGE
DEMO_MANIFEST = Path(__file__).resolve().parent.parent / "synthfoley" / "demo_catalog" / "manifest.csv"
MAX_ROWS = 50

app = typer.Typer(help="Step-by-step video-to-audio with Negative Audio Guidance, over video catalogs.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A str Enum of the allowed values (typer shows and checks them); members named like the values."""
    return Enum(name, {v.replace("-", "_"): v for v in values}, type=str)


Method = _choices("Method", METHODS)
Order = _choices("Order", ORDERS)
AudioFormat = _choices("AudioFormat", AUDIO_FORMATS)
Captioner = _choices("Captioner", CAPTIONER_KINDS)
Precision = _choices("Precision", ("auto", *PRECISIONS))
DEVICE_HELP = "where the model runs: auto (the first GPU if there is one, else the CPU), cpu, cuda or cuda:N"
PRECISION_HELP = "weights' precision: auto (bf16 on CUDA, fp32 on the CPU), bf16 or fp32"
BATCH_HELP = "videos generated together at most (default: 1 on the CPU, 32 on CUDA)"
EVAL_WEIGHTS_HELP = ("an evaluation model's weights: NAME=PATH (panns, vggish, passt, clap, imagebind, desync, demo), "
                     "NAME:PRESET=PATH, or a folder/URL holding the official files; repeat for each (also "
                     "FOLEY_EVAL_WEIGHTS, space-separated). Unconfigured metrics are skipped with one line "
                     "(docs/metrics.md)")
REFERENCE_HELP = "reference set of FD and KL: a manifest (id, video_uri of audio or video files); default: the " \
                 "source videos' own audio"


def _eval_plan(eval_weights: list[str], echo: bool = True):
    """The evaluation models' plan (its skipped lines printed, once, when ``echo``), or exit 2 on a bad entry."""
    from evaluation.registry import parse_eval_weights, plan_eval_models

    try:
        plan = plan_eval_models(parse_eval_weights(eval_weights))
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    for line in plan.notice() if echo else ():
        typer.echo(printable(line), err=True)
    return plan


class Action(str, Enum):
    add = "add"
    regenerate = "regenerate"
    remove = "remove"


class Report(str, Enum):
    methods = "methods"
    failures = "failures"
    captions = "captions"
    html = "html"


REPORTS = {"methods": "metric-means", "failures": "failed-videos", "captions": "tracks-per-caption"}


# ------------------------------------------------------------------ printing
def _cell(value: Any, max_width: int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    text = printable(" ".join(str(value).split()))
    return text if max_width is None or len(text) <= max_width else text[: max_width - 3] + "..."


def format_table(table, max_rows: int = MAX_ROWS, max_width: int | None = 160, more_uncounted: bool = False) -> str:
    """A pyarrow table as aligned plain text (at most ``max_rows`` rows, then a count of the rest, or only
    a mark that there are more when ``more_uncounted``)."""
    names = [printable(n) for n in table.column_names]
    rows = [[_cell(v, max_width) for v in row.values()] for row in table.slice(0, max_rows).to_pylist()]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    lines = ["  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if table.num_rows > max_rows:
        lines.append(f"... {table.num_rows - max_rows} more rows" if not more_uncounted else "... more rows")
    if table.num_rows == 0:
        lines.append("(no rows)")
    return "\n".join(lines)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {printable(message)}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def _storage_errors(storage: str):
    """Turn a storage that cannot be reached (or refuses us) into one line and exit code 2, not a traceback."""
    from storage.root import StorageConfigError, StorageUnreachable, unreachable_reason

    try:
        yield
    except (StorageUnreachable, StorageConfigError) as exc:
        _fail(str(exc))
    except Exception as exc:
        reason = unreachable_reason(exc)
        if reason is None:
            raise
        _fail(f"{storage}: {reason}")


def _open_checked(storage: str, must_exist: bool = True):
    """The storage root, after a quick check that it can be reached (seconds, within the S3 timeouts)."""
    from storage.root import open_root

    with _storage_errors(storage):
        root = open_root(storage)
        root.check(must_exist=must_exist)
    return root


# ------------------------------------------------------------------ progress
class _Progress:
    """A tqdm bar of finished videos, moved by the catalog flow as it records each video
    (:func:`flows.catalog.on_video_done`)."""

    def __init__(self, run_id: str, total: int, enabled: bool):
        self.run_id, self.total, self.enabled = run_id, total, enabled
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from tqdm import tqdm

            from flows.catalog import on_video_done

            bar = self._stack.enter_context(tqdm(total=self.total, unit="video", desc=self.run_id, file=sys.stderr))
            self._stack.enter_context(on_video_done(lambda: bar.update(1)))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


# ------------------------------------------------------------------ summary
def follow_up_command(storage_url: str, run_id: str) -> str:
    """The shell command that lists the run's tracks: the run id is a SQL string literal (quotes doubled)
    inside a shell-quoted argument, so any id can be pasted back as it is printed."""
    from storage.query import sql_string

    sql = f"SELECT * FROM tracks WHERE run_id = {sql_string(run_id)}"
    return shlex.join(["foley", "query", sql, "--storage", storage_url])


def print_summary(storage_url: str, run_id: str) -> None:
    """Where the outputs are, and a DuckDB summary of the run."""
    from media.mix import MAX_LIMIT_DB
    from audio.loudness import DEFAULT_TARGET_LUFS
    from storage.query import connect, failed_videos, mixes_below_target, run_outputs, run_summary

    con = connect(storage_url)
    typer.echo(f"\nstorage: {printable(storage_url)}   run: {printable(run_id)}")
    typer.echo("\nsummary (DuckDB over the Parquet tables):")
    typer.echo(format_table(run_summary(con, run_id)))
    below = mixes_below_target(con, run_id)
    if below.num_rows:
        typer.echo(f"\nmixes below the {DEFAULT_TARGET_LUFS:g} LUFS target: {below.num_rows} (too impulsive: the "
                   f"true-peak limiter, at most {MAX_LIMIT_DB:g} dB, could not raise them further; "
                   "mixes.loudness_status = 'below_target'):")
        typer.echo(format_table(below))
    typer.echo("\noutputs (muxed videos; stems, mixes and spectrograms sit beside them):")
    typer.echo(format_table(run_outputs(con, run_id), max_width=None))
    failures = failed_videos(con, run_id, limit=20).select(["video_id", "error"])
    if failures.num_rows:
        typer.echo("\nfailed videos:")
        typer.echo(format_table(failures))
    report = report_uri(storage_url, run_id)
    if report:
        typer.echo(f"\nreport: {printable(report)}")
    typer.echo(f"\nmore: {printable(follow_up_command(storage_url, run_id))}")


def report_uri(storage_url: str, run_id: str) -> str | None:
    """The URI of the run's HTML report, when it exists."""
    from storage.keys import report_key
    from storage.root import open_root

    root = open_root(storage_url)
    return root.uri(report_key(run_id)) if root.exists(report_key(run_id)) else None


def _catalog_flow(dask: Optional[str], batch_videos: int = 1):
    """The catalog flow on this process's threads (enough of them for batches of ``batch_videos`` videos),
    or with its tasks on a Dask cluster."""
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.catalog import DEFAULT_THREADS, catalog_run, task_threads

    if dask is None:
        threads = task_threads(batch_videos)
        return catalog_run if threads == DEFAULT_THREADS else \
            catalog_run.with_options(task_runner=ThreadPoolTaskRunner(max_workers=threads))
    from flows.dask_cluster import dask_task_runner

    try:
        return catalog_run.with_options(task_runner=dask_task_runner(dask))
    except (ImportError, ValueError) as exc:
        _fail(f"--dask: {exc}")


def _model(model: str, weights: Optional[str]) -> str:
    """The pipeline's model string: a real MMAudio bundle needs ``--weights``, the others take none."""
    from nag_model.mmaudio_bundle import BUNDLES, model_string

    if model in BUNDLES:
        if not weights:
            _fail(f"--model {model} needs --weights DIR (a local folder or fsspec URL with the official files; "
                  f"see `foley weights check DIR`)")
        return model_string(model, weights)
    if weights:
        _fail(f"--weights is for the MMAudio bundles ({', '.join(BUNDLES)}), not for --model {model}")
    return model


def _placement(device: str, precision: str, batch_videos: Optional[int], dask: Optional[str]) -> int:
    """Refuse a bad --device, --precision or --batch-videos before anything starts: on this machine (CUDA
    asked for and absent, say) unless the tasks run on Dask workers, which resolve them themselves.
    Returns the videos per batch (the device's default when not given; 1 on Dask)."""
    from pipeline.models import check_placement_names, resolve_placement
    from pipeline.synthesis_batch import check_batch_videos, default_batch_videos

    try:
        check_batch_videos(batch_videos)
        if dask:
            check_placement_names(device, precision)
            return batch_videos or 1
        placed = resolve_placement(device, precision)[0]
    except ValueError as exc:
        _fail(str(exc))
    return batch_videos or default_batch_videos(placed)


def _run_catalog(manifest: str, storage: str, run_id: Optional[str], progress: bool, dask: Optional[str] = None,
                 **params: Any) -> None:
    storage_url = _open_checked(storage, must_exist=False).url  # first: seconds, before the heavy imports
    from flows.catalog import absolute_uri, new_run_id
    from storage.manifest import ManifestError, load_manifest
    from pipeline.models import ModelNotFound
    from pipeline.params import AudioOutput, TrackSettings, check_run_id
    from tasks.run_log import RunConflict

    batch = _placement(params["device"], params["precision"], params["batch_videos"], dask)
    try:
        TrackSettings(params["method"], params["alpha"], params["beta"], params["steps"])
        AudioOutput(params["audio_format"], params["bit_depth"])
        if run_id is not None:
            check_run_id(run_id)
    except ValueError as exc:
        _fail(str(exc))
    if params.get("eval_weights") is not None:  # after the other checks: its skipped lines print once
        params["eval_weights"] = _eval_plan(params["eval_weights"]).entries() or None
    if params.get("reference_manifest"):
        params["reference_manifest"] = absolute_uri(params["reference_manifest"])
    manifest_uri = absolute_uri(manifest)
    try:
        total = len(load_manifest(manifest_uri))
    except (OSError, ValueError) as exc:
        _fail(f"cannot read the manifest {manifest_uri}: {exc}")
    run_id = run_id or new_run_id()
    flow = _catalog_flow(dask, batch)
    typer.echo(f"run {printable(run_id)}: {total} videos from {printable(manifest_uri)}"
               + (f" (tasks on Dask: {dask})" if dask else ""), err=True)
    try:
        with _storage_errors(storage_url), _Progress(run_id, total, progress), env.local_run_settings(), \
                (env.shared_api() if dask else contextlib.nullcontext()):
            result = flow(manifest_uri, storage_url=storage_url, run_id=run_id, **params)
    except (ModelNotFound, RunConflict, ManifestError) as exc:
        _fail(str(exc))
    typer.echo(f"run {printable(run_id)} {result['status']}: {result['n_ok']} ok, {result['n_failed']} failed, "
               f"{result['n_skipped']} already finished (of {total})")
    print_summary(storage_url, run_id)


# ------------------------------------------------------------------ commands
@app.command()
def run(
    manifest: str = typer.Argument(..., help="CSV, JSONL or Parquet manifest (id, video_uri[, captions]), any fsspec URL"),
    storage: str = typer.Option(DEFAULT_STORAGE, help="storage root URL (file://, s3://, memory://)"),
    run_id: Optional[str] = typer.Option(None, help="resume this run id (default: a new one)"),
    model: str = typer.Option("demo", help="'demo', an MMAudio bundle (mmaudio-small-16k, mmaudio-small-44k, "
                                            "mmaudio-medium-44k, mmaudio-large-44k-v2: needs --weights), a bundle "
                                            "folder/URL, or 'random:<preset>'"),
    weights: Optional[str] = typer.Option(None, help="folder or fsspec URL of the official MMAudio weight files "
                                                     "(with an MMAudio --model)"),
    method: Method = typer.Option(Method(DEFAULTS.method)),
    alpha: float = typer.Option(DEFAULTS.alpha, help="CFG strength (all methods)"),
    beta: float = typer.Option(DEFAULTS.beta, help="negative audio guidance strength (NAG)"),
    steps: int = typer.Option(DEFAULTS.steps, help="Euler steps"),
    order: Order = typer.Option(Order("descending"), help="caption order"),
    seed: int = typer.Option(0, help="run seed"),
    duration: float = typer.Option(8.0, help="seconds of one generation window; longer videos get overlapping "
                                             "windows, so the soundtrack always covers the whole video"),
    audio_format: AudioFormat = typer.Option(AudioFormat("flac")),
    bit_depth: int = typer.Option(16, help="16 or 24"),
    resample_48k: bool = typer.Option(False, help="deliver stems and mix at 48 kHz"),
    stems_in_video: bool = typer.Option(False, help="also mux each stem into the video"),
    max_caption_chars: int = typer.Option(300, help="longer captions fail their video"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    dask: Optional[str] = typer.Option(None, help="run the tasks on a Dask cluster (prefect-dask): a scheduler "
                                                  "address (tcp://host:8786), or local:N for N worker processes here"),
    captioner: Captioner = typer.Option(Captioner.demo, help="who proposes captions for videos without any: the "
                                        "model's own (demo), a VLM behind an OpenAI-compatible endpoint, or a local "
                                        "transformers VLM folder"),
    captioner_url: Optional[str] = typer.Option(None, help="endpoint base URL, e.g. http://vlm:8000/v1"),
    captioner_model: Optional[str] = typer.Option(None, help="the model name the endpoint serves"),
    captioner_path: Optional[str] = typer.Option(None, help="local VLM folder (--captioner local)"),
    captioner_frames: int = typer.Option(4, help="frames sent to the VLM per video"),
    captioner_key_env: str = typer.Option("FOLEY_VLM_API_KEY", help="environment variable with the endpoint's key"),
    captioner_key_block: Optional[str] = typer.Option(None, help="Prefect Secret block with the endpoint's key"),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    precision: Precision = typer.Option(Precision.auto, help=PRECISION_HELP),
    batch_videos: Optional[int] = typer.Option(None, help=BATCH_HELP),
    eval_weights: list[str] = typer.Option([], "--eval-weights", envvar="FOLEY_EVAL_WEIGHTS", help=EVAL_WEIGHTS_HELP),
    reference_manifest: Optional[str] = typer.Option(None, help=REFERENCE_HELP),
) -> None:
    """Generate, mix, score and record Foley for every video of a manifest."""
    from captioning.captioner import CaptionerSettings

    try:
        settings = CaptionerSettings(kind=captioner.value, url=captioner_url, model=captioner_model,
                                     path=captioner_path, n_frames=captioner_frames, api_key_env=captioner_key_env,
                                     api_key_block=captioner_key_block)
    except ValueError as exc:
        _fail(str(exc))
    _run_catalog(manifest, storage, run_id, progress, dask, model=_model(model, weights), method=method.value,
                 alpha=alpha, beta=beta, steps=steps, order=order.value, seed=seed, duration=duration, audio_format=audio_format.value,
                 bit_depth=bit_depth, resample_48k=resample_48k, stems_in_video=stems_in_video,
                 max_caption_chars=max_caption_chars, captioner=None if captioner is Captioner.demo else settings,
                 device=device, precision=precision.value, batch_videos=batch_videos, eval_weights=list(eval_weights),
                 reference_manifest=reference_manifest)


@app.command()
def demo(
    storage: str = typer.Option(DEMO_STORAGE, help="storage root URL"),
    model: str = typer.Option("demo", help="the bundled demo model by default"),
    steps: int = typer.Option(DEFAULTS.steps, help="Euler steps"),
    duration: float = typer.Option(8.0, help="seconds of each video"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    precision: Precision = typer.Option(Precision.auto, help=PRECISION_HELP),
    batch_videos: Optional[int] = typer.Option(None, help=BATCH_HELP),
) -> None:
    """Run the bundled demo catalog end to end (local storage, Prefect's embedded server, the demo model)."""
    _run_catalog(str(DEMO_MANIFEST), storage, None, progress, model=model, method=DEFAULTS.method, alpha=DEFAULTS.alpha, beta=DEFAULTS.beta,
                 steps=steps, duration=duration, audio_format="flac", bit_depth=16, device=device,
                 precision=precision.value, batch_videos=batch_videos)


@app.command()
def edit(
    run_id: str = typer.Argument(...),
    video_id: str = typer.Argument(...),
    action: Action = typer.Argument(..., help="add | regenerate | remove"),
    caption: Optional[str] = typer.Option(None, help="caption of the new track (add), or a new one (regenerate)"),
    track: Optional[str] = typer.Option(None, help="track id to regenerate or remove (e.g. t1)"),
    seed: Optional[int] = typer.Option(None, help="seed of the new track (default: derived, new per version)"),
    storage: str = typer.Option(DEFAULT_STORAGE, help="storage root URL"),
    model: Optional[str] = typer.Option(None, help="default: the run's model"),
    method: Method = typer.Option(Method(DEFAULTS.method)),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    precision: Precision = typer.Option(Precision.auto, help=PRECISION_HELP),
) -> None:
    """Add, regenerate or remove one track of a finished video; the mix is rebuilt as a new version."""
    from flows.edit import edit_video
    from pipeline.edit_plan import EditError
    from pipeline.models import ModelNotFound

    _placement(device, precision.value, None, None)
    _open_checked(storage)
    try:
        with _storage_errors(storage), env.local_run_settings():
            result = edit_video(run_id, video_id, action.value, caption=caption, track_id=track, seed=seed,
                                storage_url=storage, model=model, method=method.value, device=device,
                                precision=precision.value)
    except (EditError, ModelNotFound) as exc:
        _fail(str(exc))
    typer.echo(printable(f"{video_id}: version {result['version']} ({action.value} {result['track_id']}); "
                         f"tracks now {', '.join(result['track_ids'])}"))


@app.command()
def query(
    sql: str = typer.Argument(..., help="one read-only SQL statement over runs, videos, tracks, mixes, metrics"),
    storage: str = typer.Option(DEFAULT_STORAGE, help="storage root URL"),
    max_rows: int = typer.Option(MAX_ROWS, help="rows to print"),
    timeout: float = typer.Option(60.0, help="stop the query after this many seconds"),
) -> None:
    """Run a read-only DuckDB query over the tables (and nothing else) and print the result."""
    import duckdb

    from storage.query import QueryTimeout, ReadOnlyQueryError, connect_readonly, query_readonly

    root = _open_checked(storage)
    with _storage_errors(storage):
        con = connect_readonly(root)
        try:
            result = query_readonly(con, sql, timeout_s=timeout, max_rows=max_rows)
        except (ReadOnlyQueryError, QueryTimeout, duckdb.Error) as exc:
            _fail(str(exc))
    typer.echo(format_table(result, max_rows, more_uncounted=True))


@app.command()
def report(
    name: Report = typer.Argument(..., help="methods | failures | captions | html"),
    run: Optional[str] = typer.Argument(None, help="the run (html: required)"),
    storage: str = typer.Option(DEFAULT_STORAGE, help="storage root URL"),
    run_id: Optional[str] = typer.Option(None, help="one run (default: all runs)"),
) -> None:
    """Canned reports: metric means per method, failed videos with their errors, tracks per caption; or the
    run's HTML report (``html RUN_ID``), written into the run's storage."""
    from storage.query import REPORTS as CANNED
    from storage.query import connect_readonly

    run_id = run or run_id
    if name is Report.html:
        from reports.html import write_report

        if not run_id:
            _fail("foley report html needs a run id: foley report html RUN_ID")
        root = _open_checked(storage)
        try:
            with _storage_errors(storage):
                typer.echo(printable(write_report(root, run_id)))
        except LookupError as exc:
            _fail(str(exc))
        return

    root = _open_checked(storage)
    with _storage_errors(storage):
        typer.echo(format_table(CANNED[REPORTS[name.value]](connect_readonly(root), run_id)))


EvalOrder = _choices("EvalOrder", ("descending", "ascending"))


@app.command()
def evaluate(
    manifest: str = typer.Argument(..., help="captioned videos (id, video_uri, captions), any fsspec URL"),
    storage: str = typer.Option(DEFAULT_STORAGE, help="storage root URL"),
    evaluation_id: Optional[str] = typer.Option(None, help="names the evaluation and its runs (default: a new id); "
                                                           "an existing one resumes"),
    model: str = typer.Option("demo", help="as for foley run"),
    weights: Optional[str] = typer.Option(None, help="official MMAudio weights (with an MMAudio --model)"),
    alpha: float = typer.Option(4.5, help="CFG strength of every method (the paper's 4.5)"),
    beta: list[float] = typer.Option([1.5], help="NAG beta; repeat for a sweep (the paper's 1.5)"),
    steps: int = typer.Option(25, help="Euler steps (the paper's 25)"),
    order: list[EvalOrder] = typer.Option([EvalOrder("descending")], help="caption order of NAG; repeat for both"),
    seed: int = typer.Option(0, help="run seed, the same for every method"),
    duration: float = typer.Option(8.0, help="seconds of one generation window"),
    eval_weights: list[str] = typer.Option([], "--eval-weights", envvar="FOLEY_EVAL_WEIGHTS", help=EVAL_WEIGHTS_HELP),
    reference_manifest: Optional[str] = typer.Option(None, help=REFERENCE_HELP),
    n_resamples: int = typer.Option(2000, min=100, help="paired bootstrap resamples per confidence interval"),
) -> None:
    """The paper's protocol: independent, negative prompting and NAG runs on the same videos, then Table 1
    (composite) and Table 2 (per track) with paired bootstrap 95% CIs against independent, stored as rows of
    the ``evaluations`` table."""
    storage_url = _open_checked(storage, must_exist=False).url
    from flows.catalog import absolute_uri
    from flows.evaluate import evaluate as run_evaluation
    from evaluation.paper_tables import display_table
    from pipeline.models import ModelNotFound
    from storage.manifest import ManifestError
    from tasks.run_log import RunConflict

    plan = _eval_plan(list(eval_weights), echo=False)  # its lines come with the tables
    try:
        with _storage_errors(storage_url), env.local_run_settings():
            result = run_evaluation(absolute_uri(manifest), storage_url, evaluation_id, _model(model, weights), alpha,
                                    tuple(beta), steps, tuple(o.value for o in order), seed, duration,
                                    n_resamples=n_resamples,
                                    on_run=lambda r: typer.echo(f"run {printable(r)}", err=True),
                                    eval_weights=plan.entries(),
                                    reference_manifest=absolute_uri(reference_manifest) if reference_manifest else None)
    except (ModelNotFound, RunConflict, ManifestError, ValueError, OSError) as exc:
        _fail(str(exc))
    typer.echo(f"evaluation {printable(result['evaluation_id'])}: "
               + ", ".join(f"{label} = {printable(r)} ({status})" for label, r, status in result["runs"]))
    for scope, title in (("composite", "Table 1: composite audio (per mix)"), ("tracks", "Table 2: individual tracks")):
        typer.echo(f"\n{title}; diff vs independent with a paired bootstrap 95% CI over videos:")
        typer.echo(format_table(display_table(result["rows"], scope), max_rows=1000, max_width=None))
    typer.echo("\n" + "\n".join(result["skipped"]))
    from storage.query import sql_string

    sql = f"SELECT * FROM evaluations WHERE run_id = {sql_string(result['evaluation_id'])}"
    typer.echo(f"\nrows: {printable(shlex.join(['foley', 'query', sql, '--storage', result['storage_url']]))}")


# ------------------------------------------------------------------ weights
weights_app = typer.Typer(help="The official weight files: check MMAudio's in a folder or bucket, list every one "
                               "(MMAudio's and the evaluation models').", no_args_is_help=True)
app.add_typer(weights_app, name="weights")


@weights_app.command("check")
def weights_check(
    folder: str = typer.Argument(..., help="local folder or fsspec URL holding the weight files"),
    model: Optional[str] = typer.Option(None, help="only this bundle; the exit code is non-zero when it is incomplete"),
) -> None:
    """For each MMAudio bundle, which files are present (checksum ok), missing or corrupt, with sizes and checksums.

    Exit code 1 when the asked bundle (or, without --model, every bundle) is incomplete."""
    import pyarrow as pa

    from nag_model.mmaudio_bundle import BUNDLES, bundle_complete, check_weights

    if model is not None and model not in BUNDLES:
        _fail(f"unknown MMAudio bundle {model!r}; known: {', '.join(BUNDLES)}")
    names = [model] if model else list(BUNDLES)
    try:
        rows = check_weights(folder, names)
    except (OSError, ValueError) as exc:
        _fail(f"cannot read {folder}: {exc}")
    table = pa.Table.from_pylist([{"bundle": r.bundle, "role": r.role, "file": r.filename, "status": r.status,
                                   "bytes": r.nbytes, "expected": r.expected, "actual": r.actual, "note": r.note}
                                  for r in rows])
    typer.echo(format_table(table, max_rows=len(rows), max_width=None))
    complete = [n for n in names if bundle_complete(rows, n)]
    typer.echo("\n" + "\n".join(f"{n}: {'complete' if n in complete else 'incomplete'}" for n in names))
    if not complete:
        raise typer.Exit(1)


@weights_app.command("list")
def weights_list(
    eval_weights: list[str] = typer.Option([], "--eval-weights", envvar="FOLEY_EVAL_WEIGHTS", help=EVAL_WEIGHTS_HELP),
) -> None:
    """Every registered weight file: MMAudio's and the evaluation models' (name, file, size, checksum, where to
    get it) and, for the evaluation models, whether it is configured and usable (``--eval-weights``)."""
    import pyarrow as pa

    from evaluation.registry import EVAL_MODELS, parse_eval_weights, plan_eval_models
    from nag_model.checkpoint import OFFICIAL_WEIGHTS
    from tasks.ordering import ORDER_MODEL

    try:
        weights = parse_eval_weights(list(eval_weights))
        plan = plan_eval_models(weights)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    why = {line.split(": ", 2)[1]: line.split(": ", 2)[2] for line in plan.skipped}
    used = {spec.weights for spec in EVAL_MODELS.values()}
    beside = {key: spec.name for spec in EVAL_MODELS.values() for key in spec.companions}
    rows = []
    for key, f in OFFICIAL_WEIGHTS.items():
        if key not in used:
            role = f"(beside {beside[key]}'s weights)" if key in beside else "(MMAudio)"
            rows.append({"name": key, "used for": role, "file": f.filename, "size": f.size, "md5": f.md5,
                         "sha256": f.sha256, "url": f.url, "configured": "", "status": ""})
    for spec in EVAL_MODELS.values():
        f = spec.weight_file
        ref = weights.get(spec.name)
        status = ("usable" if spec.name in plan.usable else why.get(spec.columns, "not configured"))
        uses = spec.columns + ("; orders the captions" if spec.name == ORDER_MODEL else "")
        rows.append({"name": spec.name, "used for": uses,
                     "file": f.filename if f else ("a demo bundle folder" if not spec.paper else "(not registered yet)"),
                     "size": f.size if f else None, "md5": f.md5 if f else None, "sha256": f.sha256 if f else None,
                     "url": f.url if f else None, "configured": ref.entry(spec.name) if ref else "", "status": status})
    typer.echo(format_table(pa.Table.from_pylist(rows), max_rows=len(rows), max_width=None))


if __name__ == "__main__":
    app()
