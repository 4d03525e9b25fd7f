"""Fixtures of the codec tests: outputs of the official MMAudio code (tests/fixtures/codec/README.md)."""
import json
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "codec"


def _max_rel(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected| (the parity figure the docs quote)."""
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} vs official {tuple(expected.shape)}"
    return ((actual.double() - expected.double()).abs().max() / expected.double().abs().max()).item()


@pytest.fixture
def fixture_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def official():
    """official(mode) -> the codec fixture of mode '16k' or '44k' (inputs, outputs, file names)."""
    cache = {}

    def load(mode: str) -> dict:
        if mode not in cache:
            cache[mode] = torch.load(FIXTURES / f"codec_{mode}.pt", weights_only=True)
        return cache[mode]

    return load


@pytest.fixture(scope="session")
def key_table():
    """key_table(name) -> {key: shape} of an official full-size module, built on the meta device."""
    def load(name: str) -> dict:
        return json.loads((FIXTURES / f"keys_{name}.json").read_text())

    return load


@pytest.fixture(scope="session")
def max_rel():
    return _max_rel
