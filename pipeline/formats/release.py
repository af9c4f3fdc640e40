"""A release of an embargoed version (``release-1``): when it unlocks, and the id of the
content key that unlocks it.

``depot release`` writes it at ``products/<P>/versions/<V>/release.json``. It is signed
like every document. A scheduled release is published before its key. So players and
the service can tell when the content unlocks.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from .. import layout
from ..errors import ContentAuthenticationFailed, ContentLocked, NotFound
from . import canonical, sealed
from .canonical import Document, Reader
from .content_key import ContentKey
from .sealed import KeyFinder

SCHEMA = "release-1"
FORMAT = "depot.release/1"
# A player's checked reader of documents, ``Fetcher.document(key, parse)``.
Documents = Callable[[str, Callable[[bytes, str], Any]], Any]
TIME = "%Y-%m-%dT%H:%M:%SZ"


def iso(when: datetime.datetime) -> str:
    """An aware datetime as the documents write it: UTC, to the second."""
    return when.astimezone(datetime.timezone.utc).strftime(TIME)


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, TIME).replace(tzinfo=datetime.timezone.utc)


@dataclass(frozen=True)
class Release(Document):
    SCHEMA: ClassVar[str] = SCHEMA

    product: str
    version: str
    key_id: str
    at: str  # UTC, ISO 8601 to the second

    @property
    def when(self) -> datetime.datetime:
        return parse_time(self.at)

    def due(self, now: datetime.datetime) -> bool:
        return self.when <= now

    def describe(self) -> str:
        return f"release of {self.product} {self.version}"

    def to_dict(self) -> dict:
        return {"format": FORMAT, "product": self.product, "version": self.version, "key_id": self.key_id,
                "at": self.at}

    @classmethod
    def from_dict(cls, d: dict) -> "Release":
        return cls(d["product"], d["version"], d["key_id"], d["at"])


def load(reader: Reader, product: str, version: str) -> Release:
    key = layout.release_key(product, version)
    return canonical.read(reader, key, Release.from_bytes, f"{product} {version} has no release")


def sealed_key_id(reader: Reader, product: str, version: str) -> str | None:
    """The id of the content key that seals ``product`` ``version``'s manifest; None when
    the version is not embargoed. NOT_FOUND without a manifest."""
    key = layout.manifest_key(product, version)
    data = canonical.read(reader, key, lambda data, where: data, f"{product} {version} has no manifest")
    return sealed.key_id(data, key) if sealed.is_sealed(data) else None


def is_released(reader: Reader, product: str, key_id: str) -> bool:
    """Whether the content key ``key_id`` of ``product`` is published where ``reader`` reads."""
    try:
        reader.get(layout.content_key_key(product, key_id))
    except NotFound:
        return False
    return True


def locked(reader: Reader, product: str, version: str) -> bool:
    """Whether ``product`` ``version`` is embargoed and its key not released yet: what
    players pre-load, and what a channel pointer says ``preload`` for."""
    key_id = sealed_key_id(reader, product, version)
    return key_id is not None and not is_released(reader, product, key_id)


def published_key(reader: Reader, product: str, key_id: str) -> ContentKey | None:
    """The released content key ``key_id`` of ``product`` where ``reader`` reads; None if it
    is not published there."""
    key = layout.content_key_key(product, key_id)
    try:
        data = reader.get(key)
    except NotFound:
        return None
    found = ContentKey.from_bytes(data, reader.url_of(key))
    return found if found.key_id == key_id else None


def key_finder(reader: Reader, product: str, also: KeyFinder | None = None) -> KeyFinder:
    """Keys by id for ``product``'s sealed objects: those published where ``reader`` reads,
    then those ``also`` knows (the release side's, before release)."""
    return lambda key_id: published_key(reader, product, key_id) or (also(key_id) if also else None)


def checked_key(document: Documents, product: str, version: str, key_id: str) -> ContentKey:
    """The released key ``key_id`` that opens ``product`` ``version``, read through
    ``document(key, parse)``: a player's checked reader (``Fetcher.document``: the signed
    hash, then the schema). CONTENT_LOCKED, with the release time when one is published,
    while the key is not; CONTENT_AUTHENTICATION_FAILED for a key of another version."""
    try:
        key = document(layout.content_key_key(product, key_id), ContentKey.from_bytes)
    except NotFound:
        try:
            when: str | None = document(layout.release_key(product, version), Release.from_bytes).at
        except NotFound:
            when = None
        raise ContentLocked(f"{product} {version} is embargoed: its content key is not released yet"
                            + (f" (release at {when})" if when else ""), when) from None
    if not isinstance(key, ContentKey) or (key.product, key.version, key.key_id) != (product, version, key_id):
        raise ContentAuthenticationFailed(f"the key published as {key_id} is not {product} {version}'s")
    return key
