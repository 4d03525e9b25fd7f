"""Prefect flows (orchestration only) and the ``foley`` CLI.

* :mod:`flows.catalog`: ``catalog_run``, Foley for every video of a catalog manifest.
* :mod:`flows.edit`: ``edit_video``, add, regenerate or remove one track of one finished video.
* :mod:`flows.dask_cluster`: the catalog run with its tasks on a Dask cluster (the ``dask`` extra).
* :mod:`flows.cli`: the ``foley`` command (run, edit, query, report, demo).
* :mod:`flows.env`: the CLI's environment defaults (telemetry off, a writable Prefect home).

Nothing here imports Prefect at package import time, so the CLI can set its environment first.
"""
