"""CLIPTokenizer against open_clip.get_tokenizer('ViT-H-14-378-quickgelu') (fixture: tests/fixtures/clip)."""
import gzip
import json
import sys
from pathlib import Path

import fsspec
import pytest

from nag_model.encoders import clip_tokenizer
from nag_model.encoders.clip_tokenizer import (VOCAB_FILENAME, VOCAB_SHA256, CLIPTokenizer, VocabMismatch,
                                               VocabNotFound, find_vocab)

FIXTURE = json.loads((Path(__file__).parents[2] / "fixtures" / "clip" / "tokenizer_ids.json").read_text())


@pytest.fixture(scope="module")
def tok():
    return CLIPTokenizer()


def test_special_ids_and_vocab_size(tok):
    assert (tok.sot_id, tok.eot_id, tok.vocab_size) == (FIXTURE["sot_token_id"], FIXTURE["eot_token_id"],
                                                        FIXTURE["vocab_size"]) == (49406, 49407, 49408)


@pytest.mark.parametrize("record", FIXTURE["records"], ids=lambda r: repr(r["text"])[:40])
def test_ids_equal_open_clip(tok, record):
    assert tok(record["text"])[0].tolist() == record["ids"]
    assert len(tok.encode(record["text"])) == record["num_bpe_tokens"]


def test_fixture_covers_at_least_50_awkward_strings():
    texts = [r["text"] for r in FIXTURE["records"]]
    assert len(set(texts)) >= 50
    assert "" in texts and any(t.isspace() for t in texts) and any(len(t) > 300 for t in texts)
    assert any(not t.isascii() for t in texts) and any("&amp;" in t for t in texts)


def test_batch_call(tok):
    batch = tok([r["text"] for r in FIXTURE["records"][:6]])
    assert batch.shape == (6, 77) and batch.tolist() == FIXTURE["batch_ids"]


def test_truncation_keeps_the_end_token(tok):
    by_len = {r["num_bpe_tokens"]: r["ids"] for r in FIXTURE["records"] if r["text"].startswith("dog cat")}
    assert by_len[75][76] == tok.eot_id  # 77 ids exactly: fits, nothing cut
    assert by_len[76][76] == tok.eot_id and by_len[76][75] != tok.eot_id  # 78 -> last word replaced by the end
    ids = tok("a dog barks " * 40)[0].tolist()
    assert ids[0] == tok.sot_id and ids[-1] == tok.eot_id and 0 not in ids


def test_vocab_comes_from_an_installed_package_without_importing_it():
    path = CLIPTokenizer().vocab_path
    assert Path(path).name == VOCAB_FILENAME and "site-packages" in path
    assert "clip" not in sys.modules and "open_clip" not in sys.modules  # both would import torchvision


def test_explicit_and_fsspec_vocab(tmp_path, tok):
    data = Path(tok.vocab_path).read_bytes()
    (tmp_path / VOCAB_FILENAME).write_bytes(data)
    assert find_vocab(weights_dir=str(tmp_path)) == f"{tmp_path}/{VOCAB_FILENAME}"
    with fsspec.open(f"memory://vocab/{VOCAB_FILENAME}", "wb") as f:
        f.write(data)
    other = CLIPTokenizer(f"memory://vocab/{VOCAB_FILENAME}")
    assert other("A dog barks.").tolist() == tok("A dog barks.").tolist()


def test_wrong_or_missing_vocab(tmp_path, monkeypatch, tok):
    bad = tmp_path / "bad.txt.gz"
    bad.write_bytes(gzip.compress(gzip.decompress(Path(tok.vocab_path).read_bytes()) + b"\n"))
    with pytest.raises(VocabMismatch, match=f"expected {VOCAB_SHA256}"):
        CLIPTokenizer(str(bad))
    with pytest.raises(VocabNotFound, match="nope.gz"):
        CLIPTokenizer(str(tmp_path / "nope.gz"))
    monkeypatch.setattr(clip_tokenizer, "VOCAB_DISTRIBUTIONS", ("no-such-distribution",))
    with pytest.raises(VocabNotFound, match=r"openai-clip==1\.0\.1.*vocab=PATH"):
        CLIPTokenizer(weights_dir=str(tmp_path))
