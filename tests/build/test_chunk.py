"""chunk: byte-exact round trips, pinned boundaries, dedup, determinism across workers,
and refusal of damaged data."""

from __future__ import annotations

import io
import json
import os
import random
import tarfile

import pytest

from helpers import DEPOT, PAIRS, ROOT, tree_snapshot
from depot_testing.fixtures import FIXTURES, PRODUCT, VERSIONS, fixture_params, fixture_tar
from pipeline import layout
from pipeline.build import products
from pipeline.core import codec
from pipeline.formats import manifest
from pipeline.build.chunk import chunk
from pipeline.core.chunk_params import ChunkParams
from pipeline.errors import IntegrityError, ManifestInvalid, NotFound, SourceChanged
from pipeline.build.ingest import ingest
from pipeline.client.cat import reassemble
from pipeline.storage import open_store

FIXTURE_PARAMS = fixture_params()
PINS = json.loads((FIXTURES / PRODUCT / "chunks.json").read_text())


def publish(store, executor, versions=VERSIONS, params=FIXTURE_PARAMS):
    products.configure(store, PRODUCT, params)
    for v in versions:
        ingest(store, str(fixture_tar(v)), PRODUCT, v, executor)
        chunk(store, PRODUCT, v, executor)


def tar_files(version: str) -> dict[str, bytes]:
    with tarfile.open(fixture_tar(version)) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isreg()}


def pins_of(f) -> list[list]:
    """A file's chunks as chunks.json pins them: [offset, size, id], and for a slice of a
    chunk its offset in the chunk and the chunk's size."""
    return [[c.offset, c.size, c.id] + ([] if c.whole else [c.chunk_offset, c.chunk_size]) for c in f.chunks]


def rebuild(store, m, path) -> bytes:
    out = io.BytesIO()
    reassemble(store, m.entry(path), out)
    return out.getvalue()


@pytest.fixture
def repo(tmp_path):
    return open_store(str(tmp_path / "repo"))


@pytest.mark.parametrize("pins", ["fixture", "default"])
def test_every_fixture_version_round_trips_with_pinned_boundaries(repo, dask_executor, pins):
    pinned = PINS[pins]
    params = ChunkParams(pinned["min_size"], pinned["avg_size"], pinned["max_size"])
    publish(repo, dask_executor, params=params)
    for v in VERSIONS:
        m = manifest.load(repo, PRODUCT, v)
        files = tar_files(v)
        assert {f.path for f in m.files} == set(files)
        for f in m.files:
            assert pins_of(f) == pinned["versions"][v][f.path], f.path
            assert rebuild(repo, m, f.path) == files[f.path]


def test_versions_share_chunks_and_rerunning_writes_nothing(repo, threads, tmp_path):
    publish(repo, threads, versions=["1.0.0"])
    first = manifest.load(repo, PRODUCT, "1.0.0")
    products.configure(repo, PRODUCT, FIXTURE_PARAMS)
    ingest(repo, str(fixture_tar("1.1.0")), PRODUCT, "1.1.0", threads)
    r = chunk(repo, PRODUCT, "1.1.0", threads)
    shared = set(first.unique_chunks()) & set(manifest.load(repo, PRODUCT, "1.1.0").unique_chunks())
    assert r.chunks_reused == len(shared) > 0 and r.chunks_new == r.unique_chunks - len(shared)
    stored = {k for k in repo.list(layout.CHUNK_PREFIX)}
    assert len(stored) == len(set(first.unique_chunks()) | set(manifest.load(repo, PRODUCT, "1.1.0").unique_chunks()))

    before = tree_snapshot(tmp_path / "repo")
    again = chunk(repo, PRODUCT, "1.1.0", threads)
    assert not again.created and again.chunks_new == 0
    assert tree_snapshot(tmp_path / "repo") == before


