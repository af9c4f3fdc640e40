"""The content keys a player's client opens sealed objects with: an embargoed version's own
key once it is released, and the released keys of earlier versions whose sealed chunks it
shares. Each is read once, through the fetcher's checked documents (with trust, by its
signed hash), and checked: the key of another version, or a document naming another key,
is CONTENT_AUTHENTICATION_FAILED; a key not published yet is CONTENT_LOCKED, with the
release time when one is published."""

from __future__ import annotations

import threading

from .. import layout
from ..errors import ContentAuthenticationFailed, ContentLocked, NotFound
from ..formats import manifest as manifest_doc
from ..formats import release as release_doc
from ..formats import sealed
from ..formats.content_key import ContentKey
from ..formats.manifest import Manifest
from ..formats.plan import Plan
from .fetch import Fetcher


class PlayerKeys:
    """Keys by id for ``product`` ``version`` (whose manifest is sealed with ``own``, or
    not sealed: ``own`` "")."""

    def __init__(self, fetcher: Fetcher, product: str, version: str, own: str = ""):
        self.fetcher, self.product, self.version, self.own = fetcher, product, version, own
        self._found: dict[str, ContentKey] = {}
        self._lock = threading.Lock()

    def find(self, key_id: str) -> ContentKey:
        """The key ``key_id``; never None: CONTENT_LOCKED when it is not released."""
        with self._lock:
            if key_id not in self._found:
                self._found[key_id] = self._fetch(key_id)
            return self._found[key_id]

    def _fetch(self, key_id: str) -> ContentKey:
        if key_id == self.own:
            return release_doc.checked_key(self.fetcher.document, self.product, self.version, key_id)
        try:
            key = self.fetcher.document(layout.content_key_key(self.product, key_id), ContentKey.from_bytes)
        except NotFound:
            raise ContentLocked(f"{self.product} {self.version} names chunks sealed with content key {key_id}, "
                                "which is not released yet") from None
        if (key.product, key.key_id) != (self.product, key_id):
            raise ContentAuthenticationFailed(f"the key published as {key_id} is not {self.product}'s")
        return key

    def check_all(self, m: Manifest) -> None:
        """Fetch every key ``m``'s chunks are sealed with, now: an install stops before it
        writes anything if one is locked."""
        for key_id in sorted({c.key_id for c in m.unique_chunks().values() if c.key_id}):
            self.find(key_id)


def fetch_opened(fetcher: Fetcher, product: str, version: str) -> tuple[Manifest, bytes]:
    """The version's manifest and its bytes, opened with the version's released key if it
    is sealed (CONTENT_LOCKED, with the release time, before release); the fetcher is given
    the keys of every sealed chunk it names, each checked now. Not checked for safety yet
    (``Tree`` and ``check_manifest`` do it)."""
    name = layout.manifest_key(product, version)

    def parse(data: bytes, where: str) -> tuple[Manifest | None, bytes]:
        if sealed.is_sealed(data):
            sealed.key_id(data, name)  # a sealed object's header, or refused like any damaged document
            return None, data
        return Manifest.from_bytes(data, where), data

    m, data = fetcher.document(name, parse)
    keys = PlayerKeys(fetcher, product, version, sealed.key_id(data, name) if m is None else "")
    if m is None:
        data = sealed.unseal(keys.find(keys.own), name, data)
        m = Manifest.from_bytes(data, fetcher.url_of(name))
    m = manifest_doc.expect(m, product, version, fetcher.url_of(name))
    keys.check_all(m)
    fetcher.keys = keys.find
    return m, data


def fetch_plan(fetcher: Fetcher, product: str, from_version: str, to_version: str) -> tuple[Plan, ContentKey | None]:
    """An update plan, opened if it is sealed (a plan to or from an embargoed version),
    with the key that opens it, which opens its patches too (None for a plain plan)."""
    name = layout.plan_key(product, from_version, to_version)
    used: list[ContentKey] = []

    def parse(data: bytes, where: str) -> Plan:
        if sealed.is_sealed(data):
            key_id = sealed.key_id(data, name)
            key = fetcher.keys(key_id) if fetcher.keys is not None else None
            if key is None:
                raise ContentLocked(f"plan {from_version} -> {to_version} of {product} is sealed with content key "
                                    f"{key_id}, which is not released yet")
            used[:] = [key]
            data = sealed.unseal(key, name, data)
        return Plan.from_bytes(data, where)

    plan = fetcher.document(name, parse)
    return plan, (used[0] if used else None)
