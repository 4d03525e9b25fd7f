"""Read a catalog manifest: one row per video with ``id``, ``video_uri`` and optional ``captions``.

Formats, by file name (optionally compressed, e.g. ``.csv.gz``): CSV, JSON Lines (``.jsonl``,
``.ndjson``) and Parquet, at any fsspec URL. ``captions`` is a list (JSONL, Parquet), a JSON list in a
string (``'["a dog barks", "rain"]'``) or a ``|``-separated string (``"a dog barks | rain"``); a
missing or empty value means "ask the model's captioner", while an explicit empty list ``[]`` stays
empty and fails that video in the captions stage. Relative ``video_uri`` values are resolved against
the manifest's folder.

A row is rejected (and becomes an error row, the rest of the catalog goes on) when:

* its id is missing or not a name: empty, longer than 256 characters, a path (``/`` or ``\\``,
  ``.``/``..``), leading or trailing whitespace, control or invisible characters (bidi overrides,
  zero-width), or not in Unicode NFC form (it would look like a different id). Other Unicode is
  fine ("vidéo-01", "動画"): storage keys are safe for any id, but ids are names, not paths;
* its id repeats an earlier row's id: the first row is processed, the later one is rejected and
  recorded under the id ``<id>@row<n>`` (so the first row's records stay the only ones for ``<id>``);
* its ``video_uri`` is missing, or its captions cannot be parsed.

A manifest that cannot be read at all, or lacks the ``id`` / ``video_uri`` columns, fails the run.
"""
from __future__ import annotations

import csv
import io
import json
import os
import posixpath
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any, Iterator

import fsspec
import pyarrow.parquet as pq

from storage.root import input_options

MAX_ID_CHARS = 256
REQUIRED_COLUMNS = ("id", "video_uri")
_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zstd")
_INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


class ManifestError(ValueError):
    """The manifest as a whole is unusable (unknown format, missing columns)."""


class CaptionParseError(ValueError):
    """A row's captions value is not a list of strings, a JSON list or a ``|``-separated string."""


@dataclass(frozen=True)
class ManifestEntry:
    """One manifest row. ``error`` is set when the row is rejected; ``row`` counts data rows from 1."""

    row: int
    video_id: str
    video_uri: str
    captions: tuple[str, ...] | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["captions"] = None if self.captions is None else list(self.captions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ManifestEntry":
        caps = d.get("captions")
        return cls(int(d["row"]), d["video_id"], d["video_uri"], None if caps is None else tuple(caps), d.get("error"))


def id_problem(raw: Any) -> str | None:
    """Why ``raw`` cannot be a video id, or None when it can (see the module docstring)."""
    if raw is None or (isinstance(raw, str) and not raw):
        return "the id is empty"
    if not isinstance(raw, str):
        return f"the id must be a string, got {type(raw).__name__} {raw!r}"
    if len(raw) > MAX_ID_CHARS:
        return f"the id is {len(raw)} characters long; the limit is {MAX_ID_CHARS}"
    if "/" in raw or "\\" in raw:
        return f"the id {raw!r} contains a path separator ('/' or '\\'); ids are names, not paths"
    if raw in (".", ".."):
        return f"the id {raw!r} is a path component, not a name"
    if raw != raw.strip():
        return f"the id {raw!r} has leading or trailing whitespace"
    bad = sorted({f"U+{ord(c):04X}" for c in raw if unicodedata.category(c) in _INVISIBLE})
    if bad:
        return f"the id {raw!r} contains control or invisible characters ({', '.join(bad[:5])})"
    if unicodedata.normalize("NFC", raw) != raw:
        return f"the id {raw!r} is not in Unicode NFC form (it would look identical to a different id)"
    return None


def parse_captions(value: Any) -> tuple[str, ...] | None:
    """Captions of one row: None (missing or empty: use the captioner) or a tuple of strings (maybe empty).

    Raises:
        CaptionParseError: not a list of strings, a JSON list, or a ``|``-separated string.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise CaptionParseError(f"captions look like a JSON list but do not parse: {exc}") from None
        else:
            return tuple(part.strip() for part in text.split("|"))
    if isinstance(value, (list, tuple)):
        if not all(isinstance(c, str) for c in value):
            kinds = sorted({type(c).__name__ for c in value if not isinstance(c, str)})
            raise CaptionParseError(f"captions must be strings, got {', '.join(kinds)}")
        return tuple(value)
    raise CaptionParseError(f"captions must be a list or a string, got {type(value).__name__}")


def _format_of(uri: str) -> tuple[str, str | None]:
    name = uri.split("?", 1)[0].lower()
    compression = next((c for c in _COMPRESSIONS if name.endswith(c)), None)
    if compression:
        name = name[: -len(compression)]
    ext = posixpath.splitext(name)[1]
    if ext not in _FORMATS:
        raise ManifestError(f"{uri}: unknown manifest format {ext or '(no extension)'!r}; "
                            f"use one of {sorted(_FORMATS)} (optionally compressed)")
    return _FORMATS[ext], ("infer" if compression else None)


def resolve_video_uri(video_uri: str, manifest_uri: str) -> str:
    """``video_uri`` as given when absolute or a URL; else relative to the manifest's folder."""
    if "://" in video_uri or os.path.isabs(video_uri):
        return video_uri
    if "://" in manifest_uri and not manifest_uri.startswith("file://"):
        scheme, rest = manifest_uri.split("://", 1)
        return f"{scheme}://{posixpath.normpath(posixpath.join(posixpath.dirname(rest), video_uri))}"
    local = manifest_uri[len("file://"):] if manifest_uri.startswith("file://") else manifest_uri
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(local)), video_uri))


