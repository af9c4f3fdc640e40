"""Delta updates: plans and patches per version pair, and updating an installed game."""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import json
import random
import subprocess

import pytest

from conftest import DEPOT, kill_while_running, PRODUCT, ROOT, VERSIONS, chunk_fixture_versions, fixture_params, fixture_tar, tree_snapshot
from http_origin import StaticOrigin
from pipeline import engines, layout, products
from pipeline.chunk import chunk
from pipeline.diff import diff, load_plan
from pipeline.errors import InsufficientDiskSpace
from pipeline.fetch import Fetcher, open_origin
from pipeline.ingest import ingest
from pipeline.install import install
from pipeline.store import FsspecStore
from pipeline.update import update
from test_install import assert_installed, tree

diff_mod = importlib.import_module("pipeline.diff")  # the module; pipeline.diff is the stage function
PAIRS = [(a, b) for i, b in enumerate(VERSIONS) for a in VERSIONS[:i]]


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """Every fixture version chunked and every pair planned."""
    root = tmp_path_factory.mktemp("planned")
    store = chunk_fixture_versions(root)
    with cf.ThreadPoolExecutor(2) as ex:
        for a, b in PAIRS:
            diff(store, PRODUCT, a, b, ex)
    return root


def fetcher(*urls) -> Fetcher:
    return Fetcher([open_origin(str(u)) for u in urls], backoff=0.01)


def test_rerunning_diff_is_a_no_op(planned, tmp_path):
    before = tree_snapshot(planned)
    with cf.ThreadPoolExecutor(2) as ex:
        r = diff(FsspecStore(str(planned)), PRODUCT, "1.0.0", "1.1.0", ex)
    assert not r.created and tree_snapshot(planned) == before


def test_plan_classifies_every_file(planned):
    store = FsspecStore(str(planned))
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
    store = FsspecStore(str(planned))
    plan = load_plan(store, PRODUCT, *pair)
    assert plan["delta_download_bytes"] <= plan["chunk_download_bytes"] <= plan["full_download_bytes"]
    for op in plan["files"]:
        for s in op.get("segments", ()):
            patch = store.get(layout.patch_key(s["id"]))
            assert len(patch) == s["patch_size"] < op.get("download_bytes", float("inf"))


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_every_pair_updates_byte_exact_with_the_fewest_bytes(planned, build_dirs, tmp_path, pair):
    dest = tmp_path / "game"
    install(fetcher(planned), PRODUCT, pair[0], dest)
    with StaticOrigin(planned) as origin:
        r = update(fetcher(origin.url), dest, to_version=pair[1])
    assert_installed(dest, build_dirs[pair[1]])
    assert r.method == "delta" and not r.fallbacks
    assert r.bytes_downloaded == r.delta_route_bytes <= r.chunk_route_bytes
    plan = load_plan(FsspecStore(str(planned)), PRODUCT, *pair)
    assert r.delta_route_bytes <= plan["delta_download_bytes"]  # a chain is taken only when cheaper


def test_update_to_a_channel_and_to_the_installed_version(planned, build_dirs, tmp_path):
    from pipeline.promote import promote

    dest = tmp_path / "game"
    install(fetcher(planned), PRODUCT, "1.0.0", dest)
    promote(FsspecStore(str(planned)), PRODUCT, "1.3.0", "beta")
    assert update(fetcher(planned), dest, channel="beta").to_version == "1.3.0"
    assert update(fetcher(planned), dest, channel="beta").method == "none"
    assert_installed(dest, build_dirs["1.3.0"])


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_bad_patch_falls_back_to_chunks(planned, build_dirs, tmp_path, damage):
    import shutil

    origin = tmp_path / "origin"
    shutil.copytree(planned, origin)
    plan = load_plan(FsspecStore(str(origin)), PRODUCT, "1.0.0", "1.1.0")
    victim = next(f for f in plan["files"] if f["path"] == "bin/starfall")
    path = origin / layout.patch_key(victim["segments"][0]["id"])
    if damage == "missing":
        path.unlink()
    else:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    dest = tmp_path / "game"
    install(fetcher(origin), PRODUCT, "1.0.0", dest)
    r = update(fetcher(origin), dest, to_version="1.1.0")
    assert [f["path"] for f in r.fallbacks] == ["bin/starfall"]
    assert r.fallbacks[0]["error"] == "DELTA_PATCH_APPLICATION_FAILED"
    assert_installed(dest, build_dirs["1.1.0"])


