"""Copying objects from the repository to one origin: many uploads in flight, objects
already there skipped, transient failures (5xx, timeouts, resets: STORE_UNAVAILABLE)
retried with exponential backoff and jitter, within a bandwidth limit shared by every
origin of a publish.

Documents replaced under one name (channel pointers, plan indexes) are written only by
compare-and-swap against the version read, and never over one the caller says is newer: a
pointer with a higher serial, or in a signed repository a plan index a newer signature
names (an unsigned plan index has no order: the last writer wins). A cancel flag, checked before every object, every retry and every slice
of the bandwidth limit, and ending any wait for the limit, stops the copy within moments
whatever the rate.
"""

from __future__ import annotations

import concurrent.futures as cf
import random
import threading
import time
from dataclasses import dataclass, field

from ..core.progress import Progress, ignore
from ..core.rate import RateLimiter
from ..errors import NotFound, StoreUnavailable
from ..storage import REFRESH_AGE, PrunableStore, WriteStore

BACKOFF = 0.2  # seconds before the first retry; doubles, with jitter, up to BACKOFF_MAX
BACKOFF_MAX = 5.0
RATE_SLICE = 64 * 1024  # bytes taken from the bandwidth limit at a time, so that a cancel is seen soon


class Cancelled(Exception):
    """The publish was asked to stop (Ctrl-C): raised in the upload threads."""


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
    timestamp: str = ""  # "updated", "unchanged", "newer-there" or "replaced" (signed repositories)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class Uploader:
    def __init__(self, repo: WriteStore, origin: PrunableStore, jobs: int = 16, retries: int = 5,
                 rate: RateLimiter | None = None, progress: Progress = ignore, cancel: threading.Event | None = None):
        self.repo, self.origin = repo, origin
        self.jobs, self.retries, self.rate, self.progress = jobs, retries, rate, progress
        self.cancel = cancel or threading.Event()
        self.report = OriginReport(origin.url)
        self._lock = threading.Lock()
        self._present: dict[str, set[str]] = {}
        self._modified: dict[str, float] = {}  # when each listed object was written

    def present(self, prefix: str) -> set[str]:
        """What the origin has under ``prefix``: one listing, remembered."""
        if prefix not in self._present:
            listed = self._retrying(lambda: list(self.origin.scan(prefix)), prefix)
            found = {o.key for o in listed if not o.temporary}
            self._modified.update((o.key, o.modified) for o in listed)
            self._present[prefix] = found
            with self._lock:
                self.report.listed += len(found)
        return self._present[prefix]

    def check(self) -> None:
        """Raise ``Cancelled`` once the publish was asked to stop."""
        if self.cancel.is_set():
            raise Cancelled(self.origin.url)

    def throttle(self, n: int) -> None:
        """Take ``n`` bytes from the bandwidth limit, a slice at a time."""
        if self.rate is None:
            return
        while n > 0:
            self.rate.acquire(min(n, RATE_SLICE), self.cancel)
            self.check()
            n -= RATE_SLICE

    def copy(self, keys, replace: bool = False, sizes: dict[str, int] | None = None, newer=None,
             contents: dict[str, bytes] | None = None) -> None:
        """Copy ``keys`` (in parallel; in no particular order), with the bytes ``contents``
        gives, or else the repository's. Objects the origin has are skipped, unless
        ``replace`` (documents whose key is reused, like the plan index): those are
        swapped in by compare-and-swap, unless ``newer(key, theirs, ours)`` says the
        origin's bytes are newer than ours."""
        keys = sorted(set(keys))
        if not keys:
            return
        self.check()
        with cf.ThreadPoolExecutor(min(self.jobs, len(keys))) as pool:
            for _ in pool.map(lambda k: self._copy_one(k, replace, (sizes or {}).get(k), newer, contents), keys):
                pass

    def _copy_one(self, key: str, replace: bool, size: int | None, newer, contents) -> None:
        self.check()
        prefix = key.split("/", 1)[0] + "/"
        if not replace and key in self._present.get(prefix, ()) and self._kept(key):
            with self._lock:
                self.report.skipped += 1
                self.report.skipped_bytes += size or 0
            self.progress(size or 0)
            return
        # a repository missing what it names is not a transient failure
        data = contents[key] if contents and key in contents else self.repo.get(key)
        self.throttle(len(data))
        if replace:
            wrote = self.swap(key, data, newer)
        else:
            wrote = self._create(key, data)
        with self._lock:
            if wrote:
                self.report.uploaded += 1
                self.report.uploaded_bytes += len(data)
            else:  # there already (another publisher got there first), or newer there
                self.report.skipped += 1
                self.report.skipped_bytes += len(data)
        self.progress(size if size is not None else len(data))

    def _create(self, key: str, data: bytes) -> bool:
        """Create the object; one that is there already (metadata a publish killed earlier
        left, say) is made new for gc like one listed. True if this call created it."""
        while True:
            if self._retrying(lambda: self.origin.put_if_absent(key, data), key):
                return True
            try:
                self._retrying(lambda: self.origin.touch(key, REFRESH_AGE), key)
                return False
            except NotFound:
                continue  # gc took it between the two: write it again

    def _kept(self, key: str) -> bool:
        """Whether an object the origin listed is still there, made new for gc if it is
        old: this publish is about to name it. False if gc took it since the listing."""
        if time.time() - self._modified.get(key, 0.0) <= REFRESH_AGE:
            return True
        try:
            self._retrying(lambda: self.origin.touch(key, REFRESH_AGE), key)
            return True
        except NotFound:
            return False

    def swap(self, key: str, data: bytes, newer=None) -> bool:
        """Replace the origin's ``key`` by ``data`` by compare-and-swap against the version
        read; when another writer moved it meanwhile, read again and decide again. False
        when the origin holds these bytes already, or bytes ``newer`` says are newer."""
        while True:
            self.check()
            try:
                current = self._retrying(lambda: self.origin.get_tagged(key), key)
            except NotFound:
                current = None
            if current is not None and (current.data == data or newer and newer(key, current.data, data)):
                return False
            if self._retrying(lambda: self.origin.put_if_match(key, data, current and current.tag), key):
                return True

    def _retrying(self, call, what: str, cancellable: bool = True):
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
            pause = delay / 2 + random.random() * delay / 2  # jitter: racing publishers spread out
            if cancellable:
                self.cancel.wait(pause)
                self.check()
            else:
                time.sleep(pause)
        raise AssertionError(what)
