"""reassemble: rebuild a file of a version from its manifest and the chunk store.

Every chunk is checked against its id as it is read, and the whole file against its
SHA-256, so a damaged store can only produce an error, never wrong bytes unnoticed.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO

from . import codec, layout
from .errors import FileHashMismatch, NotFound
from .manifest import FileEntry
from .store import Store


def reassemble(store: Store, entry: FileEntry, out: BinaryIO) -> int:
    """Write ``entry``'s bytes to ``out``; returns the number of bytes written."""
    if entry.type != "file":
        raise NotFound(f"{entry.path} is a {entry.type}, not a file")
    h = hashlib.sha256()
    written = 0
    for c in entry.chunks:
        try:
            stored = store.get(layout.chunk_key(c.id))
        except NotFound:
            raise NotFound(f"{entry.path}: chunk {c.id} is missing from {store.url}") from None
        data = codec.decode(c.id, stored, c.size)
        h.update(data)
        out.write(data)
        written += len(data)
    if written != entry.size or h.hexdigest() != entry.hash_sha256:
        raise FileHashMismatch(f"{entry.path}: rebuilt bytes do not match hash_sha256 {entry.hash_sha256}")
    return written


def read_bytes(store: Store, entry: FileEntry, offset: int = 0, size: int | None = None) -> bytes:
    """Bytes ``[offset, offset + size)`` of a file, from only the chunks that cover them,
    each checked against its id."""
    end = entry.size if size is None else min(entry.size, offset + size)
    out = bytearray()
    for c in entry.chunks:
        if c.offset + c.size <= offset or c.offset >= end:
            continue
        data = codec.decode(c.id, store.get(layout.chunk_key(c.id)), c.size)
        out += data[max(0, offset - c.offset) : end - c.offset]
    return bytes(out)
