"""diff: update plans and patches per version pair, the engines, and large files in segments."""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import io
import json
import random
import subprocess

import pytest

from helpers import DEPOT, PAIRS, ROOT, fetcher, load_plan, tree_snapshot
from depot_testing.fixtures import PRODUCT, VERSIONS, fixture_params, fixture_tar
from pipeline import layout
from pipeline.build import products
from pipeline.build.chunk import chunk
from pipeline.build.ingest import ingest
from pipeline.client.install import install
from pipeline.client.update import update
from pipeline.core import patching
from pipeline.delta import engines
from pipeline.delta.diff import diff
from pipeline.errors import PatchFailed
from pipeline.formats.manifest import ChunkRef, FileEntry
from pipeline.storage import open_store

diff_mod = importlib.import_module("pipeline.delta.diff")


def test_rerunning_diff_is_a_no_op(planned, tmp_path):
    before = tree_snapshot(planned)
    with cf.ThreadPoolExecutor(2) as ex:
        r = diff(open_store(str(planned)), PRODUCT, "1.0.0", "1.1.0", ex)
    assert not r.created and tree_snapshot(planned) == before


def test_plan_classifies_every_file(planned):
    store = open_store(str(planned))
    ops = {f["path"]: f for f in load_plan(store, PRODUCT, "1.1.0", "1.2.0")["files"]}
    assert ops["data/levels/arena02.dat"] == {"path": "data/levels/arena02.dat", "op": "copy",
                                              "source": "data/levels/level02.dat",
                                              "hash_sha256": ops["data/levels/arena02.dat"]["hash_sha256"]}
    assert ops["docs/LICENSE.txt"]["op"] == "copy" and ops["docs/LICENSE.txt"]["source"] == "LICENSE.txt"
    assert ops["bin/libengine.so"]["op"] == "patch" and ops["bin/libengine.so"]["source"] == "bin/libengine.so"
    assert ops["data/lang/ru.txt"]["op"] == "chunks"
    assert ops["bin/starfall"]["op"] == "keep"
    plan = load_plan(store, PRODUCT, "1.1.0", "1.2.0")
    assert set(plan["remove"]) == {"data/levels/level02.dat", "data/levels/level03.dat", "LICENSE.txt"}

    later = {f["path"]: f for f in load_plan(store, PRODUCT, "1.2.0", "1.3.0")["files"]}
    # renamed and edited: its best source is the old file it shares chunks with
    assert later["data/maps/map04.dat"]["op"] == "patch"
    assert later["data/maps/map04.dat"]["source"] == "data/levels/level04.dat"
    assert later["launch.sh"]["op"] == "copy"  # same bytes, exec bit removed


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_patches_beat_chunk_reuse_and_reapply_exactly(planned, pair):
    """Every patch is smaller than fetching the file's new chunks, and applied to the old
    file's bytes it gives the new file's bytes exactly."""
    from pipeline.client.cat import reassemble
    from pipeline.formats import manifest

    store = open_store(str(planned))
    plan = load_plan(store, PRODUCT, *pair)
    assert plan["delta_download_bytes"] <= plan["chunk_download_bytes"] <= plan["full_download_bytes"]
    old, new = (manifest.load(store, PRODUCT, v) for v in pair)
    old_chunks = set(old.unique_chunks())
    patched = [op for op in plan["files"] if op["op"] == "patch"]
    assert patched
    for op in patched:
        entry = new.entry(op["path"])
        fetch_cost = sum({c.id: c.stored_size for c in entry.chunks if c.id not in old_chunks}.values())
        assert sum(s["patch_size"] for s in op["segments"]) < fetch_cost
        source, target = io.BytesIO(), io.BytesIO()
        reassemble(store, old.entry(op["source"]), source)
        reassemble(store, entry, target)
        rebuilt = bytearray(entry.size)
        for s in op["segments"]:
            patch = store.get(layout.patch_key(s["id"]))
            assert len(patch) == s["patch_size"]
            old_bytes = source.getvalue()[s["source_offset"]: s["source_offset"] + s["source_size"]]
            rebuilt[s["offset"]: s["offset"] + s["size"]] = patching.apply(s["engine"], old_bytes, patch, s["size"])
        assert bytes(rebuilt) == target.getvalue()


