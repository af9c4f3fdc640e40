"""The pre-load list (``preload-1``): what players of an embargoed version download before
its release.

It is stored at ``products/<P>/versions/<V>/preload.json``. It lists every chunk object
the version needs: its id, size, stored size and the content key that seals it. It says
nothing of the files. The manifest, which names the files, stays sealed until release.
This list is plain and signed like every document. So a player can pre-load without a
key, and check what it got.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import layout
from .canonical import Document, Reader, read
from .manifest import Chunk, Manifest

SCHEMA = "preload-1"
FORMAT = "depot.preload/1"
HEX = 64


@dataclass(frozen=True)
class Preload(Document):
    SCHEMA: ClassVar[str] = SCHEMA

    product: str
    version: str
    key_id: str  # the content key that seals the version's manifest and its new chunks
    chunks: tuple[Chunk, ...]

    @classmethod
    def of(cls, m: Manifest, key_id: str) -> "Preload":
        """The list of ``m``, an embargoed version sealed with ``key_id``."""
        return cls(m.product, m.version, key_id, tuple(m.unique_chunks().values()))

    @property
    def download_bytes(self) -> int:
        return sum(c.stored_size for c in self.chunks)

    def describe(self) -> str:
        return f"pre-load list of {self.product} {self.version}"

    def to_dict(self) -> dict:
        sealed: dict[str, list[int]] = {}
        for k, c in enumerate(self.chunks):
            if c.key_id:
                sealed.setdefault(c.key_id, []).append(k)
        chunks: dict = {"id": "".join(c.id for c in self.chunks), "size": [c.size for c in self.chunks],
                        "stored_size": [c.stored_size for c in self.chunks]}
        if sealed:
            chunks["sealed"] = sealed
        return {"format": FORMAT, "product": self.product, "version": self.version, "key_id": self.key_id,
                "chunks": chunks}

    @classmethod
    def from_dict(cls, d: dict) -> "Preload":
        ch = d["chunks"]
        ids = [ch["id"][i: i + HEX] for i in range(0, len(ch["id"]), HEX)]
        if not len(ids) == len(ch["size"]) == len(ch["stored_size"]) or len(set(ids)) != len(ids):
            raise ValueError("chunks: id, size and stored_size must have one item per chunk, each chunk once")
        keys = [""] * len(ids)
        for key_id, indices in ch.get("sealed", {}).items():
            for k in indices:
                if not 0 <= k < len(ids) or keys[k]:
                    raise ValueError(f"chunks/sealed/{key_id}: index {k} is out of range, or listed twice")
                keys[k] = key_id
        return cls(d["product"], d["version"], d["key_id"],
                   tuple(map(Chunk, ids, ch["size"], ch["stored_size"], keys)))


def load(reader: Reader, product: str, version: str) -> Preload:
    """The pre-load list of ``product`` ``version``; NOT_FOUND for a version that is not
    embargoed (it has none)."""
    return read(reader, layout.preload_key(product, version), Preload.from_bytes,
                f"{product} {version} has no pre-load list: it is not embargoed")
