"""Fixtures for the task unit tests: tasks run as plain functions (``task.fn``), no Prefect server."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("foley_test_helpers", Path(__file__).resolve().parent / "helpers.py")
H = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(H)


@pytest.fixture(scope="session")
def h():
    """The shared helpers module (tests/tasks/helpers.py)."""
    return H


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    return H.write_media_cases(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="session")
def demo_video() -> str:
    return str(H.DEMO_DIR / "sf-10109180.mp4")


@pytest.fixture(scope="session")
def evaluated_model() -> str:
    """A registered model name whose bundle has a scorer, a captioner and an evaluator."""
    from pipeline.models import register_model

    register_model("test:evaluated", H.evaluated_bundle(), H.DURATION)
    return "test:evaluated"
