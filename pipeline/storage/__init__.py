"""Stores by capability, over locations that carry their own settings.

base says what each kind of store can do. location says where one is. ``open_store``
gives a store a repository can live in: a path, ``file://``, ``s3://`` or ``memory://``.
``open_origin`` gives any store a client can read, ``http(s)://`` included. translate
turns every backend's errors into depot's, and reads HTTP statuses. retry is the one
retry policy for transient failures. outbox keeps events on disk until each of their
sinks has them: a JSON-lines file, a webhook, Kafka. s3fs is imported only when an
``s3://`` location is opened.

May import: errors, layout, core.
"""

from __future__ import annotations

import functools

from ..errors import InvalidLocation
from .base import REFRESH_AGE, ObjectInfo, PrunableStore, ReadStore, Tagged, WriteStore
from .location import Location, Locations

__all__ = ["REFRESH_AGE", "Location", "Locations", "ObjectInfo", "PrunableStore", "ReadStore", "Tagged", "WriteStore",
           "open_origin", "open_store"]


@functools.lru_cache(maxsize=16)
def _open(location: Location) -> PrunableStore:
    if location.scheme == "s3":
        from .s3_store import S3Store

        return S3Store(location)
    if location.scheme == "memory":
        from .memory_store import MemoryStore

        return MemoryStore(location)
    from .local_store import LocalStore

    return LocalStore(location)


def _plain(location: Location | str) -> Location:
    """A location given as a bare URL: fine where there are no settings to lose."""
    if isinstance(location, Location):
        return location
    location = Location(location)
    if location.scheme == "s3":
        raise InvalidLocation(f"{location.url}: an s3:// store needs its settings (endpoint, credentials): "
                              "open it with a Location, e.g. from Locations.resolve()")
    return location


def open_store(location: Location | str) -> PrunableStore:
    """The writable store at ``location``. Cached, so tasks in a worker process share one."""
    location = _plain(location)
    if location.is_http:
        raise InvalidLocation(f"{location.url}: HTTP locations are read-only; a repository or "
                              "origin to write must be a path, s3:// or memory://")
    return _open(location)


def open_origin(location: Location | str, connections: int = 32) -> ReadStore:
    """A store to read from: any location, ``http(s)://`` included."""
    location = _plain(location)
    if location.is_http:
        from .http_store import HttpStore

        return HttpStore(location, connections=connections)
    return open_store(location)
