"""Thin Prefect tasks, one stage of the pipeline per module, in the order a video goes through them.

* :mod:`storage.manifest`   read the catalog manifest (CSV, JSONL or Parquet at any fsspec URL)
* :mod:`tasks.run_log`    the ``runs`` row: begin (resume checks), finished videos, finish (+ compaction)
* :mod:`tasks.cleanup`    remove what a killed or failed attempt left behind (objects and row units)
* :mod:`tasks.prepare`    probe, hash, decode and encode a video (features stay in the worker's cache)
* :mod:`tasks.captions`   captions from the manifest, else from the bundle's captioner
* :mod:`tasks.ordering`   order captions (descending scorer score by default)
* :mod:`tasks.synthesis`  step-by-step generation on the GPU slot; writes the stems
* :mod:`tasks.mixing`     mix, muxed video, spectrograms
* :mod:`tasks.scoring`    rows of the metrics table
* :mod:`tasks.record`     rows of the videos/tracks/mixes/metrics tables, written last
* :mod:`tasks.edit_plan`  what an edit of one video changes, from its committed rows

Helpers: :mod:`tasks.models` (per-process model and feature caches), :mod:`tasks.gpu` (the GPU
slot: a global concurrency limit), :mod:`tasks.params` (typed settings), :mod:`tasks.objects` (audio
objects in storage, inputs at any URL), :mod:`tasks.retry_policy`, :mod:`tasks.logs`.

Tasks pass ids, URIs and small dicts, never tensors or waveforms; every task is a plain function
underneath (``task.fn(...)``).
"""
