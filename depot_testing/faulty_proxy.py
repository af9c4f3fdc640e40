"""A fault-injecting HTTP reverse proxy on 127.0.0.1, for putting real failures between a
client and a real server (moto's S3): some requests get a 503, have their connection
reset before an answer, are cut off half-way through their upload, or stall past the
client's timeout. Draws are seeded, so a run is reproducible. ``fail_first`` answers the
first requests for some paths with 503 whatever the draws: {path suffix: how many}.
Without faults it is a plain proxy that logs each request (``log``: method and path with
its query).

    with FaultyProxy("http://127.0.0.1:5000", {"503": 0.1, "reset": 0.05, "cut": 0.05}) as proxy:
        ... point the client's endpoint at proxy.url ...
"""

from __future__ import annotations

import http.client
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

FAULTS = ("503", "reset", "cut", "stall")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class FaultyProxy:
    def __init__(self, upstream: str, faults: dict[str, float], seed: int = 0, stall_s: float = 3.0,
                 fail_first: dict[str, int] | None = None):
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {FAULTS}")
        target = urlsplit(upstream)
        self.upstream = (target.hostname, target.port or 80)
        self.faults, self.stall_s = faults, stall_s
        self.fail_first = dict(fail_first or {})
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.injected: dict[str, int] = {k: 0 for k in FAULTS}
        self.requests = 0
        self.log: list[tuple[str, str]] = []  # (method, path and query) of every request, in order
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _any(self):
                proxy._handle(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _draw(self, h: BaseHTTPRequestHandler) -> str | None:
        with self._lock:
            self.requests += 1
            self.log.append((h.command, h.path))
            for suffix, left in self.fail_first.items():
                if left and h.path.split("?", 1)[0].endswith(suffix):
                    self.fail_first[suffix] -= 1
                    self.injected["503"] += 1
                    return "503"
            x = self._random.random()
            for kind, p in self.faults.items():
                if x < p:
                    self.injected[kind] += 1
                    return kind
                x -= p
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        fault = self._draw(h)
        if fault == "cut" and length > 1:
            h.rfile.read(length // 2)  # half the upload arrives, then the line drops
            self._drop(h)
            return
        body = h.rfile.read(length) if length else b""
        if fault == "reset":
            self._drop(h)
            return
        if fault == "stall":
            time.sleep(self.stall_s)
            self._drop(h)
            return
        if fault == "503":
            h.send_response(503)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(h.command, h.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            h.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                    h.send_header(k, v)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(data)
        finally:
            conn.close()

    @staticmethod
    def _drop(h: BaseHTTPRequestHandler) -> None:
        h.close_connection = True
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
