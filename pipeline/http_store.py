"""A read-only Store over HTTP(S): a CDN or any static web server serving a repository.

One pooled, keep-alive connection per request in flight. Status 404 is ``NotFound``;
connection failures, timeouts, 5xx and short bodies are ``StoreUnavailable`` (worth a
retry); anything else is an error naming the URL.
"""

from __future__ import annotations

import urllib3

from .errors import NotFound, StoreUnavailable
from .layout import check_key
from .store import Store


class HttpStore(Store):
    read_only = True

    def __init__(self, url: str, connections: int = 32, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self._pool = urllib3.PoolManager(
            maxsize=connections,
            block=False,
            retries=False,  # retries and failover are the caller's policy
            timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
        )

    def __repr__(self) -> str:
        return f"HttpStore({self.url!r})"

    def _request(self, method: str, key: str) -> urllib3.BaseHTTPResponse:
        url = self.url_of(key)
        try:
            r = self._pool.request(method, url, preload_content=True, enforce_content_length=True)
        except urllib3.exceptions.HTTPError as exc:
            raise StoreUnavailable(f"{url}: {type(exc).__name__}: {exc}") from exc
        if r.status == 404:
            raise NotFound(f"{url}: not found")
        if r.status >= 500:
            raise StoreUnavailable(f"{url}: HTTP {r.status}")
        if r.status != 200:
            raise StoreUnavailable(f"{url}: unexpected HTTP {r.status}")
        return r

    def get(self, key: str) -> bytes:
        return self._request("GET", check_key(key)).data

    def has(self, key: str) -> bool:
        try:
            self._request("HEAD", check_key(key))
            return True
        except NotFound:
            return False

    def size(self, key: str) -> int:
        r = self._request("HEAD", check_key(key))
        return int(r.headers["Content-Length"])

    def put(self, key: str, data: bytes, overwrite: bool = False) -> bool:
        raise StoreUnavailable(f"{self.url}: HTTP origins are read-only")

    def list(self, prefix: str = ""):
        raise StoreUnavailable(f"{self.url}: HTTP origins cannot be listed")

    def delete(self, key: str) -> None:
        raise StoreUnavailable(f"{self.url}: HTTP origins are read-only")
