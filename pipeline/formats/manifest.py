"""The version manifest: the commit point of a version (see docs/format.md).

Written once, after every chunk it names is in the store. Format 2 (what builds write) is
canonical JSON in columns inside one zstd frame: a chunk table, the entries' columns, and
the pack stream, the chunks whose bytes end to end are the small files' bytes end to end.
A file's slices are not listed: they follow from the sizes. Format 1 (one JSON object per
entry) is still read. Readers tell the two apart by the first bytes: a zstd frame's magic
number, or "{".

A manifest read from format 2 keeps its columns and makes entry objects only when asked:
the service reads chunk lists and totals from the columns alone.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterable, Iterator

import zstandard

from .. import layout
from ..core.chunk_params import ChunkParams
from ..errors import DepotError, ManifestInvalid, NotFound
from . import canonical, columns
from .canonical import Document, Reader
from .inventory import BuildEntry, Inventory

SCHEMA = "manifest-2"
FORMAT = "depot.manifest/2"
SCHEMA_1 = "manifest-1"
FORMAT_1 = "depot.manifest/1"

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZSTD_LEVEL = 3  # fixed: the same build must give the same bytes; higher levels save little on digests
MAX_JSON = 1 << 30  # a frame declaring more is refused before it is decompressed
HEX = columns.HEX


@dataclass(frozen=True, slots=True)
class Chunk:
    """A chunk of the store: ``size`` bytes, whose object is ``stored_size`` bytes long,
    sealed with the content key ``key_id`` ("" for a plain chunk; see formats.sealed)."""

    id: str
    size: int
    stored_size: int
    key_id: str = ""


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
    key_id: str = ""  # the content key its chunk is sealed with; "" for a plain chunk

    def __post_init__(self) -> None:
        if self.chunk_size < 0:
            object.__setattr__(self, "chunk_size", self.size)

    @property
    def whole(self) -> bool:
        return self.chunk_offset == 0 and self.size == self.chunk_size

    @property
    def chunk(self) -> Chunk:
        return Chunk(self.id, self.chunk_size, self.stored_size, self.key_id)

    def to_dict(self) -> dict:
        if not self.whole or self.key_id:
            raise ValueError(f"a {'sealed chunk' if self.key_id else 'slice of chunk'} {self.id} has no form in "
                             f"{FORMAT_1}")
        return {"offset": self.offset, "size": self.size, "id": self.id, "stored_size": self.stored_size}


@dataclass(frozen=True, slots=True)
class FileEntry(BuildEntry):
    """A manifest entry; a file's ``chunks`` tile it in order."""

    chunks: tuple[ChunkRef, ...] = ()

    def to_dict(self) -> dict:
        return self._dict(chunks=[c.to_dict() for c in self.chunks])

    @classmethod
    def from_dict(cls, d: dict) -> "FileEntry":
        chunks = tuple(ChunkRef(**c) for c in d.get("chunks", ()))
        return cls(**{**d, "chunks": chunks})


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

    def iter_files(self) -> Iterator[FileEntry]:
        return (e for e in self.iter_entries() if e.type == "file")

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
        columns = self._columns.doc if self._columns is not None else _encode(self.entries, self.pack_below)
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
        return _compress(canonical.buffer(doc))  # the JSON held once (a million files: 100 MB)

    def to_bytes_known_valid(self) -> bytes:
        if self.format == 1:
            return canonical.canonical(self.to_dict())
        return _compress(canonical.buffer(self.to_dict()))

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> "Manifest":
        if data[:4] == ZSTD_MAGIC:
            schema = SCHEMA
            doc = canonical.validate(_load(data, where), schema, where)
        else:
            schema = SCHEMA_1
            doc = canonical.loads(data, schema, where)
        try:
            return cls.from_dict(doc)
        except (DepotError, KeyError, TypeError, ValueError) as exc:  # valid JSON Schema, impossible values
            raise ManifestInvalid(f"{where}: not a valid {schema} document: {exc}") from None


def decode(data: bytes) -> dict:
    """The JSON document of a manifest's stored bytes, in either format, unchecked."""
    return json.loads(_decompress(data, "manifest") if data[:4] == ZSTD_MAGIC else data)


