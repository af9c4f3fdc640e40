"""The version manifest: the commit point of a version (see docs/format.md).

Written once, after every chunk it names is in the store. Format 2 (what builds write) is
canonical JSON in columns inside one zstd frame. Its columns are a chunk table, the
entries' fields, and the pack stream: the chunks whose bytes, end to end, are the small
files' bytes end to end. A file's slices are not listed: they follow from the sizes.
Format 1 (one JSON object per entry) is still read. Readers tell the two apart by the
first bytes: a zstd frame's magic number, or "{".

A manifest read from format 2 keeps its columns. It makes entry objects only when asked:
the service reads chunk lists and totals from the columns alone.

The entries are in formats.manifest_entries, the columns in formats.manifest_columns;
every name is importable from here too.
"""

from __future__ import annotations

import json
from typing import ClassVar, Iterable, Iterator

from .. import layout
from ..core.chunk_params import ChunkParams
from ..errors import DepotError, ManifestInvalid, NotFound
from . import canonical, frame, manifest_columns
from .canonical import Document, Reader
from .inventory import Inventory
from .manifest_columns import HEX, Columns
from .manifest_entries import FORMAT_1, Chunk, ChunkRef, FileEntry

__all__ = ["SCHEMA", "FORMAT", "SCHEMA_1", "FORMAT_1", "HEX", "Chunk", "ChunkRef", "FileEntry", "Columns",
           "Manifest", "build", "decode", "encode", "expect", "load"]

SCHEMA = "manifest-2"
FORMAT = "depot.manifest/2"
SCHEMA_1 = "manifest-1"


