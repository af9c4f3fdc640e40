"""Build sources: directories and archives, local or remote, read into inventory entries.

Directories and uncompressed tars are read in place (each file is a byte range of the
source). Compressed tars and zips cannot be read at random offsets, so their file bytes
are copied, in one streaming pass, into a *pack* in the repository, and hashed on the way.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import stat
import tarfile
import zipfile
from array import array
from dataclasses import dataclass, field
from typing import IO, BinaryIO, Callable, Iterator, Protocol

from ..core.hashing import BLOCK
from ..core.safety import clean_path
from ..errors import DepotError, SourceInvalid, StoreUnavailable, UnsafeEntry
from ..formats.inventory import Entry
from ..storage.translate import backend_errors, describe, is_unreachable
from ..storage.location import Location

ARCHIVE_SUFFIXES = {
    ".zip": "zip",
    ".tar": "tar",
    ".tar.gz": "tar.gz",
    ".tgz": "tar.gz",
    ".tar.bz2": "tar.bz2",
    ".tar.xz": "tar.xz",
    ".tar.zst": "tar.zst",
    ".tzst": "tar.zst",
}
PACKED_KINDS = {"zip", "tar.gz", "tar.bz2", "tar.xz", "tar.zst"}


def source_kind(loc: Location) -> str:
    """'directory' or the archive kind of ``loc``; SourceInvalid if it is neither."""
    url = loc.url
    if loc.is_local:  # without fsspec, which a local build never needs
        path, isdir, isthere = loc.local_path, os.path.isdir, os.path.exists
    else:
        fs, path = loc.filesystem()
        isdir, isthere = fs.isdir, fs.exists
    try:
        if isdir(path):
            return "directory"
        exists = isthere(path)
    except backend_errors() as exc:
        raise source_error(url, "cannot read", exc) from exc
    if not exists:
        raise SourceInvalid(f"{url}: no such file or directory")
    lower = path.lower()
    for suffix, kind in sorted(ARCHIVE_SUFFIXES.items(), key=lambda kv: -len(kv[0])):
        if lower.endswith(suffix):
            return kind
    known = ", ".join(sorted(ARCHIVE_SUFFIXES))
    raise SourceInvalid(f"{url}: not a directory or a known archive ({known})")


def source_error(url: str, what: str, exc: BaseException) -> DepotError:
    """STORE_UNAVAILABLE when the source's location cannot be reached (network,
    credentials), SOURCE_INVALID when what is there cannot be read as a build."""
    if is_unreachable(exc):
        return StoreUnavailable(f"{url}: {what}: {describe(exc)}")
    return SourceInvalid(f"{url}: {what} ({exc})")


# -- directories ---------------------------------------------------------------------


def scan_directory(loc: Location) -> Iterator[Entry]:
    """Entries of a directory build on an object store (no hashes yet; ``offset`` is 0: a
    file is its own blob). A local directory: ``scan_local``."""
    url = loc.url
    fs, root = loc.filesystem()
    try:
        found = fs.find(root, detail=True, withdirs=False)
    except backend_errors() as exc:
        raise source_error(url, "cannot list", exc) from exc
    for path, info in found.items():
        if info.get("type") != "file" or not path.startswith(root + "/"):
            continue
        rel = clean_path(path[len(root) + 1 :], url)
        if rel is None:
            continue  # the build root itself
        yield Entry(path=rel, type="file", size=int(info["size"]))


@dataclass
class Listing:
    """A local directory's entries in columns, in path order, with no object per entry:
    per entry ``paths`` and ``types`` (f: a file, d: an empty directory, l: a link); per
    file ``sizes`` and ``executable`` ("0" or "1" each); per link ``targets``."""

    paths: list[str] = field(default_factory=list)
    types: str = ""
    sizes: array = field(default_factory=lambda: array("q"))
    executable: str = ""
    targets: list[str] = field(default_factory=list)


def scan_local(url: str, root: str) -> Listing:
    """The entries of the directory ``root`` (named ``url`` in errors), in path order.
    Each directory's names are sorted as their paths sort (a directory's with the "/" its
    contents' paths carry on), so that the whole comes out sorted; only an empty directory
    is listed itself. Names are not checked here: ``check_entries`` does it."""
    paths: list[str] = []
    types: list[str] = []
    sizes = array("q")
    executable: list[str] = []
    targets: list[str] = []

    def listing(rel_dir: str) -> list[tuple[str, str, os.stat_result]]:
        try:
            with os.scandir(os.path.join(root, rel_dir)) as it:
                items = [(e.name, e.stat(follow_symlinks=False)) for e in it]
        except backend_errors() as exc:
            raise source_error(url, f"cannot list {rel_dir or '.'}", exc) from exc
        return sorted((name + "/" if stat.S_ISDIR(st.st_mode) else name, name, st) for name, st in items)

    stack = [("", iter(listing("")))]
    while stack:
        prefix, items = stack[-1]
        for _, name, st in items:
            rel = prefix + name
            mode = st.st_mode
            if stat.S_ISREG(mode):
                paths.append(rel)
                types.append("f")
                sizes.append(st.st_size)
                executable.append("1" if mode & 0o111 else "0")
            elif stat.S_ISDIR(mode):
                inner = listing(rel)
                if inner:
                    stack.append((rel + "/", iter(inner)))
                    break
                paths.append(rel)
                types.append("d")
            elif stat.S_ISLNK(mode):
                paths.append(rel)
                types.append("l")
                targets.append(os.readlink(os.path.join(root, rel)))
            else:
                raise UnsafeEntry(f"{url}: {rel} is a device, FIFO or socket, not a file")
        else:
            stack.pop()
    listed = Listing(paths, "".join(types), sizes, "".join(executable), targets)
    if not all(map(str.__lt__, paths, itertools.islice(paths, 1, None))):
        _sort(listed)  # an empty directory sorts before a name it is the start of ("d" < "d.txt")
    return listed


def _sort(listed: Listing) -> None:
    order = sorted(range(len(listed.paths)), key=listed.paths.__getitem__)
    file_number = list(itertools.accumulate((t == "f" for t in listed.types), initial=0))
    link_number = list(itertools.accumulate((t == "l" for t in listed.types), initial=0))
    types = listed.types
    files = [file_number[i] for i in order if types[i] == "f"]
    links = [link_number[i] for i in order if types[i] == "l"]
    listed.paths = [listed.paths[i] for i in order]
    listed.types = "".join(types[i] for i in order)
    listed.sizes = array("q", (listed.sizes[k] for k in files))
    listed.executable = "".join(listed.executable[k] for k in files)
    listed.targets = [listed.targets[k] for k in links]


# -- archives ------------------------------------------------------------------------


def _open(loc: Location) -> BinaryIO:
    fs, path = loc.filesystem()
    try:
        return fs.open(path, "rb")
    except backend_errors() as exc:
        raise source_error(loc.url, "cannot open", exc) from exc


def scan_tar_in_place(loc: Location) -> Iterator[Entry]:
    """Entries of an uncompressed tar; a file's ``offset`` is where its bytes are in the tar."""
    url = loc.url
    with _open(loc) as f:
        size = f.size if hasattr(f, "size") else f.seek(0, os.SEEK_END)
        f.seek(0)
        try:
            tar = tarfile.open(fileobj=f, mode="r:")
            members = list(tar)
        except (tarfile.TarError, EOFError) as exc:
            raise SourceInvalid(f"{url}: truncated or corrupt tar archive ({exc})") from exc
        for m in members:
            if m.isreg() and m.offset_data + m.size > size:
                raise SourceInvalid(f"{url}: truncated: {m.name} ends past the end of the archive")
        f.seek(tar.offset)
        if f.read(1024) != bytes(1024):
            raise SourceInvalid(f"{url}: truncated or corrupt after {tar.offset} bytes (no end-of-archive marker)")
    yield from _tar_entries(url, members, lambda m: (m.offset_data, ""))


