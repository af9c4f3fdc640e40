"""The install record (``installed-1``), kept in a game directory at ``.depot/installed.json``:
which version is installed from which origins, and each file's size and modification
time right after install, so that later runs can trust unchanged files without reading
them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .canonical import Document

SCHEMA = "installed-1"
FORMAT = "depot.installed/1"


@dataclass(frozen=True)
class FileStamp:
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class InstallRecord(Document):
    SCHEMA: ClassVar[str] = SCHEMA

    product: str
    version: str
    origins: tuple[str, ...] = ()
    files: dict[str, FileStamp] = field(default_factory=dict)
    trust: str = ""  # the trusted root that checked it (its id in the user's data folder)

    def describe(self) -> str:
        return f"install record of {self.product} {self.version}"

    def to_dict(self) -> dict:
        d = {"format": FORMAT, "product": self.product, "version": self.version, "origins": list(self.origins),
             "files": {p: {"size": s.size, "mtime_ns": s.mtime_ns} for p, s in self.files.items()}}
        return {**d, "trust": self.trust} if self.trust else d

    @classmethod
    def from_dict(cls, d: dict) -> "InstallRecord":
        return cls(d["product"], d["version"], tuple(d["origins"]),
                   {p: FileStamp(**s) for p, s in d["files"].items()}, d.get("trust", ""))
