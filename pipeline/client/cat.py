"""cat: rebuild one file of a version from a repository or origin, as a player's client
would, checking every chunk against its id and the whole file against its SHA-256: a
damaged store can only produce an error, never wrong bytes unnoticed."""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import BinaryIO

from ..errors import FileHashMismatch, NotFound, StoreUnavailable
from ..formats import manifest
from ..formats.manifest import FileEntry
from ..storage import ReadStore
from ..storage.content import get_chunk


def reassemble(store: ReadStore, entry: FileEntry, out: BinaryIO) -> int:
    """Write ``entry``'s bytes to ``out``; returns the number of bytes written."""
    if entry.type != "file":
        raise NotFound(f"{entry.path} is a {entry.type}, not a file")
    h = hashlib.sha256()
    written = 0
    for c in entry.chunks:  # slices: a chunk may be shared with other files
        try:
            data = memoryview(get_chunk(store, c.id, c.chunk_size))[c.chunk_offset:c.chunk_offset + c.size]
        except NotFound as exc:
            raise NotFound(f"{entry.path}: {exc}") from None
        h.update(data)
        out.write(data)
        written += len(data)
    if written != entry.size or h.hexdigest() != entry.hash_sha256:
        raise FileHashMismatch(f"{entry.path}: rebuilt bytes do not match hash_sha256 {entry.hash_sha256}")
    return written


def cat(store: ReadStore, product: str, version: str, path: str, out: BinaryIO) -> int:
    """Write the file ``path`` of ``product`` ``version`` to ``out``."""
    return reassemble(store, manifest.load(store, product, version).entry(path), out)


def cat_to_file(store: ReadStore, product: str, version: str, path: str, output: str) -> int:
    """``cat`` into the file ``output``, which appears only once it is whole and verified:
    a failure never leaves a file that claims to be complete but is not."""
    entry = manifest.load(store, product, version).entry(path)
    tmp = f"{output}.depot-partial"
    try:
        with open(tmp, "wb") as f:
            written = reassemble(store, entry, f)
        os.replace(tmp, output)
        return written
    except OSError as exc:
        raise StoreUnavailable(f"{output}: cannot write ({exc.strerror})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