def encode(doc: dict) -> bytes:
    """The stored bytes of a manifest's JSON document, unchecked (tests craft bad ones)."""
    text = canonical.canonical(doc)
    return _compress(text) if doc.get("format") != FORMAT_1 else text


def _compress(text: bytes | bytearray) -> bytes:
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress(text)


def _decompress(data: bytes, where: str) -> bytes:
    """The bytes of the one zstd frame ``data`` is, decompressed at once into a buffer of
    the size it declares (a stream would hold its pieces and their join at once)."""
    try:
        size = zstandard.frame_content_size(data)
    except zstandard.ZstdError as exc:
        raise ManifestInvalid(f"{where}: not a whole zstd frame ({exc})") from None
    if not 0 <= size <= MAX_JSON:
        raise ManifestInvalid(f"{where}: a manifest's zstd frame must declare its size, at most {MAX_JSON} bytes")
    try:
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=size, allow_extra_data=False)
    except zstandard.ZstdError as exc:  # damaged, cut short, or followed by more bytes
        raise ManifestInvalid(f"{where}: not one whole zstd frame ({exc})") from None


def _load(data: bytes, where: str) -> dict:
    """The JSON document in the zstd frame ``data``, its text's bytes given up once decoded
    (as json.loads decodes them): held with the parse's objects, a million files' text
    would cost a hundred MB more at the peak."""
    try:
        raw = _decompress(data, where)
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
        del raw
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestInvalid(f"{where}: not JSON ({exc})") from exc


# -- format 2: columns -------------------------------------------------------------




