"""Read the catalog manifest (parsing and row rules: :mod:`storage.manifest`)."""
from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.manifest import ManifestEntry, load_manifest  # noqa: F401  (ManifestEntry: the rows it returns)
from tasks.retry_policy import IO_RETRY


@task(name="read-manifest", cache_policy=NO_CACHE, **IO_RETRY)
def read_manifest(manifest_uri: str) -> list[dict]:
    """The manifest's rows as :class:`ManifestEntry` dicts, rejected rows marked with their error."""
    return [e.to_dict() for e in load_manifest(manifest_uri)]
