"""Sealed objects: what an embargoed version stores in place of its new chunks, patches and
documents, until its content key is released (docs/format.md, "Sealed objects").

A sealed object is the object as it would be stored otherwise (a chunk's zstd frame or raw
bytes, a patch, a manifest's bytes) encrypted with AES-256-GCM::

    magic "DPSEAL01" (8) | algorithm 1 (1) | key id (16) | nonce (12) | ciphertext | tag (16)

The nonce is fresh and random for every object. The associated data is the header's first
25 bytes (magic, algorithm, key id) and the object's name. The name is the key the object
is stored under: a document's plain key, not its copy under its hash. So each of these
fails to authenticate, ``CONTENT_AUTHENTICATION_FAILED``: an object moved to another
name, a header naming another key, a byte changed anywhere, another release's key.
Whoever opens an object knows its name already. So a swap can only be of bytes, and the
tag refuses that.
"""

from __future__ import annotations

import functools
from typing import Callable, Protocol, TypeVar

from .. import layout
from ..core import codec
from ..errors import ContentAuthenticationFailed, ContentLocked, NotFound
from .canonical import Reader
from . import manifest
from .content_key import ID_BYTES, ContentKey, new_nonce

MAGIC = b"DPSEAL01"
AES_256_GCM = 1
HEADER = len(MAGIC) + 1 + ID_BYTES  # what the associated data starts with
NONCE = 12
TAG = 16
OVERHEAD = HEADER + NONCE + TAG  # a sealed object is this much longer than the object

T = TypeVar("T")
# A key by its id, or None when it is not known (not released yet, not on this side).
KeyFinder = Callable[[str], "ContentKey | None"]


def seal(key: ContentKey, name: str, stored: bytes) -> bytes:
    """``stored`` (the object as it would be stored) sealed with ``key`` under ``name``."""
    header = MAGIC + bytes([AES_256_GCM]) + bytes.fromhex(key.key_id)
    nonce = new_nonce()
    return header + nonce + key.cipher.encrypt(nonce, stored, header + name.encode())


def unseal(key: ContentKey, name: str, sealed: bytes) -> bytes:
    """The object sealed under ``name``, opened with ``key``; CONTENT_AUTHENTICATION_FAILED
    when it does not authenticate (or was sealed with another key)."""
    found = key_id(sealed, name)
    if found != key.key_id:
        raise ContentAuthenticationFailed(f"{name}: sealed with content key {found}, not with {key.key_id} "
                                          f"({key.product} {key.version})")
    from cryptography.exceptions import InvalidTag

    nonce = sealed[HEADER: HEADER + NONCE]
    try:
        return key.cipher.decrypt(nonce, sealed[HEADER + NONCE:], sealed[:HEADER] + name.encode())
    except InvalidTag:
        raise ContentAuthenticationFailed(f"{name}: the sealed object does not authenticate with content key "
                                          f"{key.key_id}: altered, or another object's bytes") from None


def is_sealed(data: bytes) -> bool:
    """Whether a document's bytes are sealed. Documents only: a document starts with "{" or
    a zstd frame's magic number, while a raw chunk may start with anything (whether a chunk
    is sealed is said by the manifest that names it)."""
    return data[: len(MAGIC)] == MAGIC


def key_id(sealed: bytes, name: str) -> str:
    """The id of the key an object was sealed with, from its header."""
    if len(sealed) < OVERHEAD or not is_sealed(sealed) or sealed[len(MAGIC)] != AES_256_GCM:
        raise ContentAuthenticationFailed(f"{name}: not a sealed object (depot.sealed/1)")
    return sealed[len(MAGIC) + 1: HEADER].hex()


# -- what builds, publishes and clients call ---------------------------------------------------


def seal_chunk(key: ContentKey, chunk_id: str, data: bytes) -> bytes:
    """A chunk's stored object, sealed: its bytes encoded as any chunk is, then sealed
    under its sealed name (``layout.chunk_key(id, key id)``)."""
    return seal(key, layout.chunk_key(chunk_id, key.key_id), codec.encode(data))


def unseal_chunk(key: ContentKey, chunk_id: str, sealed: bytes, size: int) -> bytes:
    """A sealed chunk's bytes: opened, decoded and checked against its id."""
    return codec.decode(chunk_id, unseal(key, layout.chunk_key(chunk_id, key.key_id), sealed), size)