class Columns:
    """A format 2 manifest's columns (``doc``: chunks, entries, pack), checked for what its
    schema cannot say: columns of equal lengths, indices in range, every chunk used,
    files tiled by their chunks and the packed files by the pack stream.

    Per entry, in path order: ``paths``, ``types`` (a letter each: f a file cut on its
    own, p a packed file, d a directory, l a link). Per file (f or p): ``sizes``,
    ``executable`` ("0" or "1" each), ``hashes`` (64 hex digits each). Per file of type f:
    ``own``, the indices of its whole chunks. Per link: ``targets``. Per chunk of the
    table: ``ids``, ``chunk_sizes``, ``stored_sizes``. ``pack``: the indices of the chunks
    whose bytes end to end are the packed files' bytes end to end."""

    __slots__ = ("doc", "paths", "types", "sizes", "executable", "hashes", "own", "targets", "pack", "ids",
                 "chunk_sizes", "stored_sizes", "sealed")

    def __init__(self, doc: dict):
        self.doc = doc
        ch, en = doc["chunks"], doc["entries"]
        self.paths: list[str] = en["path"]
        self.types: str = en["type"]
        self.sizes: list[int] = en["size"]
        self.executable: str = en["executable"]
        self.hashes: str = en["hash_sha256"]
        self.own: list[list[int]] = en["chunks"]
        self.targets: list[str] = en["target"]
        self.pack: list[int] = doc["pack"]
        self.chunk_sizes: list[int] = ch["size"]
        self.stored_sizes: list[int] = ch["stored_size"]
        if len(ch["id"]) % HEX or not columns.hex_ok(ch["id"]):
            raise ValueError("chunks/id is not 64 lowercase hex digits per chunk")
        self.ids = columns.split(ch["id"])
        self.sealed: dict[int, str] = {}  # chunk index -> the content key it is sealed with
        for key_id, indices in ch.get("sealed", {}).items():
            if len(key_id) != 32 or not columns.hex_ok(key_id):
                raise ValueError(f"chunks/sealed: {key_id!r} is not a content key id (32 lowercase hex digits)")
            for k in indices:
                if not 0 <= k < len(self.ids) or k in self.sealed:
                    raise ValueError(f"chunks/sealed/{key_id}: index {k} is out of range, or listed twice")
                self.sealed[k] = key_id
        self._check()

    def _check(self) -> None:
        types, sizes, paths = self.types, self.sizes, self.paths
        file_types = types.replace("d", "").replace("l", "")
        files, chunks = len(file_types), len(self.ids)
        lengths = {
            "entries/path": (len(paths), len(types)),
            "entries/size": (len(sizes), files),
            "entries/executable": (len(self.executable), files),
            "entries/hash_sha256": (len(self.hashes), HEX * files),
            "entries/chunks": (len(self.own), file_types.count("f")),
            "entries/target": (len(self.targets), types.count("l")),
            "chunks/size": (len(self.chunk_sizes), chunks),
            "chunks/stored_size": (len(self.stored_sizes), chunks),
        }
        for name, (got, expected) in lengths.items():
            if got != expected:
                raise ValueError(f"{name} has {got} items where the entries call for {expected}")
        if len(set(self.ids)) != chunks:
            raise ValueError("chunks/id lists a chunk twice")
        if not columns.hex_ok(self.hashes):
            raise ValueError("entries/hash_sha256 is not 64 lowercase hex digits per file")
        try:
            if not columns.paths_ok(paths):
                raise ValueError("entries/path holds a path that is empty, absolute, or has an empty, . or .. part")
        except TypeError:
            raise ValueError("entries/path holds an item that is not a string") from None
        if not all(map(str.__lt__, paths, itertools.islice(paths, 1, None))):
            raise ValueError("entries/path is not in strictly increasing order")
        if set(map(type, sizes)) - {int} or (sizes and min(sizes) < 0):
            raise ValueError("entries/size holds an item that is not a non-negative integer")
        used = set(self.pack).union(*self.own)
        if used != set(range(chunks)):
            raise ValueError("a chunk index is out of range, or a chunk of chunks/id is held by no file")
        csz = self.chunk_sizes
        own_sizes = [s for s, t in zip(sizes, file_types) if t == "f"]
        for i, (indices, size) in enumerate(zip(self.own, own_sizes)):
            if sum(csz[k] for k in indices) != size:
                raise ValueError(f"entries/chunks/{i}: the chunks do not add up to the file's size")
        if sum(csz[k] for k in self.pack) != sum(sizes) - sum(own_sizes):
            raise ValueError("pack: the chunks do not add up to the packed files' sizes")

    def entries(self) -> tuple[FileEntry, ...]:
        return tuple(self.iter_entries())

    def iter_entries(self) -> Iterator[FileEntry]:
        ids, csz, ssz, hashes, pack = self.ids, self.chunk_sizes, self.stored_sizes, self.hashes, self.pack
        sealed = self.sealed
        links = iter(self.targets)
        own = iter(self.own)
        fi = pi = pos = 0  # file number; pack stream: chunk number, offset in that chunk
        for path, t in zip(self.paths, self.types):
            if t == "d":
                yield FileEntry(path, "dir")
                continue
            if t == "l":
                yield FileEntry(path, "symlink", target=next(links))
                continue
            size = self.sizes[fi]
            refs: list[ChunkRef] = []
            off = 0
            if t == "f":
                for k in next(own):
                    refs.append(ChunkRef(off, csz[k], ids[k], ssz[k], key_id=sealed.get(k, "")))
                    off += csz[k]
            else:
                while off < size:
                    k = pack[pi]
                    n = min(csz[k] - pos, size - off)
                    refs.append(ChunkRef(off, n, ids[k], ssz[k], pos, csz[k], sealed.get(k, "")))
                    off += n
                    pos += n
                    if pos == csz[k]:
                        pi, pos = pi + 1, 0
            yield FileEntry(path, "file", size, self.executable[fi] == "1", hashes[HEX * fi : HEX * fi + HEX],
                            chunks=tuple(refs))
            fi += 1

    def unique_chunks(self) -> dict[str, Chunk]:
        sealed = self.sealed
        return {i: Chunk(i, n, s, sealed.get(k, "")) for k, (i, n, s) in
                enumerate(zip(self.ids, self.chunk_sizes, self.stored_sizes))}

    def file_totals(self) -> tuple[int, int, int]:
        """Files, their bytes, and the slices that make them: every slice of a packed
        file ends where a file or a chunk of the pack stream ends."""
        file_types = self.types.replace("d", "").replace("l", "")
        packed = (s for s, t in zip(self.sizes, file_types) if t == "p" and s)
        chunk_ends = set(itertools.accumulate(self.chunk_sizes[k] for k in self.pack))  # a few, beside the files
        files, common = 0, 0
        for end in itertools.accumulate(packed):  # each end once: no set of a million ends
            files += 1
            common += end in chunk_ends
        return len(file_types), sum(self.sizes), sum(map(len, self.own)) + files + len(chunk_ends) - common


