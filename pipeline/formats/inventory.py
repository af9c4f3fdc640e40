"""The build inventory: what ingest found, and where each file's bytes are."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from .. import layout
from . import canonical
from .canonical import Document, Reader

SCHEMA = "inventory-1"
FORMAT = "depot.inventory/1"


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


@dataclass(frozen=True)
class Inventory(Document):
    SCHEMA: ClassVar[str] = SCHEMA

    product: str
    version: str
    source_url: str
    source_kind: str
    data: SourceData
    entries: tuple[Entry, ...] = field(default=())

    @property
    def files(self) -> list[Entry]:
        return [e for e in self.entries if e.type == "file"]

    def same_content(self, other) -> bool:
        """The same build as ``other`` (an inventory or a manifest), whatever its source."""
        return same_entries(self.entries, other.entries)

    def describe(self) -> str:
        return f"inventory of {self.product} {self.version}"

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "product": self.product,
            "version": self.version,
            "source": {"url": self.source_url, "kind": self.source_kind, "data": self.data.to_dict()},
            "entries": [e.to_dict() for e in self.entries],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Inventory":
        src = d["source"]
        return cls(
            product=d["product"],
            version=d["version"],
            source_url=src["url"],
            source_kind=src["kind"],
            data=SourceData(**src["data"]),
            entries=tuple(Entry.from_dict(e) for e in d["entries"]),
        )

    def with_entries(self, entries) -> "Inventory":
        return dataclasses.replace(self, entries=tuple(sorted(entries, key=lambda e: e.path)))

    def with_hashes(self, digests: dict[str, str]) -> "Inventory":
        """Its files' SHA-256, by path."""
        return dataclasses.replace(self, entries=tuple(  # in the same order
            Entry(e.path, e.type, e.size, e.executable, digests[e.path], e.target, e.offset) if e.type == "file" else e
            for e in self.entries))


def load(reader: Reader, product: str, version: str) -> Inventory:
    key = layout.inventory_key(product, version)
    return canonical.read(reader, key, Inventory.from_bytes, f"{product} {version} has not been ingested")