def _tar_entries(url: str, members, locate: Callable) -> Iterator[Entry]:
    """Entries of tar members; ``locate(member)`` gives a file's (offset, sha256 or "")."""
    regular: dict[str, Entry] = {}
    for m in members:
        rel = clean_path(m.name, url)
        if rel is None:
            continue  # the archive's own root, "./"
        if m.issparse():
            raise SourceInvalid(f"{url}: {rel} is a sparse tar entry, which is not supported")
        if m.isreg():
            offset, digest = locate(m)
            e = Entry(path=rel, type="file", size=m.size, executable=bool(m.mode & 0o111), offset=offset, hash_sha256=digest)
            regular[rel] = e
            yield e
        elif m.isdir():
            yield Entry(path=rel, type="dir")
        elif m.issym():
            yield Entry(path=rel, type="symlink", target=m.linkname)
        elif m.islnk():
            # A hard link shares an earlier member's bytes.
            target = regular.get(clean_path(m.linkname, url) or "")
            if target is None:
                raise UnsafeEntry(f"{url}: hard link {rel} points to {m.linkname!r}, not an earlier file")
            yield Entry(
                path=rel,
                type="file",
                size=target.size,
                executable=bool(m.mode & 0o111),
                offset=target.offset,
                hash_sha256=target.hash_sha256,
            )
        else:
            raise UnsafeEntry(f"{url}: {rel} is a device, FIFO or other special entry")


