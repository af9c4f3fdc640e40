"""update: an installed game brought to another version the cheapest way, byte for byte,
falling back to chunks when a patch or plan is bad, and never leaving a half-updated
directory."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
import random
import shutil
import subprocess

import pytest

from helpers import DEPOT, PAIRS, ROOT, assert_installed, fetcher, kill_when, load_plan, tree
from depot_testing.fixtures import PRODUCT, fixture_params
from pipeline import layout
from pipeline.client.install import install
from pipeline.client.update import update
from pipeline.client.verify import verify
from pipeline.errors import InsufficientDiskSpace, StoreUnavailable
from pipeline.storage import open_store
from depot_testing.http_origins import StaticOrigin


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_every_pair_updates_byte_exact_with_the_fewest_bytes(planned, build_dirs, tmp_path, pair):
    dest = tmp_path / "game"
    install(fetcher(planned), PRODUCT, pair[0], dest)
    with StaticOrigin(planned) as origin:
        r = update(fetcher(origin.url), dest, to_version=pair[1])
    assert_installed(dest, build_dirs[pair[1]])
    assert r.method == "delta" and not r.fallbacks
    assert r.bytes_downloaded == r.delta_route_bytes <= r.chunk_route_bytes
    plan = load_plan(open_store(str(planned)), PRODUCT, *pair)
    assert r.delta_route_bytes <= plan["delta_download_bytes"]  # a chain is taken only when cheaper


def test_update_to_a_channel_and_to_the_installed_version(planned, build_dirs, tmp_path):
    from pipeline.publish.channels import promote

    dest = tmp_path / "game"
    install(fetcher(planned), PRODUCT, "1.0.0", dest)
    promote(open_store(str(planned)), PRODUCT, "1.3.0", "beta")
    assert update(fetcher(planned), dest, channel="beta").to_version == "1.3.0"
    assert update(fetcher(planned), dest, channel="beta").method == "none"
    assert_installed(dest, build_dirs["1.3.0"])


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_bad_patch_falls_back_to_chunks(planned, build_dirs, tmp_path, damage):
    origin = tmp_path / "origin"
    shutil.copytree(planned, origin)
    plan = load_plan(open_store(str(origin)), PRODUCT, "1.0.0", "1.1.0")
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


def test_the_command_warns_on_stderr_of_a_patch_that_fell_back_to_chunks(planned, build_dirs, tmp_path):
    origin = tmp_path / "origin"
    shutil.copytree(planned, origin)
    plan = load_plan(open_store(str(origin)), PRODUCT, "1.0.0", "1.1.0")
    victim = next(f for f in plan["files"] if f["path"] == "bin/starfall")
    (origin / layout.patch_key(victim["segments"][0]["id"])).unlink()
    dest = tmp_path / "game"
    install(fetcher(origin), PRODUCT, "1.0.0", dest)
    p = subprocess.run(DEPOT + ["--json", "update", "--allow-unsigned", "--origin", str(origin), "--dest", str(dest),
                                "--to", "1.1.0"], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    fallbacks = json.loads(p.stdout)["fallbacks"]
    assert [(f["path"], f["error"]) for f in fallbacks] == [("bin/starfall", "DELTA_PATCH_APPLICATION_FAILED")]
    assert p.stderr.splitlines() == [f"depot: warning: bin/starfall: DELTA_PATCH_APPLICATION_FAILED: "
                                     f"{fallbacks[0]['message']} (fetched by chunks instead)"]
    assert_installed(dest, build_dirs["1.1.0"])


def test_a_missing_plan_falls_back_to_chunks(planned, build_dirs, tmp_path):
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
        pytest.fail("this test mounts a small tmpfs: run the suite as root (CI does)")
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
        pytest.fail("this test makes a file immutable with chattr +i: run the suite as root on ext4 (CI does)")
    try:
        with pytest.raises(StoreUnavailable, match="cannot be replaced .*still holds the version"):
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
        args = DEPOT + ["--json", "update", "--allow-unsigned", "--origin", origin.url, "--dest", str(dest), "--to", "1.3.0"]
        before_or_after = (tree(build_dirs["1.0.0"]), tree(build_dirs["1.3.0"]))

        def one_version_or_the_other() -> None:
            assert tree(dest) in before_or_after

        def fetched(n: int):
            return lambda: sum(c for p, c in origin.requests_by_path.items() if p.startswith(("/chunks/", "/patches/"))) >= n

        # killed once 1, 2 then 4 chunks or patches were asked for: mid-download
        killed = kill_when(args + ["--max-rate", "256KiB"], [fetched(n) for n in (1, 2, 4)], one_version_or_the_other)
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert killed >= 1
    assert_installed(dest, build_dirs["1.3.0"])


def test_a_file_an_interrupted_update_staged_before_its_mode_was_set_gets_its_mode(planned, build_dirs, tmp_path):
    """Killed between writing a staged file and setting its mode: the bytes are right, the
    exec bit is not. The next run reuses the bytes and sets the mode."""
    from pipeline.client.game_dir import GameDir
    from pipeline.formats import manifest

    dest = tmp_path / "game"
    install(fetcher(planned), PRODUCT, "1.0.0", dest)
    [entry] = [e for e in manifest.load(open_store(str(planned)), PRODUCT, "1.3.0").files if e.path == "bin/starfall"]
    assert entry.executable
    staged = GameDir(dest).staging_path(entry)
    os.makedirs(os.path.dirname(staged), exist_ok=True)
    shutil.copyfile(build_dirs["1.3.0"] / "bin" / "starfall", staged)
    os.chmod(staged, 0o644)
    update(fetcher(planned), dest, "1.3.0")
    assert_installed(dest, build_dirs["1.3.0"])


@pytest.fixture(scope="module")
def dropping_dirs(tmp_path_factory):
    """A product whose version 2 drops directories of version 1: "old" and "extras" lose
    their only file, the empty "addons" and "scratch" go; "levels" and "saves" stay. Both
    chunked, and planned 1 -> 2. Returns (repository, build of version 2)."""
    from pipeline.build import products
    from pipeline.build.chunk import chunk
    from pipeline.build.ingest import ingest
    from pipeline.delta.diff import diff

    base = tmp_path_factory.mktemp("dropping")
    rnd = random.Random(11)
    game = rnd.randbytes(400_000)
    builds = {
        "1": ({"game.bin": game, "levels/a.dat": rnd.randbytes(20_000), "levels/b.dat": rnd.randbytes(20_000),
               "old/readme.txt": b"old\n", "extras/e.txt": b"extra\n"}, ["saves", "addons", "scratch"]),
        "2": ({"game.bin": game[:150_000] + b"patched" + game[150_007:], "new/x.txt": b"new\n"}, ["saves"]),
    }
    builds["2"][0]["levels/a.dat"] = builds["1"][0]["levels/a.dat"]
    store = open_store(str(base / "repo"))
    products.configure(store, PRODUCT, fixture_params())
    with cf.ThreadPoolExecutor(2) as ex:
        for version, (files, dirs) in builds.items():
            build = base / f"build-{version}"
            for rel, data in files.items():
                (build / rel).parent.mkdir(parents=True, exist_ok=True)
                (build / rel).write_bytes(data)
            for rel in dirs:
                (build / rel).mkdir(parents=True)
            ingest(store, str(build), PRODUCT, version, ex)
            chunk(store, PRODUCT, version, ex)
        diff(store, PRODUCT, "1", "2", ex)
    return base / "repo", base / "build-2"


PLAYERS_FILES = {"saves/slot1.sav": b"level 3, 40 gold", "addons/mod.dll": b"a mod", "old/notes.txt": b"my notes",
                 "levels/custom.map": b"my map", "mods/cheat.dll": b"a cheat"}


@pytest.mark.parametrize("way", ["update", "install"])
def test_a_players_files_stay_and_only_empty_directories_go(dropping_dirs, tmp_path, way):
    repo, build_2 = dropping_dirs
    dest = tmp_path / "game"
    install(fetcher(repo), PRODUCT, "1", dest)
    for rel, data in PLAYERS_FILES.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)
    (dest / "screenshots").mkdir()  # the player's own, empty
    if way == "update":
        r = update(fetcher(repo), dest, to_version="2")
        assert r.method == "delta" and r.patches_applied == 1
    else:
        install(fetcher(repo), PRODUCT, "2", dest)
    assert {rel: (dest / rel).read_bytes() for rel in PLAYERS_FILES} == PLAYERS_FILES
    expected = tree(build_2) | {rel: ("file", False, hashlib.sha256(data).hexdigest())
                                for rel, data in PLAYERS_FILES.items()}
    expected |= {"addons": ("dir",), "old": ("dir",), "mods": ("dir",), "screenshots": ("dir",)}
    assert tree(dest) == expected  # levels/b.dat, "extras" and "scratch" are gone; "addons" and "old" hold the player's
    report = verify(dest)
    assert report.intact and report.unexpected == ["addons/", "levels/custom.map", "mods/", "old/", "saves/slot1.sav",
                                                   "screenshots/"]


def test_update_needs_a_version_or_a_channel(planned, tmp_path):
    dest = tmp_path / "game"
    install(fetcher(planned), PRODUCT, "1.0.0", dest)
    with pytest.raises(ValueError, match="give the version to update to or a channel"):
        update(fetcher(planned), dest)
