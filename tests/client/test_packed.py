"""The client on packed versions: a chunk holds slices of many files and a file may
straddle chunks. Each chunk is fetched once and written to every file that holds a slice
of it; an interrupted install keeps every chunk it wrote; repair fetches only a damaged
file's chunks; identical files on disk are copied; a fresh install moves directories in
whole."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from depot_testing.fixtures import PRODUCT, fixture_params, fixture_tar
from depot_testing.http_origins import StaticOrigin
from helpers import ROOT, assert_installed, fetcher, tree
from pipeline import layout
from pipeline.core import codec
from pipeline.client import game_dir
from pipeline.client.install import install
from pipeline.client.repair import repair
from pipeline.client.update import update
from pipeline.client.verify import verify
from pipeline.formats import manifest
from pipeline.formats.manifest import ChunkRef, FileEntry, Manifest
from pipeline.storage import open_store

PACK_BELOW = 128 << 10  # the fixture's level files are packed too: several pack chunks, files straddling them


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> Path:
    """A repository of the fixture versions 1.0.0 and 1.1.0 built with files under
    128 KiB packed."""
    from pipeline.build import products
    from pipeline.build.chunk import chunk
    from pipeline.build.ingest import ingest

    root = tmp_path_factory.mktemp("packed")
    store = open_store(str(root))
    products.configure(store, PRODUCT, fixture_params(), pack_below=PACK_BELOW)
    with cf.ThreadPoolExecutor(2) as ex:
        for v in ("1.0.0", "1.1.0"):
            ingest(store, str(fixture_tar(v)), PRODUCT, v, ex)
            chunk(store, PRODUCT, v, ex)
    return root


def every(n: int) -> Callable[[bytes], list[int]]:
    """Cuts of a pack stream every ``n`` bytes."""
    return lambda stream: list(range(0, len(stream), n))[1:] + [len(stream)]


def repack(origin: Path, product: str, version: str, build: Path, pack_below: int,
           cuts: Callable[[bytes], list[int]]) -> Manifest:
    """Publish at ``origin`` (a local repository holding ``version``) a manifest of the
    same files with those of 1 to ``pack_below - 1`` bytes packed, their bytes read from
    ``build``, the pack stream cut at ``cuts(stream)`` (ends of chunks, the last one the
    stream's length) instead of by FastCDC. Returns the new manifest."""
    store = open_store(str(origin))
    m = Manifest.from_bytes(store.get(layout.manifest_key(product, version)), version)
    packed = [e for e in m.entries if e.type == "file" and 0 < e.size < pack_below]
    stream = b"".join((build / e.path).read_bytes() for e in packed)
    ends = cuts(stream)
    chunks = []  # (start, end, id, stored size)
    start = 0
    for end in ends:
        data = stream[start:end]
        stored = codec.encode(data)
        store.put_if_absent(layout.chunk_key(codec.chunk_id(data)), stored)
        chunks.append((start, end, codec.chunk_id(data), len(stored)))
        start = end
    slices: dict[str, tuple[ChunkRef, ...]] = {}
    pos = 0
    for e in packed:
        refs = []
        for a, b, cid, stored_size in chunks:
            lo, hi = max(a, pos), min(b, pos + e.size)
            if lo < hi:
                refs.append(ChunkRef(lo - pos, hi - lo, cid, stored_size, lo - a, b - a))
        slices[e.path] = tuple(refs)
        pos += e.size
    entries = [FileEntry(e.path, e.type, e.size, e.executable, e.hash_sha256, e.target,
                         chunks=slices.get(e.path, e.chunks)) for e in m.entries]
    new = Manifest(product, version, m.params, entries, pack_below)
    store.put(layout.manifest_key(product, version), new.to_bytes())
    return new


def load(origin: Path, version: str):
    return manifest.load(open_store(str(origin)), PRODUCT, version)


def chunk_requests(origin: StaticOrigin) -> dict[str, int]:
    return {p.rsplit("/", 1)[1]: n for p, n in origin.requests_by_path.items() if p.startswith("/chunks/")}


def test_the_packed_fixture_straddles_chunks(packed):
    """What the tests below rely on: pack chunks holding many files, files across two."""
    m = load(packed, "1.0.0")
    shared = {c.id for f in m.files for c in f.chunks if not c.whole}
    assert len(shared) == 3
    assert [f.path for f in m.files if len(f.chunks) > 1 and not f.chunks[0].whole] == \
        ["data/levels/level02.dat", "data/levels/level05.dat"]


@pytest.mark.parametrize("cut", ["fastcdc", "every-5000-bytes"])
def test_a_packed_version_installs_byte_exact_fetching_each_chunk_once(packed, build_dirs, tmp_path, cut):
    origin = packed
    if cut != "fastcdc":  # cut by hand: files across up to 15 chunks, chunks across up to 3 files
        origin = tmp_path / "origin"
        subprocess.run(["cp", "-a", str(packed), str(origin)], check=True)
        repack(origin, PRODUCT, "1.0.0", build_dirs["1.0.0"], PACK_BELOW, every(5000))
    m = load(origin, "1.0.0")
    with StaticOrigin(origin) as http:
        r = install(fetcher(http.url), PRODUCT, "1.0.0", tmp_path / "game", jobs=4)
        requests = chunk_requests(http)
    assert_installed(tmp_path / "game", build_dirs["1.0.0"])
    assert requests == {cid: 1 for cid in m.unique_chunks()}
    assert (r.chunks_fetched, r.bytes_downloaded) == (len(requests), sum(c.stored_size for c in m.unique_chunks().values()))
    assert r.bytes_reused == 0 and r.files_written == len(m.files)


STOPPED_AFTER_ONE_CHUNK = """
import os, signal, sys
from pathlib import Path
from typing import Callable
from helpers import fetcher
from pipeline.client.install import install

origin, product, version, dest = sys.argv[1:]
install(fetcher(origin), product, version, Path(dest), jobs=1, progress=lambda n: os.kill(os.getpid(), signal.SIGKILL))
"""


class Stop(Exception):
    """What a progress callback raises to stop an install (a player pressing cancel)."""


@pytest.mark.parametrize("how", ["progress-raises", "sigkill"])
def test_an_interrupted_packed_install_keeps_the_chunk_it_wrote(packed, build_dirs, tmp_path, how):
    """The first chunk delivered is the first pack chunk: slices of six files, the last of
    them straddling into the next chunk. Stopped right after it, the next run puts it
    together again from those six staging files and fetches every other chunk, not it."""
    m = load(packed, "1.0.0")
    first = m.files[0].chunks[0].id
    dest = tmp_path / "game"
    if how == "sigkill":
        p = subprocess.run([sys.executable, "-c", STOPPED_AFTER_ONE_CHUNK, str(packed), PRODUCT, "1.0.0", str(dest)],
                           cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{ROOT}"},
                           capture_output=True, text=True)
        assert p.returncode == -signal.SIGKILL, p.stderr
    else:
        def stop(n: int) -> None:
            raise Stop()

        with pytest.raises(Stop):
            install(fetcher(packed), PRODUCT, "1.0.0", dest, jobs=1, progress=stop)
    staged = dest / ".depot" / "staging"
    holding = sorted(f.path for f in m.files if any(c.id == first for c in f.chunks))
    assert holding == ["LICENSE.txt", "README.txt", "config/keybinds.cfg", "config/settings.ini",
                       "data/levels/level01.dat", "data/levels/level02.dat"]
    assert all((staged / p).is_file() for p in holding) and tree(dest) == {}  # nothing in place yet

    reported: list[int] = []
    with StaticOrigin(packed) as http:
        r = install(fetcher(http.url), PRODUCT, "1.0.0", dest, progress=reported.append)
        requests = chunk_requests(http)
    assert_installed(dest, build_dirs["1.0.0"])
    assert requests == {cid: 1 for cid in m.unique_chunks() if cid != first}
    assert r.chunks_fetched == len(m.unique_chunks()) - 1 and r.chunks_reused == 1
    kept = sum(c.size for f in m.files for c in f.chunks if c.id == first)
    assert reported[0] == kept == r.bytes_reused and sum(reported) == sum(f.size for f in m.files)


def test_a_file_in_pieces_is_made_by_the_first_of_its_pieces_to_come(packed, tmp_path):
    """No file is made before its first piece is written (but empty ones), no directory
    before a file in it: stopped after the first chunk, staging holds the six files with a
    slice of it, the straddling one at its full size already, none of the other files in
    pieces, and only the directories of those files."""
    m = load(packed, "1.0.0")
    first = m.files[0].chunks[0].id
    dest = tmp_path / "game"

    def stop(n: int) -> None:
        raise Stop()

    with pytest.raises(Stop):
        install(fetcher(packed), PRODUCT, "1.0.0", dest, jobs=1, progress=stop)
    staged = dest / ".depot" / "staging"
    in_pieces = [f for f in m.files if len(f.chunks) > 1]
    assert [f.path for f in in_pieces if first in {c.id for c in f.chunks}] == ["data/levels/level02.dat"]
    assert len(in_pieces) > 2  # the other straddling one, and files cut on their own
    found = {p.relative_to(staged).as_posix(): p.stat().st_size for p in staged.rglob("*") if p.is_file()}
    assert found == {f.path: f.size for f in m.files if first in {c.id for c in f.chunks} or f.size == 0}
    # and directories only where those files are (each made by the thread that first needs it)
    parents = {d for path in found for d in map(str, Path(path).parents) if d != "."}
    assert {p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_dir()} == parents


@pytest.mark.parametrize("victim", ["README.txt", "data/levels/level05.dat"])
def test_repair_of_a_damaged_packed_file_fetches_only_its_chunks(packed, build_dirs, tmp_path, victim):
    """README.txt is a slice of one pack chunk, level05.dat slices of two: repair asks for
    exactly those, and the files sharing them are left as they are."""
    m = load(packed, "1.0.0")
    dest = tmp_path / "game"
    install(fetcher(packed), PRODUCT, "1.0.0", dest)
    data = bytearray((dest / victim).read_bytes())
    data[len(data) // 2] ^= 0x01
    (dest / victim).write_bytes(bytes(data))
    others = {p: (dest / p).stat().st_mtime_ns for p in ("LICENSE.txt", "launch.sh", "data/levels/level04.dat")}
    with StaticOrigin(packed) as http:
        r = repair(fetcher(http.url), dest)
        requests = chunk_requests(http)
    wanted = [c for c in m.entry(victim).chunks]
    assert requests == {c.id: 1 for c in wanted} and len(requests) == {"README.txt": 1}.get(victim, 2)
    assert (r.install.chunks_fetched, r.install.bytes_downloaded) == (len(wanted), sum(c.stored_size for c in wanted))
    assert r.install.files_written == 1 and r.after.intact
    assert {p: (dest / p).stat().st_mtime_ns for p in others} == others
    assert_installed(dest, build_dirs["1.0.0"])


@pytest.mark.parametrize("way", ["chunks", "delta"])
def test_update_between_packed_versions(packed, build_dirs, tmp_path, way):
    origin = packed
    if way == "delta":
        from pipeline.delta.diff import diff

        origin = tmp_path / "planned"
        subprocess.run(["cp", "-a", str(packed), str(origin)], check=True)
        with cf.ThreadPoolExecutor(2) as ex:
            diff(open_store(str(origin)), PRODUCT, "1.0.0", "1.1.0", ex)
    m0, m1 = load(origin, "1.0.0"), load(origin, "1.1.0")
    dest = tmp_path / "game"
    install(fetcher(origin), PRODUCT, "1.0.0", dest)
    r = update(fetcher(origin), dest, to_version="1.1.0")
    assert r.method == way
    assert_installed(dest, build_dirs["1.1.0"])
    if way == "chunks":  # the new chunks, each once: the others are on disk
        assert r.bytes_downloaded == m1.chunk_cost_from(m0)
    else:
        assert r.patches_applied > 0 and r.bytes_downloaded == r.delta_route_bytes
    assert verify(dest, fast=True).intact and verify(dest).intact


def test_files_found_whole_on_disk_are_copied_packed_ones_too(packed, build_dirs, tmp_path):
    """A seed holding the version's files: every file is copied from it, the packed small
    ones included (no file on disk holds a pack chunk, but each holds its file)."""
    m = load(packed, "1.0.0")
    r = install(fetcher(packed), PRODUCT, "1.0.0", tmp_path / "game", seeds=[build_dirs["1.0.0"]])
    assert_installed(tmp_path / "game", build_dirs["1.0.0"])
    assert (r.chunks_fetched, r.bytes_downloaded, r.chunks_reused) == (0, 0, len(m.unique_chunks()))
    assert r.bytes_reused == sum(f.size for f in m.files)


def test_a_fresh_install_moves_each_top_level_directory_in_whole(packed, build_dirs, tmp_path, monkeypatch):
    """A new game directory gets its files by one rename per top-level entry: the three
    directories holding files go in whole, the three top-level files one by one."""
    placed: list[str] = []
    monkeypatch.setattr(game_dir, "fault_point", placed.append)
    install(fetcher(packed), PRODUCT, "1.0.0", tmp_path / "game")
    assert placed == ["place"] * 6 + ["record"]
    assert_installed(tmp_path / "game", build_dirs["1.0.0"])


def test_an_install_record_of_format_1_is_still_trusted(packed, tmp_path):
    """A directory installed by an earlier depot (record format 1, each file's size and
    mtime by path): nothing is read again or written, and the record is rewritten in
    format 2, one mtime a file in the manifest's order (8 bytes little-endian, in base64)."""
    m = load(packed, "1.0.0")
    dest = tmp_path / "game"
    install(fetcher(packed), PRODUCT, "1.0.0", dest)
    record = dest / ".depot" / "installed.json"
    now = json.loads(record.read_bytes())
    mtimes = [(dest / f.path).stat().st_mtime_ns for f in m.files]
    assert now["format"] == "depot.installed/2" and now["files"] == len(m.files)
    assert base64.b64decode(now["mtime_ns"]) == b"".join(t.to_bytes(8, "little", signed=True) for t in mtimes)
    old = {"format": "depot.installed/1", "product": PRODUCT, "version": "1.0.0", "origins": now["origins"],
           "files": {f.path: {"size": f.size, "mtime_ns": t} for f, t in zip(m.files, mtimes)}}
    record.write_text(json.dumps(old))
    assert verify(dest, fast=True).intact
    again = install(fetcher(packed), PRODUCT, "1.0.0", dest)
    assert (again.files_written, again.chunks_fetched) == (0, 0)
    assert json.loads(record.read_bytes()) == now
