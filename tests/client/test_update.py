"""update: an installed game brought to another version the cheapest way, byte for byte,
falling back to chunks when a patch or plan is bad, and never leaving a half-updated
directory."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from helpers import DEPOT, PAIRS, PRODUCT, ROOT, assert_installed, fetcher, kill_while_running, load_plan, tree
from pipeline import layout
from pipeline.client.install import install
from pipeline.client.update import update
from pipeline.errors import InsufficientDiskSpace, StoreUnavailable
from pipeline.storage import open_store
from pipeline.testing.http_origins import StaticOrigin


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

        killed = kill_while_running(args + ["--max-rate", "256KiB"], (0.5, 1.0, 1.5), one_version_or_the_other)
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert killed >= 1
    assert_installed(dest, build_dirs["1.3.0"])


