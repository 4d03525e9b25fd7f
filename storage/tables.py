"""The pipeline's Parquet tables: schemas, idempotent partition writes, compaction.

Each table is partitioned by run (``tables/<table>/run=<run>/``, see :mod:`storage.keys`), so a
run never rewrites another run's files. Times are UTC, microseconds. NN = not null.

===========  ===============  ====================  ==  =============================================
table        column           type                  NN  meaning
===========  ===============  ====================  ==  =============================================
runs         run_id           string                NN  the run
runs         created_at       timestamp[us, UTC]    NN  when the run started (default: now)
runs         finished_at      timestamp[us, UTC]        when it ended
runs         status           string                NN  'running' | 'completed' | 'failed'
runs         model_id         string                NN  model name + weights version
runs         params_json      string                NN  all flow parameters, as JSON
runs         catalog_uri      string                    the video catalog that was processed
runs         code_version     string                    git commit of the pipeline
runs         n_videos         int32                     videos in the run
runs         n_failed         int32                     videos that failed
videos       run_id           string                NN
videos       video_id         string                NN  id from the catalog
videos       version          int32                 NN  1, 2, … (an edit adds a version)
videos       video_uri        string                NN  the source video
videos       status           string                NN  'ok' | 'failed'
videos       error            string                    why it failed (null when ok)
videos       duration_s       float64                   probed duration
videos       fps              float64
videos       width            int32
videos       height           int32
videos       has_audio        bool                      the source already has an audio stream
videos       n_captions       int32                     captions (= tracks) asked for
videos       created_at       timestamp[us, UTC]    NN
tracks       run_id           string                NN
tracks       video_id         string                NN
tracks       track_id         string                NN  stable across versions of the track
tracks       version          int32                 NN  1, 2, … (regenerating adds a version)
tracks       supersedes       int32                     the version this one replaces (null: first)
tracks       position         int32                 NN  order of the track in the video (0-based)
tracks       caption          string                NN  the text prompt
tracks       seed             int64                 NN
tracks       method           string                NN  one of common.methods.METHODS
tracks       alpha            float64                   NAG alpha (null when not used)
tracks       beta             float64                   NAG beta (null when not used)
tracks       steps            int32                 NN  sampler steps
tracks       uri              string                NN  audio file (storage.keys.track_key)
tracks       sha256           string                NN  of the audio file
tracks       duration_s       float64               NN
tracks       sample_rate      int32                 NN
tracks       gain_db          float64                   gain the mix applies to the stem (undoes its stored ceiling)
tracks       created_at       timestamp[us, UTC]    NN
mixes        run_id           string                NN
mixes        video_id         string                NN
mixes        version          int32                 NN
mixes        supersedes       int32                     the version this one replaces (null: first)
mixes        track_ids        list<string>          NN  tracks in the mix, in order
mixes        track_versions   list<int32>               version of each of track_ids the mix was built from
mixes        uri              string                NN  mixed audio (storage.keys.mix_key)
mixes        sha256           string                NN  of the mixed audio
mixes        muxed_uri        string                    video with the mix (storage.keys.muxed_key)
mixes        lufs             float64                   integrated loudness
mixes        true_peak_db     float64                   true peak, dBTP
mixes        limiter_gain_db  float64                   deepest gain reduction of the true-peak limiter (<= 0)
mixes        loudness_status  string                    'on_target' | 'below_target' | 'silent' (media.mix)
mixes        muxed_true_peak_db float64                 true peak of the mix as delivered in the muxed video (AAC, decoded)
mixes        created_at       timestamp[us, UTC]    NN
metrics      run_id           string                NN
metrics      video_id         string                NN
metrics      track_id         string                    null = a metric of the mix
metrics      version          int32                 NN  version of the track (or mix) measured
metrics      metric           string                NN  e.g. 'clap_score', 'lufs'
metrics      value            float64               NN
metrics      model            string                    model that computed it, if any
metrics      created_at       timestamp[us, UTC]    NN
captions     run_id           string                NN
captions     video_id         string                NN
captions     version          int32                 NN  the video version the captions were resolved for
captions     source           string                NN  'manifest' or one of common.captioners.CAPTIONERS
captions     model            string                    the captioning model (null for the manifest)
captions     captions         list<string>              the captions, in the captioner's order
captions     prompt           string                    the step-1 prompt sent with the frames (VLM captioners)
captions     raw_answer       string                    the step-1 answer, free form
captions     structured_answer string                   the last step-2 (JSON) answer
captions     dropped          list<string>              captions of the answer left out, and why
captions     attempts         int32                     chat requests made
captions     error            string                    why no captions came out (null when they did)
captions     created_at       timestamp[us, UTC]    NN
evaluations  run_id           string                NN  the evaluation id (``foley evaluate``)
evaluations  scope            string                NN  'composite' (Table 1: the mixes) | 'tracks' (Table 2)
evaluations  metric           string                NN  e.g. 'fd', 'kl', 'is', 'ta_similarity', 'aa_similarity_mean'
evaluations  model            string                NN  the model whose features it uses (e.g. the demo evaluator)
evaluations  method           string                NN  one of common.methods.METHODS
evaluations  alpha            float64                   CFG strength of the run
evaluations  beta             float64                   NAG beta (null for the other methods)
evaluations  steps            int32                 NN  sampler steps
evaluations  caption_order    string                NN  the caption order of the run
evaluations  source_run_id    string                NN  the catalog run the value comes from
evaluations  n                int32                 NN  videos the value is over (tracks, for 'is' over tracks)
evaluations  value            float64               NN  the metric over the set
evaluations  diff             float64                   value minus the independent run's (null for it)
evaluations  diff_low         float64                   paired bootstrap 95% CI of diff, over videos (null: set metric)
evaluations  diff_high        float64
evaluations  reference        string                    the reference set (FD, KL): 'source_audio'
evaluations  created_at       timestamp[us, UTC]    NN
run_metrics  run_id           string                NN  the catalog run
run_metrics  scope            string                NN  'mixes' (the run's mixes: Table 1) | 'tracks' (all its tracks)
run_metrics  metric           string                NN  'fd' | 'kl' | 'is' (evaluation.run_sets)
run_metrics  model            string                NN  the evaluation model's name, e.g. 'panns-cnn14-16k'
run_metrics  method           string                NN  the run's method (one of common.methods.METHODS)
run_metrics  n                int32                 NN  generated clips the value is over (videos with a reference for kl)
run_metrics  value            float64               NN  the metric over the set
run_metrics  reference        string                    'source_audio' or the reference manifest's URI (null for is)
run_metrics  n_reference      int32                     reference clips (fd) or pairs (kl)
run_metrics  video_ids        list<string>          NN  the videos of the set (their latest finished versions)
run_metrics  video_versions   list<int32>           NN  the version of each of video_ids
run_metrics  per_video        list<float64>             kl: the value of each of video_ids (null: no reference clip)
run_metrics  seconds          float64               NN  length every clip was cut to
run_metrics  weights          string                    the model's configuration entry (name[:preset]=path)
run_metrics  created_at       timestamp[us, UTC]    NN
===========  ===============  ====================  ==  =============================================

The DuckDB views (:mod:`storage.query`) add two derived columns to ``tracks`` (versions of
one run_id, video_id, track_id) and ``mixes`` (of one run_id, video_id): ``superseded_by``
(the version whose ``supersedes`` names this row; null if none) and ``active``
(``superseded_by IS NULL``). Rows are immutable, so the new version records what it
replaces rather than the old row recording what replaced it; this also keeps the views fast
(a hash join on the few edited rows instead of a window over all rows).

Writes and versions. :func:`write_rows` writes all rows of one *unit* of work to one file
whose name is derived from the unit (``part-<unit>.parquet``): rerunning the unit replaces
that file atomically, so reruns never duplicate rows. Rows are never edited in place: an edit
writes new rows with a higher ``version`` (and ``supersedes`` = the version they replace)
under a new unit (:func:`video_unit`: ``f"{video_id}@v{version}"``); earlier versions stay. (``runs``
uses ``unit=run_id``: updating a run's status replaces its one row; ``run_metrics`` uses one unit per
evaluation model, ``set@<model>``, rewritten when the set it covers changes: its rows name the video versions
they cover.) :func:`read_video` reads the rows
of one video without opening the part files of the others.

Columns added later. Files written before a nullable column existed read as null in that column
(:func:`read_table` and the DuckDB views), so old outputs stay readable next to new ones.

Compaction. :func:`compact` merges a partition's part files into ``compacted.parquet`` (sorted by
video, in row groups whose statistics let a per-video read skip the others); each of its rows keeps,
in the hidden column ``_part``, the key of the part file it came from.
Readers (:func:`read_table` and the DuckDB views) resolve a table as

    all rows of part files  +  rows of compacted files whose ``_part`` is not a live part file

so a part file always wins over its copy in the compacted file. ``compact`` (1) writes the new
compacted file atomically (it replaces the old one), then (2) deletes the merged part files.
A reader that lists the files at any moment therefore sees every row exactly once: before (1)
the old state; between (1) and (2) each part shadows its copy; after a part is deleted its
copy shows. A reader whose listed part file is deleted before it opens it gets a
``FileNotFoundError``, never a silently wrong result; list again and retry. Rewriting a unit
after compaction also works: the new part file shadows the unit's old rows. Precondition:
no writer of the same (table, run) while it is compacted (compact finished runs), because a
unit rewritten between steps (1) and (2) would be deleted.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common.captioners import CAPTIONERS
from common.methods import METHODS
from storage import keys
from storage.root import Root

TIME = pa.timestamp("us", tz="UTC")
PART_COLUMN = "_part"
_PART_FIELD = pa.field(PART_COLUMN, pa.string(), nullable=False)


def _f(name: str, type_: pa.DataType, required: bool = False) -> pa.Field:
    return pa.field(name, type_, nullable=not required)


SCHEMAS: dict[str, pa.Schema] = {
    "runs": pa.schema([
        _f("run_id", pa.string(), True),
        _f("created_at", TIME, True),
        _f("finished_at", TIME),
        _f("status", pa.string(), True),
        _f("model_id", pa.string(), True),
        _f("params_json", pa.string(), True),
        _f("catalog_uri", pa.string()),
        _f("code_version", pa.string()),
        _f("n_videos", pa.int32()),
        _f("n_failed", pa.int32()),
    ]),
    "videos": pa.schema([
        _f("run_id", pa.string(), True),
        _f("video_id", pa.string(), True),
        _f("version", pa.int32(), True),
        _f("video_uri", pa.string(), True),
        _f("status", pa.string(), True),
        _f("error", pa.string()),
        _f("duration_s", pa.float64()),
        _f("fps", pa.float64()),
        _f("width", pa.int32()),
        _f("height", pa.int32()),
        _f("has_audio", pa.bool_()),
        _f("n_captions", pa.int32()),
        _f("created_at", TIME, True),
    ]),
    "tracks": pa.schema([
        _f("run_id", pa.string(), True),
        _f("video_id", pa.string(), True),
        _f("track_id", pa.string(), True),
        _f("version", pa.int32(), True),
        _f("supersedes", pa.int32()),
        _f("position", pa.int32(), True),
        _f("caption", pa.string(), True),
        _f("seed", pa.int64(), True),
        _f("method", pa.string(), True),
        _f("alpha", pa.float64()),
        _f("beta", pa.float64()),
        _f("steps", pa.int32(), True),
        _f("uri", pa.string(), True),
        _f("sha256", pa.string(), True),
        _f("duration_s", pa.float64(), True),
        _f("sample_rate", pa.int32(), True),
        _f("gain_db", pa.float64()),
        _f("created_at", TIME, True),
    ]),
    "mixes": pa.schema([
        _f("run_id", pa.string(), True),
        _f("video_id", pa.string(), True),
        _f("version", pa.int32(), True),
        _f("supersedes", pa.int32()),
        _f("track_ids", pa.list_(pa.string()), True),
        _f("track_versions", pa.list_(pa.int32())),
        _f("uri", pa.string(), True),
        _f("sha256", pa.string(), True),
        _f("muxed_uri", pa.string()),
        _f("lufs", pa.float64()),
        _f("true_peak_db", pa.float64()),
        _f("limiter_gain_db", pa.float64()),
        _f("loudness_status", pa.string()),
        _f("muxed_true_peak_db", pa.float64()),
        _f("created_at", TIME, True),
    ]),
    "metrics": pa.schema([
        _f("run_id", pa.string(), True),
        _f("video_id", pa.string(), True),
        _f("track_id", pa.string()),
        _f("version", pa.int32(), True),
        _f("metric", pa.string(), True),
        _f("value", pa.float64(), True),
        _f("model", pa.string()),
        _f("created_at", TIME, True),
    ]),
    "captions": pa.schema([  # added after the others: older runs have no files of it (an empty view)
        _f("run_id", pa.string(), True),
        _f("video_id", pa.string(), True),
        _f("version", pa.int32(), True),
        _f("source", pa.string(), True),
        _f("model", pa.string()),
        _f("captions", pa.list_(pa.string())),
        _f("prompt", pa.string()),
        _f("raw_answer", pa.string()),
        _f("structured_answer", pa.string()),
        _f("dropped", pa.list_(pa.string())),
        _f("attempts", pa.int32()),
        _f("error", pa.string()),
        _f("created_at", TIME, True),
    ]),
    "evaluations": pa.schema([  # one row per (setting, metric) of a `foley evaluate` run
        _f("run_id", pa.string(), True),
        _f("scope", pa.string(), True),
        _f("metric", pa.string(), True),
        _f("model", pa.string(), True),
        _f("method", pa.string(), True),
        _f("alpha", pa.float64()),
        _f("beta", pa.float64()),
        _f("steps", pa.int32(), True),
        _f("caption_order", pa.string(), True),
        _f("source_run_id", pa.string(), True),
        _f("n", pa.int32(), True),
        _f("value", pa.float64(), True),
        _f("diff", pa.float64()),
        _f("diff_low", pa.float64()),
        _f("diff_high", pa.float64()),
        _f("reference", pa.string()),
        _f("created_at", TIME, True),
    ]),
    "run_metrics": pa.schema([  # set metrics (FD, KL, IS) of one run per evaluation model (evaluation.run_sets)
        _f("run_id", pa.string(), True),
        _f("scope", pa.string(), True),
        _f("metric", pa.string(), True),
        _f("model", pa.string(), True),
        _f("method", pa.string(), True),
        _f("n", pa.int32(), True),
        _f("value", pa.float64(), True),
        _f("reference", pa.string()),
        _f("n_reference", pa.int32()),
        _f("video_ids", pa.list_(pa.string()), True),
        _f("video_versions", pa.list_(pa.int32()), True),
        _f("per_video", pa.list_(pa.float64())),
        _f("seconds", pa.float64(), True),
        _f("weights", pa.string()),
        _f("created_at", TIME, True),
    ]),
}
TABLES: tuple[str, ...] = tuple(SCHEMAS)

ALLOWED_VALUES: dict[tuple[str, str], frozenset[str]] = {
    ("runs", "status"): frozenset({"running", "completed", "failed"}),
    ("videos", "status"): frozenset({"ok", "failed"}),
    ("tracks", "method"): frozenset(METHODS),
    ("captions", "source"): frozenset({"manifest", *CAPTIONERS}),
    ("mixes", "loudness_status"): frozenset({"on_target", "below_target", "silent"}),
    ("evaluations", "scope"): frozenset({"composite", "tracks"}),
    ("evaluations", "method"): frozenset(METHODS),
    ("run_metrics", "scope"): frozenset({"mixes", "tracks"}),
    ("run_metrics", "metric"): frozenset({"fd", "kl", "is"}),
    ("run_metrics", "method"): frozenset(METHODS),
}

Rows = Sequence[Mapping[str, Any]] | pa.Table


def schema(table: str) -> pa.Schema:
    """The schema of ``table``; ``KeyError`` names the known tables."""
    try:
        return SCHEMAS[table]
    except KeyError:
        raise KeyError(f"unknown table {table!r}; the tables are {', '.join(TABLES)}") from None


def to_arrow(table: str, run_id: str, rows: Rows) -> pa.Table:
    """Check ``rows`` against the schema of ``table`` and return them as an Arrow table.

    ``rows`` is a sequence of dicts or an Arrow table, columns in any order. Missing or null
    ``run_id`` and ``created_at`` become ``run_id`` and now; other missing nullable columns
    become null.

    Raises:
        ValueError: unknown or missing columns, nulls in required columns, a row of another
            run, or a value outside ``ALLOWED_VALUES``; the message says which.
    """
    target = schema(table)
    given = rows.column_names if isinstance(rows, pa.Table) else {name for row in rows for name in row}
    unknown = sorted(set(given) - set(target.names))
    if unknown:
        raise ValueError(f"{table}: unknown columns {unknown}; the columns are {target.names}")
    if isinstance(rows, pa.Table):
        data = rows
    elif not rows:
        data = target.empty_table()
    else:  # only the given columns, all nullable: convert first, report what is missing below
        loose = pa.schema([field.with_nullable(True) for field in target if field.name in given])
        data = pa.Table.from_pylist(list(rows), schema=loose)
    defaults = {"run_id": run_id, "created_at": datetime.now(UTC)}
    for field in target:
        if field.name not in data.column_names:
            if not field.nullable and field.name not in defaults:
                raise ValueError(f"{table}: required column {field.name!r} is missing")
            data = data.append_column(field.name, pa.nulls(len(data), field.type))
        if field.name in defaults:
            default = pa.scalar(defaults[field.name], field.type)
            filled = pc.fill_null(data[field.name].cast(field.type), default)
            data = data.set_column(data.column_names.index(field.name), field.name, filled)
    data = data.select(target.names)
    for field in target:
        if not field.nullable and data[field.name].null_count:
            raise ValueError(f"{table}.{field.name} is required: {data[field.name].null_count} rows lack it")
    data = data.cast(target)
    _check_values(table, run_id, data)
    return data


def _check_values(table: str, run_id: str, data: pa.Table) -> None:
    """Raise ``ValueError`` for rows of another run, bad versions or values outside
    ``ALLOWED_VALUES``."""
    other_runs = pc.unique(pc.filter(data["run_id"], pc.not_equal(data["run_id"], run_id))).to_pylist()
    if other_runs:
        raise ValueError(f"{table}: rows of runs {other_runs[:3]} cannot be written to run {run_id!r}")
    if "version" in data.column_names:
        version = data["version"]
        if pc.any(pc.less(version, 1)).as_py():
            raise ValueError(f"{table}.version must be >= 1")
        if "supersedes" in data.column_names and pc.any(pc.greater_equal(data["supersedes"], version)).as_py():
            raise ValueError(f"{table}.supersedes must name an earlier version than version")
    for (name, column), allowed in ALLOWED_VALUES.items():
        if name == table:
            bad = set(pc.unique(data[column]).to_pylist()) - allowed - {None}  # null: a nullable column left empty
            if bad:
                raise ValueError(f"{table}.{column} must be one of {sorted(allowed)}, got {sorted(bad)}")


COMPACTED_ROW_GROUP = 20_000  # rows per row group of a compacted file


def _parquet_bytes(data: pa.Table, row_group_size: int | None = None) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(data, buffer, compression="zstd", row_group_size=row_group_size)
    return buffer.getvalue()


def video_unit(video_id: str, version: int) -> str:
    """The write unit of one version of one video: ``<video_id>@v<version>``."""
    return f"{video_id}@v{version}"


def write_rows(root: Root, table: str, run_id: str, rows: Rows, *, unit: str) -> str:
    """Write all rows of one unit of work to its own file, replacing it atomically.

    Args:
        root: where the table lives.
        table: one of ``TABLES``.
        run_id: the partition; every row must belong to it.
        rows: dicts or an Arrow table (see :func:`to_arrow`); may be empty, which empties
            the unit.
        unit: what the rows are the complete output of, e.g. ``f"{video_id}@v{version}"``
            (see the module docstring). Writing the same unit again replaces its rows.

    Returns:
        The key of the written file (``keys.part_key(table, run_id, unit)``).
    """
    data = to_arrow(table, run_id, rows)
    key = keys.part_key(table, run_id, unit)
    root.put_atomic(key, _parquet_bytes(data))
    return key


@dataclass(frozen=True)
class TableFiles:
    """The files of a table at one moment: part files and compacted files (keys, sorted)."""

    parts: tuple[str, ...]
    compacted: tuple[str, ...]


def table_files(root: Root, table: str, run_id: str | None = None) -> TableFiles:
    """List the files of ``table`` (of one run, or of all runs when ``run_id`` is None)."""
    schema(table)  # unknown table: a clear KeyError rather than an empty listing
    prefix = keys.table_prefix(table) if run_id is None else keys.partition_prefix(table, run_id)
    found = root.list(prefix)
    return TableFiles(
        parts=tuple(k for k in found if keys.is_part_key(k)),
        compacted=tuple(k for k in found if keys.is_compacted_key(k)),
    )


def _conform(data: pa.Table, target: pa.Schema) -> pa.Table:
    """``data`` in ``target``'s columns; nullable columns that its file predates are null."""
    for field in target:
        if field.name not in data.column_names and field.nullable:
            data = data.append_column(field, pa.nulls(len(data), field.type))
    return data.select(target.names).cast(target)


