"""Rates: one token bucket, and the bandwidth limit shared by every thread of a transfer
(download or upload) built on it. The service's link rate limit uses the same bucket."""

from __future__ import annotations

import threading
import time
from typing import Callable, Protocol


class Cancel(Protocol):
    """What ends a wait early: a ``threading.Event``, or anything that waits like one."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float) -> bool: ...


class TokenBucket:
    """Tokens that come back at ``rate`` a second, up to ``burst``; full at first. Not
    locked: whoever holds it locks it."""

    def __init__(self, rate: float, burst: float, now: float):
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, now

    def take(self, n: float, now: float, debt: bool = False) -> float:
        """Take ``n`` tokens at time ``now``: 0.0 when they were there. Otherwise the
        seconds until they would be. Then ``debt`` takes them all the same (the level goes
        below zero: later takers wait for it too); without it, nothing is taken."""
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = now
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        wait = (n - self.tokens) / self.rate
        if debt:
            self.tokens -= n
        return wait


class RateLimiter:
    """At most ``rate`` bytes a second, with up to one second of burst, for all the
    threads of a transfer together.

    ``clock`` is the time it reads, ``sleep`` the wait it makes (as ``pause``): a test
    passes its own."""

    def __init__(self, rate: float, clock: Callable[[], float] | None = None,
                 sleep: Callable[[float, Cancel | None], bool] | None = None):
        self.rate = float(rate)
        self._clock = clock or time.monotonic
        self._sleep = sleep or pause
        self._bucket = TokenBucket(self.rate, self.rate, self._clock())
        self._lock = threading.Lock()

    def acquire(self, n: int, cancel: Cancel | None = None) -> bool:
        """Take ``n`` bytes and wait their share. The wait can be long (many threads in
        debt to a low rate). It ends at once when ``cancel`` is set: then False."""
        with self._lock:
            wait = self._bucket.take(n, self._clock(), debt=True)
        return self._sleep(wait, cancel) if wait else cancel is None or not cancel.is_set()


def pause(seconds: float, cancel: Cancel | None = None) -> bool:
    """Wait ``seconds``, or less if ``cancel`` is set meanwhile: then False."""
    if cancel is None:
        time.sleep(seconds)
        return True
    return not cancel.wait(seconds)
