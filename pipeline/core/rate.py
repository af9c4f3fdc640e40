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

    def acquire(self, n: int, cancel: threading.Event | None = None) -> bool:
        """Take ``n`` bytes and wait their share. The wait can be long (many threads in
        debt to a low rate), so it ends at once when ``cancel`` is set: then False."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        return pause(wait, cancel) if wait else cancel is None or not cancel.is_set()


def pause(seconds: float, cancel: threading.Event | None = None) -> bool:
    """Wait ``seconds``, or less if ``cancel`` is set meanwhile: then False."""
    if cancel is None:
        time.sleep(seconds)
        return True
    return not cancel.wait(seconds)
