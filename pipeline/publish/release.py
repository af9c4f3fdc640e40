"""release: unlock an embargoed version, now or at a time (docs/trust.md, "Pre-load").

In the repository, in this order: the release document (``release.json``: when, and the
key's id); then, once the time has come, the content key as a signed document
(``products/<P>/keys/<key id>.json``) and the channels that pre-load the version moved to
it as released. The command signs those documents and publishes them (publish.publish):
the key reaches an origin with the metadata that names it, and only then.

A scheduled release writes only its release document: the key stays on the release side.
Nothing runs in the background: the release becomes effective at the first ``due`` run
(``depot release --due``, from cron) at or after its time. The clock is passed in.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from .. import layout
from ..errors import ContentAuthenticationFailed, InvalidArgument, NotFound, VersionConflict
from ..formats import release as release_doc
from ..formats import sealed
from ..formats.channel import Channel
from ..formats.content_key import ContentKey
from ..formats.release import Release, iso
from ..storage import WriteStore
from . import channels as channel_moves


@dataclass(frozen=True)
class ReleaseStep:
    product: str
    version: str
    key_id: str
    at: str  # when it unlocks (UTC, ISO 8601)
    released: bool  # the key is published in the repository (now, or before)
    channels: list[Channel] = field(default_factory=list)  # pointers that deliver it released

    def to_dict(self) -> dict:
        return {"product": self.product, "version": self.version, "keyId": self.key_id, "at": self.at,
                "released": self.released, "channels": [c.to_dict() for c in self.channels]}


def release(store: WriteStore, product: str, version: str, key: ContentKey, now: datetime.datetime,
            at: datetime.datetime | None = None, channels: list[str] | tuple[str, ...] = ()) -> ReleaseStep:
    """Release ``version`` at ``at`` (None: now). Refused: a version that is not embargoed
    (INVALID_ARGUMENT), a key that does not open its manifest (CONTENT_AUTHENTICATION_FAILED),
    a new time for a version released already (VERSION_CONFLICT). With a time to come, only
    the release document is written, and ``channels`` are pointed at the version as a
    pre-load; once due, they deliver it released, with every channel that pre-loads it."""
    _check_key(store, product, version, key)
    key_doc = layout.content_key_key(product, key.key_id)
    released = store.has(key_doc)
    try:
        current: Release | None = release_doc.load(store, product, version)
    except NotFound:
        current = None
    if released and current is not None and at is not None and iso(at) != current.at:
        raise VersionConflict(f"{product} {version} was released at {current.at}: its key is public, it cannot be "
                              "released at another time")
    if current is not None and (released or at is None and current.due(now)):
        wanted = current  # released, or due: as it was scheduled
    else:
        wanted = Release(product, version, key.key_id, iso(at if at is not None and at > now else now))
    if current != wanted:
        store.put(layout.release_key(product, version), wanted.to_bytes())
    if not wanted.due(now):
        moved = [channel_moves.promote(store, product, version, c) for c in channels]  # as a pre-load
        return ReleaseStep(product, version, key.key_id, wanted.at, False, moved)
    if not released:
        store.put_if_absent(key_doc, key.released(iso(now)).to_bytes())
    moved = channel_moves.release(store, product, version, channels, iso(now))
    return ReleaseStep(product, version, key.key_id, wanted.at, True, moved)


def due(store: WriteStore, now: datetime.datetime) -> list[Release]:
    """The scheduled releases whose time has come and whose key is not published yet."""
    out = []
    for key in store.list(layout.PRODUCT_PREFIX):
        found = layout.version_document_of(key)
        if not found or found[2] != "release.json":
            continue
        r = Release.from_bytes(store.get(key), store.url_of(key))
        if r.due(now) and not release_doc.is_released(store, r.product, r.key_id):
            out.append(r)
    return sorted(out, key=lambda r: (r.at, r.product, r.version))


def _check_key(store: WriteStore, product: str, version: str, key: ContentKey) -> None:
    """Refuse a version that is not embargoed, and a key that does not open its manifest."""
    manifest = layout.manifest_key(product, version)
    try:
        data = store.get(manifest)
    except NotFound:
        raise NotFound(f"{product} {version} has no manifest in {store.url}: nothing to release") from None
    if not sealed.is_sealed(data):
        raise InvalidArgument(f"{product} {version} is not embargoed: its content is public already, there is no "
                              "key to release")
    if (key.product, key.version) != (product, version):
        raise ContentAuthenticationFailed(f"the content key given is {key.product} {key.version}'s, not "
                                          f"{product} {version}'s")
    sealed.unseal(key, manifest, data)  # the key that opens it, or CONTENT_AUTHENTICATION_FAILED
