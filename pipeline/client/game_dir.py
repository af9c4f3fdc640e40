"""The state depot keeps inside an installed game directory, under ``DEST/.depot/``.

```
.depot/lock            held (flock) by the process working on the directory
.depot/manifest.json   the installed version's manifest, as published
.depot/installed.json  what is installed, and each file's size and mtime after install
.depot/staging/PATH    files being assembled, at their paths; moved into place once whole
.depot/swap.json       present only while files are being swapped into place
.depot/backup/         what the swap replaced, until the new version is recorded
```

A new version is assembled entirely in staging, then swapped in: every replaced or
removed entry goes to ``backup/`` first. A directory the game directory does not have yet
is moved in whole, one rename for all the files below it; other files are moved one by
one. If the swap fails, or the process dies in the middle of it, the old entries are put
back (at once, or by the next depot run on the directory) and the new ones return to
staging. ``installed.json`` is written last: until then the directory holds the previous
version, untouched.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import itertools
import json
import operator
import os
import shutil
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, TypedDict

from ..core.safety import STATE_DIR, check_entries
from ..errors import InstallBusy, ManifestInvalid, NotFound, StoreUnavailable
from ..formats import install_record
from ..formats.install_record import InstallRecord, InstallRecord2
from ..formats.manifest import FileEntry, Manifest
from .disk import sync_filesystem
from .tree import Tree

PREVIOUS_MANIFEST = "manifest.json"  # in backup/, beside entries named by 32 hex digits


def fault_point(step: str) -> None:
    """A named step of a swap ("place" a staged file, "record" the install), where a test makes it die."""


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # a temporary is never left behind
        raise


def check_manifest(m: Manifest, where: str) -> Manifest:
    """``m``, if every entry it names is safe to write under a game directory: the check
    ingest runs on a build (pipeline/core/safety.py), which also keeps ``.depot`` out. A
    manifest that fails it was never made by depot's ingest: it is refused before
    anything is written."""
    check_entries(m.iter_entries(), where)
    return m


def file_mode(entry: FileEntry) -> int:
    return 0o755 if entry.executable else 0o644


def _key(rel: str) -> str:
    return hashlib.sha256(rel.encode()).hexdigest()[:32]


def _exists(path: str | os.PathLike[str]) -> bool:
    return os.path.lexists(path)


class _Intent(TypedDict):
    """What a swap under way touches (``.depot/swap.json``), for a crash to put back."""

    version: str
    paths: list[str]  # entries set aside or replaced
    staged: list[str]  # files moved in one by one
    moved: list[str]  # directories moved in whole
    created: list[str]  # links made
    dirs: list[str]  # directories the swap may make


@dataclass
class GameDir:
    dest: Path
    _intent: _Intent | None = field(default=None, init=False, repr=False, compare=False)  # during a swap
    _listed: set[str] = field(default_factory=set, init=False, repr=False, compare=False)  # the intent's paths

    @classmethod
    def make(cls, dest: str | os.PathLike[str]) -> "GameDir":
        """The game directory at ``dest``, made (with its parents) if it is not there."""
        path = Path(dest)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"{path}: cannot make the game directory ({exc.strerror})") from None
        return cls(path)

    @property
    def state(self) -> Path:
        return self.dest / STATE_DIR

    @property
    def staging(self) -> Path:
        return self.state / "staging"

    @property
    def backup(self) -> Path:
        return self.state / "backup"

    def staging_path(self, entry: FileEntry) -> str:
        return os.path.join(self.dest, STATE_DIR, "staging", entry.path)

    @contextlib.contextmanager
    def locked(self) -> Iterator["GameDir"]:
        """Hold the directory's lock. Only ``.depot/lock`` is created here: staging comes
        when there is something to stage (see ``stage``)."""
        try:
            self.state.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.state / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreUnavailable(f"{self.dest}: cannot write the game directory ({exc.strerror})") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    raise InstallBusy(f"{self.dest}: another depot process is working on it") from None
                raise
            self.recover()
            yield self
        finally:
            os.close(fd)

    def stage(self, paths: Iterable[str]) -> set[str]:
        """Make the staging directory, once the version to stage has passed every check,
        holding nothing but files at ``paths`` (what an interrupted run staged for them is
        kept); returns the paths whose files it holds."""
        try:
            self.staging.mkdir(exist_ok=True)
            if not any(os.scandir(self.staging)):
                return set()
            return _keep_only(str(self.staging), set(paths))
        except OSError as exc:
            raise StoreUnavailable(f"{self.dest}: cannot write the game directory ({exc.strerror})") from None

    # -- what is installed ----------------------------------------------------------

    def manifest(self) -> Manifest:
        return check_manifest(self._manifest(), str(self.state / "manifest.json"))

    def tree(self) -> Tree:
        """The installed version's tree (checked like ``manifest``, in the same pass)."""
        return Tree(self._manifest(), str(self.state / "manifest.json"))

    def _manifest(self) -> Manifest:
        path = self.state / "manifest.json"
        if not (self.state / "installed.json").exists() or not path.exists():
            interrupted = (f"; an install was interrupted here, its files wait in {self.staging}: run it again "
                           "to finish" if self.staging.is_dir() else "")
            raise NotFound(f"{self.dest}: no depot installation here (no {self.state / 'installed.json'}{interrupted})")
        return Manifest.from_bytes(path.read_bytes(), str(path))

    def installed(self) -> Manifest | None:
        try:
            return self.manifest()
        except NotFound:
            return None

    def record(self) -> InstallRecord | InstallRecord2 | None:
        """What the last finished install recorded; None if nothing was, or if the record
        is damaged (then nothing on disk is trusted without reading it)."""
        path = self.state / "installed.json"
        try:
            return install_record.read(path.read_bytes(), str(path))
        except (FileNotFoundError, ManifestInvalid):
            return None

    def mtimes(self, tree: Tree) -> array | None:
        """The mtime of each file of ``tree`` (by number) as recorded by the finished
        install of its version, 0 where none is; None when nothing is recorded of it."""
        rec = self.record()
        m = tree.m
        if rec is None or (rec.product, rec.version) != (m.product, m.version):
            return None
        if isinstance(rec, InstallRecord2):
            return rec.mtimes if len(rec.mtimes) == len(tree) else None
        stamps = rec.files
        return array("q", (s.mtime_ns if (s := stamps.get(p)) is not None and s.size == size else 0
                           for p, size in zip(tree.paths, tree.sizes)))

    def intact(self, tree: Tree) -> bytearray:
        """For each file of ``tree``, whether it is known intact without reading it:
        recorded by the finished install of its version and unchanged (size, mtime, mode)
        since."""
        out = bytearray(len(tree))
        mtimes = self.mtimes(tree)
        if mtimes is None:
            return out
        for i, mtime in enumerate(mtimes):
            if not mtime:
                continue
            try:
                st = os.lstat(os.path.join(self.dest, tree.paths[i]))
            except OSError:
                continue
            if st.st_mtime_ns == mtime and st.st_size == tree.sizes[i] and (st.st_mode & 0o777) == tree.mode(i):
                out[i] = 1
        return out

    # -- swapping a staged version in -------------------------------------------------

    def swap_in(self, tree: Tree, staged: list[str], remove: list[str], origins: list[str],
                trust: str = "", mtimes: array | None = None, published: bytes | None = None) -> None:
        """Replace ``remove`` and the files at ``staged`` (all whole in staging) with the
        new files, then links and empty directories, then record the version of ``tree``
        as installed, with the ``mtimes`` of its files known (by number, 0 where not:
        those are read from the disk), and ``published``, its manifest's bytes as read
        (else written again from the manifest). Any failure before the record puts the
        previous version back, and removes the directories the swap made."""
        m = tree.m
        try:
            sync_filesystem(self.state)  # the new files' bytes on the disk before any name points at them
            moved, placed = self._plan(staged)
            self._intent = {"version": m.version, "paths": sorted(set(placed) | set(remove)), "staged": placed,
                            "moved": moved, "created": [], "dirs": self._new_dirs(tree, staged)}
            self._listed = set(self._intent["paths"])
            shutil.rmtree(self.backup, ignore_errors=True)
            self.backup.mkdir()
            self._write_intent()
        except OSError as exc:
            self._intent = None
            shutil.rmtree(self.backup, ignore_errors=True)
            raise StoreUnavailable(f"{exc.filename or self.state}: cannot be written ({exc.strerror}); {self.dest} "
                                   f"still holds the version it held, and what was downloaded is kept for the next "
                                   f"try") from None
        try:
            for rel in remove:
                self._set_aside(rel)
            known: set[str] = set()
            for rel in moved + placed:
                self._make_parents(rel, known)
                self._set_aside(rel)
                fault_point("place")
                os.replace(os.path.join(self.staging, rel), os.path.join(self.dest, rel))
            for path, target in tree.links:
                self._place_link(path, target)
            for path in tree.dirs:  # not from `known`: a link placed just now may stand in the way
                self._make_parents(path + "/x")
            self._finish(tree, origins, trust, mtimes, published)
        except OSError as exc:
            self.recover()
            where = exc.filename or self.dest
            raise StoreUnavailable(f"{where}: cannot be replaced ({exc.strerror}); {self.dest} still holds "
                                   f"the version it held, and what was downloaded is kept for the next try") from exc
        except BaseException:
            self.recover()
            raise
        os.unlink(self.state / "swap.json")
        shutil.rmtree(self.backup, ignore_errors=True)
        shutil.rmtree(self.staging, ignore_errors=True)

    def _plan(self, staged: list[str]) -> tuple[list[str], list[str]]:
        """The directories to move in whole (each the first of a staged file's parents
        that is not a directory in the game directory: nothing of the version there to
        keep) and the files to move in one by one. Each directory is looked at once."""
        is_dir: dict[str, bool] = {}
        whole: dict[str, str] = {}  # a staged file's directory -> the directory moved in whole that holds it, or ""
        moved: dict[str, None] = {}
        placed: list[str] = []
        for rel in staged:
            d = rel.rpartition("/")[0]
            top = whole.get(d)
            if top is None:
                top = whole[d] = self._first_missing(d, is_dir)
            if top:
                moved[top] = None
            else:
                placed.append(rel)
        return list(moved), placed

    def _first_missing(self, d: str, is_dir: dict[str, bool]) -> str:
        """The first of ``d`` and the directories above it, from the top, that is not a
        directory in the game directory; "" if every one is."""
        parts = d.split("/") if d else []
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in is_dir:
                path = os.path.join(self.dest, parent)
                is_dir[parent] = os.path.isdir(path) and not os.path.islink(path)
            if not is_dir[parent]:
                return parent
        return ""

    def _new_dirs(self, tree: Tree, staged: list[str]) -> list[str]:
        """The directories a swap of ``tree`` may make that are not directories now: named
        before the swap begins, so that putting the previous version back removes them."""
        deepest = {rel.rpartition("/")[0] for rel in staged}
        deepest.update(path.rpartition("/")[0] for path, _ in tree.links)
        deepest.update(tree.dirs)
        wanted: set[str] = set()
        for d in deepest:
            while d and d not in wanted:
                wanted.add(d)
                d = d.rpartition("/")[0]
        # parents first: below a path where nothing is, nothing is (not looked at)
        root, new, absent = os.path.join(self.dest, ""), [], set()
        for d in sorted(wanted):
            if d.rpartition("/")[0] in absent or not os.path.lexists(root + d):
                absent.add(d)
                new.append(d)
            elif os.path.islink(root + d) or not os.path.isdir(root + d):
                new.append(d)
        return new

    def _swapping(self) -> _Intent:
        assert self._intent is not None, "only a swap sets things aside"
        return self._intent

    def _write_intent(self) -> None:
        _atomic_write(self.state / "swap.json", json.dumps(self._intent).encode())

    def _set_aside(self, rel: str) -> None:
        """Move what is at ``rel`` to the backup, and make sure the intent names it, so
        that whatever a swap touches, a crash can put back."""
        target = os.path.join(self.dest, rel)
        if _exists(target):
            intent = self._swapping()
            if rel not in self._listed:
                intent["paths"].append(rel)
                self._listed.add(rel)
                self._write_intent()
            os.replace(target, os.path.join(self.backup, _key(rel)))

    def recover(self) -> None:
        """Undo a swap that did not reach its record: the old entries come back from
        backup, the new files go back to staging (they stay verified and reusable), links
        the swap created are removed."""
        self._intent = None  # nothing is set aside while putting things back
        intent_path = self.state / "swap.json"
        if not intent_path.exists():
            return
        intent = json.loads(intent_path.read_text())
        rec = self.record()
        if rec is None or rec.version != intent["version"]:
            staged = set(intent["staged"])
            self.staging.mkdir(exist_ok=True)
            for rel in intent["created"]:
                if os.path.islink(self.dest / rel) and not _exists(self.backup / _key(rel)):
                    os.unlink(self.dest / rel)
            for rel in intent.get("moved", []):
                target = self.dest / rel
                if os.path.isdir(target) and not os.path.islink(target):
                    self._return_to_staging(rel)
            for rel in sorted(intent["paths"], reverse=True):
                target, saved = self.dest / rel, self.backup / _key(rel)
                if rel in staged and os.path.isfile(target) and not os.path.islink(target):
                    self._return_to_staging(rel)
                if _exists(saved):
                    if _exists(target):
                        _remove(target)
                    self._make_parents(rel)
                    os.replace(saved, target)
            for rel in sorted(intent.get("dirs", []), key=lambda d: -d.count("/")):
                path = self.dest / rel
                if os.path.isdir(path) and not os.path.islink(path):
                    with contextlib.suppress(OSError):  # not empty: something else lives there now
                        os.rmdir(path)
            if _exists(self.backup / PREVIOUS_MANIFEST):
                os.replace(self.backup / PREVIOUS_MANIFEST, self.state / "manifest.json")
        os.unlink(intent_path)
        shutil.rmtree(self.backup, ignore_errors=True)

    def _return_to_staging(self, rel: str) -> None:
        """A new entry the swap moved in goes back where it came from, unless staging holds
        that path again (then what is in the game directory is not the swap's)."""
        back = os.path.join(self.staging, rel)
        if not _exists(back):
            os.makedirs(os.path.dirname(back), exist_ok=True)
            os.replace(self.dest / rel, back)

    def _finish(self, tree: Tree, origins: list[str], trust: str, known: array | None,
                published: bytes | None) -> None:
        """Record the version of ``tree`` as installed. The previous manifest goes to the
        backup first: a crash before the record is written must leave the previous version
        whole, its manifest included."""
        m = tree.m
        with contextlib.suppress(FileNotFoundError):
            os.link(self.state / "manifest.json", self.backup / PREVIOUS_MANIFEST)
        _atomic_write(self.state / "manifest.json", published or m.to_bytes_known_valid())  # m was read from an origin
        mtimes = array("q", known) if known is not None else array("q", bytes(8 * len(tree)))
        for i in itertools.compress(range(len(mtimes)), map(operator.not_, mtimes)):  # those not known
            mtimes[i] = os.stat(os.path.join(self.dest, tree.paths[i])).st_mtime_ns
        record = InstallRecord2(m.product, m.version, tuple(origins), mtimes, trust)
        fault_point("record")
        _atomic_write(self.state / "installed.json", record.to_bytes())

    def _make_parents(self, rel: str, known: set[str] | None = None) -> None:
        """Real directories for every parent of ``rel``. A file or link in the way is set
        aside (with the swap's backup), so nothing is ever written through a link.
        ``known`` remembers directories already checked during one swap."""
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if known is not None and parent in known:
                continue
            current = os.path.join(self.dest, parent)
            if os.path.islink(current) or (_exists(current) and not os.path.isdir(current)):
                if self._intent is not None:
                    self._set_aside(parent)  # during a swap: kept for a rollback
                else:
                    _remove(Path(current))
            if not _exists(current):
                os.mkdir(current)
            if known is not None:
                known.add(parent)

    def _place_link(self, path: str, target: str) -> None:
        self._make_parents(path)
        at = self.dest / path
        if os.path.islink(at) and os.readlink(at) == target:
            return
        tmp = self.backup / f"link-{_key(path)}"  # not a name of the backup's: those are hex only
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(target, tmp)
        self._set_aside(path)
        self._swapping()["created"].append(path)
        self._write_intent()
        os.replace(tmp, at)


def _keep_only(root: str, keep: set[str]) -> set[str]:
    """Remove from the tree at ``root`` everything but the files at ``keep`` (relative
    paths) and the directories holding them; returns the relative paths of those kept."""
    kept: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        rel_dir = os.path.relpath(dirpath, root)
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            rel = prefix + name
            if rel in keep and not os.path.islink(os.path.join(dirpath, name)):
                kept.add(rel)
            else:
                os.unlink(os.path.join(dirpath, name))
        if prefix and prefix[:-1] in keep:  # a directory where a file is to be
            shutil.rmtree(dirpath)
        elif prefix:
            with contextlib.suppress(OSError):  # not empty: it holds files kept
                os.rmdir(dirpath)
    return kept


def _remove(path: Path) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)
