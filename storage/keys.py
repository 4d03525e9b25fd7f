"""Every object key and table path in the store is built here, and nowhere else.

Layout (relative to the storage root)::

    runs/<run>/videos/<video>/tracks/<track>/v<version>.<ext>      one generated track
    runs/<run>/videos/<video>/mix/v<version>.<ext>                 the mixed soundtrack
    runs/<run>/videos/<video>/muxed/v<version>.<ext>               video with the mix muxed in
    runs/<run>/videos/<video>/spectrograms/mix/v<version>.png
    runs/<run>/videos/<video>/spectrograms/tracks/<track>/v<version>.png
    cache/features/<encoder>/<video sha256>-<ms>ms.<ext>           video features, shared by runs
    reports/<run>/index.html                                       the run's HTML report (reports.html)
    tables/<table>/run=<run>/part-<unit>.parquet                   rows of one write unit
    tables/<table>/run=<run>/compacted.parquet                     see storage.tables.compact

``<run>``, ``<video>``, ``<track>`` and ``<unit>`` are :func:`id_segment` of the raw ids: a
readable ASCII slug plus 16 hex digits of the id's SHA-256. That makes every key safe whatever
the id holds (``..``, ``/``, ``\\``, NUL, control or look-alike characters can only change the
slug, which is reduced to ``[a-z0-9-]``), bounded (a segment is at most 65 characters) and
collision-free in practice (two different ids differ in the hash, even on a case-insensitive
file system: ``"a/b"``, ``"a_b"`` and ``"A/B"`` get three keys). Keys are one-way: the raw ids
live in the tables. The partition folder is ``run=`` rather than ``run_id=`` so that Hive-style
readers do not mistake the slug for the ``run_id`` column stored in the files.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

SLUG_MAX = 48
HASH_HEX = 16  # 64 bits: ~3e-8 chance of any collision among a million ids
KEY_MAX = 1024  # S3's limit on a key, in UTF-8 bytes; ours are ASCII
COMPACTED_NAME = "compacted.parquet"

_SLUG_JUNK = re.compile(r"[^a-z0-9]+")
_KEY_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=-]*")
_EXT = re.compile(r"[a-z0-9]{1,8}")
_HEX = re.compile(r"[0-9a-f]{8,64}")
_TABLE = re.compile(r"[a-z][a-z0-9_]{0,62}")
_PART_FILE = re.compile(r"part-([a-z0-9-]+)\.parquet")


def id_segment(raw_id: str) -> str:
    """Return the key segment for ``raw_id``: ``<slug>-<16 hex of sha256(raw_id)>``.

    Args:
        raw_id: any non-empty string (a run, video, track id or write unit), used verbatim:
            no stripping or Unicode normalisation, so different strings get different segments.

    Raises:
        TypeError: ``raw_id`` is not a ``str``.
        ValueError: ``raw_id`` is empty.
    """
    if not isinstance(raw_id, str):
        raise TypeError(f"ids must be str, got {type(raw_id).__name__}: {raw_id!r}")
    if not raw_id:
        raise ValueError("ids must not be empty")
    digest = hashlib.sha256(raw_id.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_HEX]
    ascii_only = unicodedata.normalize("NFKD", raw_id).encode("ascii", "ignore").decode()
    slug = _SLUG_JUNK.sub("-", ascii_only.lower()).strip("-")[:SLUG_MAX].rstrip("-")
    return f"{slug or 'id'}-{digest}"


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise ``ValueError`` saying why.

    A safe key is ``/``-separated segments of ``[A-Za-z0-9._=-]`` that do not start with a dot
    or dash (so no ``..``, no hidden files, no absolute paths, backslashes or control
    characters), at most ``KEY_MAX`` characters long. Keys from this module always pass.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"object key must be a non-empty str, got {key!r}")
    if len(key) > KEY_MAX:
        raise ValueError(f"object key is {len(key)} characters long, the limit is {KEY_MAX}")
    for segment in key.split("/"):
        if not _KEY_SEGMENT.fullmatch(segment):
            raise ValueError(
                f"unsafe object key {key!r}: segment {segment!r} must match "
                f"{_KEY_SEGMENT.pattern} (build keys with storage.keys)"
            )
    return key


def key_of(root_url: str, uri: str) -> str:
    """The key of an object URI written under the root at ``root_url`` (``Root.uri(key)`` backwards)."""
    prefix = root_url.rstrip("/") + "/"
    if not uri.startswith(prefix):
        raise ValueError(f"{uri!r} is not under the storage root {root_url!r}")
    return validate_key(uri[len(prefix):])


def _version(version: int) -> str:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be an int >= 1, got {version!r}")
    return f"v{version}"


def _ext(ext: str) -> str:
    if not isinstance(ext, str) or not _EXT.fullmatch(ext):
        raise ValueError(f"file extension must match {_EXT.pattern} (no dot), got {ext!r}")
    return ext


def video_prefix(run_id: str, video_id: str) -> str:
    """``runs/<run>/videos/<video>``: everything stored for one video of one run."""
    return f"runs/{id_segment(run_id)}/videos/{id_segment(video_id)}"


def track_key(run_id: str, video_id: str, track_id: str, version: int, ext: str = "flac") -> str:
    """Key of one generated track's audio file."""
    return f"{video_prefix(run_id, video_id)}/tracks/{id_segment(track_id)}/{_version(version)}.{_ext(ext)}"