def _columns(paths: list[str], letters: str, sizes: list[int], executable: str, hashes: str, targets: list[str],
             own: Callable[[int], Iterable[Chunk]], pack: list[Chunk], pack_below: int) -> dict:
    """The columns of entries given as columns, in path order (``letters``: f a file, d a
    directory, l a link; per file ``sizes``, ``executable`` and ``hashes``; per link
    ``targets``): files of 1 to ``pack_below - 1`` bytes are in the pack stream (``pack``),
    each other file (the ``i``-th file) holds the chunks ``own(i)`` gives. The chunk table
    lists the stream's chunks in stream order, then those of the other files in path order,
    each chunk once, where it first appears; the sealed ones by key."""
    table: dict[str, int] = {}
    ids: list[str] = []
    sizes_: list[int] = []
    stored: list[int] = []
    sealed: dict[str, list[int]] = {}

    def index(c: Chunk) -> int:
        k = table.get(c.id)
        if k is None:
            k = table[c.id] = len(ids)
            ids.append(c.id)
            sizes_.append(c.size)
            stored.append(c.stored_size)
            if c.key_id:
                sealed.setdefault(c.key_id, []).append(k)
        return k

    stream = [index(c) for c in pack]
    packed = [0 < size < pack_below for size in sizes]
    file_letters = iter(["p" if p else "f" for p in packed])
    types = "".join(next(file_letters) if t == "f" else t for t in letters) if any(packed) else letters
    indices = [[index(c) for c in own(i)] for i, p in enumerate(packed) if not p]
    chunks: dict = {"id": "".join(ids), "size": sizes_, "stored_size": stored}
    if sealed:  # only an embargoed version's manifest has the column
        chunks["sealed"] = sealed
    return {
        "chunks": chunks,
        "entries": {"path": paths, "type": types, "size": sizes, "executable": executable, "hash_sha256": hashes,
                    "chunks": indices, "target": targets},
        "pack": stream,
    }


_LETTER = {"file": "f", "dir": "d", "symlink": "l"}


def _encode(entries: Iterable[FileEntry], pack_below: int) -> dict:
    """The columns of ``entries``, whose chunks must tile each file: the slices of the
    packed files must continue one another (the pack stream), the other files' chunks
    must be whole."""
    entries = tuple(entries)
    pack: list[Chunk] = []
    left = 0  # bytes of the stream's last chunk not yet given to a file
    for e in entries:
        if list(itertools.accumulate((c.size for c in e.chunks), initial=0)) != [c.offset for c in e.chunks] + [e.size]:
            raise ValueError(f"the chunks of {e.path!r} do not tile it")
        if not 0 < e.size < pack_below:
            if not all(c.whole for c in e.chunks):
                raise ValueError(f"{e.path!r} is not packed, yet holds a slice of a chunk")
            continue
        for c in e.chunks:
            if left:
                if c.id != pack[-1].id or c.chunk_offset != pack[-1].size - left:
                    raise ValueError(f"the slices of {e.path!r} do not continue the pack stream")
            else:
                if c.chunk_offset:
                    raise ValueError(f"{e.path!r} starts a chunk of the pack stream at its offset {c.chunk_offset}")
                pack.append(c.chunk)
                left = c.chunk_size
            left -= c.size
    if left:
        raise ValueError("the packed files end within a chunk of the pack stream")
    files = [e for e in entries if e.type == "file"]  # column by column: a loop per entry costs 3x
    return _columns([e.path for e in entries], "".join(_LETTER[e.type] for e in entries), [e.size for e in files],
                    "".join("1" if e.executable else "0" for e in files), "".join(e.hash_sha256 for e in files),
                    [e.target for e in entries if e.type == "symlink"], lambda i: (c.chunk for c in files[i].chunks),
                    pack, pack_below)


def build(inv: Inventory, params: ChunkParams, own: dict[str, list[Chunk]], pack: list[Chunk],
          pack_below: int = 0) -> Manifest:
    """The manifest of an inventoried build: its files of 1 to ``pack_below - 1`` bytes
    packed, end to end in path order, into the chunks ``pack``; every other file cut
    into the chunks ``own[path]``. Made as columns, with no object per file."""
    paths = inv.file_paths()
    doc = _columns(inv.paths, inv.types, inv.sizes.tolist(), inv.executable, inv.hashes.hex(), inv.targets,
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
