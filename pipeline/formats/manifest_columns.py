"""A format 2 manifest's columns: checked when read, made from entries or from a build's
columns when written, and turned into entries only when asked (see docs/format.md)."""

from __future__ import annotations

import itertools
from typing import Callable, Iterable, Iterator

from . import columns
from .manifest_entries import Chunk, ChunkRef, FileEntry

HEX = columns.HEX


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


def of_columns(paths: list[str], letters: str, sizes: list[int], executable: str, hashes: str, targets: list[str],
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


def of_entries(entries: Iterable[FileEntry], pack_below: int) -> dict:
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
    return of_columns([e.path for e in entries], "".join(_LETTER[e.type] for e in entries), [e.size for e in files],
                    "".join("1" if e.executable else "0" for e in files), "".join(e.hash_sha256 for e in files),
                    [e.target for e in entries if e.type == "symlink"], lambda i: (c.chunk for c in files[i].chunks),
                    pack, pack_below)