def mix_key(run_id: str, video_id: str, version: int, ext: str = "flac") -> str:
    """Key of a video's mixed soundtrack."""
    return f"{video_prefix(run_id, video_id)}/mix/{_version(version)}.{_ext(ext)}"


def muxed_key(run_id: str, video_id: str, version: int, ext: str = "mp4") -> str:
    """Key of the video with the mix muxed in."""
    return f"{video_prefix(run_id, video_id)}/muxed/{_version(version)}.{_ext(ext)}"


def spectrogram_key(run_id: str, video_id: str, version: int, track_id: str | None = None) -> str:
    """Key of a spectrogram PNG: of the mix when ``track_id`` is None, else of that track."""
    base = f"{video_prefix(run_id, video_id)}/spectrograms"
    if track_id is None:
        return f"{base}/mix/{_version(version)}.png"
    return f"{base}/tracks/{id_segment(track_id)}/{_version(version)}.png"


def report_key(run_id: str) -> str:
    """Key of a run's HTML report (its media links are relative to it, see :mod:`reports.html`).

    It lives outside ``runs/<run>/`` because it is derived from the whole run, not from one video's rows."""
    return f"reports/{id_segment(run_id)}/index.html"


def features_key(encoder_id: str, video_sha256: str, duration: float, ext: str = "npz") -> str:
    """Key of the cached features of a video's first ``duration`` seconds under one video encoder.

    Content-addressed (the video's SHA-256 and the encoder's identity, both hex), so every run that
    processes the same file with the same encoder shares the object; it lives outside ``runs/``.
    """
    for name, value in (("encoder_id", encoder_id), ("video_sha256", video_sha256)):
        if not isinstance(value, str) or not _HEX.fullmatch(value):
            raise ValueError(f"{name} must be lowercase hex (a digest), got {value!r}")
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration!r}")
    return f"cache/features/{encoder_id}/{video_sha256}-{round(duration * 1000)}ms.{_ext(ext)}"


def table_prefix(table: str) -> str:
    """``tables/<table>``: all files of one table."""
    if not isinstance(table, str) or not _TABLE.fullmatch(table):
        raise ValueError(f"table name must match {_TABLE.pattern}, got {table!r}")
    return f"tables/{table}"


def partition_prefix(table: str, run_id: str) -> str:
    """``tables/<table>/run=<run>``: the files of one run, which no other run touches."""
    return f"{table_prefix(table)}/run={id_segment(run_id)}"


def part_key(table: str, run_id: str, unit: str) -> str:
    """Deterministic file of one write unit: rewriting the unit replaces this one file."""
    return f"{partition_prefix(table, run_id)}/part-{id_segment(unit)}.parquet"


def compacted_key(table: str, run_id: str) -> str:
    """The one compacted file of a partition."""
    return f"{partition_prefix(table, run_id)}/{COMPACTED_NAME}"


def is_part_key(key: str) -> bool:
    """True for keys made by :func:`part_key`."""
    return _PART_FILE.fullmatch(key.rsplit("/", 1)[-1]) is not None


def is_compacted_key(key: str) -> bool:
    """True for keys made by :func:`compacted_key`."""
    return key.rsplit("/", 1)[-1] == COMPACTED_NAME