def test_chunk_objects_are_compressed_only_when_smaller(repo, threads):
    publish(repo, threads, versions=["1.0.0"])
    m = manifest.load(repo, PRODUCT, "1.0.0")
    sizes = {f.path: f for f in m.files}
    pak = sizes["data/assets.pak"].chunks  # mostly random: stored raw
    exe = sizes["bin/starfall"].chunks  # compressible: stored as zstd
    assert any(c.stored_size == c.size for c in pak)
    assert all(c.stored_size < c.size for c in exe)
    for c in pak + exe:
        assert repo.size(layout.chunk_key(c.id)) == c.stored_size


def test_a_chunk_object_is_a_level_3_zstd_frame_with_its_content_size(planned):
    import zstandard

    files = tar_files("1.0.0")
    m = _manifest_at(planned, "1.0.0")
    for c in m.entry("bin/starfall").chunks:  # compressible: stored as zstd
        content = files["bin/starfall"][c.offset:c.offset + c.size]
        stored = (planned / "chunks" / c.id[:2] / c.id).read_bytes()
        assert zstandard.get_frame_parameters(stored).content_size == c.size == len(content)
        assert stored == zstandard.ZstdCompressor(level=3).compress(content)
        assert stored != zstandard.ZstdCompressor(level=4).compress(content)  # the data tells the levels apart
        assert c.stored_size == len(stored)


def _manifest_at(repo_dir, version: str) -> manifest.Manifest:
    path = repo_dir / "products" / PRODUCT / "versions" / version / "manifest.json"
    return manifest.Manifest.from_bytes(path.read_bytes(), str(path))


def test_chunks_and_patches_are_stored_under_the_first_two_hex_digits_of_their_id(planned):
    """The layout of docs/format.md, spelled out here rather than taken from pipeline/layout.py."""
    import blake3

    def objects(prefix: str) -> set[str]:
        return {p.relative_to(planned).as_posix() for p in (planned / prefix).rglob("*") if p.is_file()}

    chunk_ids = {i for v in VERSIONS for i in _manifest_at(planned, v).unique_chunks()}
    patch_ids = {s["id"] for a, b in PAIRS
                 for op in json.loads((planned / "products" / PRODUCT / "plans" / a / f"{b}.json").read_text())["files"]
                 for s in op.get("segments", [])}
    assert chunk_ids and patch_ids
    assert objects("chunks") == {f"chunks/{i[:2]}/{i}" for i in chunk_ids}
    # every patch a plan names is stored (one computed and then dropped from its plan stays until gc)
    assert objects("patches") >= {f"patches/{i[:2]}/{i}" for i in patch_ids}
    for p in objects("patches"):  # content-addressed: the BLAKE3 of the patch's bytes
        assert blake3.blake3((planned / p).read_bytes()).hexdigest() == p.split("/")[2] and p.split("/")[1] == p[8:10]


