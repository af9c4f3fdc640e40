"""A real HTTP origin on 127.0.0.1 for tests and benchmarks (standard library only).

``StaticOrigin(root)`` serves the files under ``root`` read-only over HTTP/1.1 with
keep-alive, GET and HEAD, single ``Range: bytes=`` requests and request counters. It
starts serving on construction and is a context manager::

    with StaticOrigin(repo_dir) as origin:
        client.fetch(origin.url + "/chunks/ab/abcdef...")

``faulty_origin.FaultyOrigin`` is the same server injecting faults.
"""

from __future__ import annotations

import os
import re
import socket
import socketserver
import sys
import threading
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

__all__ = ["StaticOrigin", "parse_range"]

HOST = "127.0.0.1"

_DIGITS = re.compile(r"[0-9]+")


class RangeNotSatisfiable(Exception):
    """The Range header is well formed but selects no byte of the representation."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte positions selected by a ``Range`` header for a
    representation of ``size`` bytes, or None when the whole representation is to be sent
    (no header, another unit, malformed, or several ranges: a server may ignore Range).
    Raises ``RangeNotSatisfiable`` for a valid single range that selects nothing."""
    if not header:
        return None
    unit, sep, spec = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    spec = spec.strip()
    if "," in spec:
        return None
    first, dash, last = spec.partition("-")
    first, last = first.strip(), last.strip()
    if not dash:
        return None
    if first == "":  # suffix: the last N bytes
        if not _DIGITS.fullmatch(last):
            return None
        n = int(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - n), size - 1
    if not _DIGITS.fullmatch(first) or (last and not _DIGITS.fullmatch(last)):
        return None
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable
    return start, min(end, size - 1)


@dataclass
class _Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


def _text(status: int, message: str) -> _Response:
    return _Response(status, message.encode() + b"\n", [("Content-Type", "text/plain; charset=utf-8")])


def _request_path(target: str) -> str:
    """The decoded path of a request target, without query or fragment."""
    path = target.split("#", 1)[0].split("?", 1)[0]
    return unquote(path)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "depot-test-origin/1"
    disable_nagle_algorithm = True
    timeout = 60  # an idle keep-alive connection is dropped after this long

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format, *args) -> None:  # noqa: A002 - signature of the base class
        pass

    def do_GET(self) -> None:
        self.server.origin._dispatch(self, head=False)

    def do_HEAD(self) -> None:
        self.server.origin._dispatch(self, head=True)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    origin: StaticOrigin

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve a host name (getfqdn); the address is enough.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port

    def process_request(self, request, client_address) -> None:
        t = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"http-origin-{self.server_port}-conn",
            daemon=True,
        )
        self.origin._track(request, t)
        t.start()

    def shutdown_request(self, request) -> None:
        self.origin._untrack(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        self.origin._record_error()


class StaticOrigin:
    """Serves ``root`` read-only on ``http://127.0.0.1:<ephemeral port>`` until ``stop()``.

    ``url`` has no trailing slash: ``root/a/b`` is at ``url + "/a/b"``. Paths that are missing,
    directories, or would leave ``root`` (``..`` segments, also percent-encoded, empty
    segments such as ``//etc/passwd``, symlinks resolving outside ``root``) get 404.

    Counters (updated under a lock before the response is written): ``requests`` (GET and HEAD
    requests), ``requests_by_path`` (decoded request path without query -> count). ``errors``
    collects unexpected server-side exceptions (formatted tracebacks); nothing is ever
    written to stderr.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._root = self.root.resolve()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = False
        self._active: dict[socket.socket, threading.Thread] = {}
        self.requests = 0
        self.requests_by_path: dict[str, int] = {}
        self.errors: list[str] = []
        self._server = _Server((HOST, 0), _Handler)
        self._server.origin = self
        self.port: int = self._server.server_address[1]
        self.url = f"http://{HOST}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"http-origin-{self.port}",
            daemon=True,
        )
        self._thread.start()

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, url={self.url!r})"

    def stop(self) -> None:
        """Stop accepting, drop open (keep-alive or stalled) connections, close the socket.
        Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            active = list(self._active.items())
        for sock, _ in active:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for _, t in active:
            t.join(timeout=2.0)
        self._thread.join(timeout=2.0)

    # -- bookkeeping (called from server threads) --------------------------------------------

    def _track(self, sock: socket.socket, thread: threading.Thread) -> None:
        with self._lock:
            self._active[sock] = thread

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._active.pop(sock, None)

    def _record_error(self) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # the peer went away or timed out: expected with faults and timeouts
        err = traceback.format_exc()
        with self._lock:
            self.errors.append(err)

    def _count(self, path: str) -> None:
        with self._lock:
            self.requests += 1
            self.requests_by_path[path] = self.requests_by_path.get(path, 0) + 1

    # -- serving -----------------------------------------------------------------------------

    def _dispatch(self, handler: _Handler, head: bool) -> None:
        self._discard_request_body(handler)
        path = _request_path(handler.path)
        self._count(path)
        self._serve(handler, path, head)

    @staticmethod
    def _discard_request_body(handler: _Handler) -> None:
        if handler.headers.get("Transfer-Encoding"):
            handler.close_connection = True
            return
        try:
            n = int(handler.headers.get("Content-Length") or 0)
        except ValueError:
            n = 0
        if n > 0:
            handler.rfile.read(n)

    def _serve(self, handler: _Handler, path: str, head: bool) -> None:
        self._write(handler, self._build(path, handler.headers.get("Range")), head)

    def _resolve(self, path: str) -> Path | None:
        """The regular file under root for a decoded URL path, or None."""
        if not path.startswith("/") or "\x00" in path or "\\" in path:
            return None
        parts = path[1:].split("/")
        if any(p in ("", ".", "..") for p in parts):
            return None
        try:
            f = self._root.joinpath(*parts).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if f == self._root or not f.is_relative_to(self._root) or not f.is_file():
            return None
        return f

    def _read(self, path: str) -> bytes | None:
        f = self._resolve(path)
        if f is None:
            return None
        try:
            return f.read_bytes()
        except OSError:
            return None

    def _build(self, path: str, range_header: str | None) -> _Response:
        data = self._read(path)
        if data is None:
            return _text(404, "not found")
        return self._file_response(data, range_header)

    @staticmethod
    def _file_response(data: bytes, range_header: str | None) -> _Response:
        headers = [("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes")]
        size = len(data)
        try:
            selected = parse_range(range_header, size)
        except RangeNotSatisfiable:
            return _Response(416, b"", headers + [("Content-Range", f"bytes */{size}")])
        if selected is None:
            return _Response(200, data, headers)
        start, end = selected
        return _Response(206, data[start : end + 1], headers + [("Content-Range", f"bytes {start}-{end}/{size}")])

    @staticmethod
    def _send_head(handler: _Handler, resp: _Response) -> None:
        handler.send_response(resp.status)
        for name, value in resp.headers:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(resp.body)))
        handler.end_headers()

    def _write(self, handler: _Handler, resp: _Response, head: bool) -> None:
        self._send_head(handler, resp)
        if not head and resp.body:
            handler.wfile.write(resp.body)


def main(argv: list[str] | None = None) -> int:
    """``python -m depot_testing.http_origins ROOT``: serve ROOT, print the URL, and stop
    when standard input closes (so a benchmark's origin dies with the benchmark)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m depot_testing.http_origins ROOT", file=sys.stderr)
        return 2
    with StaticOrigin(args[0]) as origin:
        print(origin.url, flush=True)
        sys.stdin.buffer.read()
    return 0


if __name__ == "__main__":
    sys.exit(main())
