"""preload: download an embargoed version before its release, without its key.

The version's manifest is sealed (it names files), so the client reads its plain, signed
pre-load list (formats.preload): every chunk object the version needs. It downloads those
the installed version lacks into the game directory's pre-load staging, each object as
stored (sealed or plain) under its name:

```
.depot/preload/list.json   the pre-load list, as published: what the objects are for
.depot/preload/chunks/…    the objects, by their keys, each written whole (or not at all)
```

Each object is checked as far as it can be without the key: its size, a sealed object's
header (magic and key id), a plain chunk against its id. Killed, it resumes: objects there
are kept. At release, ``install`` and ``update`` read these objects before any origin:
each is opened, decoded, checked against its id and written to its files in one pass,
and none is downloaded again (``staged``). A finished install of the version removes them.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import layout
from ..core import codec
from ..core.progress import Progress, ignore
from ..errors import ContentAuthenticationFailed, DestinationConflict, InvalidArgument, IntegrityError, NotFound, \
    StoreUnavailable
from ..formats import sealed
from ..formats.manifest import Chunk
from ..formats.preload import Preload
from ..formats.release import Release
from ..storage import ReadStore, open_store
from .fetch import Fetcher
from .game_dir import GameDir

PRELOAD_DIR = "preload"
LIST = "list.json"


@dataclass(frozen=True)
class PreloadResult:
    product: str
    version: str
    dest: str
    key_id: str
    release_at: str | None  # when the release is scheduled, once that is published
    chunks: int  # the objects the version needs that the installed version lacks
    bytes: int
    chunks_fetched: int
    bytes_downloaded: int
    chunks_present: int  # staged by an earlier run
    chunks_installed: int  # held by the installed version: nothing to download
    origins: list = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def staging(dest: Path) -> Path:
    return GameDir(Path(dest)).state / PRELOAD_DIR


def staged(dest: Path) -> ReadStore | None:
    """The objects pre-loaded into ``dest``, to read before any origin; None if none are."""
    path = staging(dest)
    return open_store(str(path)) if (path / LIST).is_file() else None


def preloaded(dest: Path) -> Preload | None:
    """The pre-load list of what is staged in ``dest``, if anything is."""
    path = staging(dest) / LIST
    try:
        return Preload.from_bytes(path.read_bytes(), str(path))
    except FileNotFoundError:
        return None


def staged_bytes(dest: Path, chunks: dict[str, Chunk]) -> int:
    """The stored bytes of ``chunks`` whose objects are pre-loaded in ``dest``: what an
    update from there does not download."""
    store = staged(dest)
    if store is None:
        return 0
    return sum(c.stored_size for c in chunks.values() if store.has(layout.chunk_key(c.id, c.key_id)))


def finished(dest: Path, version: str) -> None:
    """``version`` is installed: what was pre-loaded for it goes."""
    listed = preloaded(dest)
    if listed is not None and listed.version == version:
        shutil.rmtree(staging(dest), ignore_errors=True)


def preload(fetcher: Fetcher, product: str, version: str, dest: Path, jobs: int = 8, progress: Progress = ignore,
            on_total: Progress = ignore) -> PreloadResult:
    """Pre-load ``version`` into ``dest`` (a game directory, installed or not); resumable.
    ``on_total(bytes)`` is told what is left to download, ``progress(bytes)`` as it comes."""
    started = time.monotonic()
    name = layout.preload_key(product, version)
    try:
        listed = fetcher.document(name, Preload.from_bytes)
    except NotFound:
        raise InvalidArgument(f"{product} {version} has no pre-load list: it is not embargoed (install it)") from None
    if (listed.product, listed.version) != (product, version):
        raise NotFound(f"the pre-load list served for {product} {version} ({fetcher.url_of(name)}) is for "
                       f"{listed.product} {listed.version}")
    inst = GameDir.make(dest)
    dest = inst.dest
    with inst.locked():
        installed = inst.installed()
        if installed is not None and installed.product != product:
            raise DestinationConflict(f"{dest} holds {installed.product} {installed.version}: pre-load {product} "
                                      "into another directory")
        have = set(installed.unique_chunks()) if installed is not None else set()
        _begin(dest, listed)
        store = open_store(str(staging(dest)))
        wanted = [c for c in listed.chunks if c.id not in have]
        present = [c for c in wanted if _staged_whole(store, c)]
        todo = [c for c in wanted if not _staged_whole(store, c)]
        on_total(sum(c.stored_size for c in todo))
        fetched = _Counter()
        with cf.ThreadPoolExecutor(max(1, jobs)) as pool:
            for _ in pool.map(lambda c: _fetch(fetcher, store, c, fetched, progress), todo):
                pass
    return PreloadResult(product, version, str(dest), listed.key_id, _release_at(fetcher, product, version),
                         len(wanted), sum(c.stored_size for c in wanted), fetched.chunks, fetched.bytes, len(present),
                         len(listed.chunks) - len(wanted), [s.to_dict() for s in fetcher.stats],
                         round(time.monotonic() - started, 3))


class _Counter:
    def __init__(self) -> None:
        self.chunks = self.bytes = 0
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.chunks += 1
            self.bytes += n


def _begin(dest: Path, listed: Preload) -> None:
    """Staging for ``listed``: what an earlier pre-load of another version staged goes,
    but the objects this one needs too."""
    path = staging(dest)
    before = preloaded(dest)
    if before is not None and before.to_bytes() != listed.to_bytes():
        keep = {layout.chunk_key(c.id, c.key_id) for c in listed.chunks}
        old = open_store(str(path))
        for key in list(old.list(layout.CHUNK_PREFIX)):
            if key not in keep:
                old.delete(key)
    try:
        path.mkdir(exist_ok=True)
        tmp = path / f".{LIST}.tmp"
        tmp.write_bytes(listed.to_bytes())
        os.replace(tmp, path / LIST)
    except OSError as exc:
        raise StoreUnavailable(f"{path}: cannot be written ({exc.strerror})") from None


def _staged_whole(store, c: Chunk) -> bool:
    """An object is written whole or not at all: one of its size is the one fetched."""
    key = layout.chunk_key(c.id, c.key_id)
    with contextlib.suppress(NotFound):
        return store.has(key) and store.size(key) == c.stored_size
    return False


def _fetch(fetcher: Fetcher, store, c: Chunk, fetched: _Counter, progress: Progress) -> None:
    key = layout.chunk_key(c.id, c.key_id)
    data = fetcher.get(key, lambda data: _checked(c, key, data), c.stored_size)
    store.put_if_absent(key, data)
    fetched.add(len(data))
    progress(len(data))


def _checked(c: Chunk, key: str, data: bytes) -> bytes:
    """What can be checked before release: the size, a sealed object's header, a plain
    chunk's id."""
    if len(data) != c.stored_size:
        raise IntegrityError(f"{key}: {len(data)} bytes where the pre-load list says {c.stored_size}")
    if c.key_id:
        if sealed.key_id(data, key) != c.key_id:
            raise ContentAuthenticationFailed(f"{key}: not sealed with content key {c.key_id}")
    else:
        codec.decode(c.id, data, c.size)
    return data


def _release_at(fetcher: Fetcher, product: str, version: str) -> str | None:
    try:
        return fetcher.document(layout.release_key(product, version), Release.from_bytes).at
    except NotFound:
        return None
