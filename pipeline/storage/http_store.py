"""A read-only store over HTTP(S): a CDN or any static web server serving a repository or
an origin. Read-only by type: it is a ReadStore and nothing else.

One kept-alive connection per request in flight, on the standard library's http.client:
a request costs about half the CPU of urllib3's pool (which an install of a few hundred
chunks from loopback feels), and the body is read in one piece of its declared length.
An idle connection the server has closed is left for a new one before it is used, as
urllib3 does; a request is never sent twice (retries are the caller's policy). Statuses
read as translate.check_status reads them (404 is ``NotFound``, any other but 200
``StoreUnavailable``); connection failures, timeouts and short bodies are
``StoreUnavailable`` too.
"""

from __future__ import annotations

import http.client
import select
import threading
from urllib.parse import urlsplit

from ..errors import NotFound, StoreUnavailable
from .base import ReadStore
from .location import Location
from .translate import check_status, describe, translated

CONNECT_TIMEOUT = 5.0  # seconds at most to connect, whatever the location's timeout for data
HEADERS = {"User-Agent": "depot"}  # some CDNs refuse a request that names no agent


class HttpStore(ReadStore):
    def __init__(self, location: Location, connections: int = 32):
        self.location = location
        url = urlsplit(location.url)
        self._https = url.scheme == "https"
        self._host, self._port = url.hostname or "", url.port
        self._path = url.path.rstrip("/")
        self._timeout = location.timeout
        self.connections = connections  # idle connections kept at most: one per download in flight
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        """An idle connection the server has not closed, else a new one."""
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                break
            if conn.sock is not None and not _readable(conn.sock):
                return conn  # nothing to read on an idle connection: still open
            conn.close()  # closed by the server (or it sent what was not asked for)
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = kind(self._host, self._port, timeout=min(self._timeout, CONNECT_TIMEOUT))
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(self._timeout)
        return conn

    def _request(self, method: str, key: str) -> tuple[http.client.HTTPResponse, bytes]:
        url = self.url_of(key)
        with translated(url):
            conn = self._connection()
            try:
                conn.request(method, f"{self._path}/{key}", headers=HEADERS)
                r = conn.getresponse()
                body = r.read()
            except http.client.HTTPException as exc:  # a short body, a malformed answer
                conn.close()
                raise StoreUnavailable(f"{url}: {describe(exc)}") from exc
            except BaseException:
                conn.close()
                raise
        if r.will_close:
            conn.close()
        else:
            with self._lock:
                keep = len(self._idle) < self.connections
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()
        check_status(r.status, url)
        return r, body

    def get(self, key: str) -> bytes:
        return self._request("GET", key)[1]

    def has(self, key: str) -> bool:
        try:
            self._request("HEAD", key)
            return True
        except NotFound:
            return False

    def size(self, key: str) -> int:
        return int(self._request("HEAD", key)[0].headers["Content-Length"])


def _readable(sock) -> bool:
    """Whether ``sock`` has something to read (or its end of file) right now."""
    poll = select.poll()
    poll.register(sock, select.POLLIN)
    return bool(poll.poll(0))
