"""The Python examples of docs/nag_model.md run as written (in order, sharing one namespace)."""
from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "nag_model.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_nag_model_doc_examples_run():
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 (our own documentation)
    assert namespace["v"].shape == namespace["latent"].shape
