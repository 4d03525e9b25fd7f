"""Named presets of a config dataclass: one lookup for every model family."""
from __future__ import annotations

from typing import Mapping, TypeVar

C = TypeVar("C")


def pick_preset(preset: str | C, presets: Mapping[str, C], config_type: type[C], what: str,
                error: type[Exception] = ValueError) -> C:
    """``preset`` itself when it is a ``config_type``, else the preset of that name.

    Raises:
        error: an unknown name, as ``unknown <what> preset '<name>'; known: [...]``.
    """
    if isinstance(preset, config_type):
        return preset
    if preset not in presets:
        raise error(f"unknown {what} preset {preset!r}; known: {sorted(presets)}")
    return presets[preset]
