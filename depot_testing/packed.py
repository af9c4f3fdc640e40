"""A game of many small files, in three versions, for what must hold when small files are
packed into shared chunks: plans, stats, gc, the service's figures.

Small files (text of 200 B to 3 KB, icons of random bytes up to 6 KB) go under the
product's ``pack_below`` (16 KiB with the fixture's chunk sizes); ``bin/game`` (320 KiB)
is cut on its own. Each version edits a few small files, adds one and removes one, so
that the packed stream changes in a few places only.
"""

from __future__ import annotations

import concurrent.futures as cf
import random
from pathlib import Path

PRODUCT = "smallfiles"
VERSIONS = ("1.0", "2.0", "3.0")
WORDS = "sword shield arrow potion dragon castle forest river quest gold silver mage knight tower".split()

# what each version changes, against the one before it
EDITED = {"2.0": ("text/b/file17.txt", "ui/icon12.bin", "text/f/file52.txt"),
          "3.0": ("text/a/file02.txt", "text/d/file34.txt")}
ADDED = {"2.0": "text/b/file17a.txt", "3.0": "ui/icon33a.bin"}
REMOVED = {"2.0": "ui/icon30.bin", "3.0": "text/c/file25.txt"}


def _text(rnd: random.Random, size: int) -> bytes:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < size:
        words.append(rnd.choice(WORDS))
    return (" ".join(words) + "\n").encode()


def _first(rnd: random.Random) -> dict[str, bytes]:
    files = {}
    for i in range(60):
        files[f"text/{'abcdef'[i // 10]}/file{i:02d}.txt"] = _text(rnd, rnd.randrange(200, 3000))
    for i in range(40):
        files[f"ui/icon{i:02d}.bin"] = rnd.randbytes(rnd.randrange(500, 6000))
    files["bin/game"] = rnd.randbytes(320 << 10)
    return files


def _next(rnd: random.Random, files: dict[str, bytes], version: str) -> dict[str, bytes]:
    files = dict(files)
    for path in EDITED[version]:
        data = bytearray(files[path])
        at = len(data) // 2
        data[at : at + 16] = rnd.randbytes(16) if path.endswith(".bin") else b"  EDITED  TEXT  "
        files[path] = bytes(data)
    added = ADDED[version]
    files[added] = _text(rnd, 1500) if added.endswith(".txt") else rnd.randbytes(2500)
    del files[REMOVED[version]]
    return files


def write_builds(root: Path) -> dict[str, Path]:
    """Each version's files under ``root/<version>``; the directories by version."""
    rnd = random.Random(19)
    out, files = {}, _first(rnd)
    for version in VERSIONS:
        if version != VERSIONS[0]:
            files = _next(rnd, files, version)
        for rel, data in files.items():
            path = root / version / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        out[version] = root / version
    return out


def chunk_packed_versions(repo: Path, builds: dict[str, Path], versions=VERSIONS, plans: bool = True):
    """A repository at ``repo`` with ``versions`` ingested and chunked with the fixture's
    chunk sizes (files under 16 KiB packed), and each one planned from the one before."""
    from pipeline.build import products
    from pipeline.build.chunk import chunk
    from pipeline.build.ingest import ingest
    from pipeline.delta.diff import diff
    from pipeline.storage import open_store

    from .fixtures import fixture_params

    store = open_store(str(repo))
    products.configure(store, PRODUCT, fixture_params())
    with cf.ThreadPoolExecutor(2) as ex:
        for i, v in enumerate(versions):
            ingest(store, str(builds[v]), PRODUCT, v, ex)
            chunk(store, PRODUCT, v, ex)
            if plans and i:
                diff(store, PRODUCT, versions[i - 1], v, ex)
    return store
