"""The ``captions`` row: manifest captions, proposed ones with their trace, and an unusable VLM answer."""
from __future__ import annotations

from dataclasses import replace

from captioning.two_step import CaptionerAnswerError, CaptionTrace
from pipeline.handoffs import Captions
from pipeline.outcomes import captions_outcome_row
from storage import tables
from storage.commit import record_failure
from storage.manifest import ManifestEntry
from storage.root import open_root

TRACE = CaptionTrace(backend="endpoint", model="qwen @ http://vlm/v1", prompt="Task: ...", raw_answer="#1 Rain.",
                     structured_answer='{"captions": []}', attempts=3, error="the answer lists no usable caption")


def test_rows_for_each_outcome(tmp_path):
    root = open_root(f"file://{tmp_path}")
    assert captions_outcome_row("r", "v", 1, Captions(("A b.",), "manifest"))["source"] == "manifest"
    trace = replace(TRACE, captions=("Rain falls.",), error=None)
    proposed = captions_outcome_row("r", "v", 1, Captions(("Rain falls.",), "captioner", trace))
    assert proposed["source"] == "endpoint" and proposed["model"] == "qwen @ http://vlm/v1"
    assert proposed["error"] is None
    failed = captions_outcome_row("r", "v", 1, CaptionerAnswerError("unusable twice", TRACE))
    assert failed["captions"] is None and failed["raw_answer"] == "#1 Rain." and failed["attempts"] == 3
    assert failed["error"] == "captions: CaptionerAnswerError: unusable twice"
    assert captions_outcome_row("r", "v", 1, RuntimeError("x")) is None
    assert captions_outcome_row("r", "v", 1, None) is None
    record_failure(root, "r", ManifestEntry(1, "v", "v.mp4", None), failed["error"], captions=failed)
    row = tables.read_table(root, "captions", "r").to_pylist()[0]
    assert row["source"] == "endpoint" and row["structured_answer"] == '{"captions": []}' and row["version"] == 1
