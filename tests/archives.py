"""Building archives for tests, including ones no well-behaved tool would make."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import zstandard


def tar_member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, mode: int = 0o644, link: str = "") -> tuple:
    return (name, data, kind, mode, link)


def write_tar(path: Path, members: list[tuple], compression: str = "") -> Path:
    """An uncompressed, gz, zst, bz2 or xz tar of (name, data, type, mode, linkname) members."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, data, kind, mode, link in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname, info.mtime = kind, mode, link, 1700000000
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    body = raw.getvalue()
    if compression == "gz":
        import gzip

        body = gzip.compress(body, mtime=0)
    elif compression == "zst":
        body = zstandard.ZstdCompressor().compress(body)
    elif compression == "bz2":
        import bz2

        body = bz2.compress(body)
    elif compression == "xz":
        import lzma

        body = lzma.compress(body)
    path.write_bytes(body)
    return path


def tar_of_dir(src: Path, dest: Path, compression: str = "") -> Path:
    """``src`` as an archive, with the same entries as the directory."""
    members = []
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src).as_posix()
        st = p.lstat()
        if p.is_symlink():
            members.append(tar_member(rel, kind=tarfile.SYMTYPE, mode=0o777, link=os.readlink(p)))
        elif p.is_dir():
            members.append(tar_member(rel + "/", kind=tarfile.DIRTYPE, mode=0o755))
        else:
            members.append(tar_member(rel, p.read_bytes(), mode=stat.S_IMODE(st.st_mode)))
    return write_tar(dest, members, compression)


def zip_of_dir(src: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(src.rglob("*")):
            rel = p.relative_to(src).as_posix()
            st = p.lstat()
            if p.is_symlink():
                info = zipfile.ZipInfo(rel, date_time=(2024, 1, 1, 0, 0, 0))
                info.create_system = 3
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, os.readlink(p))
            elif p.is_dir():
                info = zipfile.ZipInfo(rel + "/", date_time=(2024, 1, 1, 0, 0, 0))
                info.create_system = 3
                info.external_attr = (stat.S_IFDIR | 0o755) << 16
                zf.writestr(info, b"")
            else:
                info = zipfile.ZipInfo(rel, date_time=(2024, 1, 1, 0, 0, 0))
                info.create_system = 3
                info.external_attr = (stat.S_IFREG | stat.S_IMODE(st.st_mode)) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, p.read_bytes())
    return dest
