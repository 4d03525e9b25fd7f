"""A fault-injecting HTTP proxy for S3 tests, on 127.0.0.1 only.

It sits between the client and the S3 server and serves one request per connection (it asks both sides
for ``Connection: close``, so a client's every request opens a new connection and can be hit on its own).
It answers ``Expect: 100-continue`` itself and forwards the whole request at once (Ceph's RGW sends no
``100 Continue`` on a connection that is to close, and the client would wait for it forever).
For the requests a :class:`Plan` picks, it injects one fault:

* ``reset``: the connection is cut with a TCP RST right after the request arrived (nothing forwarded);
* ``reset_mid``: the request is forwarded, and the connection is reset after part of the response;
* ``stall``: the request is forwarded, and nothing comes back for ``stall_s`` (longer than the client's read
  timeout) or until the client gives up and closes (``Fault.held_s`` says after how long), then the
  connection is reset;
* ``slow``: the response trickles back in small pieces (it completes, slowly);
* ``503``: the server is not asked; the client gets ``503 Slow Down`` (S3's throttling answer).

Bounded: at most ``max_faults`` per kind, and the proxy stops by itself after ``lifetime_s``. Every fault
is logged with the request line, so a test can say where faults hit.
"""
from __future__ import annotations

import random
import re
import select
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

KINDS = ("reset", "reset_mid", "stall", "slow", "503")
_BUSY = (b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nConnection: close\r\nContent-Length: {n}\r\n"
         b"\r\n")
_BUSY_BODY = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
              b"<Message>Please reduce your request rate.</Message></Error>")
_CONNECTION = re.compile(rb"^(connection|keep-alive):.*\r\n", re.IGNORECASE | re.MULTILINE)
_EXPECT = re.compile(rb"^expect:\s*100-continue\s*\r\n", re.IGNORECASE | re.MULTILINE)
_LENGTH = re.compile(rb"^content-length:\s*(\d+)\s*\r\n", re.IGNORECASE | re.MULTILINE)


@dataclass
class Plan:
    """Which requests get which fault: each request draws a fault with probability ``rate`` (seeded), of a
    kind not yet used ``max_faults`` times; the first ``skip`` requests pass untouched."""

    rate: float = 0.15
    max_faults: int = 4
    skip: int = 0
    seed: int = 0
    kinds: tuple[str, ...] = KINDS
    stall_s: float = 4.0
    slow_chunk: int = 512
    slow_pause_s: float = 0.003
    _rng: random.Random = field(init=False, repr=False)
    _used: Counter = field(default_factory=Counter, init=False, repr=False)
    _seen: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def pick(self) -> str | None:
        with self._lock:
            self._seen += 1
            if self._seen <= self.skip or self._rng.random() >= self.rate:
                return None
            open_kinds = [k for k in self.kinds if self._used[k] < self.max_faults]
            if not open_kinds:
                return None
            kind = self._rng.choice(open_kinds)
            self._used[kind] += 1
            return kind


@dataclass
class Fault:
    kind: str
    request: str  # "PUT /bucket/key" (the query string dropped)
    at: float  # seconds since the proxy started
    held_s: float | None = None  # a stall: how long the client waited before it closed (None: it never did)


