"""The captioner kinds (``--captioner``), written once.

Import-free so that both sides can use it: :mod:`captioning.captioner` accepts exactly these kinds, and
:mod:`storage.tables` allows them (and ``manifest``) in ``captions.source``.
"""
from __future__ import annotations

DEMO = "demo"  # the model bundle's own captioner
ENDPOINT = "endpoint"  # a VLM behind an OpenAI-compatible chat endpoint
LOCAL = "local"  # a local transformers VLM folder

CAPTIONERS: tuple[str, ...] = (DEMO, ENDPOINT, LOCAL)