def _records(data: bytes, fmt: str, uri: str) -> Iterator[dict[str, Any] | str]:
    """Raw rows (dicts), or an error string for a row that does not parse (JSONL)."""
    if fmt == "parquet":
        table = pq.read_table(io.BytesIO(data))
        missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
        if missing:
            raise ManifestError(f"{uri}: missing columns {missing}; the manifest needs id, video_uri[, captions]")
        yield from table.to_pylist()
    elif fmt == "csv":
        reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(f"{uri}: missing columns {missing}; the header is {reader.fieldnames}")
        yield from reader
    else:
        for line in data.decode("utf-8-sig").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield f"the line is not JSON: {exc}"
                continue
            yield record if isinstance(record, dict) else f"the line is a JSON {type(record).__name__}, not an object"


def parse_manifest(data: bytes, manifest_uri: str) -> list[ManifestEntry]:
    """Rows of a manifest's bytes, with rejected rows marked (module docstring)."""
    fmt, _ = _format_of(manifest_uri)
    raw_rows = list(_records(data, fmt, manifest_uri))
    all_ids = {r.get("id") for r in raw_rows if isinstance(r, dict) and isinstance(r.get("id"), str)}
    first_row: dict[str, int] = {}
    entries = []
    for n, record in enumerate(raw_rows, start=1):
        if isinstance(record, str):
            entries.append(ManifestEntry(n, _unused(f"@row{n}", all_ids), "", None, f"manifest row {n}: {record}"))
            continue
        raw_id = record.get("id")
        raw_id = str(raw_id) if isinstance(raw_id, int) and not isinstance(raw_id, bool) else raw_id
        uri = record.get("video_uri")
        uri = uri.strip() if isinstance(uri, str) else ""
        video_uri = resolve_video_uri(uri, manifest_uri) if uri else ""
        try:
            captions, caption_error = parse_captions(record.get("captions")), None
        except CaptionParseError as exc:
            captions, caption_error = None, str(exc)
        if isinstance(raw_id, str) and raw_id in first_row:
            entries.append(ManifestEntry(
                n, _unused(f"{raw_id}@row{n}", all_ids), video_uri, captions,
                f"manifest row {n}: duplicate id {raw_id!r}, already used by row {first_row[raw_id]}; "
                f"only row {first_row[raw_id]} is processed"))
            continue
        if isinstance(raw_id, str) and raw_id:
            first_row[raw_id] = n
        problem = id_problem(raw_id)
        video_id = raw_id if isinstance(raw_id, str) and raw_id else _unused(f"@row{n}", all_ids)
        error = (f"manifest row {n}: {problem}" if problem else
                 f"manifest row {n}: no video_uri" if not video_uri else
                 f"manifest row {n}: {caption_error}" if caption_error else None)
        entries.append(ManifestEntry(n, video_id, video_uri, captions, error))
    return entries


def _unused(candidate: str, taken: set) -> str:
    """``candidate``, suffixed until it is not an id of the manifest."""
    name, k = candidate, 1
    while name in taken:
        k += 1
        name = f"{candidate}.{k}"
    return name


def load_manifest(manifest_uri: str) -> list[ManifestEntry]:
    """Read and parse the manifest at ``manifest_uri`` (``tasks.manifest.read_manifest`` adds retries).

    Raises:
        ManifestError: unknown format or missing columns. FileNotFoundError / OSError: unreadable.
    """
    _, compression = _format_of(manifest_uri)
    with fsspec.open(manifest_uri, "rb", compression=compression, **input_options(manifest_uri)) as f:
        data = f.read()
    return parse_manifest(data, manifest_uri)
