"""The install record, kept in a game directory at ``.depot/installed.json``: which version
is installed from which origins, and each file's modification time right after install,
so that later runs can trust unchanged files without reading them.

Format 2 (``installed-2``, what the client writes) holds the mtimes alone, in the order of
the installed manifest's files, whose sizes the manifest gives: little-endian signed
64-bit integers in base64, under 11 bytes a file, read and written without an object per
file. Format 1 (``installed-1``, each file's size and mtime by path) is still read.
"""

from __future__ import annotations

import base64
import json
import sys
from array import array
from dataclasses import dataclass, field
from typing import ClassVar

from ..errors import ManifestInvalid
from .canonical import Document

SCHEMA = "installed-2"
FORMAT = "depot.installed/2"
SCHEMA_1 = "installed-1"
FORMAT_1 = "depot.installed/1"


@dataclass(frozen=True)
class FileStamp:
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class _Record(Document):
    """What both formats hold first: the version installed and the origins it came from."""

    product: str
    version: str
    origins: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"install record of {self.product} {self.version}"

    def _dict(self, fmt: str, trust: str, **fields) -> dict:
        d = {"format": fmt, "product": self.product, "version": self.version, "origins": list(self.origins), **fields}
        return {**d, "trust": trust} if trust else d


@dataclass(frozen=True)
class InstallRecord(_Record):
    """Format 1: each file's size and mtime by path."""

    SCHEMA: ClassVar[str] = SCHEMA_1

    files: dict[str, FileStamp] = field(default_factory=dict)
    trust: str = ""  # the trusted root that checked it (its id in the user's data folder)

    def to_dict(self) -> dict:
        return self._dict(FORMAT_1, self.trust,
                          files={p: {"size": s.size, "mtime_ns": s.mtime_ns} for p, s in self.files.items()})

    @classmethod
    def from_dict(cls, d: dict) -> "InstallRecord":
        return cls(d["product"], d["version"], tuple(d["origins"]),
                   {p: FileStamp(**s) for p, s in d["files"].items()}, d.get("trust", ""))


@dataclass(frozen=True)
class InstallRecord2(_Record):
    """Format 2: ``mtimes[i]`` is the mtime of the installed manifest's ``i``-th file."""

    SCHEMA: ClassVar[str] = SCHEMA

    mtimes: array = field(default_factory=lambda: array("q"))
    trust: str = ""

    def to_dict(self) -> dict:
        mtimes = array("q", self.mtimes)
        if sys.byteorder != "little":
            mtimes.byteswap()
        return self._dict(FORMAT, self.trust, files=len(mtimes), mtime_ns=base64.b64encode(mtimes.tobytes()).decode())

    @classmethod
    def from_dict(cls, d: dict) -> "InstallRecord2":
        mtimes = array("q", base64.b64decode(d["mtime_ns"], validate=True))
        if sys.byteorder != "little":
            mtimes.byteswap()
        if len(mtimes) != d["files"]:
            raise ValueError(f"{len(mtimes)} mtimes for {d['files']} files")
        return cls(d["product"], d["version"], tuple(d["origins"]), mtimes, d.get("trust", ""))


def read(data: bytes, where: str) -> InstallRecord | InstallRecord2:
    """An install record of either format."""
    try:
        fmt = json.loads(data).get("format")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise ManifestInvalid(f"{where}: not an install record ({exc})") from None
    return InstallRecord.from_bytes(data, where) if fmt == FORMAT_1 else InstallRecord2.from_bytes(data, where)
