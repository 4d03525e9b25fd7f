"""The ``captions`` row: manifest captions, proposed ones with their trace, and an unusable VLM answer."""
from __future__ import annotations

from captioning.two_step import CaptionerAnswerError, CaptionTrace
from storage import tables
from storage.root import open_root
from tasks.record import captions_row, write_captions_row

TRACE = CaptionTrace(backend="endpoint", model="qwen @ http://vlm/v1", prompt="Task: ...", raw_answer="#1 Rain.",
                     structured_answer='{"captions": []}', attempts=3, error="the answer lists no usable caption")


def test_rows_for_each_outcome(tmp_path):
    root = open_root(f"file://{tmp_path}")
    assert captions_row("r", "v", 1, {"captions": ["A b."], "source": "manifest"})["source"] == "manifest"
    proposed = captions_row("r", "v", 1, {"captions": ["Rain falls."], "source": "captioner",
                                          "trace": {**TRACE.to_dict(), "captions": ["Rain falls."], "error": None}})
    assert proposed["source"] == "endpoint" and proposed["model"] == "qwen @ http://vlm/v1" and proposed["error"] is None
    failed = captions_row("r", "v", 1, CaptionerAnswerError("unusable twice", TRACE))
    assert failed["captions"] is None and failed["raw_answer"] == "#1 Rain." and failed["attempts"] == 3
    assert failed["error"] == "captions: CaptionerAnswerError: unusable twice"
    assert captions_row("r", "v", 1, RuntimeError("x")) is None and captions_row("r", "v", 1, None) is None
    write_captions_row(root, "r", "v", 1, CaptionerAnswerError("unusable twice", TRACE))
    row = tables.read_table(root, "captions", "r").to_pylist()[0]
    assert row["source"] == "endpoint" and row["structured_answer"] == '{"captions": []}' and row["version"] == 1
