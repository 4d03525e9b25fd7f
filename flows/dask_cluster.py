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

Without prefect-dask installed this module still loads, so ``prefect deploy --all`` works on a plain
install: ``catalog_run_dask`` is then a flow of the same parameters that fails at once, saying what to
install (before, the deploy itself failed with a misleading message).
"""
from __future__ import annotations

import functools
import inspect
import os
from typing import Any

from prefect import flow

from flows.catalog import catalog_run

try:
    from prefect_dask import DaskTaskRunner
except ImportError as exc:  # the [dask] extra is not installed
    DaskTaskRunner = None
    _MISSING = f"the Dask task runner needs prefect-dask: pip install 'foley-nag[dask]' ({exc})"


def dask_task_runner(address: str) -> Any:
    """A task runner on the Dask cluster at ``address`` (``tcp://host:8786``), or on a new local cluster
    of N single-threaded worker processes for ``local:N`` (``local``: one per CPU core).

    Raises:
        ImportError: prefect-dask is not installed. ValueError: a bad ``local:N``.
    """
    if DaskTaskRunner is None:
        raise ImportError(_MISSING)
    if address == "local" or address.startswith("local:"):
        n = address.partition(":")[2]
        if n and not (n.isdigit() and int(n) > 0):
            raise ValueError(f"a local Dask cluster is 'local' or 'local:N' with N >= 1 workers, got {address!r}")
        workers = int(n) if n else os.cpu_count() or 1
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "processes": True, "threads_per_worker": 1})
    return DaskTaskRunner(address=address)


def _without_dask(*args: Any, **kwargs: Any) -> dict[str, Any]:
    raise ImportError(_MISSING)


if DaskTaskRunner is not None:
    catalog_run_dask = catalog_run.with_options(
        name="catalog-run-dask", task_runner=dask_task_runner(os.environ.get("FOLEY_DASK_ADDRESS", "local")))
else:  # same name and parameters, so it deploys; it fails when run, naming the missing extra
    _without_dask = functools.wraps(catalog_run.fn)(_without_dask)
    _without_dask.__signature__ = inspect.signature(catalog_run.fn)  # type: ignore[attr-defined]
    catalog_run_dask = flow(name="catalog-run-dask")(_without_dask)