class _Readable(Protocol):
    """What a decompressor gives: GzipFile is a BufferedIOBase, not an IO[bytes]."""

    def read(self, size: int = -1, /) -> bytes: ...


class _TailReader:
    """Counts what passes through and keeps the last bytes, to check a tar's end marker."""

    TAIL = 64 << 10

    def __init__(self, raw: _Readable):
        self.raw = raw
        self.pos = 0
        self.tail = bytearray()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.pos += len(data)
        self.tail += data
        del self.tail[: max(0, len(self.tail) - self.TAIL)]
        return data

    def drain(self) -> None:
        while self.read(BLOCK):
            pass

    # The rest of the file-object interface tarfile.open(fileobj=...) takes; a stream ("r|")
    # only reads, so nothing here is called.

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, /) -> int:
        raise io.UnsupportedOperation("a decompressed stream cannot seek")

    def write(self, b: bytes, /) -> int:
        raise io.UnsupportedOperation("a decompressed stream is read-only")

    def close(self) -> None:
        pass  # the caller closes the source


def _decompressed(kind: str, f: IO[bytes]) -> _Readable:
    if kind == "tar.gz":
        import gzip

        return gzip.GzipFile(fileobj=f, mode="rb")
    if kind == "tar.bz2":
        import bz2

        return bz2.BZ2File(f, mode="rb")
    if kind == "tar.xz":
        import lzma

        return lzma.LZMAFile(f, mode="rb")
    if kind == "tar.zst":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
    raise AssertionError(kind)


class Pack:
    """Where packed archives' file bytes go: appended, hashed, and located by offset."""

    def __init__(self, out: BinaryIO | None):
        self.out = out  # None: hash only (the version is already chunked)
        self.size = 0

    def add(self, chunks: Iterator[bytes]) -> tuple[int, int, str]:
        """Append a file's bytes; returns (offset, size, sha256)."""
        start, h = self.size, hashlib.sha256()
        for block in chunks:
            h.update(block)
            if self.out is not None:
                try:
                    self.out.write(block)
                except OSError as exc:  # the repository's fault, not the upload's
                    raise StoreUnavailable(f"cannot write the staged pack: {exc}") from exc
            self.size += len(block)
        return start, self.size - start, h.hexdigest()