class FaultProxy:
    """Forward 127.0.0.1:<port> to ``upstream`` (host, port), injecting the faults of ``plan``."""

    def __init__(self, upstream: tuple[str, int], plan: Plan, *, lifetime_s: float = 600.0):
        self.upstream, self.plan, self.lifetime_s = upstream, plan, lifetime_s
        self.faults: list[Fault] = []
        self.requests = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._serve, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def counts(self) -> Counter:
        return Counter(f.kind for f in self.faults)

    # ------------------------------------------------------------------ serving
    def _serve(self) -> None:
        while not self._stop.is_set() and time.monotonic() - self._started < self.lifetime_s:
            try:
                client, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()
        self._listener.close()  # past its lifetime: refuse, rather than leave connections in the backlog

    def _handle(self, client: socket.socket) -> None:
        upstream = None
        try:
            client.settimeout(30)
            head, rest = _read_head(client)
            if head is None:
                return
            self.requests += 1
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, target = (line.split(" ") + ["", ""])[:2]
            kind = self.plan.pick()
            fault = None
            if kind:
                fault = Fault(kind, f"{method} {target.split('?', 1)[0]}", time.monotonic() - self._started)
                self.faults.append(fault)
            if kind == "reset":
                return _reset(client)
            if kind == "503":
                client.sendall(_BUSY.replace(b"{n}", str(len(_BUSY_BODY)).encode()) + _BUSY_BODY)
                return
            if _EXPECT.search(head):
                head = _EXPECT.sub(b"", head)
                client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            length = _LENGTH.search(head)
            body = rest + _read_exactly(client, int(length.group(1)) - len(rest)) if length else rest
            upstream = socket.create_connection(self.upstream, timeout=30)
            upstream.sendall(_close_after(head) + body)
            self._respond(fault, upstream, client)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def _respond(self, fault: Fault | None, upstream: socket.socket, client: socket.socket) -> None:
        kind = fault.kind if fault else None
        interim, head, rest = _final_head(upstream)  # "100 Continue" answers pass as they are
        if interim:
            client.sendall(interim)
        if head is None:
            return
        if kind == "stall":
            fault.held_s = _held(client, self.plan.stall_s)
            return _reset(client)
        sent = 0
        chunks = [_close_after(head) + rest]
        while chunks or (chunk := upstream.recv(65536)):
            if chunks:
                chunk = chunks.pop()
            if kind == "reset_mid" and sent + len(chunk) > 64:
                client.sendall(chunk[: max(1, (len(chunk) - 1) // 2)])
                return _reset(client)
            if kind == "slow":
                for i in range(0, len(chunk), self.plan.slow_chunk):
                    client.sendall(chunk[i : i + self.plan.slow_chunk])
                    time.sleep(self.plan.slow_pause_s)
            else:
                client.sendall(chunk)
            sent += len(chunk)


def _held(client: socket.socket, seconds: float) -> float | None:
    """Wait up to ``seconds`` for the client to close; how long it took, or None if it waited it out."""
    start = time.monotonic()
    while (left := seconds - (time.monotonic() - start)) > 0:
        readable, _, _ = select.select([client], [], [], left)
        if readable:
            try:
                if not client.recv(1, socket.MSG_PEEK):
                    return time.monotonic() - start
            except OSError:
                return time.monotonic() - start
            time.sleep(0.01)
    return None


def _final_head(sock: socket.socket) -> tuple[bytes, bytes | None, bytes]:
    """Read a response up to its final (non-1xx) head: (the 1xx heads before it, that head, what followed)."""
    interim, data = b"", b""
    while True:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return interim + data, None, b""
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 1") or head.startswith(b"HTTP/1.0 1"):
            interim += head + b"\r\n\r\n"
            continue
        return interim, head + b"\r\n\r\n", data


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    """The request (or response) head up to its blank line, and whatever came after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", rest


def _close_after(head: bytes) -> bytes:
    """An HTTP head with ``Connection: close`` instead of any keep-alive headers (first chunk only)."""
    end = head.find(b"\r\n\r\n")
    if end < 0 or not (head.startswith(b"HTTP/") or b" HTTP/1." in head.split(b"\r\n", 1)[0]):
        return head
    top, body = head[: end + 2], head[end + 2 :]
    first, _, fields = top.partition(b"\r\n")
    fields = _CONNECTION.sub(b"", fields)
    return first + b"\r\n" + fields + b"Connection: close\r\n" + body


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(min(65536, n - len(data)))
        if not chunk:
            raise ConnectionError("the client closed before sending its whole body")
        data += chunk
    return data


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed peer or a middlebox would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()
