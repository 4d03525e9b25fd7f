"""CLIP's byte-level BPE tokenizer, giving the same ids as open_clip's `SimpleTokenizer` (the tokenizer
MMAudio takes from `open_clip.get_tokenizer('ViT-H-14-378-quickgelu')`).

The text is cleaned the way open_clip cleans it (ftfy, HTML entities unescaped twice, whitespace runs
collapsed, lower-cased), split with the same pattern, byte-mapped and merged with the 48 894 BPE merges
of `bpe_simple_vocab_16e6.txt.gz`. Each caption becomes `<start_of_text> ... <end_of_text>`, zero-padded
to 77 ids. A longer caption is cut to 77 ids and its last id is replaced by `<end_of_text>`.

The vocabulary file is never downloaded. `find_vocab` looks for it in this order:
1. an explicit path or fsspec URL;
2. the user's weights folder;
3. a data file inside an installed distribution, read without importing that package. `openai-clip`
   is a dependency of this project and ships it; `open_clip_torch` and `clip-anytorch` ship the same file.
Every file is checked against `VOCAB_SHA256`.
"""
from __future__ import annotations

import gzip
import hashlib
import html
import importlib.metadata
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

import fsspec
import ftfy
import regex
import torch

VOCAB_FILENAME = "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
# Installed distributions that ship the same vocabulary file (checked in this order).
VOCAB_DISTRIBUTIONS = ("openai-clip", "open_clip_torch", "clip-anytorch")
NUM_MERGES = 49152 - 256 - 2  # merges used by CLIP: the file's lines 1 .. 48894
CONTEXT_LENGTH = 77
START_OF_TEXT, END_OF_TEXT = "<start_of_text>", "<end_of_text>"


class VocabNotFound(FileNotFoundError):
    """The BPE vocabulary file is in none of the places searched."""


class VocabMismatch(ValueError):
    """A BPE vocabulary file exists but is not CLIP's."""


@lru_cache(maxsize=1)
def byte_to_unicode() -> dict[int, str]:
    """Reversible byte -> printable character map of GPT-2/CLIP byte-level BPE.

    Printable Latin-1 bytes map to themselves; the other 68 bytes map to code points from 256 up, in order.
    The dict's order (printable bytes first, then the others) is the order of the first 256 vocabulary ids.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = (b for b in range(256) if b not in table)
    table.update({b: chr(256 + i) for i, b in enumerate(extra)})
    return table


def clean_text(text: str) -> str:
    """open_clip's 'lower' clean-up: ftfy, double HTML unescape, collapsed whitespace, lower case."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).lower()


def _installed_vocab() -> Path | None:
    for name in VOCAB_DISTRIBUTIONS:
        try:
            files = importlib.metadata.distribution(name).files or ()
        except importlib.metadata.PackageNotFoundError:
            continue
        for f in files:
            if f.name == VOCAB_FILENAME and Path(f.locate()).is_file():
                return Path(f.locate())
    return None


def _exists(url: str, storage_options: Mapping | None) -> bool:
    fs, p = fsspec.core.url_to_fs(url, **(storage_options or {}))
    return fs.exists(p)


def find_vocab(vocab: str | None = None, weights_dir: str | None = None,
               storage_options: Mapping | None = None) -> str:
    """Where the vocabulary is: `vocab` if given, else `weights_dir/bpe_simple_vocab_16e6.txt.gz`, else an
    installed distribution's copy (see the module docstring). Raises VocabNotFound naming all three."""
    if vocab is not None:
        if not _exists(vocab, storage_options):
            raise VocabNotFound(f"CLIP tokenizer vocabulary not found at {vocab!r} (expected {VOCAB_FILENAME}, "
                                f"sha256 {VOCAB_SHA256}).")
        return vocab
    if weights_dir is not None:
        candidate = weights_dir.rstrip("/") + "/" + VOCAB_FILENAME
        if _exists(candidate, storage_options):
            return candidate
    installed = _installed_vocab()
    if installed is not None:
        return str(installed)
    where = f" nor in {weights_dir!r}" if weights_dir is not None else ""
    raise VocabNotFound(
        f"CLIP tokenizer vocabulary {VOCAB_FILENAME} (sha256 {VOCAB_SHA256}) is in no installed package"
        f"{where}. Install the project's dependency `openai-clip==1.0.1` (it ships the file; it is never "
        f"imported), or put the file beside the CLIP weights, or pass vocab=PATH.")


