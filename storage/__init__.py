"""Object store, keys, Parquet tables and DuckDB queries of the pipeline (no Prefect here).

* :mod:`storage.root`: an fsspec storage root from a URL, atomic content-hashed writes.
* :mod:`storage.keys`: every object key and table path.
* :mod:`storage.tables`: table schemas, idempotent partition writes, compaction.
* :mod:`storage.query`: DuckDB views, read-only queries, canned reports.
"""
