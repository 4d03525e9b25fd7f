"""A chat backend over any OpenAI-compatible chat-completions endpoint that serves a VLM (vLLM, SGLang, ...).

Requests are ``POST <base_url>/chat/completions`` with ``temperature`` 0 and, when a schema is given,
``response_format = {"type": "json_schema", "json_schema": {"name": ..., "schema": ..., "strict": true}}``
(structured output; vLLM enforces it with its guided-decoding backend).

Robustness: every request has a timeout; connection errors, timeouts and the statuses in
:data:`TRANSIENT_STATUS` are retried ``retries`` times with exponential backoff (``backoff_s``, doubled each
time, or the server's ``Retry-After`` when it gives one, capped at :data:`MAX_WAIT_S`); other errors fail at once.

The API key is given by the caller (the pipeline reads it from the environment or a Prefect Secret block). It
is sent only in the ``Authorization`` header and appears in no message, log line or ``repr``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import httpx

TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_WAIT_S = 30.0
log = logging.getLogger("foley.captioning")


class EndpointError(RuntimeError):
    """The endpoint failed for good (after retries for transient errors); the message says how."""


@dataclass(frozen=True)
class EndpointConfig:
    """Where the VLM is served and how patiently to ask it."""

    base_url: str  # e.g. http://vlm-host:8000/v1
    model: str  # the served model name, e.g. Qwen/Qwen2.5-VL-7B-Instruct
    timeout_s: float = 120.0
    retries: int = 3
    backoff_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"the captioner endpoint must be an http(s) URL, got {self.base_url!r}")
        if not self.model:
            raise ValueError("the captioner endpoint needs a model name (the name the server serves)")
        if self.timeout_s <= 0 or self.retries < 0 or self.backoff_s < 0:
            raise ValueError("timeout_s must be > 0, retries and backoff_s >= 0")


def _excerpt(response: httpx.Response) -> str:
    return " ".join(response.text.split())[:300]


class EndpointChat:
    """A :class:`captioning.two_step.Chat` over one endpoint (one HTTP connection pool, reused)."""

    def __init__(self, config: EndpointConfig, api_key: str | None = None):
        self.config = config
        self.model = config.model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=config.base_url.rstrip("/"), headers=headers,
                                    timeout=httpx.Timeout(config.timeout_s))

    def __repr__(self) -> str:
        return f"EndpointChat(base_url={self.config.base_url!r}, model={self.model!r})"

    def close(self) -> None:
        self._client.close()

    def __call__(self, messages: list[dict], *, json_schema: dict | None = None, max_tokens: int = 512) -> str:
        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": 0.0}
        if json_schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "captions", "schema": json_schema, "strict": True}}
        response = self._post(body)
        try:
            choice = response.json()["choices"][0]
            return choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise EndpointError(f"{self.config.base_url}: the answer is not a chat completion: "
                                f"{_excerpt(response)!r}") from None

    def _post(self, body: dict) -> httpx.Response:
        wait, last = self.config.backoff_s, ""
        for attempt in range(self.config.retries + 1):
            try:
                response = self._client.post("/chat/completions", json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    return response
                last = f"HTTP {response.status_code}: {_excerpt(response)!r}"
                if response.status_code not in TRANSIENT_STATUS:
                    raise EndpointError(f"{self.config.base_url} refused the request ({last})")
                retry_after = response.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    wait = float(retry_after)
            if attempt < self.config.retries:
                delay = min(wait, MAX_WAIT_S)
                log.warning("captioner endpoint %s: %s; retrying in %.1f s (%d of %d)", self.config.base_url, last,
                            delay, attempt + 1, self.config.retries)
                time.sleep(delay)
                wait *= 2
        raise EndpointError(f"{self.config.base_url} failed {self.config.retries + 1} times; last: {last}")
