"""The local backend: a tiny random-weight Qwen2.5-VL folder loaded offline, JSON schema enforced by llguidance."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from captioning.prompt import CAPTION_PATTERN, caption_schema

FRAMES = [(np.random.default_rng(k).random((56, 84, 3)) * 255).astype(np.uint8) for k in range(2)]


@pytest.fixture(scope="module")
def chat(tiny_vlm):
    from captioning.local import LocalChat

    return LocalChat(tiny_vlm)


def test_structured_output_follows_the_schema_even_from_random_weights(chat):
    from captioning.two_step import image_part

    messages = [{"role": "user", "content": [image_part(FRAMES[0]), {"type": "text", "text": "Sounds?"}]}]
    free = chat(messages, max_tokens=20)
    forced = chat(messages, json_schema=caption_schema(max_captions=3, max_chars=30), max_tokens=200)
    data = json.loads(forced)  # the random model alone would not write JSON
    assert isinstance(data, dict) and set(data) == {"captions"} and 1 <= len(data["captions"]) <= 3
    assert all(re.fullmatch(CAPTION_PATTERN, c) and len(c) <= 30 for c in data["captions"])
    with pytest.raises(json.JSONDecodeError):
        json.loads(free)


def test_two_steps_locally_are_deterministic(chat):
    from captioning.two_step import two_step_captions

    first = two_step_captions(chat, FRAMES, backend="local", max_tokens=200)
    again = two_step_captions(chat, FRAMES, backend="local", max_tokens=200)
    assert first.captions and first.captions == again.captions and first.model == "tiny-qwen2.5-vl"


def test_a_folder_that_is_not_a_model_is_a_clear_error(tmp_path):
    from captioning.local import LocalChat, LocalModelError

    with pytest.raises(LocalModelError, match="not a transformers model folder"):
        LocalChat(tmp_path)
