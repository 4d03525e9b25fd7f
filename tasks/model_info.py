"""The task that loads the run's model once in a worker and describes it (:mod:`pipeline.models`)."""
from __future__ import annotations

from dataclasses import asdict

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline.models import describe


@task(name="describe-model", cache_policy=NO_CACHE)
def describe_model(model: str, duration: float) -> dict:
    """:class:`pipeline.models.ModelInfo` as a dict (stored in the run's row); fails the run early with a
    clear error."""
    return asdict(describe(model, duration))
