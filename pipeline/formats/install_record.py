"""The install record (``installed-1``), kept in a game directory at ``.depot/installed.json``:
which version is installed from which origins, and each file's size and modification
time right after install, so that later runs can trust unchanged files without reading
them."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import canonical

SCHEMA = "installed-1"
FORMAT = "depot.installed/1"


@dataclass(frozen=True)
class FileStamp:
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class InstallRecord:
    product: str
    version: str
    origins: tuple[str, ...] = ()
    files: dict[str, FileStamp] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "product": self.product, "version": self.version, "origins": list(self.origins),
                "files": {p: {"size": s.size, "mtime_ns": s.mtime_ns} for p, s in self.files.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "InstallRecord":
        return cls(d["product"], d["version"], tuple(d["origins"]),
                   {p: FileStamp(**s) for p, s in d["files"].items()})


def to_bytes(r: InstallRecord) -> bytes:
    return canonical.dumps(r.to_dict(), SCHEMA, f"install record of {r.product} {r.version}")


def from_bytes(data: bytes, where: str) -> InstallRecord:
    return InstallRecord.from_dict(canonical.loads(data, SCHEMA, where))
