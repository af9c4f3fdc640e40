"""Embargoed versions for tests: a chunked version turned into what an embargoed build
stores (its new chunks and its manifest sealed with the version's content key), and a scan
of a store for bytes that must not be there."""

from __future__ import annotations

import dataclasses

from pipeline import layout
from pipeline.formats import manifest as manifest_doc
from pipeline.formats import sealed
from pipeline.formats.content_key import ContentKey
from pipeline.formats.manifest import FileEntry, Manifest


def embargo(store, product: str, version: str, key: ContentKey) -> dict[str, bytes]:
    """Seal ``version``'s chunks that no other version of ``store`` names, and its manifest
    (its stored sizes grown by the seal's overhead). Returns the sealed chunks' plaintext
    stored objects by id (what must never be found on an origin before release)."""
    m = manifest_doc.load(store, product, version)
    others: set[str] = set()
    for key_name in store.list(layout.versions_prefix(product)):
        found = layout.version_document_of(key_name)
        if found and found[2] == "manifest.json" and found[1] != version:
            others |= set(manifest_doc.load(store, product, found[1]).unique_chunks())
    new = {i for i in m.unique_chunks() if i not in others}
    plain = {}
    for chunk_id in sorted(new):
        name = layout.chunk_key(chunk_id)
        plain[chunk_id] = store.get(name)
        store.delete(name)
        store.put_if_absent(name, sealed.seal(key, name, plain[chunk_id]))
    entries = [dataclasses.replace(e, chunks=tuple(
        dataclasses.replace(c, stored_size=c.stored_size + sealed.OVERHEAD) if c.id in new else c for c in e.chunks))
        if isinstance(e, FileEntry) else e for e in m.entries]
    opened = Manifest(m.product, m.version, m.params, entries, m.pack_below).to_bytes()
    name = layout.manifest_key(product, version)
    store.put(name, sealed.seal(key, name, opened))
    return plain


def holding(store, needles: dict[str, bytes]) -> list[str]:
    """``label: key`` for every object of ``store`` that contains one of ``needles``."""
    found = []
    for key in sorted(store.list()):
        data = store.get(key)
        found += [f"{label}: {key}" for label, needle in needles.items() if needle in data]
    return found


def markers(store, plain: dict[str, bytes], size: int = 32) -> dict[str, bytes]:
    """A piece of each sealed object's plaintext found nowhere else in ``store`` (a changed
    file's new chunk shares bytes with its old, public ones): what an origin would hold if
    that object were not sealed."""
    public = [store.get(k) for k in store.list() if k.rsplit("/", 1)[-1] not in plain]
    found = {}
    for chunk_id, data in plain.items():
        for at in range(0, max(1, len(data) - size), max(1, len(data) // 64)):
            piece = data[at: at + size]
            if not any(piece in other for other in public):
                found[f"chunk {chunk_id[:12]}"] = piece
                break
    return found
