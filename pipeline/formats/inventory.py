"""The build inventory: what ingest found, and where each file's bytes are.

Format 2 (what ingest writes) is canonical JSON in columns, stored as the manifest's
format 2 is, in one zstd frame (a third of the bytes on many small files); format 1, one
object per entry, and a format 2 stored as plain JSON (as ingest wrote it before) are
still read. Readers tell the frame from JSON by its first bytes, the formats apart by the
document's ``format``."""

from __future__ import annotations

import json
from array import array
from dataclasses import dataclass
from typing import ClassVar, Iterable, Iterator

from .. import layout
from ..errors import ManifestInvalid
from . import canonical, columns, frame
from .canonical import Document, Reader

SCHEMA = "inventory-2"
FORMAT = "depot.inventory/2"
SCHEMA_1 = "inventory-1"
FORMAT_1 = "depot.inventory/1"
# zstd's level 1 is the inventory's (fixed: the same build, the same bytes): its columns are
# mostly hex digests, which level 1 packs smaller than 3 does (100,000 files: 3.96 MB
# against 4.12), at a third of the time
ZSTD_LEVEL = 1


@dataclass(frozen=True, slots=True)
class BuildEntry:
    """What inventory and manifest entries share: a file, a link or an empty directory."""

    path: str
    type: str  # "file" | "dir" | "symlink"
    size: int = 0
    executable: bool = False
    hash_sha256: str = ""
    target: str = ""

    def content(self) -> tuple:
        """What makes two builds the same, whatever archive or directory they came from."""
        return (self.path, self.type, self.size, self.executable, self.hash_sha256, self.target)

    def _dict(self, **file_fields) -> dict:
        if self.type == "file":
            return {"path": self.path, "type": "file", "size": self.size, "executable": self.executable,
                    "hash_sha256": self.hash_sha256, **file_fields}
        if self.type == "symlink":
            return {"path": self.path, "type": "symlink", "target": self.target}
        return {"path": self.path, "type": "dir"}


@dataclass(frozen=True, slots=True)
class Entry(BuildEntry):
    """An inventory entry; ``offset`` says where a file's bytes start in the source data."""

    offset: int = 0

    def to_dict(self) -> dict:
        return self._dict(offset=self.offset)

    @classmethod
    def from_dict(cls, d: dict) -> "Entry":
        return cls(**d)


def same_entries(a, b) -> bool:
    return [e.content() for e in a] == [e.content() for e in b]


@dataclass(frozen=True)
class SourceData:
    """Where file bytes are read from: a directory (url/path), or a blob at offsets
    (an uncompressed tar in place, or a pack staged in the repository under ``key``)."""

    layout: str  # "directory" | "blob"
    url: str = ""
    key: str = ""

    def to_dict(self) -> dict:
        d = {"layout": self.layout}
        if self.url:
            d["url"] = self.url
        if self.key:
            d["key"] = self.key
        return d


_LETTER = {"file": "f", "dir": "d", "symlink": "l"}
_TYPE = {v: k for k, v in _LETTER.items()}
DIGEST = 32  # bytes of a SHA-256


