"""A bandwidth limit shared by every thread of a transfer, download or upload."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """A token bucket shared by all download threads: at most ``rate`` bytes a second,
    with up to one second of burst."""

    def __init__(self, rate: float):
        self.rate = float(rate)
        self._tokens = self.rate
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self, n: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait:
            time.sleep(wait)
