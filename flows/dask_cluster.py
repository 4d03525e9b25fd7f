"""The catalog run with its tasks on a Dask cluster, through prefect-dask (``pip install 'foley-nag[dask]'``).

The flow is :func:`flows.catalog.catalog_run` unchanged; only its task runner differs. Tasks pass
URIs, ids and small parameters, never open files or models, so each Dask worker process loads the
model once and reads and writes the shared storage itself. The synthesis still holds the ``gpu``
global concurrency limit on the Prefect server, so the limit, not the number of workers, decides
how many syntheses run at once.

* ``foley run MANIFEST --dask local:2``: a local cluster of two single-threaded worker processes.
* ``foley run MANIFEST --dask tcp://scheduler:8786``: a running cluster, e.g. ``dask scheduler`` on
  one machine and ``dask worker tcp://scheduler:8786 --nthreads 1`` on each GPU machine. The workers
  need this package, the storage credentials and ``PREFECT_API_URL`` of a Prefect server they can reach.
* Deployments: the entrypoint ``flows/dask_cluster.py:catalog_run_dask`` (flow ``catalog-run-dask``)
  runs on the cluster named by ``FOLEY_DASK_ADDRESS`` where the flow runs (default ``local``).

(Not ``flows/dask.py``: Prefect loads entrypoints as scripts, and that name would hide the ``dask`` package.)
"""
from __future__ import annotations

import os

from prefect_dask import DaskTaskRunner

from flows.catalog import catalog_run


def dask_task_runner(address: str) -> DaskTaskRunner:
    """A task runner on the Dask cluster at ``address`` (``tcp://host:8786``), or on a new local cluster
    of N single-threaded worker processes for ``local:N`` (``local``: one per CPU core)."""
    if address == "local" or address.startswith("local:"):
        n = address.partition(":")[2]
        if n and not (n.isdigit() and int(n) > 0):
            raise ValueError(f"a local Dask cluster is 'local' or 'local:N' with N >= 1 workers, got {address!r}")
        workers = int(n) if n else os.cpu_count() or 1
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "processes": True, "threads_per_worker": 1})
    return DaskTaskRunner(address=address)


catalog_run_dask = catalog_run.with_options(
    name="catalog-run-dask", task_runner=dask_task_runner(os.environ.get("FOLEY_DASK_ADDRESS", "local")))
