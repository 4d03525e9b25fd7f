"""Thin Prefect tasks, one stage of the pipeline per module, in the order a video goes through them.

* :mod:`tasks.manifest`   read the catalog manifest (:mod:`storage.manifest`)
* :mod:`tasks.run_log`    the ``runs`` row: begin (resume checks), finished videos, finish (+ compaction)
* :mod:`tasks.model_info` load the run's model once per worker and describe it (:mod:`pipeline.models`)
* :mod:`tasks.gpu_slot`   make sure the GPU slot exists (:mod:`pipeline.gpu_slot`)
* :mod:`tasks.reset`      remove what a killed or failed attempt left behind (:mod:`storage.cleanup`)
* :mod:`tasks.prepare`    probe, hash, decode and encode a video (features stay in the worker's cache)
* :mod:`tasks.captions`   captions from the manifest, else from the bundle's captioner
* :mod:`tasks.ordering`   order captions (descending scorer score by default)
* :mod:`tasks.synthesis`  step-by-step generation on the GPU slot; writes the stems
* :mod:`tasks.mixing`     mix, muxed video, spectrograms
* :mod:`tasks.scoring`    rows of the metrics table
* :mod:`tasks.record`     rows of the videos/tracks/mixes/metrics tables, written last (:mod:`storage.commit`)
* :mod:`tasks.plan`       what an edit of one video changes, from its committed rows (:mod:`pipeline.edit_plan`)

Helpers: :mod:`tasks.retry_policy`, :mod:`tasks.logs`. The library code the tasks call lives in
:mod:`pipeline` (hand-off types, model caches, the GPU slot, edit plans, audio objects), :mod:`storage`
and :mod:`media`.

Tasks pass ids, URIs and small frozen dataclasses (:mod:`pipeline.handoffs`), never tensors or
waveforms; every task is a plain function underneath (``task.fn(...)``).
"""
