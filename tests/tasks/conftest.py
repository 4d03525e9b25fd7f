"""Fixtures for the task unit tests: tasks run as plain functions (``task.fn``), no Prefect server."""
from __future__ import annotations

from pathlib import Path

import pytest

import foley_test_helpers as H  # tests/conftest.py SHARED_MODULES


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