class Inventory(Document):
    """A build's entries, in columns (as format 2 stores them), with no object per entry:
    ``paths`` and ``types`` (a letter each: f, d, l) per entry; ``sizes``, ``executable``
    ("0" or "1" each), ``offsets`` and ``hashes`` (SHA-256 end to end, raw; empty before
    they are known) per file; ``targets`` per link. ``entries`` makes entry objects when
    asked."""

    SCHEMA: ClassVar[str] = SCHEMA
    __slots__ = ("product", "version", "source_url", "source_kind", "data", "paths", "types", "sizes", "executable",
                 "offsets", "hashes", "targets")

    def __init__(self, product: str, version: str, source_url: str, source_kind: str, data: SourceData,
                 entries: Iterable[Entry] = ()):
        self.product, self.version, self.source_url, self.source_kind, self.data = (
            product, version, source_url, source_kind, data)
        entries = list(entries)
        files = [e for e in entries if e.type == "file"]
        self.paths: list[str] = [e.path for e in entries]
        self.types: str = "".join(_LETTER[e.type] for e in entries)
        self.sizes = array("q", (e.size for e in files))
        self.executable: str = "".join("1" if e.executable else "0" for e in files)
        self.offsets = array("q", (e.offset for e in files))
        hashed = [e.hash_sha256 for e in files if e.hash_sha256]
        if hashed and len(hashed) != len(files):
            raise ValueError("an inventory's files are hashed all or none")
        self.hashes: bytes | bytearray = bytes.fromhex("".join(hashed))
        self.targets: list[str] = [e.target for e in entries if e.type == "symlink"]

    def _with(self, **columns) -> "Inventory":
        """A copy with ``columns`` (or other fields) replaced; the rest shared."""
        other = object.__new__(Inventory)
        for name in self.__slots__:
            setattr(other, name, columns.get(name, getattr(self, name)))
        return other

    @property
    def file_count(self) -> int:
        return len(self.sizes)

    @property
    def file_bytes(self) -> int:
        return sum(self.sizes)

    @property
    def hashed(self) -> bool:
        return len(self.hashes) == DIGEST * len(self.sizes)

    def file_paths(self) -> list[str]:
        """The files' paths, in order (the entries' are ``paths``)."""
        return [p for p, t in zip(self.paths, self.types) if t == "f"]

    def hash_sha256(self, i: int) -> str:
        """File ``i``'s SHA-256 in hex, "" before it is known."""
        return self.hashes[DIGEST * i : DIGEST * i + DIGEST].hex()

    def iter_entries(self) -> Iterator[Entry]:
        links = iter(self.targets)
        i = 0
        for path, t in zip(self.paths, self.types):
            if t == "f":
                yield Entry(path, "file", self.sizes[i], self.executable[i] == "1", self.hash_sha256(i), "",
                            self.offsets[i])
                i += 1
            elif t == "l":
                yield Entry(path, "symlink", target=next(links))
            else:
                yield Entry(path, "dir")

    @property
    def entries(self) -> tuple[Entry, ...]:
        return tuple(self.iter_entries())

    @property
    def files(self) -> list[Entry]:
        return [e for e in self.iter_entries() if e.type == "file"]

    def _content(self) -> tuple:
        return self.paths, self.types, self.sizes, self.executable, self.hashes, self.targets

    def same_content(self, other) -> bool:
        """The same build as ``other`` (an inventory or a manifest), whatever its source."""
        if isinstance(other, Inventory):
            return self._content() == other._content()
        return same_entries(self.iter_entries(), other.entries)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Inventory):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Inventory({self.product!r}, {self.version!r}, {len(self.paths)} entries)"

    def describe(self) -> str:
        return f"inventory of {self.product} {self.version}"

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "product": self.product,
            "version": self.version,
            "source": {"url": self.source_url, "kind": self.source_kind, "data": self.data.to_dict()},
            "entries": {"path": self.paths, "type": self.types, "size": self.sizes.tolist(),
                        "executable": self.executable, "hash_sha256": self.hashes.hex(),
                        "offset": self.offsets.tolist(), "target": self.targets},
        }

    def to_bytes(self) -> bytes:
        """The stored bytes: one zstd frame of the canonical JSON, checked first."""
        canonical.validate(self.to_dict(), SCHEMA, self.describe())
        return self.to_bytes_known_valid()

    def to_bytes_known_valid(self) -> bytes:
        """The zstd frame of ``canonical(self.to_dict())``."""
        return frame.compress(self.canonical_json(), ZSTD_LEVEL)

    def canonical_json(self) -> bytearray:
        """``canonical(self.to_dict())``, written a column at a time into one buffer, so
        that the document is held about once, not three times (100 MB for a million
        files): its keys in canonical order, "entries" first."""
        rest = canonical.canonical({"format": FORMAT, "product": self.product, "version": self.version,
                                    "source": {"url": self.source_url, "kind": self.source_kind,
                                               "data": self.data.to_dict()}})
        out = bytearray(b'{"entries":{"executable":')
        canonical.write(out, self.executable)
        out += b',"hash_sha256":"'
        for i in range(0, len(self.hashes), _STEP):
            out += self.hashes[i : i + _STEP].hex().encode()
        out += b'","offset":'
        _write_numbers(out, self.offsets)
        out += b',"path":'
        canonical.write(out, self.paths)
        out += b',"size":'
        _write_numbers(out, self.sizes)
        out += b',"target":'
        canonical.write(out, self.targets)
        out += b',"type":'
        canonical.write(out, self.types)
        out += b"},"
        out += rest[1:]
        return out  # not copied: 100 MB for a million files

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> "Inventory":
        if frame.is_frame(data):
            doc = frame.load(data, where, "an inventory")
        else:
            try:
                doc = json.loads(data)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ManifestInvalid(f"{where}: not JSON ({exc})") from exc
        schema = SCHEMA_1 if isinstance(doc, dict) and doc.get("format") == FORMAT_1 else SCHEMA
        canonical.validate(doc, schema, where)
        try:
            return cls.from_dict(doc)
        except (KeyError, TypeError, ValueError) as exc:  # valid JSON Schema, impossible values
            raise ManifestInvalid(f"{where}: not a valid {schema} document: {exc}") from None

    @classmethod
    def from_dict(cls, d: dict) -> "Inventory":
        src = d["source"]
        blank = cls(d["product"], d["version"], src["url"], src["kind"], SourceData(**src["data"]))
        if d["format"] == FORMAT_1:
            return blank.with_entries(Entry.from_dict(e) for e in d["entries"])
        en = d["entries"]
        _check(en)
        return blank._with(paths=en["path"], types=en["type"], sizes=array("q", en["size"]),
                          executable=en["executable"], offsets=array("q", en["offset"]),
                          hashes=bytes.fromhex(en["hash_sha256"]), targets=en["target"])

    def with_entries(self, entries: Iterable[Entry]) -> "Inventory":
        """These entries, sorted by path, in place of its own."""
        return Inventory(self.product, self.version, self.source_url, self.source_kind, self.data,
                         sorted(entries, key=lambda e: e.path))

    def with_columns(self, paths: list[str], types: str, sizes: array, executable: str,
                     targets: list[str]) -> "Inventory":
        """These entries in place of its own, given as columns in path order (see the
        class), offsets 0 and digests still to come."""
        return self._with(paths=paths, types=types, sizes=sizes, executable=executable, targets=targets,
                          offsets=array("q", bytes(8 * len(sizes))), hashes=b"")

    def with_hashes(self, hashes: bytes | bytearray) -> "Inventory":
        """Its files' SHA-256, raw, end to end in file order (kept, not copied: 3 MB for
        100,000 files)."""
        if len(hashes) != DIGEST * self.file_count:
            raise ValueError(f"{len(hashes)} bytes of digests for {self.file_count} files")
        return self._with(hashes=hashes)

    def with_data(self, data: SourceData) -> "Inventory":
        return self._with(data=data)


