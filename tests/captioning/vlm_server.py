"""A small OpenAI-compatible chat-completions server for tests: ``python vlm_server.py MODEL_DIR PORT``.

It serves ``POST /v1/chat/completions`` from a transformers VLM folder through
:class:`captioning.local.LocalChat` (image parts as ``data:`` URLs; ``response_format`` of type
``json_schema`` enforced by constrained decoding, as vLLM does). For the tests it also

* requires ``Authorization: Bearer $VLM_SERVER_KEY`` when that variable is set (401 otherwise);
* answers the first ``$VLM_SERVER_FAIL_FIRST`` requests with 503 (transient errors to retry);
* logs every request line, header names and body to ``$VLM_SERVER_LOG`` (to check what clients send).
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from captioning.local import LocalChat


def build_app(model_dir: str) -> FastAPI:
    app = FastAPI()
    chat = LocalChat(model_dir)
    state = {"failures_left": int(os.environ.get("VLM_SERVER_FAIL_FIRST", "0"))}
    lock = threading.Lock()
    log_path = os.environ.get("VLM_SERVER_LOG")

    @app.post("/v1/chat/completions")
    async def completions(request: Request):
        body = await request.json()
        if log_path:
            with open(log_path, "a") as f:
                f.write(json.dumps({"headers": sorted(request.headers.keys()), "body": body}) + "\n")
        key = os.environ.get("VLM_SERVER_KEY")
        if key and request.headers.get("authorization") != f"Bearer {key}":
            return JSONResponse({"error": {"message": "invalid API key"}}, status_code=401)
        with lock:
            if state["failures_left"] > 0:
                state["failures_left"] -= 1
                return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        schema = None
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            schema = fmt["json_schema"]["schema"]
        text = chat(body["messages"], json_schema=schema, max_tokens=int(body.get("max_tokens", 256)))
        return {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}

    return app


if __name__ == "__main__":
    uvicorn.run(build_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