def test_cli_builds_every_pair_for_ci(tmp_path):
    repo = tmp_path / "repo"
    run = lambda *a: subprocess.run(DEPOT + ["--repo", str(repo), *map(str, a)], cwd=ROOT, capture_output=True, text=True)
    run("configure", "-p", PRODUCT, "--chunk-min", "16KiB", "--chunk-avg", "64KiB", "--chunk-max", "256KiB")
    for v in VERSIONS[:2]:
        assert run("run", fixture_tar(v), "-p", PRODUCT, "-v", v).returncode == 0
    hook = run("--json", "run", fixture_tar("1.2.0"), "-p", PRODUCT, "-v", "1.2.0", "--diff-last", "1")
    assert [(p["from_version"], p["created"]) for p in json.loads(hook.stdout)["plans"]] == [("1.1.0", True)]
    p = run("--json", "diff", "-p", PRODUCT, "--all-pairs")
    assert p.returncode == 0, p.stderr
    created = {(r["from_version"], r["to_version"]): r["created"] for r in json.loads(p.stdout)["plans"]}
    assert created == {("1.0.0", "1.1.0"): True, ("1.0.0", "1.2.0"): True, ("1.1.0", "1.2.0"): False}
    pairs = set(created)
    index = json.loads((repo / layout.plan_index_key(PRODUCT)).read_text())
    assert {(p["from_version"], p["to_version"]) for p in index["plans"]} == pairs
    p = run("--json", "diff", "-p", PRODUCT, "--last", "1")
    assert [(r["from_version"], r["created"]) for r in json.loads(p.stdout)["plans"]] == [("1.1.0", False)]


def test_a_changed_file_of_a_few_bytes_is_planned_by_chunks(tmp_path):
    """Sources too short to be a zstd prefix (under 8 bytes): a version.txt edited in
    place, a tiny file renamed and edited. Nothing to patch from; fetched by chunks."""
    store = open_store(str(tmp_path / "repo"))
    builds = {"1": {"version.txt": b"1.0\n", "notes/a.txt": b"ab\n", "eight.txt": b"12345678"},
              "2": {"version.txt": b"1.1\n", "notes/b.txt": b"abc\n", "eight.txt": b"12345679"}}
    with cf.ThreadPoolExecutor(2) as ex:
        for version, files in builds.items():
            for rel, data in files.items():
                (tmp_path / version / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / version / rel).write_bytes(data)
            ingest(store, str(tmp_path / version), PRODUCT, version, ex)
            chunk(store, PRODUCT, version, ex)
        diff(store, PRODUCT, "1", "2", ex)
    ops = {f["path"]: f["op"] for f in load_plan(store, PRODUCT, "1", "2")["files"]}
    assert ops == {"eight.txt": "chunks", "notes/b.txt": "chunks", "version.txt": "chunks"}