def test_a_missing_plan_falls_back_to_chunks(planned, build_dirs, tmp_path):
    import shutil

    origin = tmp_path / "origin"
    shutil.copytree(planned, origin)
    (origin / layout.plan_key(PRODUCT, "1.0.0", "1.2.0")).unlink()  # still in the index
    dest = tmp_path / "game"
    install(fetcher(origin), PRODUCT, "1.0.0", dest)
    r = update(fetcher(origin), dest, to_version="1.2.0")
    assert r.method == "chunks" and r.fallbacks[0]["error"] == "DELTA_PATCH_APPLICATION_FAILED"
    assert_installed(dest, build_dirs["1.2.0"])


def test_a_damaged_installed_file_is_fetched_not_patched(planned, build_dirs, tmp_path):
    dest = tmp_path / "game"
    install(fetcher(planned), PRODUCT, "1.0.0", dest)
    (dest / "bin/starfall").write_bytes(b"damaged")
    update(fetcher(planned), dest, to_version="1.1.0")
    assert_installed(dest, build_dirs["1.1.0"])


def test_a_full_disk_leaves_the_old_version_intact(planned, build_dirs, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3200k", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("mounting a small filesystem needs root")
    try:
        dest = small / "game"
        install(fetcher(planned), PRODUCT, "1.0.0", dest)  # 2.4 MiB: fits, but not twice
        with pytest.raises(InsufficientDiskSpace):
            update(fetcher(planned), dest, to_version="1.3.0")
        assert_installed(dest, build_dirs["1.0.0"])
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_a_failing_swap_during_update_keeps_the_old_version(planned, build_dirs, tmp_path):
    dest = tmp_path / "game"
    install(fetcher(planned), PRODUCT, "1.1.0", dest)
    stuck = dest / "data/levels/level04.dat"  # renamed away in 1.3.0
    if subprocess.run(["chattr", "+i", str(stuck)], capture_output=True).returncode:
        pytest.skip("chattr +i is not supported here")
    try:
        with pytest.raises(Exception):
            update(fetcher(planned), dest, to_version="1.3.0")
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    assert_installed(dest, build_dirs["1.1.0"])
    update(fetcher(planned), dest, to_version="1.3.0")
    assert_installed(dest, build_dirs["1.3.0"])


def test_a_killed_update_resumes(planned, build_dirs, tmp_path):
    dest = tmp_path / "game"
    install(fetcher(planned), PRODUCT, "1.0.0", dest)
    with StaticOrigin(planned) as origin:
        args = DEPOT + ["--json", "update", "--origin", origin.url, "--dest", str(dest), "--to", "1.3.0"]
        before_or_after = (tree(build_dirs["1.0.0"]), tree(build_dirs["1.3.0"]))

        def one_version_or_the_other() -> None:
            assert tree(dest) in before_or_after

        killed = kill_while_running(args + ["--max-rate", "256KiB"], (0.5, 1.0, 1.5), one_version_or_the_other)
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert killed >= 1
    assert_installed(dest, build_dirs["1.3.0"])


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
    assert engines.apply(engine, old, patch, len(new)) == new
    with pytest.raises(engines.PatchFailed):
        engines.apply(engine, old, patch[: len(patch) // 2], len(new))
    with pytest.raises(engines.PatchFailed):
        engines.apply("no-such-engine", old, patch, len(new))


def test_a_large_file_is_patched_in_segments_that_apply_exactly(tmp_path, monkeypatch, build_dirs):
    """With the segment sizes scaled down, a file is diffed and updated piece by piece."""
    monkeypatch.setattr(diff_mod, "WHOLE_FILE", 1 << 20)
    monkeypatch.setattr(diff_mod, "SEGMENT", 512 << 10)
    monkeypatch.setattr(diff_mod, "WINDOW", 1536 << 10)
    old, new = _edited(6 << 20, 2)
    for name, data in (("old", old), ("new", new)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "big.pak").write_bytes(data)
    store = FsspecStore(str(tmp_path / "repo"))
    products.configure(store, PRODUCT, fixture_params())
    with cf.ThreadPoolExecutor(2) as ex:
        for v in ("old", "new"):
            ingest(store, str(tmp_path / v), PRODUCT, v, ex)
            chunk(store, PRODUCT, v, ex)
        diff(store, PRODUCT, "old", "new", ex)
    op = load_plan(store, PRODUCT, "old", "new")["files"][0]
    assert op["op"] == "patch" and len(op["segments"]) == -(-len(new) // (512 << 10))
    assert all(s["source_size"] <= 1536 << 10 for s in op["segments"])
    dest = tmp_path / "game"
    install(fetcher(tmp_path / "repo"), PRODUCT, "old", dest)
    r = update(fetcher(tmp_path / "repo"), dest, to_version="new")
    assert r.method == "delta" and r.patches_applied == 1
    assert (dest / "big.pak").read_bytes() == new
