"""A tiny random Qwen2.5-VL folder, and a real HTTP server process serving it (OpenAI chat-completions API)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).resolve().parent

import foley_test_helpers as H  # noqa: E402  tests/conftest.py SHARED_MODULES
from foley_tiny_vlm import build_tiny_vlm  # noqa: E402

API_KEY = "sk-test-7f3a9c1e-do-not-log"


@pytest.fixture(scope="session")
def h():
    return H


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tiny VLM decodes one token at a time: two OpenMP threads on a busy 2-core machine spend ~20x longer
    waiting for each other than computing."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> Path:
    pytest.importorskip("transformers", reason="the VLM backends need the captions-local extra")
    pytest.importorskip("llguidance", reason="the VLM backends need the captions-local extra")
    return build_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny-qwen2.5-vl")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vlm_server(tiny_vlm, tmp_path_factory):
    """``{"url", "log", "key"}`` of a server process on 127.0.0.1 that fails its first 2 requests with 503."""
    port, log = _free_port(), tmp_path_factory.mktemp("server") / "requests.jsonl"
    env = {**os.environ, "VLM_SERVER_KEY": API_KEY, "VLM_SERVER_FAIL_FIRST": "2", "VLM_SERVER_LOG": str(log),
           "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), str(HERE)]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(HERE / "vlm_server.py"), str(tiny_vlm), str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the test VLM server did not start:\n{proc.stdout.read().decode()[-3000:]}")
            time.sleep(0.2)
    yield {"url": url, "log": log, "key": API_KEY}
    proc.terminate()
    proc.wait(timeout=20)
