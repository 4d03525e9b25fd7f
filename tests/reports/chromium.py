"""Open a page in Debian's headless Chromium over the DevTools protocol and report what a person would see.

:func:`inspect_page` loads a URL, then for every ``<audio>`` and ``<video>`` waits until it has data
(``readyState >= 2``) and plays it muted for a moment, checks every ``<img>`` decoded, and collects console
errors, uncaught exceptions, failed loads and HTTP errors; it also takes a screenshot. It drives the system
``chromium`` binary through ``websockets`` (no browser download).
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from websockets.sync.client import connect

BINARIES = ("chromium", "chromium-browser", "google-chrome")

MEDIA_SCRIPT = """
(async () => {
  const wait = (el, ok, events, ms) => new Promise(resolve => {
    if (ok()) return resolve(true);
    const done = () => { if (ok() || el.error) { cleanup(); resolve(ok()); } };
    const cleanup = () => events.forEach(e => el.removeEventListener(e, done));
    events.forEach(e => el.addEventListener(e, done));
    setTimeout(() => { cleanup(); resolve(ok()); }, ms);
  });
  const out = [];
  for (const el of document.querySelectorAll('audio, video')) {
    el.muted = true;
    if (el.readyState < 2) el.load();
    const loaded = await wait(el, () => el.readyState >= 2, ['loadeddata', 'canplay', 'error'], 15000);
    let played = false, playError = null;
    if (loaded) {
      try { await el.play(); } catch (e) { playError = String(e); }
      played = await wait(el, () => el.currentTime > 0, ['timeupdate', 'error'], 5000);
      el.pause();
    }
    out.push({tag: el.tagName.toLowerCase(), src: el.currentSrc || el.src, readyState: el.readyState,
              duration: el.duration, error: el.error ? el.error.code + ' ' + el.error.message : null,
              played, playError});
  }
  const images = [...document.images].map(i => ({src: i.src.slice(0, 60), ok: i.complete && i.naturalWidth > 0}));
  return {media: out, images, title: document.title};
})()
"""


def find_chromium() -> str | None:
    """The path of a Chromium binary, or None."""
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageReport:
    title: str
    media: list[dict]
    images: list[dict]
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads, HTTP >= 400
    screenshot: bytes = b""


class _Session:
    def __init__(self, ws):
        self.ws, self.ids, self.events = ws, itertools.count(1), []

    def call(self, method: str, timeout: float = 60.0, **params) -> dict:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method: str, timeout: float) -> None:
        if any(e["method"] == method for e in self.events):
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return
        raise TimeoutError(f"no {method} within {timeout} s")


def _errors(events: list[dict]) -> list[str]:
    out = []
    for e in events:
        m, p = e["method"], e.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            out.append("exception: " + p.get("exceptionDetails", {}).get("text", ""))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        elif m == "Network.loadingFailed" and not p.get("canceled"):
            out.append(f"load failed: {p.get('errorText')} (request {p.get('requestId')})")
        elif m == "Network.responseReceived" and p.get("response", {}).get("status", 200) >= 400:
            out.append(f"HTTP {p['response']['status']}: {p['response'].get('url')}")
    return out


def inspect_page(url: str, *, width: int = 1280, height: int = 900, binary: str | None = None,
                 timeout_s: float = 60.0, scroll_to: str | None = None) -> PageReport:
    """Load ``url`` in headless Chromium and check its media, images and console (see the module docstring)."""
    binary = binary or find_chromium()
    if binary is None:
        raise FileNotFoundError("no chromium binary on PATH (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    proc = subprocess.Popen(
        [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
         "--no-first-run", "--autoplay-policy=no-user-gesture-required", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while not (port_file.is_file() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start (exit code {proc.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=64 * 2**20, open_timeout=10) as ws:
            s = _Session(ws)
            for domain in ("Page", "Runtime", "Log", "Network"):
                s.call(f"{domain}.enable")
            s.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
            s.events.clear()
            s.call("Page.navigate", url=url)
            s.wait_event("Page.loadEventFired", timeout_s)
            result = s.call("Runtime.evaluate", timeout=timeout_s, expression=MEDIA_SCRIPT, awaitPromise=True,
                            returnByValue=True)
            if "exceptionDetails" in result:
                raise RuntimeError(f"the page script failed: {result['exceptionDetails']}")
            value = result["result"]["value"]
            if scroll_to:
                s.call("Runtime.evaluate", expression=f"document.querySelector({json.dumps(scroll_to)}).scrollIntoView()")
            shot = s.call("Page.captureScreenshot", format="png")
            import base64

            return PageReport(title=value["title"], media=value["media"], images=value["images"],
                              errors=_errors(s.events), screenshot=base64.b64decode(shot["data"]))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":  # python tests/reports/chromium.py URL [screenshot.png [CSS selector to scroll to]]
    import sys

    report = inspect_page(sys.argv[1], scroll_to=sys.argv[3] if len(sys.argv) > 3 else None)
    print(json.dumps({"title": report.title, "media": report.media, "errors": report.errors}, indent=1))
    if len(sys.argv) > 2:
        Path(sys.argv[2]).write_bytes(report.screenshot)
    os._exit(0)