def _read(root: Root, key: str, target: pa.Schema, video_id: str | None = None) -> pa.Table:
    """One file's rows in ``target``'s columns, only those of ``video_id`` when given."""
    if video_id is None:
        return _conform(pq.read_table(pa.BufferReader(root.read_bytes(key))), target)
    with root.open(key) as f:  # ranged reads: row groups without the video are skipped by their statistics
        return _conform(pq.read_table(f, filters=[("video_id", "=", video_id)]), target)


def _resolve(root: Root, table: str, files: TableFiles, video_id: str | None = None,
             live: Sequence[str] | None = None) -> pa.Table:
    """Rows of ``files`` with the ``_part`` column, each row once (module docstring).

    ``video_id``: only its rows of the compacted files. ``live``: the part files that shadow their copies in
    the compacted files when not all of them are read (default: ``files.parts``).
    """
    target = schema(table).append(_PART_FIELD)
    pieces = []
    for key in files.parts:
        data = _read(root, key, schema(table))
        pieces.append(data.append_column(_PART_FIELD, pa.array([key] * len(data), pa.string())))
    live = pa.array(files.parts if live is None else live, pa.string())
    for key in files.compacted:
        data = _read(root, key, target, video_id)
        pieces.append(data.filter(pc.invert(pc.is_in(data[PART_COLUMN], value_set=live))))
    return pa.concat_tables(pieces) if pieces else target.empty_table()


