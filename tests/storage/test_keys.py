"""Key safety: hostile ids give safe, bounded, distinct keys; the layout is as documented."""

from __future__ import annotations

import hashlib
import re
import unicodedata

import pytest

from storage import keys

SEGMENT = re.compile(r"[a-z0-9-]{1,48}-[0-9a-f]{16}")

HOSTILE_IDS = [
    "../../etc/passwd",
    "/abs/path",
    "a\\b",
    "\x00",
    "a\x00b",
    "\n\r\t",
    "\x1b[31mred",
    ".",
    "..",
    "...",
    "~",
    " ",
    "-rf",
    "$(rm -rf /)",
    "x" * 10_000,
    "ünïcödé",
    "\u202etxt.exe",  # right-to-left override
    "．．／．．／etc",  # full-width dots and slash
    "ﬁle",  # ligature
    "😀",
    "\ud800",  # lone surrogate
    "CON",
    "C:\\Windows",
    "run=1/part-x.parquet",
]


# Plain ids: pytest cannot select some escaped ids (backslashes) by node id, which mutmut does.
@pytest.mark.parametrize("raw", HOSTILE_IDS, ids=lambda raw: re.sub(r"[^A-Za-z0-9=.-]+", "_", ascii(raw))[:30])
def test_hostile_ids_give_safe_bounded_segments(raw: str) -> None:
    segment = keys.id_segment(raw)
    assert SEGMENT.fullmatch(segment), segment
    expected_hash = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    assert segment.endswith("-" + expected_hash)
    key = keys.track_key(raw, raw, raw, 3)
    assert keys.validate_key(key) == key
    assert len(key) <= 250
    assert ".." not in key.split("/") and not key.startswith("/") and "\\" not in key


@pytest.mark.parametrize("raw, slug", [
    ("Dog Barking #1", "dog-barking-1"),  # lower case, runs of other characters become one dash
    ("  Café  Déjà-vu!! ", "cafe-deja-vu"),  # accents dropped (NFKD), no leading or trailing dash
    ("ﬁle_02.MP4", "file-02-mp4"),  # compatibility characters decomposed
    ("x" * 47 + "-" + "y" * 10, "x" * 47),  # cut to 48 characters, and the cut leaves no dangling dash
    ("z" * 60, "z" * 48),
    ("../../etc/passwd", "etc-passwd"),
    ("\x00", "id"),  # nothing readable: a fixed word
    ("😀", "id"),
    ("-", "id"),
])
def test_segment_is_a_readable_slug_plus_the_hash_of_the_raw_id(raw: str, slug: str) -> None:
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]
    assert keys.id_segment(raw) == f"{slug}-{digest}"


def test_ids_differing_in_case_punctuation_or_normalisation_get_distinct_keys() -> None:
    nfc = unicodedata.normalize("NFC", "café")
    nfd = unicodedata.normalize("NFD", "café")
    raws = ["a/b", "a_b", "a-b", "a b", "a.b", "ab", "A/B", "a\\b", "a//b", "video1", "Video1",
            "VIDEO1", "video1 ", nfc, nfd, "cafe"]
    segments = [keys.id_segment(raw) for raw in raws]
    assert len(set(segments)) == len(raws)
    # Still distinct on a case-insensitive file system.
    assert len({segment.lower() for segment in segments}) == len(raws)


@pytest.mark.parametrize("bad", ["", None, 42, b"bytes"])
def test_empty_or_non_string_ids_are_rejected(bad) -> None:
    with pytest.raises((ValueError, TypeError)):
        keys.id_segment(bad)


def test_layout() -> None:
    seg = keys.id_segment
    video = f"runs/{seg('run 1')}/videos/{seg('cat/v1')}"
    assert keys.video_prefix("run 1", "cat/v1") == video
    assert keys.track_key("run 1", "cat/v1", "t0", 2) == f"{video}/tracks/{seg('t0')}/v2.flac"
    assert keys.track_key("run 1", "cat/v1", "t0", 2, "wav") == f"{video}/tracks/{seg('t0')}/v2.wav"
    assert keys.mix_key("run 1", "cat/v1", 1) == f"{video}/mix/v1.flac"
    assert keys.muxed_key("run 1", "cat/v1", 1) == f"{video}/muxed/v1.mp4"
    assert keys.spectrogram_key("run 1", "cat/v1", 4) == f"{video}/spectrograms/mix/v4.png"
    assert keys.spectrogram_key("run 1", "cat/v1", 4, "t0") == f"{video}/spectrograms/tracks/{seg('t0')}/v4.png"
    partition = f"tables/tracks/run={seg('run 1')}"
    assert keys.part_key("tracks", "run 1", "cat/v1@v1") == f"{partition}/part-{seg('cat/v1@v1')}.parquet"
    assert keys.compacted_key("tracks", "run 1") == f"{partition}/compacted.parquet"
    assert keys.is_part_key(keys.part_key("tracks", "r", "u"))
    assert not keys.is_part_key(keys.compacted_key("tracks", "r"))
    assert keys.is_compacted_key(keys.compacted_key("tracks", "r"))


