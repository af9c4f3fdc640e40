"""A bandwidth limit shared by every thread of a transfer, download or upload."""

from __future__ import annotations

import threading
import time
from typing import Callable


class RateLimiter:
    """A token bucket shared by all download threads: at most ``rate`` bytes a second,
    with up to one second of burst.

    ``clock`` and ``sleep`` are the time it reads and the wait it makes (as ``pause``): a test passes its own."""

    def __init__(self, rate: float, clock: Callable[[], float] | None = None,
                 sleep: Callable[[float, threading.Event | None], bool] | None = None):
        self.rate = float(rate)
        self._clock = clock or time.monotonic
        self._sleep = sleep or pause
        self._tokens = self.rate
        self._last = self._clock()
        self._lock = threading.Lock()

    def acquire(self, n: int, cancel: threading.Event | None = None) -> bool:
        """Take ``n`` bytes and wait their share. The wait can be long (many threads in
        debt to a low rate), so it ends at once when ``cancel`` is set: then False."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        return self._sleep(wait, cancel) if wait else cancel is None or not cancel.is_set()


def pause(seconds: float, cancel: threading.Event | None = None) -> bool:
    """Wait ``seconds``, or less if ``cancel`` is set meanwhile: then False."""
    if cancel is None:
        time.sleep(seconds)
        return True
    return not cancel.wait(seconds)
