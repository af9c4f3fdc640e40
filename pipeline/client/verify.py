"""verify: compare a game directory with the version recorded as installed in it.

Full: every file's size, mode and SHA-256, every link's target, every empty directory.
Fast: sizes, modes and modification times against what install recorded; it catches
deleted, truncated and rewritten files in a directory walk, not silent bit flips.
"""

from __future__ import annotations

import os
import stat
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from ..core.hashing import sha256_file
from ..formats.manifest import FileEntry
from .game_dir import STATE_DIR, GameDir, file_mode


@dataclass(frozen=True)
class VerifyReport:
    product: str
    version: str
    dest: str
    checked: int
    missing: list[str] = field(default_factory=list)
    damaged: list[dict] = field(default_factory=list)  # {"path": ..., "reason": ...}
    unexpected: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.missing and not self.damaged

    def broken(self) -> set[str]:
        return set(self.missing) | {d["path"] for d in self.damaged}

    def to_dict(self) -> dict:
        return {**self.__dict__, "intact": self.intact}


def verify(dest: Path, fast: bool = False) -> VerifyReport:
    inst = GameDir(Path(dest))
    tree = inst.tree()
    m = tree.m
    recorded = iter(inst.mtimes(tree) or array("q", bytes(8 * len(tree))))  # one a file, in the manifest's order
    missing, damaged = [], []
    listed: set[str] = set()
    for e in m.iter_entries():
        listed.add(e.path)
        problem = _check(inst.dest, e, fast, next(recorded) if e.type == "file" else 0)
        if problem == "missing":
            missing.append(e.path)
        elif problem:
            damaged.append({"path": e.path, "reason": problem})
    return VerifyReport(
        product=m.product,
        version=m.version,
        dest=str(inst.dest),
        checked=len(listed),
        missing=missing,
        damaged=damaged,
        unexpected=_unexpected(inst.dest, listed),
    )


def _check(dest: Path, e: FileEntry, fast: bool, recorded: int) -> str:
    """'' when intact, 'missing', or what is wrong (``recorded``: the file's mtime at
    install, 0 if unknown)."""
    path = dest / e.path
    parent = path.parent
    while parent != dest:
        if parent.is_symlink() or not parent.is_dir():
            return "missing" if not parent.exists() and not parent.is_symlink() else f"parent {parent.relative_to(dest)} is not a directory"
        parent = parent.parent
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "missing"
    if e.type == "symlink":
        if not stat.S_ISLNK(st.st_mode):
            return "not a link"
        return "" if os.readlink(path) == e.target else f"link points to {os.readlink(path)!r}"
    if e.type == "dir":
        return "" if stat.S_ISDIR(st.st_mode) else "not a directory"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size != e.size:
        return f"size {st.st_size}, expected {e.size}"
    if stat.S_IMODE(st.st_mode) != file_mode(e):
        return f"mode {stat.S_IMODE(st.st_mode):o}, expected {file_mode(e):o}"
    if fast:
        if recorded and recorded == st.st_mtime_ns:
            return ""
        return "modified since install"
    try:
        digest = sha256_file(path)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    return "" if digest == e.hash_sha256 else "content differs (SHA-256)"


def _unexpected(dest: Path, listed: set[str]) -> list[str]:
    implied = {p.rsplit("/", i)[0] for p in listed for i in range(1, p.count("/") + 1)}
    out = []
    for dirpath, dirnames, filenames in os.walk(dest):
        rel_dir = Path(dirpath).relative_to(dest).as_posix()
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d != STATE_DIR]
            rel_dir = ""
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if rel not in listed:
                out.append(rel)
        for d in list(dirnames):
            rel = f"{rel_dir}/{d}" if rel_dir else d
            if rel not in listed and rel not in implied and not os.path.islink(os.path.join(dirpath, d)):
                out.append(rel + "/")
                dirnames.remove(d)
    return sorted(out)
