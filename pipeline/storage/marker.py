"""The marker that says a location is a depot store: written by the first command that
writes a repository or publishes to an origin, and required by gc before it lists
anything, so that gc pointed at the wrong directory deletes nothing."""

from __future__ import annotations

from ..errors import InvalidLocation
from ..layout import STORE_MARKER_KEY
from .base import ReadStore, WriteStore

MARKER = b'{"depot": "store", "format": 1}\n'


def mark(store: WriteStore) -> None:
    """Say that ``store`` is a depot store (once: later calls find it there)."""
    store.put_if_absent(STORE_MARKER_KEY, MARKER)


def require(store: ReadStore) -> None:
    """Refuse a location that depot has not written as a repository or an origin."""
    if not store.has(STORE_MARKER_KEY):
        raise InvalidLocation(f"{store.url} is not a depot repository or origin (it has no {STORE_MARKER_KEY}, "
                              "which depot writes in every store it builds or publishes to): nothing done")