def test_default_chunk_sizes_apply_without_product_settings(repo, threads, tmp_path):
    """256 KiB / 1 MiB / 4 MiB: what `configure` starts from, and what a product that was
    never configured (no product.json) is cut with."""
    import subprocess

    defaults = {"min_size": 262144, "avg_size": 1048576, "max_size": 4194304}
    p = subprocess.run(DEPOT + ["--repo", str(tmp_path / "other"), "--json", "configure", "-p", PRODUCT],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["chunking"] == defaults

    ingest(repo, str(fixture_tar("1.0.0")), PRODUCT, "1.0.0", threads)
    chunk(repo, PRODUCT, "1.0.0", threads)
    assert not (tmp_path / "repo" / "products" / PRODUCT / "product.json").exists()
    m = _manifest_at(tmp_path / "repo", "1.0.0")
    assert m.params.to_dict() == defaults
    assert {k: PINS["default"][k] for k in defaults} == defaults
    pinned = PINS["default"]["versions"]["1.0.0"]
    for f in m.files:
        assert pins_of(f) == pinned[f.path]


def test_staged_pack_is_removed_once_the_manifest_exists(repo, threads, build_dirs, tmp_path):
    from archives import zip_of_dir

    products.configure(repo, PRODUCT, FIXTURE_PARAMS)
    ingest(repo, str(zip_of_dir(build_dirs["1.2.0"], tmp_path / "b.zip")), PRODUCT, "1.2.0", threads)
    assert repo.has(layout.staged_pack_key(PRODUCT, "1.2.0"))
    chunk(repo, PRODUCT, "1.2.0", threads)
    assert not repo.has(layout.staged_pack_key(PRODUCT, "1.2.0"))
    m = manifest.load(repo, PRODUCT, "1.2.0")
    files = tar_files("1.2.0")
    assert all(rebuild(repo, m, f.path) == files[f.path] for f in m.files)


def _big_build(root):
    """Files large enough to be cut by several tasks, with the data that makes chains
    hard to stitch: random, long zero runs, a repeating pattern."""
    rnd = random.Random(7)
    root.mkdir()
    pattern = rnd.randbytes(5000)
    (root / "random.bin").write_bytes(rnd.randbytes(3_000_000))
    (root / "sparse.bin").write_bytes(bytes(700_000) + rnd.randbytes(400_000) + bytes(1_300_001))
    (root / "pattern.bin").write_bytes(pattern * 300 + rnd.randbytes(10) + pattern * 200)
    (root / "small.txt").write_bytes(b"hello\n")
    return root


def test_manifest_is_byte_identical_whatever_the_workers_and_segments(tmp_path, dask_executor, threads):
    from depot_app import dask_cluster

    build = _big_build(tmp_path / "build")
    unsplit = ChunkParams(4 << 10, 16 << 10, 64 << 10)
    split = ChunkParams(4 << 10, 16 << 10, 64 << 10, segment_size=256 << 10)  # ~12 segments per file

    def manifest_bytes(name, params, executor):
        store = open_store(str(tmp_path / name))
        products.configure(store, PRODUCT, params)
        ingest(store, str(build), PRODUCT, "1", executor)
        chunk(store, PRODUCT, "1", executor)
        return store.get(layout.manifest_key(PRODUCT, "1")), store

    serial, store = manifest_bytes("serial", unsplit, threads)
    with dask_cluster.executor(workers=1) as one_worker:
        assert manifest_bytes("one", split, one_worker)[0] == serial
    assert manifest_bytes("three", split, dask_executor)[0] == serial
    assert manifest_bytes("threads", split, threads)[0] == serial
    m = manifest.load(store, PRODUCT, "1")
    for f in m.files:
        assert rebuild(store, m, f.path) == (build / f.path).read_bytes()


def test_a_damaged_chunk_is_refused_never_used(repo, threads, tmp_path):
    publish(repo, threads, versions=["1.0.0"])
    m = manifest.load(repo, PRODUCT, "1.0.0")
    victim = m.entry("bin/starfall").chunks[0]
    path = tmp_path / "repo" / layout.chunk_key(victim.id)
    stored = bytearray(path.read_bytes())
    stored[len(stored) // 2] ^= 0x01
    path.write_bytes(bytes(stored))
    with pytest.raises(IntegrityError) as err:
        rebuild(repo, m, "bin/starfall")
    assert err.value.exit_code == 7 and victim.id in str(err.value)

    # a valid object of the right size under the wrong id is refused too
    other = m.entry("data/assets.pak").chunks[0]
    raw = tmp_path / "repo" / layout.chunk_key(other.id)
    assert raw.stat().st_size == other.size  # stored raw
    with pytest.raises(IntegrityError):
        codec.decode(victim.id, raw.read_bytes()[: victim.size].ljust(victim.size, b"\0"), victim.size)

    path.unlink()
    with pytest.raises(NotFound, match=victim.id):
        rebuild(repo, m, "bin/starfall")


def test_a_tampered_manifest_is_refused(repo, threads, tmp_path):
    publish(repo, threads, versions=["1.0.0"])
    path = tmp_path / "repo" / layout.manifest_key(PRODUCT, "1.0.0")
    doc = manifest.decode(path.read_bytes())
    doc["entries"]["path"][0] = "../escape"
    path.write_bytes(manifest.encode(doc))
    with pytest.raises(ManifestInvalid) as err:
        manifest.load(repo, PRODUCT, "1.0.0")
    assert err.value.exit_code == 8 and "entries/path holds a path that is empty, absolute" in str(err.value)


def test_a_build_changed_after_ingest_is_refused(repo, threads, tmp_path, build_dirs):
    import shutil

    src = tmp_path / "build"
    shutil.copytree(build_dirs["1.0.0"], src, symlinks=True)
    ingest(repo, str(src), PRODUCT, "1.0.0", threads)
    data = bytearray((src / "bin/starfall").read_bytes())
    data[1000] ^= 0xFF  # same size, different content
    (src / "bin/starfall").write_bytes(bytes(data))
    with pytest.raises(SourceChanged, match="bin/starfall"):
        chunk(repo, PRODUCT, "1.0.0", threads)
    assert not repo.has(layout.manifest_key(PRODUCT, "1.0.0"))
    (src / "data/assets.pak").write_bytes(b"short")
    with pytest.raises(SourceChanged):
        chunk(repo, PRODUCT, "1.0.0", threads)


def test_chunking_before_ingest_names_what_is_missing(repo, threads):
    with pytest.raises(NotFound, match="has not been ingested"):
        chunk(repo, PRODUCT, "9.9.9", threads)


def test_s3_repository_and_source_on_dask_workers(s3, s3_bucket, dask_executor, tmp_path, build_dirs):
    """Workers in other processes read the source from S3 and write chunks to S3, with the
    endpoint carried by the locations (nothing in the library reads DEPOT_S3_ENDPOINT, and
    botocore's own AWS_ENDPOINT_URL is not set)."""
    from archives import tar_of_dir

    fs, _ = s3.resolve(s3_bucket).filesystem()
    fs.put_file(str(tar_of_dir(build_dirs["1.1.0"], tmp_path / "b.tar")), f"{s3_bucket[5:]}/uploads/b.tar")
    store = open_store(s3.resolve(f"{s3_bucket}/repo"))
    products.configure(store, PRODUCT, FIXTURE_PARAMS)
    ingest(store, f"{s3_bucket}/uploads/b.tar", PRODUCT, "1.1.0", dask_executor, locations=s3)
    r = chunk(store, PRODUCT, "1.1.0", dask_executor, locations=s3)
    assert r.created and r.chunks_new == r.unique_chunks
    m = manifest.load(store, PRODUCT, "1.1.0")
    files = tar_files("1.1.0")
    assert all(rebuild(store, m, f.path) == files[f.path] for f in m.files)


def test_dedup_ratio_and_newly_stored_bytes_are_exact(repo, threads, tmp_path):
    """A build repeating a file: dedup counts the repeat; chunking the same bytes under
    another version stores nothing new."""

    build = tmp_path / "dups"
    build.mkdir()
    blob = random.Random(3).randbytes(300_000)
    (build / "a.bin").write_bytes(blob)
    (build / "b.bin").write_bytes(blob)
    (build / "c.txt").write_bytes(b"unique\n")
    products.configure(repo, PRODUCT, FIXTURE_PARAMS)
    ingest(repo, str(build), PRODUCT, "1", threads)
    r = chunk(repo, PRODUCT, "1", threads)
    m = manifest.load(repo, PRODUCT, "1")
    unique = {c.id: c for f in m.files for c in f.chunks}
    assert r.dedup_ratio == round(r.bytes / sum(c.size for c in unique.values()), 4) and r.dedup_ratio > 1.9
    assert r.stored_bytes_new == sum(p.stat().st_size for p in (tmp_path / "repo" / "chunks").rglob("*") if p.is_file())
    ingest(repo, str(build), PRODUCT, "2", threads)
    again = chunk(repo, PRODUCT, "2", threads)
    assert (again.stored_bytes_new, again.chunks_new, again.chunks_reused) == (0, 0, again.unique_chunks)


def test_run_reads_a_directory_once_and_writes_what_ingest_then_chunk_write(tmp_path, threads, build_dirs, monkeypatch):
    """`depot run` on a directory cuts, stores and hashes each file in one pass (ingest's
    hashing pass never runs), and writes the same inventory and manifest, byte for byte,
    as the two steps."""
    from pipeline.build import ingest as ingest_module
    from pipeline.build.run import ingest_and_chunk

    two, one = (open_store(str(tmp_path / name)) for name in ("two-steps", "one-pass"))
    for store in (two, one):
        products.configure(store, PRODUCT, fixture_params())
    ingest(two, str(build_dirs["1.1.0"]), PRODUCT, "1.1.0", threads)
    chunk(two, PRODUCT, "1.1.0", threads)

    def no_second_pass(*args):
        raise AssertionError("ingest hashed the files in a pass of its own")

    monkeypatch.setattr(ingest_module, "hash_files", no_second_pass)
    totals = []
    ingested, chunked = ingest_and_chunk(one, str(build_dirs["1.1.0"]), PRODUCT, "1.1.0", threads,
                                         on_total=totals.append)
    assert ingested.created and chunked.created
    for key in (layout.inventory_key(PRODUCT, "1.1.0"), layout.manifest_key(PRODUCT, "1.1.0")):
        assert one.get(key) == two.get(key)
    assert totals == [chunked.bytes]


def test_run_refuses_a_large_file_that_changes_while_it_is_read(tmp_path):
    """A large file is hashed by one read and cut by others: written to in between, it
    would make a manifest whose chunks are not its SHA-256. The one-pass run sees it."""
    import concurrent.futures as cf

    from pipeline.build import chunk as chunk_module
    from pipeline.build.run import ingest_and_chunk

    build = tmp_path / "build"
    build.mkdir()
    pak = build / "data.pak"
    pak.write_bytes(random.Random(5).randbytes(4 << 20))
    store = open_store(str(tmp_path / "repo"))
    products.configure(store, PRODUCT, ChunkParams(16 << 10, 64 << 10, 256 << 10, segment_size=1 << 20))

    class WriteAfterHashing(cf.ThreadPoolExecutor):
        """The game's build tool still writing: the file changes once its hash is read."""

        def submit(self, fn, *args):
            if fn is chunk_module.file_sha256:
                digest = fn(*args)
                (build.parent / "new.pak").write_bytes(random.Random(6).randbytes(4 << 20))
                os.replace(build.parent / "new.pak", pak)  # whole: every later read sees 4 MiB, of other bytes
                done = cf.Future()
                done.set_result(digest)
                return done
            return super().submit(fn, *args)

    with WriteAfterHashing(1) as ex, pytest.raises(SourceChanged, match="data.pak changed while it was read"):
        ingest_and_chunk(store, str(build), PRODUCT, "1.0.0", ex)
    assert not store.has(layout.inventory_key(PRODUCT, "1.0.0"))
    assert not store.has(layout.manifest_key(PRODUCT, "1.0.0"))


@pytest.mark.parametrize("change, why", [
    ("truncate", "expected 700 bytes at offset 0, got 300"),
    ("remove", "no longer exists"),
])
def test_a_packed_file_cut_short_or_gone_after_ingest_is_source_changed(tmp_path, threads, change, why):
    """The stream of packed files is read a file at a time: one that is shorter than the
    inventory says, or gone, stops the chunk naming it, and no manifest is written."""
    src = tmp_path / "src"
    for i in range(30):
        (src / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 3}" / f"f{i:02d}.txt").write_bytes(bytes([65 + i]) * 700)
    store = open_store(str(tmp_path / "repo"))
    products.configure(store, PRODUCT, ChunkParams(1 << 10, 4 << 10, 16 << 10))
    ingest(store, str(src), PRODUCT, "1", threads)
    victim = src / "d1" / "f13.txt"
    if change == "truncate":
        victim.write_bytes(b"x" * 300)
    else:
        victim.unlink()
    with pytest.raises(SourceChanged) as err:
        chunk(store, PRODUCT, "1", threads)
    assert str(err.value) == f"{victim}: {why}" and err.value.exit_code == SourceChanged.exit_code
    assert not store.has(layout.manifest_key(PRODUCT, "1"))
