"""Copying objects from the repository to one origin: many uploads in flight, objects
already there skipped, transient failures (5xx, timeouts, resets: STORE_UNAVAILABLE)
retried with exponential backoff and jitter, within a bandwidth limit shared by every
origin of a publish."""

from __future__ import annotations

import concurrent.futures as cf
import random
import threading
import time
from dataclasses import dataclass, field

from ..core.progress import Progress, ignore
from ..core.rate import RateLimiter
from ..errors import NotFound, StoreUnavailable
from ..storage import WriteStore

BACKOFF = 0.2  # seconds before the first retry; doubles, with jitter, up to BACKOFF_MAX
BACKOFF_MAX = 5.0


@dataclass
class OriginReport:
    origin: str
    uploaded: int = 0
    uploaded_bytes: int = 0
    skipped: int = 0
    skipped_bytes: int = 0
    retries: int = 0
    listed: int = 0  # objects listed to learn what the origin has
    verified: int = 0
    elapsed_s: float = 0.0
    versions: list[str] = field(default_factory=list)
    timestamp: str = ""  # "updated", "unchanged" or "newer-there" (signed repositories)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class Uploader:
    def __init__(self, repo: WriteStore, origin: WriteStore, jobs: int = 16, retries: int = 5,
                 rate: RateLimiter | None = None, progress: Progress = ignore):
        self.repo, self.origin = repo, origin
        self.jobs, self.retries, self.rate, self.progress = jobs, retries, rate, progress
        self.report = OriginReport(origin.url)
        self._lock = threading.Lock()
        self._present: dict[str, set[str]] = {}

    def present(self, prefix: str) -> set[str]:
        """What the origin has under ``prefix``: one listing, remembered."""
        if prefix not in self._present:
            found = set(self._retrying(lambda: list(self.origin.list(prefix)), prefix))
            self._present[prefix] = found
            with self._lock:
                self.report.listed += len(found)
        return self._present[prefix]

    def copy(self, keys, replace: bool = False, sizes: dict[str, int] | None = None) -> None:
        """Copy ``keys`` (in parallel; in no particular order). Objects the origin has are
        skipped, unless ``replace`` (documents whose key is reused, like the plan index)."""
        keys = sorted(set(keys))
        if not keys:
            return
        with cf.ThreadPoolExecutor(min(self.jobs, len(keys))) as pool:
            for _ in pool.map(lambda k: self._copy_one(k, replace, (sizes or {}).get(k)), keys):
                pass

    def _copy_one(self, key: str, replace: bool, size: int | None) -> None:
        prefix = key.split("/", 1)[0] + "/"
        if not replace and key in self._present.get(prefix, ()):
            with self._lock:
                self.report.skipped += 1
                self.report.skipped_bytes += size or 0
            self.progress(size or 0)
            return
        data = self.repo.get(key)  # a repository missing what it names is not a transient failure
        if self.rate is not None:
            self.rate.acquire(len(data))

        def put() -> bool:
            if replace:
                try:
                    if self.origin.get(key) == data:
                        return False  # the same bytes there already: nothing to send
                except NotFound:
                    pass
                self.origin.put(key, data)
                return True
            return self.origin.put_if_absent(key, data)

        wrote = self._retrying(put, key)
        with self._lock:
            if wrote:
                self.report.uploaded += 1
                self.report.uploaded_bytes += len(data)
            else:  # there already (another publisher got there first: the same bytes)
                self.report.skipped += 1
                self.report.skipped_bytes += len(data)
        self.progress(size if size is not None else len(data))

    def _retrying(self, call, what: str):
        for attempt in range(self.retries + 1):
            try:
                return call()
            except StoreUnavailable:
                if attempt == self.retries:
                    raise
            except NotFound:
                raise
            with self._lock:
                self.report.retries += 1
            delay = min(BACKOFF_MAX, BACKOFF * 2 ** attempt)
            time.sleep(delay / 2 + random.random() * delay / 2)  # jitter: racing publishers spread out
        raise AssertionError(what)
