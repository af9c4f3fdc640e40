"""Writing a game's files the fast way the file system allows.

Whole-file writes in one call, room made up front for a file written in pieces
(``posix_fallocate``), copies of bytes already on disk made by the kernel
(``copy_file_range``: a reflink where the file system shares extents, as btrfs and XFS
do), and one sync of the whole file system before files are swapped in instead of one
``fsync`` per file (as ostree does).
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass

M_ARENA_MAX = -8  # glibc's mallopt parameter
BLOCK = 8 << 20  # a copy the kernel cannot make is read and written in blocks of this size
_NOT_SUPPORTED = (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.EXDEV, errno.ENOTSUP)


def _read_umask() -> int | None:
    """The process's umask, read without changing it (Linux gives it in /proc); None when
    unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return None


_UMASK = _read_umask()


def create(path: str, mode: int, dir_fd: int | None = None) -> int:
    """A new (or emptied) file at ``path`` (relative to the directory open as ``dir_fd``,
    if given), open for writing, with exactly ``mode``."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode, dir_fd=dir_fd)
        existed = False
    except FileExistsError:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC, dir_fd=dir_fd)
        existed = True
    if existed or _UMASK is None or _UMASK & mode:
        os.fchmod(fd, mode)  # its mode is the old file's, or the umask took bits away: set it
    return fd


def open_part(path: str, mode: int, size: int, dir_fd: int | None = None) -> int:
    """A file written in parts at ``path`` (as ``create``), open for writing: made by the
    first part to come, at ``size`` (``preallocate``) and with exactly ``mode``, then
    opened as it is by the others."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except FileExistsError:
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        if _UMASK is None or _UMASK & mode:
            os.fchmod(fd, mode)
        preallocate(fd, size)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_at(fd: int, data: memoryview | bytes, offset: int) -> None:
    """All of ``data`` at ``offset``."""
    n = os.pwrite(fd, data, offset)
    if n < len(data):  # a short write (a full disk, a signal): the rest, until it fails
        view = memoryview(data)[n:]
        offset += n
        while view:
            n = os.pwrite(fd, view, offset)
            view, offset = view[n:], offset + n


def preallocate(fd: int, size: int) -> None:
    """Room for ``size`` bytes, reserved at once: a file written in pieces is not grown
    piece by piece, and a full disk shows now, not half-way."""
    if size == 0:
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in _NOT_SUPPORTED:
            raise
        os.ftruncate(fd, size)


def copy_range(src: int, dst: int, size: int, src_offset: int, dst_offset: int) -> None:
    """``size`` bytes of ``src`` at ``src_offset`` written to ``dst`` at ``dst_offset``,
    by the kernel when it can (no copy at all where the file system shares extents)."""
    while size:
        try:
            n = os.copy_file_range(src, dst, size, src_offset, dst_offset)
        except OSError as exc:
            if exc.errno not in _NOT_SUPPORTED:
                raise
            n = 0
        if n == 0:  # not supported here, or the source ended early: read and write
            data = os.pread(src, min(size, BLOCK), src_offset)
            if not data:
                raise OSError(errno.EIO, "the source ended before the bytes to copy")
            write_at(dst, data, dst_offset)
            n = len(data)
        size, src_offset, dst_offset = size - n, src_offset + n, dst_offset + n


def copy_file(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """A new file ``dst`` holding the bytes of ``src``, copied by the kernel when it can."""
    fd_src = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fd = create(os.fspath(dst), 0o644)
        try:
            copy_range(fd_src, fd, os.fstat(fd_src).st_size, 0, 0)
        finally:
            os.close(fd)
    finally:
        os.close(fd_src)


def share_heap() -> None:
    """Let threads share the C heap (glibc's malloc: at most two arenas from now on, the
    setting MALLOC_ARENA_MAX=2 gives). By default each thread that allocates large
    buffers may get an arena of its own, and each arena keeps what was freed in it: eight
    download threads would hold tens of MB that nothing uses."""
    import ctypes

    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(M_ARENA_MAX, 2)


def sync_filesystem(path: str | os.PathLike[str]) -> None:
    """Everything written to the file system holding ``path``, on the disk (``syncfs``;
    ``sync`` where it is missing)."""
    import ctypes  # only here: most commands never sync

    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
        if syncfs is None or syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class Stamp:
    """What identifies a file's content without reading it: any write changes ``ctime``,
    and no program can set it back."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> "Stamp":
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def stamp(path: str | os.PathLike[str]) -> Stamp | None:
    with contextlib.suppress(OSError):
        return Stamp.of(os.stat(path))
    return None
