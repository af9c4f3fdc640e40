"""The update plan from one version of a product to another (``plan-1``): for each file of
the target, keep it, copy it from another path, patch it, or fetch its chunks; and what
each way of updating costs. Written by delta.diff, read by the client's update."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import layout
from . import canonical
from .canonical import Document, Reader

SCHEMA = "plan-1"
FORMAT = "depot.plan/1"
OPS = ("keep", "copy", "patch", "chunks")


@dataclass(frozen=True)
class PatchSegment:
    """Bytes [offset, offset + size) of the new file: ``engine`` applied to the patch ``id``
    and bytes [source_offset, source_offset + source_size) of the source file."""

    offset: int
    size: int
    source_offset: int
    source_size: int
    engine: str
    id: str
    patch_size: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class FileOp:
    path: str
    op: str  # one of OPS
    hash_sha256: str
    source: str = ""  # copy and patch: the old file's path
    source_sha256: str = ""  # patch: what the source must hash to before the patch applies
    download_bytes: int = 0  # chunks: what fetching the file's new chunks costs
    segments: tuple[PatchSegment, ...] = ()  # patch

    @property
    def patch_bytes(self) -> int:
        return sum(s.patch_size for s in self.segments)

    def to_dict(self) -> dict:
        d: dict[str, object] = {"path": self.path, "op": self.op, "hash_sha256": self.hash_sha256}
        if self.op in ("copy", "patch"):
            d["source"] = self.source
        if self.op == "patch":
            d["source_sha256"] = self.source_sha256
            d["segments"] = [s.to_dict() for s in self.segments]
        if self.op == "chunks":
            d["download_bytes"] = self.download_bytes
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FileOp":
        segments = tuple(PatchSegment(**s) for s in d.get("segments", ()))
        return cls(**{**d, "segments": segments})


@dataclass(frozen=True)
class Plan(Document):
    SCHEMA: ClassVar[str] = SCHEMA

    product: str
    from_version: str
    to_version: str
    files: tuple[FileOp, ...]
    remove: tuple[str, ...]
    delta_download_bytes: int  # patches plus chunks not in the old version
    chunk_download_bytes: int  # chunk reuse alone
    full_download_bytes: int  # every chunk of the new version
    required_disk_space_bytes: int  # new files staged beside the old ones before the swap

    def count(self, op: str) -> int:
        return sum(f.op == op for f in self.files)

    def describe(self) -> str:
        return f"plan {self.product} {self.from_version} -> {self.to_version}"

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            **{k: v for k, v in self.__dict__.items() if k not in ("files", "remove")},
            "files": [f.to_dict() for f in self.files],
            "remove": list(self.remove),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        fields = {k: v for k, v in d.items() if k != "format"}
        return cls(**{**fields, "files": tuple(FileOp.from_dict(f) for f in d["files"]), "remove": tuple(d["remove"])})


def load(reader: Reader, product: str, from_version: str, to_version: str) -> Plan:
    key = layout.plan_key(product, from_version, to_version)
    return canonical.read(reader, key, Plan.from_bytes, f"no update plan from {product} {from_version} to {to_version}")
