"""rm --origin: after the repository retires a version (and re-signs), each origin gets the
new metadata first, then loses the version's documents: players can no longer install it
there, and every other version still installs byte-exact through the signed paths."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from helpers import DEPOT, ROOT, assert_installed, dangling, root_of, signed_player, tree_snapshot
from pipeline import layout
from pipeline.client.install import install
from pipeline.errors import NotFound
from pipeline.publish.channels import promote
from pipeline.publish.publish import publish
from pipeline.storage import open_store
from depot_testing.fixtures import PRODUCT, signed_repository


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    base = signed_repository(tmp_path_factory.mktemp("signed"), versions=("1.0.0", "1.1.0", "1.2.0"))
    (base / "keys" / "root.key").unlink()  # kept offline: only the online keys sign here
    return base


@pytest.fixture
def world(signed, tmp_path):
    """A copy of the signed repository, all three versions published to one origin."""
    shutil.copytree(signed, tmp_path / "release")
    depot(tmp_path, "publish", "-p", PRODUCT, "-v", "1.0.0", "-v", "1.1.0", "-v", "1.2.0",
          "--origin", tmp_path / "origin")
    return tmp_path


def depot(base, *args, code: int = 0, keys: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DEPOT_KEYS"}
    if keys:
        env["DEPOT_KEYS"] = str(base / "release" / "keys")
    p = subprocess.run(DEPOT + ["--json", "--repo", str(base / "release" / "repo"), *map(str, args)], cwd=ROOT,
                       env=env, capture_output=True, text=True)
    assert p.returncode == code, p.stderr
    return p


def test_rm_with_an_origin_stops_offering_the_version_there_and_keeps_the_others(world, build_dirs):
    origin = world / "origin"
    r = json.loads(depot(world, "rm", "-p", PRODUCT, "-v", "1.1.0", "--origin", origin).stdout)
    [there] = r["origins"]
    assert there["origin"] == str(origin) and there["timestamp"] == "updated"
    assert layout.manifest_key(PRODUCT, "1.1.0") in there["removed"]
    keys = list(open_store(str(origin)).list(layout.PRODUCT_PREFIX))
    assert [k for k in keys if "/1.1.0" in k] == []  # manifest, plans to and from it, their hashed copies
    assert {layout.plan_key(PRODUCT, "1.0.0", "1.2.0"), layout.manifest_key(PRODUCT, "1.0.0")} <= set(keys)
    assert (origin / layout.metadata_key("timestamp")).read_bytes() == \
        (world / "release" / "repo" / layout.metadata_key("timestamp")).read_bytes()
    assert dangling(open_store(str(origin))) == []

    root = root_of(world / "release")
    with pytest.raises(NotFound, match="1.1.0"):
        install(signed_player(origin, root, world / "data-gone"), PRODUCT, "1.1.0", world / "gone")
    assert not (world / "gone").exists()
    for v in ("1.0.0", "1.2.0"):
        install(signed_player(origin, root, world / f"data-{v}"), PRODUCT, v, world / f"game-{v}")
        assert_installed(world / f"game-{v}", build_dirs[v])


def test_rm_with_an_origin_is_refused_while_a_channel_delivers_the_version(world):
    before = tree_snapshot(world / "origin")
    p = depot(world, "rm", "-p", PRODUCT, "-v", "1.2.0", "--origin", world / "origin", code=6)
    assert json.loads(p.stdout)["error"] == "VERSION_CONFLICT" and "stable" in p.stderr
    assert tree_snapshot(world / "origin") == before


def test_rm_run_again_after_the_repository_retired_finishes_on_the_origin(world, build_dirs):
    depot(world, "rm", "-p", PRODUCT, "-v", "1.1.0")  # the repository only, as rm did before
    assert (world / "origin" / layout.manifest_key(PRODUCT, "1.1.0")).exists()
    r = json.loads(depot(world, "rm", "-p", PRODUCT, "-v", "1.1.0", "--origin", world / "origin").stdout)
    assert r["removed"] == [] and layout.manifest_key(PRODUCT, "1.1.0") in r["origins"][0]["removed"]
    assert not (world / "origin" / layout.manifest_key(PRODUCT, "1.1.0")).exists()
    install(signed_player(world / "origin", root_of(world / "release"), world / "data-1.2.0"), PRODUCT, "1.2.0",
            world / "game")
    assert_installed(world / "game", build_dirs["1.2.0"])


def test_rm_with_origins_finishes_on_the_others_when_one_refuses(published, tmp_path):
    """On one origin a newer pointer, from a publisher ahead of this repository, still has
    stable deliver the version: that origin refuses, and the other stops offering it."""
    shutil.copytree(published, tmp_path / "repo")
    shutil.copytree(published, tmp_path / "ahead")
    refusing, healthy = tmp_path / "refusing", tmp_path / "healthy"
    repo, ahead = open_store(str(tmp_path / "repo")), open_store(str(tmp_path / "ahead"))
    publish(repo, [open_store(str(refusing)), open_store(str(healthy))], PRODUCT, ["1.0.0", "1.1.0"],
            channels=["stable"])
    promote(ahead, PRODUCT, "1.1.0", "stable")
    publish(ahead, [open_store(str(refusing))], PRODUCT, ["1.1.0"], channels=["stable"])

    p = subprocess.run(DEPOT + ["--json", "--repo", str(tmp_path / "repo"), "rm", "-p", PRODUCT, "-v", "1.1.0",
                                "--origin", str(refusing), "--origin", str(healthy)], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 6, p.stderr
    assert json.loads(p.stdout)["error"] == "VERSION_CONFLICT"
    assert p.stderr.splitlines() == [f"depot: error: {refusing}: {PRODUCT} 1.1.0 is what channel stable delivers "
                                     "there: publish the move of stable to it first [VERSION_CONFLICT]"]
    assert (refusing / layout.manifest_key(PRODUCT, "1.1.0")).exists()
    assert not (healthy / layout.manifest_key(PRODUCT, "1.1.0")).exists()
    assert (healthy / layout.manifest_key(PRODUCT, "1.0.0")).exists()
    assert dangling(open_store(str(healthy))) == []


@pytest.mark.parametrize("args, names", [
    (["rm", "-p", "nosuch", "-v", "1.0"], "has no product 'nosuch'"),
    (["rm", "-p", PRODUCT, "-v", "9.9"], "has no version 9.9 of starfall"),
    (["channels", "-p", "nosuch"], "has no product 'nosuch'"),
])
def test_a_product_or_version_that_does_not_exist_is_not_found_even_without_keys(signed, tmp_path, args, names):
    shutil.copytree(signed, tmp_path / "release")
    p = depot(tmp_path, *args, code=3, keys=False)
    assert json.loads(p.stdout)["error"] == "NOT_FOUND"
    assert p.stderr.splitlines() == [f"depot: error: {tmp_path / 'release' / 'repo'} {names} [NOT_FOUND]"]


def test_rm_moves_no_channel_on_an_origin_where_the_move_was_not_published(world):
    """stable moved to 1.1.0 and was published to msk only: on nsk it still delivers 1.2.0.
    rm 1.2.0 finishes on msk and refuses nsk, which is left as it was."""
    msk, nsk = world / "msk", world / "origin"
    depot(world, "publish", "-p", PRODUCT, "-v", "1.2.0", "--origin", msk)
    depot(world, "promote", "-p", PRODUCT, "-v", "1.1.0", "-c", "stable", "--origin", msk)
    before = tree_snapshot(nsk)
    p = depot(world, "rm", "-p", PRODUCT, "-v", "1.2.0", "--origin", msk, "--origin", nsk, code=6)
    assert json.loads(p.stdout)["error"] == "VERSION_CONFLICT"
    assert p.stderr.splitlines() == [f"depot: error: {nsk}: {PRODUCT} 1.2.0 is what channel stable delivers there: "
                                     "publish the move of stable to it first [VERSION_CONFLICT]"]
    assert tree_snapshot(nsk) == before
    assert not (msk / layout.manifest_key(PRODUCT, "1.2.0")).exists()

    # Nor does it make a channel the origin lacks deliver anything there.
    depot(world, "promote", "-p", PRODUCT, "-v", "1.1.0", "-c", "beta")
    p = depot(world, "rm", "-p", PRODUCT, "-v", "1.0.0", "--origin", nsk, code=6)
    assert p.stderr.splitlines() == [
        f"depot: error: {nsk}: {PRODUCT} beta delivers nothing there and 1.1.0 in the repository: publish that "
        f"move there first (depot publish -p {PRODUCT} -v 1.1.0 --origin {nsk}) [VERSION_CONFLICT]"]
    assert tree_snapshot(nsk) == before


def test_rm_with_an_origin_run_again_after_it_finished_is_not_found_and_changes_nothing(world):
    depot(world, "rm", "-p", PRODUCT, "-v", "1.1.0", "--origin", world / "origin")
    before = tree_snapshot(world / "origin")
    p = subprocess.run(DEPOT + ["--repo", str(world / "release" / "repo"), "rm", "-p", PRODUCT, "-v", "1.1.0",
                                "--origin", str(world / "origin")], cwd=ROOT, capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if k != "DEPOT_KEYS"})
    assert p.returncode == 3, p.stderr  # the same answer as a version that never was: nothing to do either way
    assert p.stderr.splitlines() == [f"depot: error: {world / 'release' / 'repo'} has no version 1.1.0 of {PRODUCT}, "
                                     "and neither do the origins (after an rm that finished, there is nothing left "
                                     "to do) [NOT_FOUND]"]
    assert tree_snapshot(world / "origin") == before
