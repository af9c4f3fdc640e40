"""Embargoed builds: a version whose new content is sealed until its release (docs/format.md,
"Sealed objects"; docs/trust.md, "Pre-load").

Every chunk a build stores goes through ``store_chunk``, which decides its object:

1. the plain chunk, if the store has it (public content: dedup holds);
2. else the chunk sealed with a released content key of the product, if the store has
   it (public since that release: shared as it is, never uploaded again);
3. else, in an embargoed build, the chunk sealed with the version's own key (found if a
   run before stored it, else sealed now with a fresh nonce);
4. else (a public build) the plain chunk, stored now.

A sealed chunk has a name of its own (``<id>.<key id>``), so a chunk sealed by a release
not yet out never stands in for a public version's plain chunk, nor for another embargoed
version's: each version unlocks with its own key alone, plus keys already public. The
manifest says which chunks are sealed, with which key; it is sealed itself, and a plain
pre-load list (formats.preload) says what players may download before release.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import layout
from ..core import codec
from ..errors import NotFound, VersionConflict
from ..formats import sealed
from ..formats.content_key import ContentKey
from ..formats.manifest import Manifest
from ..formats.preload import Preload
from ..storage import REFRESH_AGE, WriteStore

# What storing one chunk gave: its id, its object's size, whether this call wrote it, and
# the content key it is sealed with ("" for a plain chunk).
StoredChunk = tuple[str, int, bool, str]


@dataclass(frozen=True)
class Sealing:
    """How a build stores its chunks beyond plain ones: sealed with ``key_id`` (the
    version's content key, held in ``keys``; "" for a public build), or shared as sealed
    with one of the product's ``released`` keys. Sent to every chunking task."""

    key_id: str = ""
    keys: sealed.Keys = field(default_factory=sealed.Keys)
    released: tuple[str, ...] = ()

    @property
    def key(self) -> ContentKey | None:
        return self.keys.find(self.key_id) if self.key_id else None


def sealing_for(store: WriteStore, product: str, key: ContentKey | None) -> Sealing | None:
    """The sealing of a build of ``product``: with the version's content ``key`` for an
    embargoed build; None for a public build of a product with no released key (every
    chunk plain, as always)."""
    released = tuple(sorted(found[1] for k in store.list(layout.content_keys_prefix(product))
                            if (found := layout.content_key_of(k))))
    if key is None and not released:
        return None
    return Sealing(key.key_id if key else "", sealed.Keys([key] if key else []), released)


def store_chunk(store: WriteStore, data, sealing: Sealing | None) -> StoredChunk:
    """Store the chunk ``data`` as the module's docstring says. A chunk found is made new
    (``touch``): gc must not take it before the manifest that names it exists."""
    cid = codec.chunk_id(data)
    shared = sealing.released + ((sealing.key_id,) if sealing.key_id else ()) if sealing else ()
    for key_id in ("",) + shared:
        try:
            return cid, store.touch(layout.chunk_key(cid, key_id), REFRESH_AGE), False, key_id
        except NotFound:
            pass
    key = sealing.key if sealing else None
    if key is None:
        stored = codec.encode(data)
        return cid, len(stored), store.put_if_absent(layout.chunk_key(cid), stored), ""
    stored = sealed.seal_chunk(key, cid, data)
    return cid, len(stored), store.put_if_absent(layout.chunk_key(cid, key.key_id), stored), key.key_id


def existing_manifest(store: WriteStore, product: str, version: str, sealing: Sealing | None) -> Manifest:
    """The manifest a run before wrote, opened with the version's key if it is sealed.
    Refused: an embargoed build of a version chunked public (VERSION_CONFLICT: its content
    is out already), a public build of an embargoed one without its key (CONTENT_LOCKED)."""
    key = sealing.key if sealing else None
    m = sealed.load_manifest(store, product, version, sealed.one_key(key))
    if key is not None and not sealed.is_sealed(store.get(layout.manifest_key(product, version))):
        raise VersionConflict(f"{product} {version} was chunked public already: it cannot be embargoed now "
                              "(build the embargoed content as a new version)")
    return m


def save_manifest(store: WriteStore, m: Manifest, sealing: Sealing | None) -> bool:
    """Write the manifest, the version's commit point, if absent; True if written. An
    embargoed version's is sealed, and its pre-load list written first. Refuses a different
    manifest (or list) for the version."""
    key = sealing.key if sealing else None
    name = layout.manifest_key(m.product, m.version)
    data = m.to_bytes()
    if key is not None:
        _put_once(store, layout.preload_key(m.product, m.version), Preload.of(m, key.key_id).to_bytes())
        if store.put_if_absent(name, sealed.seal(key, name, data)):
            return True
        found = sealed.open_document(store.get(name), name, sealed.one_key(key))
    else:
        if store.put_if_absent(name, data):
            return True
        found = store.get(name)
    if found != data:
        raise VersionConflict(f"{m.product} {m.version} already has a different manifest ({store.url_of(name)})")
    return False


def _put_once(store: WriteStore, key: str, data: bytes) -> None:
    if not store.put_if_absent(key, data) and store.get(key) != data:
        raise VersionConflict(f"{store.url_of(key)} holds another pre-load list for this version")
