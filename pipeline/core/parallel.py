"""Small helpers for spreading work over any ``concurrent.futures.Executor``."""

from __future__ import annotations

import concurrent.futures as cf
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")


def batches(items: Iterable[T], size_of: Callable[[T], int], max_bytes: int, max_items: int) -> Iterator[list[T]]:
    """Consecutive groups of items, closed when they reach ``max_bytes`` or ``max_items``:
    many small files per task keeps per-task overhead out of the figures."""
    batch: list[T] = []
    size = 0
    for item in items:
        batch.append(item)
        size += size_of(item)
        if size >= max_bytes or len(batch) >= max_items:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def as_completed(executor: cf.Executor, calls: Iterable[tuple]) -> Iterator[tuple[tuple, object]]:
    """Submit ``(fn, *args)`` calls; yield ``(call, result)`` as they finish. The first
    failure cancels what has not started and propagates."""
    pending = {executor.submit(call[0], *call[1:]): call for call in calls}
    try:
        while pending:
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                call = pending.pop(fut)
                yield call, fut.result()
    finally:
        for fut in pending:
            fut.cancel()
