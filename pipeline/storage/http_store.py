"""A read-only store over HTTP(S): a CDN or any static web server serving a repository or
an origin. Read-only by type: it is a ReadStore and nothing else.

One pooled, keep-alive connection per request in flight. Status 404 is ``NotFound``;
connection failures, timeouts, 5xx and short bodies are ``StoreUnavailable`` (worth a
retry); anything else is an error naming the URL.
"""

from __future__ import annotations

import urllib3

from ..errors import NotFound, StoreUnavailable
from .base import ReadStore
from .translate import translated
from .location import Location


class HttpStore(ReadStore):
    def __init__(self, location: Location, connections: int = 32):
        self.location = location
        timeout = location.timeout
        self._pool = urllib3.PoolManager(
            maxsize=connections,
            block=False,
            retries=False,  # retries and failover are the caller's policy
            timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
        )

    def _request(self, method: str, key: str) -> urllib3.BaseHTTPResponse:
        url = self.url_of(key)
        with translated(url):
            r = self._pool.request(method, url, preload_content=True, enforce_content_length=True)
        if r.status == 404:
            raise NotFound(f"{url}: not found")
        if r.status >= 500:
            raise StoreUnavailable(f"{url}: HTTP {r.status}")
        if r.status != 200:
            raise StoreUnavailable(f"{url}: unexpected HTTP {r.status}")
        return r

    def get(self, key: str) -> bytes:
        return self._request("GET", key).data

    def has(self, key: str) -> bool:
        try:
            self._request("HEAD", key)
            return True
        except NotFound:
            return False

    def size(self, key: str) -> int:
        return int(self._request("HEAD", key).headers["Content-Length"])