def test_all_from_plans_every_earlier_version_to_the_target(tmp_path):
    """Earlier in version order (1.9.0 before 1.10.0), chunked; none after the target."""
    store = open_store(str(tmp_path / "repo"))
    products.configure(store, PRODUCT, fixture_params())
    with cf.ThreadPoolExecutor(2) as ex:
        for build, version in [("1.0.0", "1.2.0"), ("1.1.0", "1.9.0"), ("1.2.0", "1.10.0"), ("1.3.0", "1.11.0")]:
            ingest(store, str(fixture_tar(build)), PRODUCT, version, ex)
            chunk(store, PRODUCT, version, ex)
        ingest(store, str(fixture_tar("1.0.0")), PRODUCT, "1.0.5", ex)  # never chunked: nothing to plan from
    p = subprocess.run(DEPOT + ["--repo", str(tmp_path / "repo"), "--json", "diff", "-p", PRODUCT, "--all-from",
                                "--to", "1.10.0"], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert [(r["from_version"], r["to_version"], r["created"]) for r in json.loads(p.stdout)["plans"]] == \
        [("1.2.0", "1.10.0", True), ("1.9.0", "1.10.0", True)]
    plans = tmp_path / "repo" / "products" / PRODUCT / "plans"
    assert sorted(f.relative_to(plans).as_posix() for f in plans.glob("*/*.json")) == \
        ["1.2.0/1.10.0.json", "1.9.0/1.10.0.json"]


# -- engines and large files ---------------------------------------------------------------


def _edited(size: int, seed: int) -> tuple[bytes, bytes]:
    rnd = random.Random(seed)
    base = rnd.randbytes(4096)
    old = b"".join(rnd.randbytes(1 << 16) if i % 3 == 0 else (base * 16) for i in range(size >> 16))
    new = bytearray(old)
    for _ in range(50):
        p = rnd.randrange(len(new) - 64)
        new[p : p + 32] = rnd.randbytes(32)
    new[len(new) // 3 : len(new) // 3] = rnd.randbytes(3000)  # inserted: the rest shifts
    return old, bytes(new)


@pytest.mark.parametrize("engine", sorted(engines.MAKE))
def test_each_engine_round_trips_and_refuses_a_damaged_patch(engine):
    old, new = _edited(1 << 20, 1)
    patch = engines.MAKE[engine](old, new)
    assert len(patch) < len(new) // 10
    assert patching.apply(engine, old, patch, len(new)) == new
    with pytest.raises(PatchFailed):
        patching.apply(engine, old, patch[: len(patch) // 2], len(new))
    with pytest.raises(PatchFailed):
        patching.apply("no-such-engine", old, patch, len(new))


def _one_file_diffed(tmp_path, name: str, old: bytes, new: bytes) -> dict:
    """A product of one file, ``name``, in versions "old" and "new", in tmp_path/repo:
    ingested, chunked and diffed; the plan's operation for the file."""
    store = open_store(str(tmp_path / "repo"))
    products.configure(store, PRODUCT, fixture_params())
    with cf.ThreadPoolExecutor(2) as ex:
        for version, data in (("old", old), ("new", new)):
            (tmp_path / version).mkdir()
            (tmp_path / version / name).write_bytes(data)
            ingest(store, str(tmp_path / version), PRODUCT, version, ex)
            chunk(store, PRODUCT, version, ex)
        diff(store, PRODUCT, "old", "new", ex)
    return load_plan(store, PRODUCT, "old", "new")["files"][0]


def _installed_and_updated(tmp_path):
    """Version "old" installed from tmp_path/repo to tmp_path/game, then updated to "new"."""
    dest = tmp_path / "game"
    install(fetcher(tmp_path / "repo"), PRODUCT, "old", dest)
    return dest, update(fetcher(tmp_path / "repo"), dest, to_version="new")


def test_a_large_file_is_patched_in_segments_that_apply_exactly(tmp_path, monkeypatch):
    """With the segment sizes scaled down, a file is diffed and updated piece by piece."""
    monkeypatch.setattr(diff_mod, "PIECE", 256 << 10)
    monkeypatch.setattr(diff_mod, "ZSTD_ONLY_ABOVE", 1 << 20)
    monkeypatch.setattr(diff_mod, "SEGMENT", 512 << 10)
    monkeypatch.setattr(diff_mod, "SEGMENT_MARGIN", 512 << 10)
    old, new = _edited(6 << 20, 2)
    op = _one_file_diffed(tmp_path, "big.pak", old, new)
    assert op["op"] == "patch" and len(op["segments"]) == -(-len(new) // (512 << 10))
    assert all(s["source_size"] <= 1536 << 10 for s in op["segments"])
    dest, r = _installed_and_updated(tmp_path)
    assert r.method == "delta" and r.patches_applied == 1
    assert (dest / "big.pak").read_bytes() == new


def _relocated(size: int, seed: int) -> tuple[bytes, bytes]:
    """Old and new "code": random words, and in the new one every fourth word moved by
    the same amount (addresses after a relink), 3000 bytes inserted near the start and as
    many cut near the end. zstd cannot reuse such bytes; HDiffPatch can."""
    rnd = random.Random(seed)
    words = [rnd.getrandbits(32) for _ in range(size // 4)]
    old = b"".join(w.to_bytes(4, "little") for w in words)
    moved = b"".join(((w + 0x40) & 0xFFFFFFFF if i % 4 == 0 else w).to_bytes(4, "little") for i, w in enumerate(words))
    new = moved[: size // 8] + rnd.randbytes(3000) + moved[size // 8 : -(size // 8)] + moved[-(size // 8) + 3000 :]
    return old, new


def test_a_mid_size_file_is_patched_in_pieces_by_hdiffpatch_that_apply_exactly(tmp_path, monkeypatch):
    """With the piece size scaled down (16 MiB to 256 KiB), a 1 MiB library is diffed in
    four pieces, each by HDiffPatch against its part of the old file, 64 KiB wider on each
    side; the update rebuilds the new bytes exactly."""
    monkeypatch.setattr(diff_mod, "PIECE", 256 << 10)
    monkeypatch.setattr(diff_mod, "PIECE_MARGIN", 64 << 10)
    old, new = _relocated(1 << 20, 3)
    assert len(new) == len(old) == 1 << 20
    op = _one_file_diffed(tmp_path, "libgame.so", old, new)
    assert op["op"] == "patch"
    assert [(s["offset"], s["size"], s["engine"]) for s in op["segments"]] == \
        [(i << 18, 1 << 18, "hdiffpatch") for i in range(4)]
    assert [s["source_size"] for s in op["segments"]] == [(256 + 128) << 10] * 4
    dest, r = _installed_and_updated(tmp_path)
    assert r.method == "delta" and r.patches_applied == 1
    assert (dest / "libgame.so").read_bytes() == new


def _entry(path: str, chunks: list[tuple[str, int]]) -> FileEntry:
    refs, offset = [], 0
    for cid, size in chunks:
        refs.append(ChunkRef(offset, size, cid, size))
        offset += size
    return FileEntry(path, "file", offset, False, "0" * 64, chunks=tuple(refs))


def test_pieces_are_diffed_against_where_they_came_from():
    """16 MiB pieces, each against the old bytes it came from, 2 MiB wider on each side:
    placed by the chunks they share (8 MiB inserted at the start moves every piece), else in
    proportion (a library relinked: no chunk shared); a file up to 16 MiB whole; beyond
    64 MiB, 32 MiB segments against 96 MiB windows."""
    M = 1 << 20
    old = _entry("lib.so", [(f"a{i}", M) for i in range(40)])
    inserted = _entry("lib.so", [(f"n{i}", M) for i in range(8)] + [(f"a{i}", M) for i in range(40)])
    assert diff_mod.pieces(old, inserted) == [(0, 16 * M, 0, 20 * M), (16 * M, 16 * M, 6 * M, 20 * M),
                                              (32 * M, 16 * M, 20 * M, 20 * M)]
    relinked = _entry("lib.so", [(f"n{i}", M) for i in range(48)])
    assert diff_mod.pieces(old, relinked) == [(0, 16 * M, 0, 20 * M), (16 * M, 16 * M, 10 * M, 20 * M),
                                              (32 * M, 16 * M, 20 * M, 20 * M)]
    small = _entry("lib.so", [(f"n{i}", M) for i in range(16)])
    assert diff_mod.pieces(_entry("lib.so", [("a", 10 * M)]), small) == [(0, 16 * M, 0, 10 * M)]
    assert diff_mod.pieces(old, small) == [(0, 16 * M, 10 * M, 20 * M)]
    big_old = _entry("pak", [(f"a{i}", M) for i in range(100)])
    big_new = _entry("pak", [(f"a{i}", M) for i in range(100)])
    assert diff_mod.pieces(big_old, big_new) == [(0, 25 * M, 0, 89 * M), (25 * M, 25 * M, 0, 89 * M),
                                                 (50 * M, 25 * M, 11 * M, 89 * M), (75 * M, 25 * M, 11 * M, 89 * M)]


def test_diff_on_dask_workers_writes_the_same_plan_as_on_threads(planned, tmp_path, dask_executor):
    """The patch tasks run in other processes (the repository reached through its
    location); the plan and its patches come out byte for byte the same."""
    import shutil

    shutil.copytree(planned, tmp_path / "repo")
    store = open_store(str(tmp_path / "repo"))
    key = layout.plan_key(PRODUCT, "1.0.0", "1.3.0")
    expected = store.get(key)
    store.delete(key)
    r = diff(store, PRODUCT, "1.0.0", "1.3.0", dask_executor)
    assert r.created and store.get(key) == expected
