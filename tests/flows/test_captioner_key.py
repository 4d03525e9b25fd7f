"""The VLM endpoint's API key: from a Prefect Secret block or the environment, never part of the settings."""
from __future__ import annotations

import json

from prefect.blocks.system import Secret

from captioning.captioner import CaptionerSettings
from pipeline.captioner import api_key


def test_the_key_comes_from_a_secret_block_or_the_environment(monkeypatch):
    Secret(value="sk-from-a-block-42").save("foley-test-vlm-key", overwrite=True)
    from_block = CaptionerSettings(kind="endpoint", url="http://vlm/v1", model="m", api_key_block="foley-test-vlm-key")
    assert api_key(from_block) == "sk-from-a-block-42"
    assert "sk-from-a-block-42" not in json.dumps(from_block.to_dict()) + repr(from_block)
    monkeypatch.setenv("MY_VLM_KEY", "sk-from-the-env")
    assert api_key(CaptionerSettings(kind="endpoint", url="http://vlm/v1", model="m", api_key_env="MY_VLM_KEY")) \
        == "sk-from-the-env"
    monkeypatch.delenv("MY_VLM_KEY")
    assert api_key(CaptionerSettings(kind="endpoint", url="http://vlm/v1", model="m", api_key_env="MY_VLM_KEY")) is None
