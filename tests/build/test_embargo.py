"""Embargoed builds: a version half already public (the fixture's 1.1.0 plus new files whose
bytes carry a marker, incompressible so that a plain chunk would hold it as it is) built with
its content key. Only its new chunks are sealed, under their sealed names; its manifest is
sealed and its pre-load list plain; published, no object of the origin holds a marker, a
new path or the key. A public build never names a chunk sealed for a release not out; after
release, a later build shares the sealed chunks without storing them again. The commands:
run/chunk --embargo and the product setting, and ls, cat, diff, stats export on a sealed
version (opened with --keys, or CONTENT_LOCKED naming it)."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import datetime
import json
import os
import random
import shutil
import subprocess

import pytest

from depot_testing.embargo import holding
from depot_testing.fixtures import PRODUCT, chunk_fixture_versions
from helpers import DEPOT, ROOT
from pipeline import layout
from pipeline.build.embargo import sealing_for
from pipeline.build.run import ingest_and_chunk
from pipeline.core import codec
from pipeline.errors import ContentLocked
from pipeline.formats import manifest, preload, sealed
from pipeline.publish.publish import publish
from pipeline.publish.release import release
from pipeline.storage import open_store
from pipeline.trust import content_keys

MARKER = b"EMBARGOED-CONTENT-MARKER-7f3a9c"
NEW_PATHS = ("data/levels/marker_secret_level.dat", "config/marker_secret.cfg")
T0 = datetime.datetime(2026, 12, 24, 18, 0, 0, tzinfo=datetime.timezone.utc)


def marked(n: int, seed: int) -> bytes:
    """``n`` random bytes (they do not compress: a plain chunk stores them as they are) with
    the marker every 4 KiB."""
    data = bytearray(random.Random(seed).randbytes(n))
    for at in range(0, n - len(MARKER), 4096):
        data[at:at + len(MARKER)] = MARKER
    return bytes(data)


@pytest.fixture(scope="module")
def built(tmp_path_factory, build_dirs):
    """1.0.0 and 1.1.0 public; 1.2.0 embargoed: 1.1.0 plus a large and a small new file."""
    base = tmp_path_factory.mktemp("embargo")
    src = base / "src-1.2.0"
    shutil.copytree(build_dirs["1.1.0"], src, symlinks=True)
    (src / NEW_PATHS[0]).write_bytes(marked(300_000, 1))
    (src / NEW_PATHS[1]).write_bytes(marked(3_000, 2))
    store = chunk_fixture_versions(base / "repo", versions=["1.0.0", "1.1.0"])
    key = content_keys.create(base / "keys", PRODUCT, "1.2.0")
    with cf.ThreadPoolExecutor(2) as ex:
        _, result = ingest_and_chunk(store, str(src), PRODUCT, "1.2.0", ex, sealing=sealing_for(store, PRODUCT, key))
    return base, src, key, result


@pytest.fixture
def world(built, tmp_path):
    """A private copy of ``built``."""
    base, src, key, result = built
    shutil.copytree(base, tmp_path / "w", symlinks=True)
    return tmp_path / "w", src, key, result, open_store(str(tmp_path / "w" / "repo"))


def public_ids(store) -> set[str]:
    return {i for v in ("1.0.0", "1.1.0") for i in manifest.load(store, PRODUCT, v).unique_chunks()}


def test_a_version_half_public_stores_only_its_new_chunks_sealed(world, tmp_path):
    base, src, key, result, store = world
    name = layout.manifest_key(PRODUCT, "1.2.0")
    with pytest.raises(ContentLocked, match=f"{PRODUCT} 1.2.0 is embargoed: its manifest is sealed"):
        sealed.load_manifest(store, PRODUCT, "1.2.0", sealed.one_key(None))
    assert sealed.key_id(store.get(name), name) == key.key_id
    m = sealed.load_manifest(store, PRODUCT, "1.2.0", sealed.one_key(key))
    chunks = m.unique_chunks()
    public = public_ids(store)
    new = set(chunks) - public
    assert new and set(chunks) & public  # half public, half new
    assert {i for i, c in chunks.items() if c.key_id} == new
    assert all(c.key_id == key.key_id for i, c in chunks.items() if i in new)
    assert (result.chunks_new, result.stored_bytes_new) == (len(new), sum(chunks[i].stored_size for i in new))
    for i, c in chunks.items():
        plain_name, sealed_name = layout.chunk_key(i), layout.chunk_key(i, key.key_id)
        if i in new:
            assert not store.has(plain_name)
            box = store.get(sealed_name)
            assert len(box) == c.stored_size and box[:25] == b"DPSEAL01\x01" + bytes.fromhex(key.key_id)
            assert codec.chunk_id(sealed.unseal_chunk(key, i, box, c.size)) == i
        else:
            assert not store.has(sealed_name) and len(store.get(plain_name)) == c.stored_size
    files = {f.path: f for f in m.files}
    for path in NEW_PATHS:  # the new files are made of sealed chunks alone
        assert all(c.key_id == key.key_id for c in files[path].chunks)
    listed = preload.load(store, PRODUCT, "1.2.0")
    assert (listed.key_id, listed.chunks) == (key.key_id, tuple(chunks.values()))
    assert listed.download_bytes == m.totals()["stored_bytes"]

    origin = open_store(str(tmp_path / "origin"))
    publish(store, [origin], PRODUCT, ["1.0.0", "1.1.0", "1.2.0"],
            keys=content_keys.ContentKeys(base / "keys").find)
    assert all(origin.has(layout.chunk_key(i, c.key_id)) for i, c in chunks.items())
    secrets = {"marker": MARKER, "key": key.key, "key base64": base64.b64encode(key.key),
               "key hex": key.key.hex().encode(), **{p: p.encode() for p in NEW_PATHS},
               "name": b"marker_secret"}
    assert holding(origin, secrets) == []
    assert MARKER in (src / NEW_PATHS[0]).read_bytes()  # what a plain build would have put there as it is


def test_run_again_finds_what_it_stored(world):
    base, src, key, result, store = world
    before = {k: store.get(k) for k in store.list(layout.CHUNK_PREFIX)}
    with cf.ThreadPoolExecutor(2) as ex:
        _, again = ingest_and_chunk(store, str(src), PRODUCT, "1.2.0", ex, sealing=sealing_for(store, PRODUCT, key))
        assert (again.created, again.chunks_new) == (False, 0)
        with pytest.raises(ContentLocked, match=f"{PRODUCT} 1.2.0 is embargoed"):
            ingest_and_chunk(store, str(src), PRODUCT, "1.2.0", ex)  # a public run of it has no key
    assert {k: store.get(k) for k in store.list(layout.CHUNK_PREFIX)} == before


def test_a_public_build_never_names_a_chunk_sealed_for_a_release_not_out(world):
    base, src, key, result, store = world
    m = sealed.load_manifest(store, PRODUCT, "1.2.0", sealed.one_key(key))
    new = {i for i, c in m.unique_chunks().items() if c.key_id}
    assert sealing_for(store, PRODUCT, None) is None  # no key released: a plain build, as always
    with cf.ThreadPoolExecutor(2) as ex:
        _, r = ingest_and_chunk(store, str(src), PRODUCT, "1.2.1", ex)
    hotfix = manifest.load(store, PRODUCT, "1.2.1")  # plain: readable by anyone
    assert all(c.key_id == "" for c in hotfix.unique_chunks().values())
    assert r.chunks_new == len(new)  # stored again, plain, beside the sealed ones
    for i in new:
        assert store.has(layout.chunk_key(i)) and store.has(layout.chunk_key(i, key.key_id))
        assert manifest.load(store, PRODUCT, "1.2.1").unique_chunks()[i].stored_size == len(store.get(layout.chunk_key(i)))


def test_after_release_a_later_build_shares_the_sealed_chunks(world):
    base, src, key, result, store = world
    m = sealed.load_manifest(store, PRODUCT, "1.2.0", sealed.one_key(key))
    sealed_chunks = {i: c for i, c in m.unique_chunks().items() if c.key_id}
    release(store, PRODUCT, "1.2.0", key, now=T0)
    later = base / "src-1.3.0"
    shutil.copytree(src, later, symlinks=True)
    (later / "data/levels/marker_after.dat").write_bytes(marked(100_000, 3))
    before = set(store.list(layout.CHUNK_PREFIX))
    with cf.ThreadPoolExecutor(2) as ex:
        _, r = ingest_and_chunk(store, str(later), PRODUCT, "1.3.0", ex, sealing=sealing_for(store, PRODUCT, None))
    m3 = manifest.load(store, PRODUCT, "1.3.0")  # public: plain, yet naming 1.2.0's sealed chunks
    chunks = m3.unique_chunks()
    assert {i: c for i, c in chunks.items() if c.key_id} == sealed_chunks
    added = set(store.list(layout.CHUNK_PREFIX)) - before
    assert added == {layout.chunk_key(i) for i in chunks if i not in sealed_chunks and i not in public_ids(store)
                     and i not in m.unique_chunks()}
    assert r.chunks_new == len(added) and all(layout.chunk_key(i) not in added for i in sealed_chunks)


# -- the commands -----------------------------------------------------------------------------


def depot(*args) -> subprocess.CompletedProcess:
    return subprocess.run(DEPOT + [str(a) for a in args], cwd=ROOT, capture_output=True)


def failed(p: subprocess.CompletedProcess) -> tuple[int, str, str]:
    out = json.loads(p.stdout)
    return p.returncode, out["error"], out["message"]


def test_the_commands_build_embargoed_and_read_a_sealed_version_only_with_its_key(world, tmp_path):
    base, src, key, result, store = world
    repo, keys = base / "repo", base / "keys"
    with_keys = ("--repo", repo, "--keys", keys)
    later = tmp_path / "src-1.3.0"
    shutil.copytree(src, later, symlinks=True)
    (later / NEW_PATHS[1]).write_bytes(marked(3_000, 4))

    p = depot("--json", "--repo", repo, "run", later, "-p", PRODUCT, "-v", "1.3.0", "--embargo")
    assert failed(p) == (2, "SIGNING_KEY_MISSING", f"{PRODUCT} 1.3.0 is to be embargoed: its content key is made "
                                                   "and kept in the release side's keys directory, give it with --keys DIR")
    p = depot("--json", *with_keys, "run", src, "-p", PRODUCT, "-v", "1.1.0", "--embargo")
    assert failed(p)[:2] == (6, "VERSION_CONFLICT") and "1.1.0 was chunked public already" in failed(p)[2]
    assert not (keys / "content" / PRODUCT / "1.1.0.json").exists()

    p = depot("--json", *with_keys, "configure", "-p", PRODUCT, "--embargo")
    assert p.returncode == 0 and json.loads(p.stdout)["embargo"] is True
    p = depot("--json", *with_keys, "run", later, "-p", PRODUCT, "-v", "1.3.0", "--diff-last", "1")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    made = content_keys.load(keys, PRODUCT, "1.3.0")
    assert out["embargo"] == {"key_id": made.key_id}
    assert sealed.key_id(store.get(layout.manifest_key(PRODUCT, "1.3.0")), "m") == made.key_id

    p = depot("--repo", repo, "ls", "-p", PRODUCT)
    assert p.stdout.decode().splitlines() == ["1.0.0\tchunked", "1.1.0\tchunked", "1.2.0\tchunked\tembargoed",
                                              "1.3.0\tchunked\tembargoed"]
    for args in (("cat", "-p", PRODUCT, "-v", "1.2.0", NEW_PATHS[0]),
                 ("diff", "-p", PRODUCT, "--from", "1.1.0", "--to", "1.2.0"), ("stats", "export")):
        p = depot("--json", "--repo", repo, *args)
        code, error, message = failed(p)
        assert (code, error) == (22, "CONTENT_LOCKED") and "1.2.0" in message and "--keys DIR" in message
        assert b"Traceback" not in p.stderr
    p = depot(*with_keys, "cat", "-p", PRODUCT, "-v", "1.2.0", NEW_PATHS[0])
    assert p.returncode == 0 and p.stdout == (src / NEW_PATHS[0]).read_bytes()
    p = depot("--json", *with_keys, "stats", "export")
    assert p.returncode == 0, p.stderr

    # the plan to the embargoed 1.3.0 that run made: sealed, its patches sealed and named by their sealed bytes
    plan_name = layout.plan_key(PRODUCT, "1.2.0", "1.3.0")
    assert sealed.key_id(store.get(plan_name), plan_name) == made.key_id
    plan = json.loads(sealed.unseal(made, plan_name, store.get(plan_name)))
    segments = [s for f in plan["files"] for s in f.get("segments", [])]
    assert segments
    for s in segments:
        box = store.get(layout.patch_key(s["id"]))
        assert codec.chunk_id(box) == s["id"] and len(box) == s["patch_size"] and sealed.is_sealed(box)
        assert sealed.unseal(made, plan_name, box)
    assert holding(store, {"marker": MARKER}) == []  # nowhere in the repository either: sealed or absent
    assert os.path.exists(keys / "content" / PRODUCT / "1.3.0.json")