def read_table(root: Root, table: str, run_id: str | None = None) -> pa.Table:
    """All rows of ``table`` (or of one run), each exactly once, without DuckDB."""
    return _resolve(root, table, table_files(root, table, run_id)).drop_columns([PART_COLUMN])


def read_video(root: Root, table: str, run_id: str, video_id: str) -> pa.Table:
    """The rows of one video of one run in ``table`` (not ``runs``), each once, as :func:`read_table` would
    give them, but reading only that video's part files and its rows of the compacted file.

    Its part files are found by name, one per version (:func:`video_unit`). Every version of a video
    writes its ``videos`` row, so those units run 1, 2, ... without a gap; the other tables are looked
    up for each of those versions and the next one (an attempt cut short before its ``videos`` row).
    """
    if table == "runs":
        raise ValueError("runs has one row per run; read it with read_table")
    files = table_files(root, table, run_id)
    parts = set(files.parts)
    in_compacted = _resolve(root, table, TableFiles((), files.compacted), video_id, live=files.parts)
    compacted_units = set(in_compacted[PART_COLUMN].to_pylist())

    def unit_key(version: int) -> str:
        return keys.part_key(table, run_id, video_unit(video_id, version))

    if table == "videos":
        last = 0
        while unit_key(last + 1) in compacted_units or unit_key(last + 1) in parts:
            last += 1
    else:
        versions = read_video(root, "videos", run_id, video_id)["version"]
        last = (pc.max(versions).as_py() or 0) + 1
    wanted = tuple(k for k in map(unit_key, range(1, last + 1)) if k in parts)
    rows = _resolve(root, table, TableFiles(wanted, ()))
    return pa.concat_tables([rows, in_compacted]).drop_columns([PART_COLUMN])


def compact(root: Root, table: str, run_id: str) -> str | None:
    """Merge the part files of one partition into its compacted file, then delete them.

    Readers never see a row twice or miss one (module docstring). Run it only when nothing
    writes to this (table, run), e.g. after the run finished.

    Returns:
        The compacted file's key, or None when there were no part files to merge.
    """
    files = table_files(root, table, run_id)
    if not files.parts:
        return None
    merged = _resolve(root, table, files)
    if "video_id" in merged.column_names:
        merged = merged.sort_by("video_id")
    key = keys.compacted_key(table, run_id)
    root.put_atomic(key, _parquet_bytes(merged, COMPACTED_ROW_GROUP))
    for part in files.parts:
        root.delete(part)
    return key

