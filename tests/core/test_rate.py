"""The bandwidth limit: a token bucket, checked on a clock the test hands it and turns (no
wall time); its wait ends when cancelled."""

import threading

from pipeline.core import rate


class Clock:
    def __init__(self):
        self.now, self.slept = 0.0, []

    def monotonic(self):
        return self.now

    def sleep(self, s, cancel=None):
        self.slept.append(round(s, 6))
        self.now += s
        return True


def test_bytes_beyond_the_rate_wait_their_share():
    clock = Clock()
    limiter = rate.RateLimiter(1000, clock=clock.monotonic, sleep=clock.sleep)  # bytes a second, one second of burst
    limiter.acquire(1000)  # the burst: no wait
    limiter.acquire(500)  # half a second's worth more
    limiter.acquire(500)
    assert clock.slept == [0.5, 0.5]
    clock.now += 10  # idle: the bucket refills, but never beyond one second's worth
    limiter.acquire(1500)
    assert clock.slept == [0.5, 0.5, 0.5] and clock.now == 11.5


def test_a_wait_for_the_limit_ends_as_soon_as_it_is_cancelled():
    limiter = rate.RateLimiter(1000)
    cancel = threading.Event()
    assert limiter.acquire(1000, cancel)  # the burst: no wait
    done = []
    waiter = threading.Thread(target=lambda: done.append(limiter.acquire(10**9, cancel)))  # 11 days in debt
    waiter.start()
    cancel.set()
    waiter.join(timeout=60)
    assert not waiter.is_alive() and done == [False]
