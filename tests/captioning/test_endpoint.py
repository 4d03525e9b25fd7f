"""The endpoint backend against a real HTTP server process on 127.0.0.1 (tiny random Qwen2.5-VL behind an
OpenAI-compatible chat-completions API with json_schema structured output)."""
from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from captioning.captioner import CaptionerSettings
from captioning.endpoint import EndpointChat, EndpointConfig, EndpointError
from captioning.prompt import CAPTION_PATTERN
from captioning.two_step import two_step_captions

DEMO_VIDEO = Path(__file__).resolve().parents[2] / "synthfoley" / "demo_catalog" / "sf-10109180.mp4"
FRAMES = [(np.random.default_rng(k).random((56, 84, 3)) * 255).astype(np.uint8) for k in range(3)]


def test_two_step_captions_through_the_server(vlm_server, caplog):
    caplog.set_level(logging.DEBUG)
    chat = EndpointChat(EndpointConfig(vlm_server["url"], "tiny-qwen", timeout_s=60, retries=3, backoff_s=0.05),
                        api_key=vlm_server["key"])
    trace = two_step_captions(chat, FRAMES, backend="endpoint", max_tokens=300)
    assert 1 <= len(trace.captions) <= 5 and all(re.fullmatch(CAPTION_PATTERN, c) for c in trace.captions)
    assert trace.attempts == 2 and trace.model == "tiny-qwen"
    assert json.loads(trace.structured_answer) == {"captions": list(trace.captions)}  # the server kept to the schema
    requests = [json.loads(line) for line in vlm_server["log"].read_text().splitlines()]
    assert len(requests) == 4  # two 503s retried, then the two steps
    describe, reformat = requests[-2]["body"], requests[-1]["body"]
    assert "response_format" not in describe and describe["temperature"] == 0.0
    assert [p["type"] for p in describe["messages"][0]["content"]] == ["image_url"] * 3 + ["text"]
    assert reformat["response_format"]["type"] == "json_schema"
    assert reformat["response_format"]["json_schema"]["schema"]["properties"]["captions"]["maxItems"] == 5
    assert "authorization" in requests[-1]["headers"]
    retried = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retried) == 2 and "HTTP 503" in retried[0].getMessage()
    assert vlm_server["key"] not in caplog.text and vlm_server["key"] not in repr(chat)


def test_a_wrong_key_fails_at_once_without_showing_the_key(vlm_server, caplog):
    chat = EndpointChat(EndpointConfig(vlm_server["url"], "tiny-qwen", retries=3, backoff_s=0.05),
                        api_key="sk-wrong-secret-123")
    with pytest.raises(EndpointError, match="refused the request \\(HTTP 401") as info:
        two_step_captions(chat, FRAMES[:1], backend="endpoint")
    assert "sk-wrong-secret-123" not in str(info.value) and "sk-wrong-secret-123" not in caplog.text
    assert "retrying" not in caplog.text


def test_an_unreachable_endpoint_is_retried_then_a_clear_error(caplog):
    chat = EndpointChat(EndpointConfig("http://127.0.0.1:9/v1", "m", timeout_s=2, retries=2, backoff_s=0.01),
                        api_key="sk-unreachable-secret")
    with pytest.raises(EndpointError, match="failed 3 times; last: ConnectError"):
        chat([{"role": "user", "content": "hi"}])
    assert caplog.text.count("retrying") == 2 and "sk-unreachable-secret" not in caplog.text


def test_the_captions_task_uses_the_endpoint_and_keeps_the_trace(vlm_server, monkeypatch, h):
    from tasks.captions import resolve_captions
    from pipeline.videos import describe_video
    from storage.manifest import ManifestEntry

    monkeypatch.setenv("TEST_VLM_KEY", vlm_server["key"])
    video = describe_video(str(DEMO_VIDEO), h.MODEL, h.DURATION)
    settings = CaptionerSettings(kind="endpoint", url=vlm_server["url"], model="tiny-qwen", n_frames=2,
                                 api_key_env="TEST_VLM_KEY", max_tokens=300)
    entry = ManifestEntry(1, "v", str(DEMO_VIDEO), None)
    out = resolve_captions.fn(entry, video, h.MODEL, h.DURATION, 300, settings)
    assert out.source == "captioner" and out.captions == out.trace.captions
    assert out.trace.backend == "endpoint" and out.trace.model == "tiny-qwen"
    assert out.trace.prompt.startswith("Task:") and out.trace.raw_answer is not None
    stored = json.dumps(asdict(out))  # what Prefect's result storage and the captions table get
    assert vlm_server["key"] not in stored and "TEST_VLM_KEY" not in stored


def test_settings_reject_incomplete_backends():
    with pytest.raises(ValueError, match="--captioner-url"):
        CaptionerSettings(kind="endpoint", model="m")
    with pytest.raises(ValueError, match="--captioner-path"):
        CaptionerSettings(kind="local")
    with pytest.raises(ValueError, match="one of demo, endpoint, local"):
        CaptionerSettings(kind="gpt")
    a = CaptionerSettings(kind="endpoint", url="http://x/v1", model="m")
    assert a.identity() == CaptionerSettings(kind="endpoint", url="http://x/v1", model="m", api_key_env="OTHER",
                                             timeout_s=5).identity()
    assert a.identity() != CaptionerSettings(kind="endpoint", url="http://x/v1", model="m2").identity()