def _decompressor_errors() -> tuple[type[BaseException], ...]:
    import lzma
    import zlib

    import zstandard

    return (zstandard.ZstdError, lzma.LZMAError, zlib.error)  # gzip and bz2 raise OSError subclasses


# What a truncated or corrupt archive raises while it is read.
_ARCHIVE_ERRORS: tuple[type[BaseException], ...] = (tarfile.TarError, zipfile.BadZipFile, EOFError, ValueError,
                                                    *_decompressor_errors())


def _blocks(f: IO[bytes], size: int | None = None) -> Iterator[bytes]:
    left = size
    while left is None or left > 0:
        block = f.read(BLOCK if left is None else min(BLOCK, left))
        if not block:
            if left:
                raise EOFError(f"unexpected end of data ({left} bytes missing)")
            return
        if left is not None:
            left -= len(block)
        yield block


def scan_packed(loc: Location, kind: str, pack: Pack) -> list[Entry]:
    """Entries of a compressed tar or a zip, their bytes appended to ``pack``."""
    url = loc.url
    try:
        with _open(loc) as f:
            if kind == "zip":
                return list(_scan_zip(url, f, pack))
            return list(_scan_tar_stream(url, kind, f, pack))
    except DepotError:
        raise
    except _ARCHIVE_ERRORS as exc:
        raise SourceInvalid(f"{url}: truncated or corrupt {kind} archive ({exc})") from exc
    except backend_errors() as exc:
        raise source_error(url, f"cannot read the {kind} archive", exc) from exc


def _scan_tar_stream(url: str, kind: str, f: BinaryIO, pack: Pack) -> Iterator[Entry]:
    reader = _TailReader(_decompressed(kind, f))
    tar = tarfile.open(fileobj=reader, mode="r|")
    located: dict[int, tuple[int, str]] = {}
    members = []
    for m in tar:
        if m.isreg():
            member = tar.extractfile(m)
            assert member is not None  # None only for a member that is not a regular file or a link
            offset, _, digest = pack.add(_blocks(member, m.size))
            located[id(m)] = (offset, digest)
        members.append(m)
    end = tar.offset
    reader.drain()  # lets the decompressor check its trailer and checksums
    trailing = reader.pos - end
    tail = bytes(reader.tail[-trailing:]) if 0 < trailing <= _TailReader.TAIL else bytes(reader.tail)
    if trailing < 1024 or tail[:1024] != bytes(1024):
        raise SourceInvalid(f"{url}: truncated or corrupt after {end} bytes (no end-of-archive marker)")
    yield from _tar_entries(url, members, lambda m: located[id(m)])


def _scan_zip(url: str, f: BinaryIO, pack: Pack) -> Iterator[Entry]:
    zf = zipfile.ZipFile(f)
    for info in zf.infolist():
        rel = clean_path(info.filename, url)
        if rel is None:
            continue
        if info.flag_bits & 0x1:
            raise SourceInvalid(f"{url}: {rel} is encrypted")
        mode = (info.external_attr >> 16) if info.create_system == 3 else 0
        if not stat.S_IFMT(mode):  # permission bits only (zipfile.writestr, many build scripts): a file
            mode |= stat.S_IFREG if mode else 0
        if info.is_dir():
            yield Entry(path=rel, type="dir")
        elif stat.S_ISLNK(mode):
            target = zf.read(info).decode("utf-8", "surrogateescape")
            yield Entry(path=rel, type="symlink", target=target)
        elif mode and not stat.S_ISREG(mode):  # a device, a FIFO, a socket
            raise UnsafeEntry(f"{url}: {rel} is a device, FIFO or other special entry")
        else:
            with zf.open(info) as member:  # CRC is checked when the member is read to its end
                offset, size, digest = pack.add(_blocks(member))
            yield Entry(path=rel, type="file", size=size, executable=bool(mode & 0o111), offset=offset, hash_sha256=digest)
