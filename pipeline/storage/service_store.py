"""A read-only store that asks the lookup service for short-lived signed CDN links and
downloads through them: what a player's client does when it is given ``--service URL``
instead of a bare origin. Links are asked for in batches as the download goes: ``prefetch``
names the keys in the order they will be fetched, and a key without a fresh link brings the
links of the next batch from it. A download longer than a link's life never asks one key at
a time."""

from __future__ import annotations

import json
import threading
import time
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode

import urllib3

from ..errors import NotFound, StoreUnavailable
from ..layout import check_key
from .base import ReadStore
from .location import Location
from .translate import check_status, translated

BATCH = 500  # keys per link request
MARGIN = 30  # seconds: a link closer than this to its expiry (or to half its life) is asked for again


class ServiceStore(ReadStore):
    def __init__(self, location: Location, connections: int = 32, region: str | None = None):
        self.location = location
        self.region = region
        timeout = location.timeout
        self._pool = urllib3.PoolManager(maxsize=connections, block=False, retries=False,
                                         timeout=urllib3.Timeout(connect=min(timeout, 3.0), read=timeout))
        self._links: dict[str, tuple[str, float]] = {}  # key -> (link, until when it is used, on our clock)
        self._order: list[str] = []  # the keys as the download will ask for them
        self._position: dict[str, int] = {}
        self._lock = threading.Lock()
        self._asking = threading.Lock()  # one link request at a time: the others find theirs in its answer

    def url_of(self, key: str) -> str:
        return f"{self.url}/api/v1/download/links?key={check_key(key)}"

    def prefetch(self, keys) -> None:
        """The keys the download will fetch, in order; the first batch's links are asked now."""
        with self._lock:
            self._order = list(keys)
            self._position = {k: i for i, k in enumerate(self._order)}
        if self._order:
            self._link(self._order[0])

    def _stale(self, key: str, now: float) -> bool:
        return self._links.get(key, ("", 0))[1] < now

    def _ask(self, keys: list[str]) -> None:
        params = [("key", check_key(k)) for k in keys] + ([("region", self.region)] if self.region else [])
        url = f"{self.url}/api/v1/download/links?{urlencode(params)}"
        with translated(self.url):
            r = self._pool.request("GET", url)
        if r.status != 200:
            raise StoreUnavailable(f"{self.url}: the lookup service answered HTTP {r.status}: {_detail(r.data)}")
        # A link's life is read on the service's clock (its Date header) and counted on
        # ours, so a player's clock that is off does not make every link look expired.
        now = time.time()
        date = r.headers.get("Date")
        service_now = parsedate_to_datetime(date).timestamp() if date else now
        with self._lock:
            for item in json.loads(r.data)["data"]:
                life = item["attributes"]["expiresAt"] - service_now
                self._links[item["id"]] = (item["attributes"]["href"], now + life - min(MARGIN, life / 2))

    def _link(self, key: str) -> str:
        if self._stale(key, time.time()):
            with self._asking:
                now = time.time()
                if self._stale(key, now):
                    at = self._position.get(key)
                    self._ask([key] if at is None else [k for k in self._order[at: at + BATCH] if self._stale(k, now)])
        return self._links[key][0]  # what was just given is used, whatever its life

    def _fetch(self, method: str, key: str) -> urllib3.BaseHTTPResponse:
        url = self._link(key)
        with translated(url.split("?", 1)[0]):
            r = self._pool.request(method, url, preload_content=True, enforce_content_length=True)
        if r.status in (403, 410):  # refused or expired: a new link next time
            with self._lock:
                self._links.pop(key, None)
            raise StoreUnavailable(f"{key}: the CDN refused the link (HTTP {r.status})")
        check_status(r.status, f"{key} at the CDN")
        return r

    def get(self, key: str) -> bytes:
        return self._fetch("GET", key).data

    def has(self, key: str) -> bool:
        try:
            self._fetch("HEAD", key)
            return True
        except NotFound:
            return False

    def size(self, key: str) -> int:
        return int(self._fetch("HEAD", key).headers["Content-Length"])


def _detail(body: bytes) -> str:
    try:
        return json.loads(body)["errors"][0]["detail"]
    except (ValueError, KeyError, IndexError, TypeError):  # a web server's page, not the service's answer
        return "no depot error: is this the depot service's URL?"
