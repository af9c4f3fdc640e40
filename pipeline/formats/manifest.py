"""The version manifest: the commit point of a version (see docs/format.md).

Written once, after every chunk it names is in the store; validated against
manifests/schema/manifest-1.json when written and when read; canonical JSON, so the same
build gives the same bytes whatever did the work.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

from .. import layout
from ..core.chunk_params import ChunkParams
from ..errors import NotFound
from . import canonical
from .canonical import Document, Reader
from .inventory import BuildEntry, Inventory

SCHEMA = "manifest-1"
FORMAT = "depot.manifest/1"


@dataclass(frozen=True, slots=True)
class Chunk:
    """A chunk of the store: ``size`` bytes, whose object is ``stored_size`` bytes long."""

    id: str
    size: int
    stored_size: int


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """A slice of a file: its ``size`` bytes at ``offset`` are the bytes at
    ``chunk_offset`` of chunk ``id`` (``chunk_size`` bytes, an object of ``stored_size``).
    A file cut on its own holds whole chunks: ``chunk_offset`` 0, ``chunk_size == size``."""

    offset: int
    size: int
    id: str
    stored_size: int
    chunk_offset: int = 0
    chunk_size: int = -1  # -1: the whole chunk, ``size`` bytes

    def __post_init__(self) -> None:
        if self.chunk_size < 0:
            object.__setattr__(self, "chunk_size", self.size)

    @property
    def whole(self) -> bool:
        return self.chunk_offset == 0 and self.size == self.chunk_size

    @property
    def chunk(self) -> Chunk:
        return Chunk(self.id, self.chunk_size, self.stored_size)

    def to_dict(self) -> dict:
        return {"offset": self.offset, "size": self.size, "id": self.id, "stored_size": self.stored_size}


@dataclass(frozen=True)
class FileEntry(BuildEntry):
    """A manifest entry; a file's ``chunks`` tile it in order."""

    chunks: tuple[ChunkRef, ...] = ()

    def to_dict(self) -> dict:
        return self._dict(chunks=[c.to_dict() for c in self.chunks])

    @classmethod
    def from_dict(cls, d: dict) -> "FileEntry":
        chunks = tuple(ChunkRef(**c) for c in d.get("chunks", ()))
        return cls(**{**d, "chunks": chunks})


@dataclass(frozen=True)
class Manifest(Document):
    SCHEMA: ClassVar[str] = SCHEMA

    product: str
    version: str
    params: ChunkParams
    entries: tuple[FileEntry, ...]

    @property
    def files(self) -> list[FileEntry]:
        return [e for e in self.entries if e.type == "file"]

    @functools.cached_property
    def _by_path(self) -> dict[str, FileEntry]:
        return {e.path: e for e in self.entries}

    def entry(self, path: str) -> FileEntry:
        try:
            return self._by_path[path]
        except KeyError:
            raise NotFound(f"{self.product} {self.version} has no entry {path!r}") from None

    def unique_chunks(self) -> dict[str, Chunk]:
        """Every chunk the version's files hold, once, by id."""
        unique: dict[str, Chunk] = {}
        for f in self.files:
            for c in f.chunks:
                if c.id not in unique:
                    unique[c.id] = c.chunk
        return unique

    def totals(self) -> dict:
        files = self.files
        unique = self.unique_chunks()
        return {
            "files": len(files),
            "bytes": sum(f.size for f in files),
            "chunks": sum(len(f.chunks) for f in files),
            "unique_chunks": len(unique),
            "unique_bytes": sum(c.size for c in unique.values()),
            "stored_bytes": sum(c.stored_size for c in unique.values()),
        }

    def chunk_cost_from(self, installed: "Manifest") -> int:
        """What updating ``installed`` to this version by chunks alone downloads: the
        stored bytes of this version's chunks that ``installed`` does not have."""
        have = installed.unique_chunks()
        return sum(c.stored_size for i, c in self.unique_chunks().items() if i not in have)

    def describe(self) -> str:
        return f"manifest of {self.product} {self.version}"

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "product": self.product,
            "version": self.version,
            "chunking": {
                "algorithm": "fastcdc-2020",
                **self.params.to_dict(),
                "chunk_id": "blake3",
                "compression": "zstd",
            },
            "file_entries": [e.to_dict() for e in self.entries],
            "totals": self.totals(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Manifest":
        c = d["chunking"]
        return cls(
            product=d["product"],
            version=d["version"],
            params=ChunkParams(c["min_size"], c["avg_size"], c["max_size"]),
            entries=tuple(FileEntry.from_dict(e) for e in d["file_entries"]),
        )


def build(inv: Inventory, params: ChunkParams, chunks: dict[str, list[ChunkRef]]) -> Manifest:
    """The manifest of an inventoried build whose files were cut into ``chunks`` (by path)."""
    entries = []
    for e in inv.entries:
        if e.type == "file":
            entries.append(
                FileEntry(e.path, "file", e.size, e.executable, e.hash_sha256, chunks=tuple(chunks[e.path]))
            )
        else:
            entries.append(FileEntry(e.path, e.type, target=e.target))
    return Manifest(inv.product, inv.version, params, tuple(entries))


def load(reader: Reader, product: str, version: str) -> Manifest:
    """The manifest of ``product`` ``version``; NotFound if it was not chunked, or if
    what is there names another version (a mixed-up origin)."""
    key = layout.manifest_key(product, version)
    m = canonical.read(reader, key, Manifest.from_bytes,
                       f"{product} {version} has no manifest here: it was never chunked, or never put here")
    return expect(m, product, version, reader.url_of(key))


def expect(m: Manifest, product: str, version: str, where: str) -> Manifest:
    """``m``, if it is the manifest of ``product`` ``version`` (a mixed-up origin can serve
    another version's under this one's name)."""
    if (m.product, m.version) != (product, version):
        raise NotFound(f"the manifest served for {product} {version} ({where}) is for {m.product} {m.version}")
    return m
