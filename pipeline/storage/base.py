"""The store interfaces, by capability: what every backend promises (the contract suite in
``depot_testing.store_contract`` checks each promise against every backend).

``ReadStore``: what a player's client and a lookup service need from an origin.
``WriteStore``: what the pipeline needs from a repository, and a publisher from a CDN
origin: atomic create-if-absent for content-addressed objects, compare-and-swap for
pointers that must never go back.
``PrunableStore``: what gc needs: every object with its size and age, temporaries too.

Keys are relative POSIX paths checked by ``layout.check_key``. Only "not found" becomes
``NotFound``; every other failure is ``StoreUnavailable`` naming the location.

Each interface is an ``abc.ABC``: a backend that leaves a method out cannot be created.
"""

from __future__ import annotations

import contextlib
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from ..layout import check_key
from .location import Location, join


REFRESH_AGE = 3600.0
"""Seconds: a writer that reuses an object older than this makes it new again (``touch``).
A build or publish running while gc does is safe when gc's grace period is longer than
this plus the writer's running time."""


class ReadStore(ABC):
    location: Location

    @property
    def url(self) -> str:
        return self.location.url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def url_of(self, key: str) -> str:
        return join(self.url, check_key(key))

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The whole object; ``NotFound`` if there is none."""

    @abstractmethod
    def has(self, key: str) -> bool:
        ...

    @abstractmethod
    def size(self, key: str) -> int:
        """The object's size in bytes; ``NotFound`` if there is none."""


@dataclass(frozen=True)
class Tagged:
    """An object's bytes and the tag of that version of it, for ``put_if_match``."""

    data: bytes
    tag: str


def content_tag(data: bytes) -> str:
    """The tag of stores that keep none of their own: the bytes' SHA-256, which changes
    whenever the object is replaced by other bytes."""
    return hashlib.sha256(data).hexdigest()


class WriteStore(ReadStore):
    """No reader ever sees part of an object: local files are written beside their key and
    renamed into place; object stores publish an object when its upload completes."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Create or replace the object."""

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create the object only if the key is free; True if this call created it. Atomic:
        of any number of racing writers, on any backend, exactly one gets True."""
        return self.put_if_match(key, data, None)

    @abstractmethod
    def get_tagged(self, key: str) -> Tagged:
        """The object with a tag that changes whenever it is replaced by other bytes."""

    @abstractmethod
    def put_if_match(self, key: str, data: bytes, tag: str | None) -> bool:
        """Compare and swap: replace the object only if it is still the version ``tag``
        names (``None``: only if there is none); True if this call replaced it. A stale
        tag is False on every backend, even when the object already holds ``data`` (the
        caller reads again and decides). Of racing writers holding the same tag, of the
        same bytes or of different bytes, exactly one gets True. Tags follow the bytes: a
        write of the bytes already there leaves the tag as it was. Only compare-and-swap
        is ordered against compare-and-swap: a plain ``put`` is not, so what must never go
        back (channel pointers, plan indexes on origins) is written this way only."""

    @abstractmethod
    def writer(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """``put`` by streaming, for objects too large to hold in memory; nothing is
        published if the block raises."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix``, sorted; temporaries of unfinished writes are not keys."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""

    @abstractmethod
    def touch(self, key: str, older_than: float = 0.0) -> int:
        """Keep a reused object from gc: if it was written more than ``older_than`` seconds
        ago, make it new again, its bytes unchanged. Returns its size; ``NotFound`` if
        there is none (gc took it: the caller writes it again). A writer that finds an
        object it will name calls this, since gc deletes only what is older than its grace
        period, checked again at the moment of deletion (``PrunableStore.prune``)."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: float  # seconds since the epoch
    temporary: bool = False  # left by a write that has not finished (or never will)
    etag: str | None = None  # S3's ETag, as listed: None where the listing has none

    def holds(self, data: bytes) -> bool:
        """Whether the listing proves this object's bytes are ``data``: the same size,
        and an ETag that is the MD5 of ``data`` (S3 gives an object written in one part,
        not KMS-encrypted, the MD5 of its bytes). False proves no difference: a listing
        without such an ETag (local files, memory, S3 objects written in parts) proves
        nothing, and the caller reads the object to know."""
        return (self.etag is not None and self.size == len(data)
                and self.etag.strip('"') == hashlib.md5(data, usedforsecurity=False).hexdigest())


class PrunableStore(WriteStore):
    @abstractmethod
    def scan(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` with its size and modification time, temporaries
        included, sorted by key: what gc marks and sweeps from."""

    @abstractmethod
    def prune(self, key: str, written_before: float) -> bool:
        """Delete the object only if it was last written before ``written_before`` (seconds
        since the epoch): one that a writer touched since gc listed it stays. True if it
        was deleted. A local store decides under the lock ``touch`` takes, so the two never
        cross; an object store checks the age just before deleting."""
