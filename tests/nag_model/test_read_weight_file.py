"""`read_weight_file`: the one reader of production weight files (missing, checksum, corrupt, wrappers)."""
import os

import pytest
import torch

from nag_model.checkpoint import (ChecksumMismatch, CorruptWeights, WeightFile, WeightsNotFound, file_digest,
                                  read_weight_file)


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"model": {"module.a": torch.ones(2), "module.b": torch.zeros(3)}}, path)
    return str(path)


def test_wrappers_and_ddp_prefix_are_unwrapped(weights):
    state = read_weight_file(weights, "test weights")
    assert sorted(state) == ["a", "b"] and torch.equal(state["a"], torch.ones(2))


def test_a_matching_registry_entry_passes(weights):
    known = WeightFile("w.pth", file_digest(weights), "1K", "https://example.org/w.pth",
                       sha256=file_digest(weights, "sha256"), nbytes=os.path.getsize(weights))
    assert sorted(read_weight_file(weights, "test weights", known)) == ["a", "b"]


@pytest.mark.parametrize("field", ["md5", "sha256", "nbytes"])
def test_a_wrong_checksum_or_size_is_refused_unless_unchecked(weights, field):
    wrong = {"md5": "0" * 32, "sha256": "0" * 64, "nbytes": 3}[field]
    fields = {"md5": None, field: wrong}
    known = WeightFile("w.pth", size="1K", url="https://example.org/w.pth", **fields)
    with pytest.raises(ChecksumMismatch, match="https://example.org/w.pth"):
        read_weight_file(weights, "test weights", known)
    assert sorted(read_weight_file(weights, "test weights", known, verify_checksum=False)) == ["a", "b"]


def test_a_missing_file_says_what_and_where(tmp_path):
    known = WeightFile("w.pth", "ab" * 16, "1K", "https://example.org/w.pth")
    with pytest.raises(WeightsNotFound, match=r"ImageBind weights not found .*https://example.org/w.pth"):
        read_weight_file(str(tmp_path / "nope.pth"), "ImageBind weights", known)


@pytest.mark.parametrize("payload", [b"junk", b""])
def test_a_corrupt_file_is_named(tmp_path, payload):
    path = tmp_path / "bad.pth"
    path.write_bytes(payload)
    with pytest.raises(CorruptWeights, match="bad.pth"):
        read_weight_file(str(path), "test weights")


def test_a_checkpoint_without_tensors_is_refused(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"step": 3}, path)
    with pytest.raises(CorruptWeights, match="state dict of tensors"):
        read_weight_file(str(path), "test weights")
