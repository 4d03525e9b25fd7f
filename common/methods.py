"""The names of the guidance methods, written once.

Torch-free and import-free so that both sides can use it: :mod:`nag_model.settings` maps each name
to its guidance component, and :mod:`storage.tables` allows exactly these values in ``tracks.method``.
"""
from __future__ import annotations

NAG = "nag"  # Negative Audio Guidance, Eq. (7) of the NAG paper
INDEPENDENT = "independent"  # classifier-free guidance, each track alone
NEGATIVE_PROMPT = "negative-prompt"  # the other tracks' captions as negative prompts

METHODS: tuple[str, ...] = (NAG, INDEPENDENT, NEGATIVE_PROMPT)
