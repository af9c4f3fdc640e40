"""Packing small files: laid end to end in path order, cut as one stream, each file the
slices of the chunks its bytes fall in; exact slices, the same bytes whatever the workers
and segments, and dedup between releases that stays near the bytes that changed."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import io
import itertools
import random

import blake3
import pytest
from pyfastcdc import FastCDC

from depot_testing.fixtures import PRODUCT
from pipeline import layout
from pipeline.build import products
from pipeline.build.chunk import chunk
from pipeline.build.ingest import ingest
from pipeline.client.cat import reassemble
from pipeline.core.chunk_params import ChunkParams
from pipeline.formats import manifest
from pipeline.storage import open_store

PARAMS = ChunkParams(1 << 10, 4 << 10, 16 << 10)
SPLIT = ChunkParams(1 << 10, 4 << 10, 16 << 10, segment_size=64 << 10)  # the stream cut by several tasks


def small_build(root, n: int, seed: int = 5, sizes=(1, 3000)) -> dict[str, bytes]:
    """``n`` small files in nested directories, text and random, and one file too large to
    pack; returns every file's bytes by path."""
    rnd = random.Random(seed)
    words = [rnd.randbytes(4).hex() for _ in range(200)]
    files = {}
    for i in range(n):
        size = rnd.randint(*sizes)
        data = rnd.randbytes(size) if i % 3 == 0 else " ".join(rnd.choice(words) for _ in range(size // 9 + 1)).encode()[:size]
        files[f"d{i % 7}/s{i // 7 % 3}/f{i:04d}.{'bin' if i % 3 == 0 else 'txt'}"] = data
    files["big.pak"] = rnd.randbytes(40_000)
    files["empty"] = b""
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return files


def build(tmp_path, name: str, source, executor, params=PARAMS, pack_below=None, version="1"):
    store = open_store(str(tmp_path / name))
    products.configure(store, PRODUCT, params, pack_below)
    ingest(store, str(source), PRODUCT, version, executor)
    return store, chunk(store, PRODUCT, version, executor)


def rebuilt(store, m, path) -> bytes:
    out = io.BytesIO()
    reassemble(store, m.entry(path), out)
    return out.getvalue()


def reference_slices(files: dict[str, bytes], params: ChunkParams, pack_below: int) -> dict[str, list]:
    """The slices packing must give, from pyfastcdc alone: [offset, size, chunk id,
    offset in the chunk, chunk size] of every packed file."""
    packed = sorted(p for p, d in files.items() if 0 < len(d) < pack_below)
    stream = b"".join(files[p] for p in packed)
    cdc = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size, normalized_chunking=1)
    chunks = [(c.offset, c.length, blake3.blake3(c.data).hexdigest()) for c in cdc.cut_buf(stream)]
    out, start = {}, 0
    for p in packed:
        size = len(files[p])
        out[p] = [[max(start, c0) - start, min(start + size, c0 + n) - max(start, c0), cid, max(start, c0) - c0, n]
                  for c0, n, cid in chunks if max(start, c0) < min(start + size, c0 + n)]
        start += size
    return out


def test_a_small_build_packs_its_small_files_into_these_exact_slices(tmp_path, threads):
    src = tmp_path / "src"
    files = small_build(src, 12, sizes=(200, 1000))
    store, r = build(tmp_path, "repo", src, threads)
    m = manifest.load(store, PRODUCT, "1")
    got = {f.path: [[c.offset, c.size, c.id[:8], c.chunk_offset, c.chunk_size] for c in f.chunks] for f in m.files}
    assert got == {
        "big.pak": [[0, 10167, "3e8aa8ba", 0, 10167], [10167, 6893, "d1a1c981", 0, 6893],
                    [17060, 5939, "3357dc8d", 0, 5939], [22999, 5181, "e37f2467", 0, 5181],
                    [28180, 4144, "5998059a", 0, 4144], [32324, 5661, "c86b6cf1", 0, 5661],
                    [37985, 2015, "e7b58013", 0, 2015]],
        # the packed files, end to end in path order: a chunk of 1,306 bytes, then one of 5,056
        "d0/s0/f0000.bin": [[0, 815, "9047b7f1", 0, 1306]],
        "d0/s1/f0007.txt": [[0, 286, "9047b7f1", 815, 1306]],
        "d1/s0/f0001.txt": [[0, 205, "9047b7f1", 1101, 1306], [205, 37, "cba85173", 0, 5056]],
        "d1/s1/f0008.txt": [[0, 519, "cba85173", 37, 5056]],
        "d2/s0/f0002.txt": [[0, 485, "cba85173", 556, 5056]],
        "d2/s1/f0009.bin": [[0, 333, "cba85173", 1041, 5056]],
        "d3/s0/f0003.bin": [[0, 691, "cba85173", 1374, 5056]],
        "d3/s1/f0010.txt": [[0, 329, "cba85173", 2065, 5056]],
        "d4/s0/f0004.txt": [[0, 541, "cba85173", 2394, 5056]],
        "d4/s1/f0011.txt": [[0, 590, "cba85173", 2935, 5056]],
        "d5/s0/f0005.txt": [[0, 894, "cba85173", 3525, 5056]],
        "d6/s0/f0006.bin": [[0, 637, "cba85173", 4419, 5056]],
        "empty": [],
    }
    assert reference_slices(files, PARAMS, PARAMS.min_size) == {
        f.path: [[c.offset, c.size, c.id, c.chunk_offset, c.chunk_size] for c in f.chunks]
        for f in m.files if 0 < f.size < PARAMS.min_size}
    assert (r.files, r.bytes, r.chunks, r.unique_chunks) == (14, 46_362, 20, 9)
    for path, data in files.items():
        assert rebuilt(store, m, path) == data
        assert m.entry(path).hash_sha256 == hashlib.sha256(data).hexdigest()


def test_packing_off_cuts_every_file_on_its_own(tmp_path, threads):
    src = tmp_path / "src"
    files = small_build(src, 12, sizes=(200, 1000))
    store, r = build(tmp_path, "repo", src, threads, pack_below=0)
    m = manifest.load(store, PRODUCT, "1")
    assert m.pack_below == 0 and all(c.whole for f in m.files for c in f.chunks)
    assert r.unique_chunks == 12 + 7  # one chunk for each small file, seven for big.pak
    assert manifest.decode(store.get(layout.manifest_key(PRODUCT, "1")))["pack"] == []


def test_the_manifest_is_byte_identical_whatever_the_workers_and_segments(tmp_path, dask_executor, threads):
    from depot_app import dask_cluster

    src = tmp_path / "src"
    files = small_build(src, 400)  # ~600 KB of small files: ten segments of the stream
    serial, store = (lambda s_r: (s_r[0].get(layout.manifest_key(PRODUCT, "1")), s_r[0]))(
        build(tmp_path, "serial", src, cf.ThreadPoolExecutor(1)))
    with dask_cluster.executor(workers=1) as one_worker:
        one = build(tmp_path, "one", src, one_worker, SPLIT)[0]
    assert one.get(layout.manifest_key(PRODUCT, "1")) == serial
    assert build(tmp_path, "three", src, dask_executor, SPLIT)[0].get(layout.manifest_key(PRODUCT, "1")) == serial
    assert build(tmp_path, "threads", src, threads, SPLIT)[0].get(layout.manifest_key(PRODUCT, "1")) == serial
    m = manifest.load(store, PRODUCT, "1")
    assert sum(len(f.chunks) > 1 for f in m.files if f.path != "big.pak") > 20  # many files straddle chunks
    assert reference_slices(files, PARAMS, PARAMS.min_size) == {
        f.path: [[c.offset, c.size, c.id, c.chunk_offset, c.chunk_size] for c in f.chunks]
        for f in m.files if 0 < f.size < PARAMS.min_size}
    for path, data in files.items():
        assert rebuilt(store, m, path) == data


def test_a_release_that_changes_a_few_small_files_stores_little_more_than_the_change(tmp_path, threads):
    """2,000 small files (1 MB, all packed); the next release edits 5 of them (a byte each,
    one grows by 40 bytes) and adds one: the new chunks are those around each change."""
    src = tmp_path / "src"
    files = small_build(src, 2000, sizes=(50, 1000))
    store, first = build(tmp_path, "repo", src, threads)
    rnd = random.Random(9)
    changed = sorted(p for p in files if p.endswith(".txt"))[::300][:5]
    for i, p in enumerate(changed):
        data = bytearray(files[p])
        data[rnd.randrange(len(data))] ^= 0x20
        (src / p).write_bytes(bytes(data) + (b" forty more bytes in the new version...\n" if i == 0 else b""))
    (src / "d3/new.txt").write_bytes(b"added in 2\n")
    ingest(store, str(src), PRODUCT, "2", threads)
    second = chunk(store, PRODUCT, "2", threads)
    a, b = manifest.load(store, PRODUCT, "1"), manifest.load(store, PRODUCT, "2")
    new = {i: c for i, c in b.unique_chunks().items() if i not in a.unique_chunks()}
    assert (first.bytes, first.unique_chunks, second.unique_chunks) == (1_073_212, 208, 208)
    # six changes, six new chunks: 2.7% of the bytes, about one average chunk (4 KiB) a change
    assert (second.chunks_new, sum(c.size for c in new.values()), second.stored_bytes_new) == (6, 28_628, 10_394)
    assert second.stored_bytes_new == sum(c.stored_size for c in new.values())


def test_configure_sets_pack_below_and_keeps_it_when_other_sizes_change(tmp_path):
    import json
    import subprocess

    from helpers import DEPOT, ROOT

    def configure(*args):
        p = subprocess.run(DEPOT + ["--repo", str(tmp_path / "repo"), "--json", "configure", "-p", PRODUCT, *args],
                           capture_output=True, text=True, cwd=ROOT)
        assert p.returncode == 0, p.stderr
        return json.loads((tmp_path / "repo" / layout.product_config_key(PRODUCT)).read_text())["chunking"]

    assert "pack_below" not in configure("--chunk-min", "64KiB")  # the default: the minimum chunk size
    assert products.settings(open_store(str(tmp_path / "repo")), PRODUCT).packing_below == 64 << 10
    assert configure("--pack-below", "0")["pack_below"] == 0
    assert configure("--chunk-avg", "512KiB") == {"min_size": 65536, "avg_size": 524288, "max_size": 4194304,
                                                 "pack_below": 0}
    assert products.settings(open_store(str(tmp_path / "repo")), PRODUCT).packing_below == 0


def test_a_stream_whose_segment_chains_never_meet_gives_the_serial_manifest(tmp_path, threads):
    """Runs of zeros across the segments' starts keep every chain out of phase with the
    one from the left: those segments' chunks are stored again on the stitched chain, and
    the chunk stored on a chain that had not met is left for gc."""
    rnd = random.Random(3)
    files = {f"z/f{i:04d}": bytes(900) if 100 <= i < 400 else rnd.randbytes(rnd.randint(100, 1000)) for i in range(600)}
    for path, data in files.items():
        (tmp_path / "src" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / path).write_bytes(data)
    serial = build(tmp_path, "serial", tmp_path / "src", threads)[0]
    split = build(tmp_path, "split", tmp_path / "src", threads, SPLIT)[0]
    assert split.get(layout.manifest_key(PRODUCT, "1")) == serial.get(layout.manifest_key(PRODUCT, "1"))
    m = manifest.load(split, PRODUCT, "1")
    assert all(rebuilt(split, m, path) == data for path, data in files.items())
    assert (len(m.unique_chunks()), len(list(serial.list(layout.CHUNK_PREFIX))), len(list(split.list(layout.CHUNK_PREFIX)))) \
        == (35, 35, 36)


def test_a_packed_file_changed_between_the_two_reads_that_hold_it_is_refused(tmp_path, threads, monkeypatch):
    """The file that straddles a segment's start is hashed with the first segment and
    stored partly with the next: written to in between, the run is SOURCE_CHANGED."""
    from pipeline.build import chunk as chunk_module
    from pipeline.build.run import ingest_and_chunk
    from pipeline.errors import SourceChanged

    src = tmp_path / "src"
    files = small_build(src, 400)
    packed = sorted(p for p, d in files.items() if 0 < len(d) < SPLIT.min_size)
    ends = list(itertools.accumulate(len(files[p]) for p in packed))
    victim = packed[next(i for i, end in enumerate(ends) if end > SPLIT.segment)]
    cut_segment = chunk_module.cut_segment

    def then_write(repo, f, seg, end, params):
        result = cut_segment(repo, f, seg, end, params)
        if seg == 0:  # the first segment has hashed the victim; the second has yet to read its tail
            (src / victim).write_bytes(bytes(len(files[victim])))
        return result

    monkeypatch.setattr(chunk_module, "cut_segment", then_write)
    store = open_store(str(tmp_path / "repo"))
    products.configure(store, PRODUCT, SPLIT)
    with pytest.raises(SourceChanged, match=f"{victim} changed while it was read") as err:
        ingest_and_chunk(store, str(src), PRODUCT, "1", cf.ThreadPoolExecutor(1))
    assert err.value.exit_code == SourceChanged.exit_code
    assert not store.has(layout.manifest_key(PRODUCT, "1"))
