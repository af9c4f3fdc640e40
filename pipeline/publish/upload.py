"""Copying objects from the repository to one origin, many uploads in flight, within a
bandwidth limit shared by every origin of a publish.

What the origin holds is learned from one listing of it, made once. Objects listed there
are skipped. Bytes the listing proves ours (by S3's ETag) are not read again. Transient
failures (5xx, timeouts, resets: STORE_UNAVAILABLE) are retried by the one retry policy
(storage.retry), with backoff and jitter.

Documents replaced under one name (channel pointers, plan indexes) are written only by
compare-and-swap against the version read. They never replace one the caller says is
newer: a pointer with a higher serial, or in a signed repository a plan index that a
newer signature names (an unsigned plan index has no order: the last writer wins).

A cancel flag stops the copy within moments, whatever the rate. It is checked before
every object, every retry and every slice of the bandwidth limit, and it ends any wait,
for the limit or for a retry.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from ..core.progress import Progress, ignore
from ..core.rate import RateLimiter
from ..errors import NotFound
from ..storage import REFRESH_AGE, ObjectInfo, PrunableStore, Tagged, WriteStore, retry

BACKOFF = 0.2  # seconds before the first retry; doubles, with jitter, up to BACKOFF_MAX
BACKOFF_MAX = 5.0
T = TypeVar("T")
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
        self._listing: dict[str, ObjectInfo] | None = None

    def listing(self) -> dict[str, ObjectInfo]:
        """Every object the origin held when first asked: one listing of it all, made
        once (temporaries of unfinished writes left out)."""
        if self._listing is None:
            listed = self.retrying(lambda: [o for o in self.origin.scan() if not o.temporary])
            self._listing = {o.key: o for o in listed}
            self.report.listed = len(listed)
        return self._listing

    def present(self, prefix: str) -> set[str]:
        """The keys under ``prefix`` the origin held, from the one listing."""
        return {k for k in self.listing() if k.startswith(prefix)}

    def holds(self, key: str, data: bytes) -> bool:
        """Whether the listing proves that the origin held exactly ``data`` at ``key``
        (see ``ObjectInfo.holds``). False says only that it did not prove it."""
        info = self.listing().get(key)
        return info is not None and info.holds(data)

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
        sizes = sizes or {}
        self.check()
        todo = []
        for key in sorted(set(keys)):
            if not replace and self._young(key):  # listed, and too young for gc: nothing to send or touch
                self._skipped(sizes.get(key))
            else:
                todo.append(key)
        if not todo:
            return
        with cf.ThreadPoolExecutor(min(self.jobs, len(todo))) as pool:
            for _ in pool.map(lambda k: self._copy_one(k, replace, sizes.get(k), newer, contents), todo):
                pass

    def _skipped(self, size: int | None) -> None:
        with self._lock:
            self.report.skipped += 1
            self.report.skipped_bytes += size or 0
        self.progress(size or 0)

    def _young(self, key: str) -> bool:
        info = self.listing().get(key)
        return info is not None and time.time() - info.modified <= REFRESH_AGE

    def _copy_one(self, key: str, replace: bool, size: int | None, newer, contents) -> None:
        self.check()
        if not replace and key in self.listing() and self._kept(key):
            self._skipped(size)
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
            if self.retrying(lambda: self.origin.put_if_absent(key, data)):
                return True
            try:
                self.retrying(lambda: self.origin.touch(key, REFRESH_AGE))
                return False
            except NotFound:
                continue  # gc took it between the two: write it again

    def _kept(self, key: str) -> bool:
        """Whether an object the origin listed is still there, made new for gc if it is
        old: this publish is about to name it. False if gc took it since the listing."""
        if self._young(key):
            return True
        try:
            self.retrying(lambda: self.origin.touch(key, REFRESH_AGE))
            return True
        except NotFound:
            return False

    def swap(self, key: str, data: bytes, newer=None) -> bool:
        """Replace the origin's ``key`` by ``data`` by compare-and-swap against the version
        read; when another writer moved it meanwhile, read again and decide again. False
        when the origin holds these bytes already (the listing may prove it without a
        read), or bytes ``newer`` says are newer."""
        if self.holds(key, data):
            return False
        while True:
            self.check()
            try:
                current: Tagged | None = self.retrying(lambda: self.origin.get_tagged(key))
            except NotFound:
                current = None
            if current is not None and (current.data == data or newer and newer(key, current.data, data)):
                return False
            tag = current.tag if current is not None else None
            if self.retrying(lambda: self.origin.put_if_match(key, data, tag)):
                return True

    def retrying(self, call: Callable[[], T], cancellable: bool = True) -> T:
        """``call()``, retried on StoreUnavailable with the one policy (storage.retry).
        A cancellable wait ends at once when the publish is asked to stop; the commit's
        is not cancellable, since a commit once begun completes."""
        return retry.policy(self.retries, BACKOFF, BACKOFF_MAX, sleep=self._pause if cancellable else time.sleep,
                            on_retry=self._retried)(call)

    def _pause(self, seconds: float) -> None:
        self.cancel.wait(seconds)
        self.check()

    def _retried(self) -> None:
        with self._lock:
            self.report.retries += 1
