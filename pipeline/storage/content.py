"""Chunks and patches read back from a store, every one checked against its id: a damaged
or substituted object is an error, never bytes used unnoticed."""

from __future__ import annotations

from typing import Callable, Iterable, Protocol

from .. import layout
from ..core import codec
from ..errors import IntegrityError, NotFound
from .base import ReadStore


class ChunkSpan(Protocol):
    @property
    def offset(self) -> int: ...

    @property
    def size(self) -> int: ...

    @property
    def id(self) -> str: ...

    @property
    def chunk_offset(self) -> int: ...

    @property
    def chunk_size(self) -> int: ...

    @property
    def key_id(self) -> str: ...


def get_chunk(store: ReadStore, chunk_id: str, size: int) -> bytes:
    """A chunk's bytes, decoded and checked against its id."""
    try:
        stored = store.get(layout.chunk_key(chunk_id))
    except NotFound:
        raise NotFound(f"chunk {chunk_id} is missing from {store.url}") from None
    return codec.decode(chunk_id, stored, size)


def check_patch(patch_id: str, data: bytes) -> bytes:
    """Patches are content-addressed like chunks, by the BLAKE3 of their bytes."""
    if codec.chunk_id(data) != patch_id:
        raise IntegrityError(f"patch {patch_id}: bytes do not match its id")
    return data


def read_file_range(store: ReadStore, chunks: Iterable[ChunkSpan], offset: int, end: int,
                    get: Callable[[ReadStore, ChunkSpan, int], bytes] | None = None) -> bytes:
    """Bytes ``[offset, end)`` of a file made of ``chunks`` (slices of chunks, each a whole
    chunk or a part of a chunk it shares with other files), from only the chunks that
    cover them; ``get(store, chunk, size)`` reads a chunk's bytes where ``get_chunk`` cannot
    (an embargoed version's sealed chunks, see formats.sealed.chunk_reader)."""
    out = bytearray()
    for c in chunks:
        if c.offset + c.size <= offset or c.offset >= end:
            continue
        data = memoryview(get(store, c, c.chunk_size) if get else get_chunk(store, c.id, c.chunk_size))
        out += data[c.chunk_offset + max(0, offset - c.offset) : c.chunk_offset + min(c.size, end - c.offset)]
    return bytes(out)