class Manifest(Document):
    """A version's entries and chunking. ``pack_below``: files of 1 to ``pack_below - 1``
    bytes are packed (their slices continue one stream); ``format``: what ``to_bytes``
    writes, the format it was read in (a manifest read is written back as it was)."""

    SCHEMA: ClassVar[str] = SCHEMA
    __slots__ = ("product", "version", "params", "pack_below", "format", "_entries", "_columns", "_by_path")

    def __init__(self, product: str, version: str, params: ChunkParams, entries: Iterable[FileEntry] = (),
                 pack_below: int = 0, format: int = 2):
        self.product = product
        self.version = version
        self.params = params
        self.pack_below = pack_below
        self.format = format
        self._entries: tuple[FileEntry, ...] | None = tuple(entries)
        self._columns: Columns | None = None
        self._by_path: dict[str, FileEntry] | None = None

    @classmethod
    def _of_columns(cls, product: str, version: str, params: ChunkParams, pack_below: int,
                    columns: "Columns") -> "Manifest":
        m = cls(product, version, params, (), pack_below, 2)
        m._entries, m._columns = None, columns
        return m

    @property
    def entries(self) -> tuple[FileEntry, ...]:
        if self._entries is None:
            assert self._columns is not None
            self._entries = self._columns.entries()
        return self._entries

    @property
    def columns(self) -> "Columns | None":
        """The columns of a manifest read from format 2 (or built as columns), checked, to be
        read and not changed: what a reader of a million entries needs with no object per
        entry. None for a manifest of entries (read from format 1, or made from entries)."""
        return self._columns

    @property
    def files(self) -> list[FileEntry]:
        return [e for e in self.entries if e.type == "file"]

    def iter_entries(self) -> Iterator[FileEntry]:
        """The entries one at a time, none kept (read from format 2's columns, a million
        entries would otherwise be held at once)."""
        if self._entries is None:
            assert self._columns is not None
            return self._columns.iter_entries()
        return iter(self._entries)

    def entry(self, path: str) -> FileEntry:
        if self._by_path is None:
            self._by_path = {e.path: e for e in self.entries}
        try:
            return self._by_path[path]
        except KeyError:
            raise NotFound(f"{self.product} {self.version} has no entry {path!r}") from None

    def unique_chunks(self) -> dict[str, Chunk]:
        """Every chunk the version's files hold, once, by id."""
        if self._columns is not None:
            return self._columns.unique_chunks()
        unique: dict[str, Chunk] = {}
        for f in self.files:
            for c in f.chunks:
                if c.id not in unique:
                    unique[c.id] = c.chunk
        return unique

    def totals(self) -> dict:
        if self._columns is not None:
            files, size, refs = self._columns.file_totals()
        else:
            fs = self.files
            files, size, refs = len(fs), sum(f.size for f in fs), sum(len(f.chunks) for f in fs)
        unique = self.unique_chunks()
        return {
            "files": files,
            "bytes": size,
            "chunks": refs,
            "unique_chunks": len(unique),
            "unique_bytes": sum(c.size for c in unique.values()),
            "stored_bytes": sum(c.stored_size for c in unique.values()),
        }

    def chunk_cost_from(self, installed: "Manifest") -> int:
        """What updating ``installed`` to this version by chunks alone downloads: the
        stored bytes of this version's chunks that ``installed`` does not have."""
        have = installed.unique_chunks()
        return sum(c.stored_size for i, c in self.unique_chunks().items() if i not in have)

    def with_format(self, fmt: int) -> "Manifest":
        """The same manifest, written in format ``fmt`` (1 cannot hold slices)."""
        return Manifest(self.product, self.version, self.params, self.entries, self.pack_below, fmt)

    def describe(self) -> str:
        return f"manifest of {self.product} {self.version}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Manifest):
            return NotImplemented
        return (self.product, self.version, self.params, self.pack_below, self.format, self.entries) == \
            (other.product, other.version, other.params, other.pack_below, other.format, other.entries)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Manifest({self.product!r}, {self.version!r}, format {self.format})"

    # -- documents ------------------------------------------------------------------

    def _chunking(self) -> dict:
        return {"algorithm": "fastcdc-2020", **self.params.to_dict(), "chunk_id": "blake3", "compression": "zstd"}

    def to_dict(self) -> dict:
        if self.format == 1:
            return {
                "format": FORMAT_1,
                "product": self.product,
                "version": self.version,
                "chunking": self._chunking(),
                "file_entries": [e.to_dict() for e in self.entries],
                "totals": self.totals(),
            }
        columns = self._columns.doc if self._columns is not None else manifest_columns.of_entries(self.entries, self.pack_below)
        return {"format": FORMAT, "product": self.product, "version": self.version,
                "chunking": {**self._chunking(), "pack_below": self.pack_below}, **columns}

    @classmethod
    def from_dict(cls, d: dict) -> "Manifest":
        c = d["chunking"]
        params = ChunkParams(c["min_size"], c["avg_size"], c["max_size"])
        if d["format"] == FORMAT_1:
            entries = tuple(FileEntry.from_dict(e) for e in d["file_entries"])
            return cls(d["product"], d["version"], params, entries, 0, 1)
        columns = Columns({k: d[k] for k in ("chunks", "entries", "pack")})
        return cls._of_columns(d["product"], d["version"], params, c["pack_below"], columns)

    def to_bytes(self) -> bytes:
        if self.format == 1:
            return canonical.dumps(self.to_dict(), SCHEMA_1, self.describe())
        doc = self.to_dict()
        try:
            if self._columns is None:  # columns are checked when made
                Columns(doc)
        except ValueError as exc:
            raise ManifestInvalid(f"{self.describe()}: not a valid {SCHEMA} document: {exc}") from None
        canonical.validate(doc, SCHEMA, self.describe())
        return frame.compress(canonical.buffer(doc))  # the JSON held once (a million files: 100 MB)

    def to_bytes_known_valid(self) -> bytes:
        if self.format == 1:
            return canonical.canonical(self.to_dict())
        return frame.compress(canonical.buffer(self.to_dict()))

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> "Manifest":
        if frame.is_frame(data):
            schema = SCHEMA
            doc = canonical.validate(frame.load(data, where), schema, where)
        else:
            schema = SCHEMA_1
            doc = canonical.loads(data, schema, where)
        try:
            return cls.from_dict(doc)
        except (DepotError, KeyError, TypeError, ValueError) as exc:  # valid JSON Schema, impossible values
            raise ManifestInvalid(f"{where}: not a valid {schema} document: {exc}") from None


def decode(data: bytes) -> dict:
    """The JSON document of a manifest's stored bytes, in either format, unchecked."""
    return json.loads(frame.decompress(data, "manifest") if frame.is_frame(data) else data)


def encode(doc: dict) -> bytes:
    """The stored bytes of a manifest's JSON document, unchecked (tests craft bad ones)."""
    text = canonical.canonical(doc)
    return frame.compress(text) if doc.get("format") != FORMAT_1 else text


def build(inv: Inventory, params: ChunkParams, own: dict[str, list[Chunk]], pack: list[Chunk],
          pack_below: int = 0) -> Manifest:
    """The manifest of an inventoried build: its files of 1 to ``pack_below - 1`` bytes
    packed, end to end in path order, into the chunks ``pack``; every other file cut
    into the chunks ``own[path]``. Made as columns, with no object per file."""
    paths = inv.file_paths()
    doc = manifest_columns.of_columns(inv.paths, inv.types, inv.sizes.tolist(), inv.executable, inv.hashes.hex(), inv.targets,
                   lambda i: own[paths[i]], pack, pack_below)
    return Manifest._of_columns(inv.product, inv.version, params, pack_below, Columns(doc))


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
