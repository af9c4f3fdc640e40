"""cat: rebuild one file of a version from a repository or origin, as a player's client
would, checking every chunk against its id and the whole file against its SHA-256: a
damaged store can only produce an error, never wrong bytes unnoticed."""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import BinaryIO

from ..errors import FileHashMismatch, NotFound, StoreUnavailable
from ..formats import sealed
from ..formats.manifest import FileEntry
from ..formats.release import key_finder
from ..storage import ReadStore


def reassemble(store: ReadStore, entry: FileEntry, out: BinaryIO, find: sealed.KeyFinder | None = None) -> int:
    """Write ``entry``'s bytes to ``out``; returns the number of bytes written. ``find``
    gives the content keys of sealed chunks (CONTENT_LOCKED without)."""
    if entry.type != "file":
        raise NotFound(f"{entry.path} is a {entry.type}, not a file")
    h = hashlib.sha256()
    written = 0
    read = sealed.chunk_reader(find or (lambda key_id: None))
    for c in entry.chunks:  # slices: a chunk may be shared with other files
        try:
            data = memoryview(read(store, c, c.chunk_size))[c.chunk_offset:c.chunk_offset + c.size]
        except NotFound as exc:
            raise NotFound(f"{entry.path}: {exc}") from None
        h.update(data)
        out.write(data)
        written += len(data)
    if written != entry.size or h.hexdigest() != entry.hash_sha256:
        raise FileHashMismatch(f"{entry.path}: rebuilt bytes do not match hash_sha256 {entry.hash_sha256}")
    return written


def cat(store: ReadStore, product: str, version: str, path: str, out: BinaryIO,
        keys: sealed.KeyFinder | None = None) -> int:
    """Write the file ``path`` of ``product`` ``version`` to ``out``; an embargoed version
    is opened with its released key, or with ``keys`` (the release side's)."""
    find = key_finder(store, product, keys)
    return reassemble(store, sealed.load_manifest(store, product, version, find).entry(path), out, find)


def cat_to_file(store: ReadStore, product: str, version: str, path: str, output: str,
                keys: sealed.KeyFinder | None = None) -> int:
    """``cat`` into the file ``output``, which appears only once it is whole and verified:
    a failure never leaves a file that claims to be complete but is not."""
    find = key_finder(store, product, keys)
    entry = sealed.load_manifest(store, product, version, find).entry(path)
    tmp = f"{output}.depot-partial"
    try:
        with open(tmp, "wb") as f:
            written = reassemble(store, entry, f, find)
        os.replace(tmp, output)
        return written
    except OSError as exc:
        raise StoreUnavailable(f"{output}: cannot write ({exc.strerror})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
