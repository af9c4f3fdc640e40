"""Sealed objects (formats.sealed, formats.content_key): what an embargoed version stores.
Round trips byte-exact on the fixture build's real files; every way a sealed object can be
wrong (a byte changed anywhere, an object swapped for another, another release's key, a
header naming another key, cut short) refused with CONTENT_AUTHENTICATION_FAILED."""

from __future__ import annotations

import base64
import json

import pytest

from pipeline import layout
from pipeline.core import codec
from pipeline.errors import ContentAuthenticationFailed, ContentLocked, ManifestInvalid
from pipeline.formats import sealed
from pipeline.formats.content_key import ContentKey, key_id_of
from pipeline.formats.manifest import Manifest

PRODUCT = "starfall"


@pytest.fixture(scope="module")
def keys():
    return {v: ContentKey.generate(PRODUCT, v) for v in ("1.2.0", "1.3.0")}


def test_chunks_round_trip_byte_exact_one_fresh_nonce_each(build_dirs, keys):
    key = keys["1.2.0"]
    for path in ("bin/libengine.so", "data/assets.pak", "config/settings.ini", "data/lang/ru.txt"):
        data = (build_dirs["1.2.0"] / path).read_bytes()
        chunk_id = codec.chunk_id(data)
        stored = codec.encode(data)
        first, second = sealed.seal_chunk(key, chunk_id, data), sealed.seal_chunk(key, chunk_id, data)
        assert len(first) == len(second) == len(stored) + sealed.OVERHEAD == len(stored) + 53
        assert first[:25] == second[:25] == b"DPSEAL01\x01" + bytes.fromhex(key.key_id)
        assert first[25:37] != second[25:37]  # a fresh nonce per object
        assert sealed.unseal(key, layout.chunk_key(chunk_id, key.key_id), first) == stored
        assert sealed.unseal_chunk(key, chunk_id, first, len(data)) == data
        assert sealed.unseal_chunk(key, chunk_id, second, len(data)) == data
        assert data not in first and stored not in first


def test_a_sealed_manifest_opens_to_its_bytes(published, keys):
    name = layout.manifest_key(PRODUCT, "1.2.0")
    stored = (published / name).read_bytes()
    box = sealed.seal(keys["1.2.0"], name, stored)
    assert sealed.is_sealed(box) and not sealed.is_sealed(stored)
    assert sealed.key_id(box, name) == keys["1.2.0"].key_id
    assert sealed.open_document(box, name, sealed.one_key(keys["1.2.0"])) == stored
    assert sealed.open_document(stored, name, sealed.one_key(None)) == stored  # not sealed: as it is
    parse = sealed.opening(Manifest.from_bytes, name, sealed.one_key(keys["1.2.0"]))
    assert parse(box, name) == Manifest.from_bytes(stored, name)
    with pytest.raises(ContentLocked) as locked:
        sealed.open_document(box, name, sealed.one_key(None))
    assert locked.value.code == "CONTENT_LOCKED" and locked.value.exit_code == 22
    assert str(locked.value) == f"{name} is sealed: its content key is not released yet"


def _refused(key: ContentKey, name: str, box: bytes) -> str:
    with pytest.raises(ContentAuthenticationFailed) as refused:
        sealed.unseal(key, name, box)
    assert refused.value.code == "CONTENT_AUTHENTICATION_FAILED" and refused.value.exit_code == 7
    return str(refused.value)


def test_a_byte_changed_anywhere_is_refused(build_dirs, keys):
    key = keys["1.2.0"]
    data = (build_dirs["1.2.0"] / "data/levels/arena02.dat").read_bytes()
    name = layout.chunk_key(codec.chunk_id(data))
    box = sealed.seal(key, name, codec.encode(data))
    for at in (8, 25, 30, 37, len(box) // 2, len(box) - 1):  # algorithm, nonce, ciphertext, tag
        bad = bytearray(box)
        bad[at] ^= 0x01
        message = _refused(key, name, bytes(bad))
        assert message.startswith(name)
    assert _refused(key, name, box[:-1]).endswith("altered, or another object's bytes")
    assert _refused(key, name, box[:52]) == f"{name}: not a sealed object (depot.sealed/1)"


def test_an_object_swapped_for_another_is_refused(build_dirs, keys):
    key = keys["1.2.0"]
    a, b = ((build_dirs["1.2.0"] / p).read_bytes() for p in ("data/lang/en.txt", "data/lang/ru.txt"))
    name_a, name_b = (layout.chunk_key(codec.chunk_id(d)) for d in (a, b))
    box_a = sealed.seal(key, name_a, codec.encode(a))
    assert _refused(key, name_b, box_a) == (f"{name_b}: the sealed object does not authenticate with content key "
                                            f"{key.key_id}: altered, or another object's bytes")
    with pytest.raises(ContentAuthenticationFailed):  # and through the chunk reader
        sealed.unseal_chunk(key, codec.chunk_id(b), box_a, len(b))
    manifest = layout.manifest_key(PRODUCT, "1.2.0")
    other = layout.manifest_key(PRODUCT, "1.3.0")
    assert _refused(key, other, sealed.seal(key, manifest, b"{}")).startswith(other)


def test_another_releases_key_is_refused_even_with_the_header_rewritten(build_dirs, keys):
    mine, theirs = keys["1.2.0"], keys["1.3.0"]
    data = (build_dirs["1.2.0"] / "bin/starfall").read_bytes()
    name = layout.chunk_key(codec.chunk_id(data))
    box = sealed.seal(mine, name, codec.encode(data))
    assert _refused(theirs, name, box) == (f"{name}: sealed with content key {mine.key_id}, not with "
                                           f"{theirs.key_id} ({PRODUCT} 1.3.0)")
    forged = box[:9] + bytes.fromhex(theirs.key_id) + box[25:]  # the header names the other key
    assert _refused(theirs, name, forged).endswith("altered, or another object's bytes")
    assert _refused(mine, name, forged).startswith(f"{name}: sealed with content key {theirs.key_id}")


def test_the_key_document_round_trips_and_its_id_is_checked(keys):
    key = keys["1.2.0"].released("2026-12-24T18:00:00Z")
    doc = json.loads(key.to_bytes())
    assert doc == {"format": "depot.content-key/1", "product": PRODUCT, "version": "1.2.0", "key_id": key.key_id,
                   "algorithm": "AES-256-GCM", "key": base64.b64encode(key.key).decode(),
                   "released_at": "2026-12-24T18:00:00Z"}
    assert key.key_id == key_id_of(key.key) and len(key.key_id) == 32
    assert ContentKey.from_bytes(key.to_bytes(), "k") == key
    doc["key_id"] = keys["1.3.0"].key_id
    with pytest.raises(ManifestInvalid) as refused:
        ContentKey.from_bytes(json.dumps(doc).encode(), "k.json")
    assert str(refused.value) == (f"k.json: not a valid content-key-1 document: key id {keys['1.3.0'].key_id} is "
                                  f"not the id of the key it holds ({key.key_id})")
    doc.update(key_id=key.key_id, key=base64.b64encode(b"short").decode())
    with pytest.raises(ManifestInvalid):
        ContentKey.from_bytes(json.dumps(doc).encode(), "k.json")