class SealedChunk(Protocol):
    """What names a chunk's object: a manifest's ``Chunk`` or ``ChunkRef``."""

    @property
    def id(self) -> str: ...

    @property
    def key_id(self) -> str: ...


def open_chunk(chunk_id: str, key_id: str, stored: bytes, size: int, find: KeyFinder) -> bytes:
    """A chunk's bytes from its stored object: decoded, and first opened with the key
    ``find`` gives if the manifest says it is sealed (CONTENT_LOCKED without one)."""
    if not key_id:
        return codec.decode(chunk_id, stored, size)
    key = find(key_id)
    if key is None:
        raise ContentLocked(f"chunk {chunk_id} is sealed with content key {key_id}, which is not released yet")
    return unseal_chunk(key, chunk_id, stored, size)


def chunk_reader(find: KeyFinder) -> Callable[[Reader, SealedChunk, int], bytes]:
    """``read(reader, chunk, size)``: a chunk's bytes from the reader that holds its object,
    opened with the keys ``find`` gives when it is sealed (each asked for once), checked
    against its id."""
    known: dict[str, ContentKey] = {}

    def remembered(key_id: str) -> ContentKey | None:
        if key_id not in known:
            found = find(key_id)
            if found is None:
                return None
            known[key_id] = found
        return known[key_id]

    def read(reader: Reader, chunk: SealedChunk, size: int) -> bytes:
        name = layout.chunk_key(chunk.id, chunk.key_id)
        try:
            stored = reader.get(name)
        except NotFound:
            raise NotFound(f"chunk {chunk.id} is missing from {reader.url_of(name)}") from None
        return open_chunk(chunk.id, chunk.key_id, stored, size, remembered)

    return read


class Opened:
    """A reader whose sealed documents read opened with the keys ``find`` gives
    (CONTENT_LOCKED for one no key opens)."""

    def __init__(self, reader: Reader, find: KeyFinder):
        self.reader, self.find = reader, find

    def get(self, key: str) -> bytes:
        return open_document(self.reader.get(key), key, self.find)

    def url_of(self, key: str) -> str:
        return self.reader.url_of(key)


def open_document(data: bytes, name: str, find: KeyFinder) -> bytes:
    """A document's bytes, opened if sealed with the key ``find`` gives for its key id;
    CONTENT_LOCKED when ``find`` has none (not released yet)."""
    if not is_sealed(data):
        return data
    found = find(key_id(data, name))
    if found is None:
        raise ContentLocked(f"{name} is sealed: its content key is not released yet")
    return unseal(found, name, data)


def opening(parse: Callable[[bytes, str], T], name: str, find: KeyFinder) -> Callable[[bytes, str], T]:
    """``parse`` (a document's ``from_bytes``) for bytes that may be sealed under ``name``."""
    return lambda data, where: parse(open_document(data, name, find), where)


def one_key(key: ContentKey | None) -> KeyFinder:
    """A finder that knows ``key`` alone."""
    return lambda wanted: key if key is not None and key.key_id == wanted else None


def load_manifest(reader: Reader, product: str, version: str, find: KeyFinder) -> manifest.Manifest:
    """The manifest of ``product`` ``version``, opened with the key ``find`` gives if it is
    sealed; CONTENT_LOCKED naming the version when no key at hand opens it."""
    try:
        return manifest.load(Opened(reader, find), product, version)
    except ContentLocked as exc:
        raise ContentLocked(f"{product} {version} is embargoed: its manifest is sealed, and no content key at hand "
                            "opens it (the release side's keys: --keys DIR; anyone else: once it is released)",
                            exc.release_at) from None


class Keys:
    """Content keys by id, in a form tasks on other processes can be sent (a key's cipher
    does not pickle): kept raw, made into ``ContentKey`` where they are used."""

    def __init__(self, keys: "tuple[ContentKey, ...] | list[ContentKey]" = ()):
        self.raw = tuple(sorted((k.product, k.version, k.key) for k in keys))

    def __getstate__(self) -> tuple:
        return self.raw

    def __setstate__(self, raw: tuple) -> None:
        self.raw = raw

    def __bool__(self) -> bool:
        return bool(self.raw)

    def find(self, key_id: str) -> ContentKey | None:
        return next((k for k in map(_key, self.raw) if k.key_id == key_id), None)


@functools.lru_cache(maxsize=64)
def _key(raw: tuple[str, str, bytes]) -> ContentKey:
    return ContentKey(*raw)
