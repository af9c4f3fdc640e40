"""The one retry policy for transient failures, built on tenacity.

A failure worth another try (``StoreUnavailable`` unless the caller names others) is
tried again after a wait. The wait doubles from ``first`` up to ``most``. With jitter,
each wait is drawn from the upper half of that range, so that racing writers spread out.
Any other error, ``NotFound`` among them, is raised at once. When the tries run out, the
last failure is raised as it was.

The caller gives the wait: a publish waits on its cancel flag, so that Ctrl-C cuts a
backoff short; a test passes a function that records the waits.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import tenacity

from ..errors import StoreUnavailable


def policy(retries: int, first: float, most: float = math.inf, jitter: bool = True,
           on: tuple[type[BaseException], ...] = (StoreUnavailable,),
           sleep: Callable[[float], None] = time.sleep, on_retry: Callable[[], None] | None = None) -> tenacity.Retrying:
    """A policy that calls a function up to ``retries + 1`` times: ``policy(...)(call)``.
    ``on_retry()`` runs before each wait."""
    wait: tenacity.wait.wait_base = tenacity.wait_exponential(multiplier=first, max=most)
    if jitter:  # half the delay fixed, half random
        wait = (tenacity.wait_exponential(multiplier=first / 2, max=most / 2)
                + tenacity.wait_random_exponential(multiplier=first / 2, max=most / 2))
    return tenacity.Retrying(stop=tenacity.stop_after_attempt(retries + 1), wait=wait,
                             retry=tenacity.retry_if_exception_type(on), sleep=sleep, reraise=True,
                             before_sleep=None if on_retry is None else lambda state: on_retry())