@pytest.mark.parametrize("version", [0, -1, True, 1.0, "1", None])
def test_bad_versions_are_rejected(version) -> None:
    with pytest.raises(ValueError, match="version"):
        keys.mix_key("r", "v", version)


@pytest.mark.parametrize("ext", [".flac", "fl/ac", "", "FLAC", "a" * 9, "x\x00"])
def test_bad_extensions_are_rejected(ext: str) -> None:
    with pytest.raises(ValueError, match="extension"):
        keys.mix_key("r", "v", 1, ext)


@pytest.mark.parametrize("table", ["", "Tracks", "../x", "a/b", "t x"])
def test_bad_table_names_are_rejected(table: str) -> None:
    with pytest.raises(ValueError, match="table name"):
        keys.partition_prefix(table, "r")


@pytest.mark.parametrize(
    "key",
    ["", "/abs", "a/../b", "../a", "a//b", "a/", "a/./b", ".hidden", "a/.tmp", "a\\b", "a\x00b", "a b",
     "a/\u00e9", "-a", "x" * 1025],
)
def test_validate_key_rejects_unsafe_keys(key: str) -> None:
    with pytest.raises(ValueError):
        keys.validate_key(key)


@pytest.mark.parametrize("key", ["a", "a/b.c", "tables/t/run=x-0123/part-y.parquet", "A_b-1.2/x"])
def test_validate_key_accepts_safe_keys(key: str) -> None:
    assert keys.validate_key(key) == key


def test_features_key_is_content_addressed_and_checked() -> None:
    sha, enc = "ab" * 32, "0123456789abcdef"
    assert keys.features_key(enc, sha, 8.0) == f"cache/features/{enc}/{sha}-8000ms.npz"
    assert keys.features_key(enc, sha, 2.5, "safetens") == f"cache/features/{enc}/{sha}-2500ms.safetens"
    assert keys.features_key(enc, sha, 0.5) == f"cache/features/{enc}/{sha}-500ms.npz"  # any positive duration
    keys.validate_key(keys.features_key(enc, sha, 8.0))
    for bad in ("../../etc", "AB" * 32, "", "x" * 64):
        with pytest.raises(ValueError, match="video_sha256 must be lowercase hex"):
            keys.features_key(enc, bad, 8.0)
        with pytest.raises(ValueError, match="encoder_id must be lowercase hex"):
            keys.features_key(bad, sha, 8.0)
    with pytest.raises(ValueError, match="duration"):
        keys.features_key(enc, sha, 0.0)


def test_report_key() -> None:
    assert keys.report_key("run 1") == f"reports/{keys.id_segment('run 1')}/index.html"
    assert keys.report_key("run 1") != keys.report_key("run 2")


def test_the_key_predicates_answer_for_any_key() -> None:
    # a key at the root of the store (no folder) is neither a part nor a compacted file, and asking must not raise
    for name in ("x", "notes.txt"):
        assert not keys.is_part_key(name) and not keys.is_compacted_key(name)


@pytest.mark.parametrize("root_url", ["memory://store", "memory://store/", "file:///data/BOX", "s3://bucket/X/"])
def test_key_of_inverts_the_root_uri(root_url: str) -> None:
    key = keys.mix_key("r", "v", 1)
    assert keys.key_of(root_url, root_url.rstrip("/") + "/" + key) == key
    with pytest.raises(ValueError, match="is not under the storage root"):
        keys.key_of(root_url, "memory://elsewhere/" + key)


def test_id_and_key_refusals_say_what_is_wrong_in_full() -> None:
    with pytest.raises(TypeError) as raised:
        keys.id_segment(42)
    assert str(raised.value) == "ids must be str, got int: 42"
    with pytest.raises(ValueError) as raised:
        keys.id_segment("")
    assert str(raised.value) == "ids must not be empty"
    with pytest.raises(ValueError) as raised:
        keys.validate_key(42)  # not a str, though truthy
    assert str(raised.value) == "object key must be a non-empty str, got 42"
    assert keys.validate_key("a" * keys.KEY_MAX) == "a" * keys.KEY_MAX  # the limit itself is allowed
    with pytest.raises(ValueError) as raised:
        keys.validate_key("a" * (keys.KEY_MAX + 1))
    assert str(raised.value) == f"object key is {keys.KEY_MAX + 1} characters long, the limit is {keys.KEY_MAX}"
    with pytest.raises(ValueError) as raised:
        keys.validate_key("a/.hidden")
    assert str(raised.value) == ("unsafe object key 'a/.hidden': segment '.hidden' must match "
                                 "[A-Za-z0-9][A-Za-z0-9._=-]* (build keys with storage.keys)")
