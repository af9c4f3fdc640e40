"""The state depot keeps inside an installed game directory, under ``DEST/.depot/``.

```
.depot/lock            held (flock) by the process working on the directory
.depot/manifest.json   the installed version's manifest, as published
.depot/installed.json  what was installed, and each file's size and mtime after install
.depot/journal         files placed by an install still in progress (for resuming)
.depot/staging/        files being assembled; moved into place only once verified
```

``installed.json`` is written last: until it is, the directory is an install in progress,
and running the install again resumes it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from . import manifest as manifest_mod
from . import schemas
from .errors import InstallBusy, NotFound
from .manifest import FileEntry, Manifest

STATE_DIR = ".depot"
FORMAT = "depot.installed/1"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def file_mode(entry: FileEntry) -> int:
    return 0o755 if entry.executable else 0o644


@dataclass
class Installation:
    dest: Path

    @property
    def state(self) -> Path:
        return self.dest / STATE_DIR

    @property
    def staging(self) -> Path:
        return self.state / "staging"

    def staging_path(self, entry: FileEntry) -> Path:
        # Named by path, so two entries with the same content are still two files.
        return self.staging / hashlib.sha256(entry.path.encode()).hexdigest()[:32]

    @contextlib.contextmanager
    def locked(self) -> Iterator["Installation"]:
        self.staging.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    raise InstallBusy(f"{self.dest}: another depot process is working on it") from None
                raise
            yield self
        finally:
            os.close(fd)

    # -- what is installed ----------------------------------------------------------

    def manifest(self) -> Manifest:
        path = self.state / "manifest.json"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{self.dest}: no depot installation here (no {path})") from None
        return Manifest.from_dict(schemas.loads(data, manifest_mod.SCHEMA, str(path)))

    def record(self) -> dict:
        """installed.json, or {} while nothing is completely installed."""
        try:
            return json.loads((self.state / "installed.json").read_text())
        except FileNotFoundError:
            return {}

    def finish(self, m: Manifest, origins: list[str]) -> None:
        """Declare ``m`` installed: its manifest, then the record with every file's stat."""
        _atomic_write(self.state / "manifest.json", manifest_mod.to_bytes(m))
        files = {}
        for f in m.files:
            st = os.stat(self.dest / f.path)
            files[f.path] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        record = {"format": FORMAT, "product": m.product, "version": m.version, "origins": origins, "files": files}
        _atomic_write(self.state / "installed.json", json.dumps(record, sort_keys=True, indent=1).encode())
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.state / "journal")
        shutil.rmtree(self.staging, ignore_errors=True)

    def trusted(self, m: Manifest) -> set[str]:
        """Files known intact without reading them: recorded by a finished install of the
        same version, or by this install's journal, and unchanged (size, mtime) since."""
        known: dict[str, tuple[int, int]] = {}
        rec = self.record()
        if rec.get("product") == m.product and rec.get("version") == m.version:
            known.update({p: (v["size"], v["mtime_ns"]) for p, v in rec.get("files", {}).items()})
        with contextlib.suppress(FileNotFoundError):
            for line in (self.state / "journal").read_text().splitlines():
                parts = line.rsplit("\t", 3)
                if len(parts) == 4 and parts[3] == m.version:
                    known[parts[0]] = (int(parts[1]), int(parts[2]))
        out = set()
        for f in m.files:
            want = known.get(f.path)
            if want is None:
                continue
            try:
                st = os.lstat(self.dest / f.path)
            except OSError:
                continue
            if (st.st_size, st.st_mtime_ns) == want and st.st_size == f.size and (st.st_mode & 0o777) == file_mode(f):
                out.add(f.path)
        return out

    def journal(self, entry: FileEntry, version: str) -> None:
        st = os.stat(self.dest / entry.path)
        with open(self.state / "journal", "a") as j:
            j.write(f"{entry.path}\t{st.st_size}\t{st.st_mtime_ns}\t{version}\n")

    # -- placing entries safely -------------------------------------------------------

    def make_parents(self, rel: str) -> None:
        """Real directories for every parent of ``rel``: a file or a link in the way is
        removed, so that nothing is ever written through a link out of ``dest``."""
        current = self.dest
        for part in rel.split("/")[:-1]:
            current = current / part
            if current.is_symlink() or (current.exists() and not current.is_dir()):
                current.unlink()
            if not current.exists():
                current.mkdir()

    def clear(self, rel: str) -> None:
        """Remove whatever is at ``rel`` (file, link or directory tree)."""
        target = self.dest / rel
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()

    def place_file(self, entry: FileEntry, staged: Path) -> None:
        """Move a verified staging file into place, with its mode."""
        self.make_parents(entry.path)
        target = self.dest / entry.path
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.chmod(staged, file_mode(entry))
        os.replace(staged, target)

    def place_link(self, entry: FileEntry) -> None:
        self.make_parents(entry.path)
        target = self.dest / entry.path
        if target.is_symlink() and os.readlink(target) == entry.target:
            return
        tmp = self.staging / f"link-{hashlib.sha256(entry.path.encode()).hexdigest()[:32]}"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(entry.target, tmp)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(tmp, target)

    def place_dir(self, entry: FileEntry) -> None:
        self.make_parents(entry.path + "/x")
