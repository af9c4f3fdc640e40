"""Embargoed versions for tests: a chunked version turned into what an embargoed build
stores (its new chunks sealed with the version's content key under their sealed names, its
pre-load list, its manifest sealed), and a scan of a store for bytes that must not be
there."""

from __future__ import annotations

import dataclasses

from pipeline import layout
from pipeline.formats import manifest as manifest_doc
from pipeline.formats import sealed
from pipeline.formats.content_key import ContentKey
from pipeline.formats.manifest import FileEntry, Manifest
from pipeline.formats.preload import Preload


def embargo(store, product: str, version: str, key: ContentKey) -> dict[str, bytes]:
    """Seal ``version``'s chunks that no other version of ``store`` names (the plain objects
    deleted), and its manifest (those chunks marked sealed, their stored sizes grown by the
    seal's overhead), as an embargoed build stores them. Returns the sealed chunks'
    plaintext stored objects by id (what must never be found on an origin before release)."""
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
        sealed_name = layout.chunk_key(chunk_id, key.key_id)
        store.put_if_absent(sealed_name, sealed.seal(key, sealed_name, plain[chunk_id]))
    entries = [dataclasses.replace(e, chunks=tuple(
        dataclasses.replace(c, stored_size=c.stored_size + sealed.OVERHEAD, key_id=key.key_id) if c.id in new else c
        for c in e.chunks)) if isinstance(e, FileEntry) else e for e in m.entries]
    marked = Manifest(m.product, m.version, m.params, entries, m.pack_below)
    store.put(layout.preload_key(product, version), Preload.of(marked, key.key_id).to_bytes())
    opened = marked.to_bytes()
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


def embargoed_repository(base):
    """``base/repo``, signed (``signed_repository``): 1.0.0 and 1.1.0 public, stable -> 1.1.0,
    and 1.2.0 embargoed with its content key in ``base/keys``, beta pre-loading it. Returns
    the key and the plaintext of the objects sealed, by chunk id."""
    import concurrent.futures as cf

    from depot_testing.fixtures import PRODUCT, fixture_tar, signed_repository
    from pipeline.build.chunk import chunk
    from pipeline.build.ingest import ingest
    from pipeline.publish.channels import promote
    from pipeline.storage import open_store
    from pipeline.trust import content_keys, repository
    from pipeline.trust.keys import Keyring

    signed_repository(base, versions=("1.0.0", "1.1.0"))
    store = open_store(str(base / "repo"))
    with cf.ThreadPoolExecutor(2) as ex:
        ingest(store, str(fixture_tar("1.2.0")), PRODUCT, "1.2.0", ex)
        chunk(store, PRODUCT, "1.2.0", ex)
    key = content_keys.create(base / "keys", PRODUCT, "1.2.0")
    plain = embargo(store, PRODUCT, "1.2.0", key)
    promote(store, PRODUCT, "1.2.0", "beta")
    repository.sign_documents(store, Keyring(base / "keys"), PRODUCT)
    return key, plain