def read_merges(vocab: str, storage_options: Mapping | None = None) -> list[tuple[str, str]]:
    """The BPE merges of a checked vocabulary file, highest priority first."""
    with fsspec.open(vocab, "rb", **(storage_options or {})) as f:
        data = f.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != VOCAB_SHA256:
        raise VocabMismatch(f"{vocab!r} has sha256 {digest}, expected {VOCAB_SHA256} for CLIP's {VOCAB_FILENAME}.")
    lines = gzip.decompress(data).decode("utf-8").split("\n")
    return [tuple(line.split()) for line in lines[1:NUM_MERGES + 1]]


class CLIPTokenizer:
    """Captions -> (B, 77) int64 ids, identical to open_clip's SimpleTokenizer with `clean='lower'`.

    Args:
        vocab: path or fsspec URL of `bpe_simple_vocab_16e6.txt.gz`; `None` searches as `find_vocab` does.
        weights_dir: a folder searched for the vocabulary before the installed packages.
        context_length: ids per caption (77 for every CLIP model).
    """

    def __init__(self, vocab: str | None = None, *, weights_dir: str | None = None,
                 context_length: int = CONTEXT_LENGTH, storage_options: Mapping | None = None):
        self.vocab_path = find_vocab(vocab, weights_dir, storage_options)
        merges = read_merges(self.vocab_path, storage_options)
        byte_chars = list(byte_to_unicode().values())
        symbols = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
        symbols += [START_OF_TEXT, END_OF_TEXT]
        self.ids = {s: i for i, s in enumerate(symbols)}  # 49 408 entries
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.sot_id, self.eot_id = self.ids[START_OF_TEXT], self.ids[END_OF_TEXT]
        self.context_length = context_length
        # The special tokens first, then contractions, letter runs, single digits, other non-space runs.
        self._split = regex.compile(
            rf"{START_OF_TEXT}|{END_OF_TEXT}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+",
            regex.IGNORECASE)
        self._cache: dict[str, tuple[str, ...]] = {START_OF_TEXT: (START_OF_TEXT,), END_OF_TEXT: (END_OF_TEXT,)}

    @property
    def vocab_size(self) -> int:
        return len(self.ids)

    def bpe(self, word: str) -> tuple[str, ...]:
        """Merge the characters of one byte-mapped word, lowest-rank pair first; the last symbol ends in </w>."""
        if word in self._cache:
            return self._cache[word]
        symbols = [*word[:-1], word[-1] + "</w>"]
        while len(symbols) > 1:
            pairs = set(zip(symbols, symbols[1:]))
            best = min(pairs, key=lambda pair: self.ranks.get(pair, len(self.ranks)))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(symbols):  # merge every occurrence, left to right, without overlap
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        self._cache[word] = tuple(symbols)
        return self._cache[word]

    def encode(self, text: str) -> list[int]:
        """BPE ids of one caption, without start/end tokens and without truncation."""
        to_char = byte_to_unicode()
        ids = []
        for piece in self._split.findall(clean_text(text)):
            word = "".join(to_char[b] for b in piece.encode("utf-8"))
            ids.extend(self.ids[s] for s in self.bpe(word))
        return ids

    def __call__(self, captions: str | Sequence[str]) -> torch.Tensor:
        """(B, context_length) int64: start, ids, end, zero padding; over-long captions end in the end token."""
        if isinstance(captions, str):
            captions = [captions]
        out = torch.zeros(len(captions), self.context_length, dtype=torch.long)
        for row, caption in enumerate(captions):
            ids = [self.sot_id, *self.encode(caption), self.eot_id]
            if len(ids) > self.context_length:
                ids = ids[:self.context_length - 1] + [self.eot_id]
            out[row, :len(ids)] = torch.tensor(ids)
        return out
