"""The run row records the order actually used: a ranked order needs a caption scorer or ImageBind."""
from __future__ import annotations

import json

import pytest

from storage import tables
from storage.root import open_root
from tasks.run_log import begin_run

MODEL = {"model_id": "m@1", "has_scorer": False}


@pytest.mark.parametrize("has_scorer, eval_weights, expected", [
    (False, [], "given"), (True, [], "descending"), (False, ["imagebind=/w/imagebind_huge.pt"], "descending"),
    (False, ["panns=/w/Cnn14_16k.pth"], "given"),
])
def test_the_resolved_order(tmp_path, has_scorer, eval_weights, expected):
    url = str(tmp_path / "store")
    params = {"order": "descending", "eval_weights": eval_weights}
    begin_run.fn(url, "r1", params, "manifest.csv", {**MODEL, "has_scorer": has_scorer})
    row = tables.read_table(open_root(url), "runs").to_pylist()[0]
    assert json.loads(row["params_json"])["resolved"]["order"] == expected