_STEP = 1 << 16  # bytes of digests, or numbers, written at a time


def _write_numbers(out: bytearray, numbers: array) -> None:
    out += b"["
    for i in range(0, len(numbers), _STEP):
        if i:
            out += b","
        out += canonical.dump(numbers[i : i + _STEP].tolist())[1:-1]
    out += b"]"


def _check(en: dict) -> None:
    """What the schema of format 2 does not say: columns of equal lengths, digests in hex,
    paths safe and strictly increasing, sizes and offsets non-negative integers."""
    types, paths = en["type"], en["path"]
    files = types.count("f")
    lengths = {
        "entries/path": (len(paths), len(types)),
        "entries/size": (len(en["size"]), files),
        "entries/executable": (len(en["executable"]), files),
        "entries/offset": (len(en["offset"]), files),
        "entries/hash_sha256": (len(en["hash_sha256"]), columns.HEX * files),
        "entries/target": (len(en["target"]), types.count("l")),
    }
    for name, (got, expected) in lengths.items():
        if got != expected:
            raise ValueError(f"{name} has {got} items where the entries call for {expected}")
    if not columns.hex_ok(en["hash_sha256"]):
        raise ValueError("entries/hash_sha256 is not 64 lowercase hex digits per file")
    if not columns.paths_ok(paths):
        raise ValueError("entries/path holds a path that is empty, absolute, or has an empty, . or .. part")
    if not columns.increasing(paths):
        raise ValueError("entries/path is not in strictly increasing order")
    for name in ("size", "offset"):
        if not columns.naturals(en[name]):
            raise ValueError(f"entries/{name} holds an item that is not a non-negative integer")


def decode(data: bytes) -> dict:
    """The JSON document of an inventory's stored bytes, framed or not, unchecked."""
    return json.loads(frame.decompress(data, "inventory", "an inventory") if frame.is_frame(data) else data)


def load(reader: Reader, product: str, version: str) -> Inventory:
    key = layout.inventory_key(product, version)
    return canonical.read(reader, key, Inventory.from_bytes, f"{product} {version} has not been ingested")
