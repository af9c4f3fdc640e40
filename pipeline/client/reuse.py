"""What the disk already holds of the files to write: files at the paths being rewritten,
files in the game directory that the version does not list, and every file of the seeds.

A candidate as large as a file still to write is hashed whole (SHA-256): one that matches
the signed manifest's ``hash_sha256`` is that file, copied by the kernel instead of
downloaded (packed small files are found this way: their chunks are shared, no file on
disk holds one). Any other candidate is cut with the version's chunk sizes and its
chunks hashed (BLAKE3): a chunk still needed is read from it instead of downloaded.
Each finding keeps the file's stamp as it was when hashed, so that a file changed since
is never used.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Container, Iterable, NamedTuple

from ..core import codec
from ..core.chunk_params import ChunkParams
from .disk import Stamp
from .game_dir import STATE_DIR, GameDir


@dataclass
class OnDisk:
    chunks: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> a file holding it, and where
    files: dict[int, tuple[str, Stamp]] = field(default_factory=dict)  # number of a file to write -> a copy of it


def candidates(inst: GameDir, listed: Iterable[str], rewritten: Iterable[str], seeds: Iterable[Path]) -> list[Path]:
    """Files that may hold what we need: what is at the paths being (re)written, files
    in the destination that the version (whose files are ``listed``) does not have, and
    every file of the seeds."""
    found = _walk_files(inst.dest, skip=STATE_DIR)
    if found:  # the paths are compared only where there is something to compare
        listed, rewritten = set(listed), set(rewritten)
        found = [p for p in found if (rel := p.relative_to(inst.dest).as_posix()) in rewritten or rel not in listed]
    for seed in seeds:
        found.extend(_walk_files(Path(seed)))
    return [p for p in found if p.is_file() and not p.is_symlink()]


def _walk_files(root: Path, skip: str = "") -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == str(root) and skip in dirnames:
            dirnames.remove(skip)
        out.extend(Path(dirpath) / n for n in filenames)
    return out


class Wanted(NamedTuple):
    """A file still to write: its size, SHA-256, and (id, offset) of its whole chunks."""

    size: int
    sha256: str
    whole_chunks: list[tuple[str, int]]


def find_on_disk(paths: list[Path], params: ChunkParams, files: dict[int, Wanted], chunks: Container[str]) -> OnDisk:
    """Where ``paths`` hold a copy of one of ``files`` (by number), or one of ``chunks``.
    A file unreadable, or changed while it was read, holds nothing."""
    found = OnDisk()
    by_size: dict[int, list[int]] = {}
    for i, want in files.items():
        if want.size:
            by_size.setdefault(want.size, []).append(i)
    for path in paths:
        try:
            _index(str(path), params, files, by_size, chunks, found)
        except OSError:
            continue  # unreadable: it simply holds nothing we can use
    return found


def _index(path: str, params: ChunkParams, files: dict[int, Wanted], by_size: dict[int, list[int]],
           chunks: Container[str], found: OnDisk) -> None:
    with open(path, "rb", buffering=0) as fh:
        before = Stamp.of(os.fstat(fh.fileno()))
        same = [i for i in by_size.get(before.size, ()) if i not in found.files]
        if same:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
            if Stamp.of(os.fstat(fh.fileno())) != before:
                return
            matched = [i for i in same if files[i].sha256 == digest]
            for i in matched:
                found.files[i] = (path, before)
            if matched:  # its whole chunks are where that file has them
                for cid, offset in files[matched[0]].whole_chunks:
                    if cid in chunks and cid not in found.chunks:
                        found.chunks[cid] = (path, offset)
                return

        from ..core.cdc import serial_boundaries  # only here: a first install never cuts a file

        def read(offset: int, n: int) -> bytes:
            return os.pread(fh.fileno(), n, offset)

        # a chunk found is read again and checked against its id before it is used
        cuts = serial_boundaries(read, before.size, params)
        for a, b in zip(cuts, cuts[1:]):
            cid = codec.chunk_id(read(a, b - a))
            if cid in chunks and cid not in found.chunks:
                found.chunks[cid] = (path, a)

