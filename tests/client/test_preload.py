"""Pre-load and unlock, as a player meets them: a signed repository (1.0.0 and 1.1.0 public,
1.2.0 embargoed, beta pre-loading it) published to a directory origin served over HTTP; a
player with 1.1.0 installed. Before release, install and update are CONTENT_LOCKED (with the
release time once scheduled) and write nothing; `depot preload` downloads, without a key,
exactly the objects 1.1.0 lacks, killed and resumed; at release, update opens, checks and
writes them in one pass from staging, downloading no chunk, killed and run again byte-exact.
A tampered or swapped sealed object, or another version's key, is refused with its code and
nothing of the game changes."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from depot_testing.embargo import embargoed_repository
from depot_testing.fixtures import PRODUCT, fixture_tar
from depot_testing.http_origins import StaticOrigin
from helpers import DEPOT, ROOT, fetcher, kill_when, root_of, tree
from pipeline import layout
from pipeline.client.install import install
from pipeline.client.update import update
from pipeline.errors import ContentAuthenticationFailed, ContentLocked
from pipeline.formats import sealed
from pipeline.formats.content_key import ContentKey
from pipeline.formats.preload import Preload
from pipeline.publish.publish import publish
from pipeline.publish.release import release
from pipeline.storage import open_store
from pipeline.trust import content_keys, repository
from pipeline.trust.keys import Keyring

T0 = datetime.datetime(2026, 12, 24, 18, 0, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def embargoed(tmp_path_factory):
    base = tmp_path_factory.mktemp("preload")
    embargoed_repository(base)
    return base


@pytest.fixture(scope="module")
def v120(tmp_path_factory):
    """The fixture's 1.2.0 as a player should end up with it."""
    import tarfile

    out = tmp_path_factory.mktemp("v120")
    with tarfile.open(fixture_tar("1.2.0")) as tf:
        tf.extractall(out, filter="data")
    return out


@pytest.fixture
def world(embargoed, tmp_path, build_dirs):
    """A private copy published to a directory origin, and a player's game with 1.1.0."""
    shutil.copytree(embargoed, tmp_path / "release")
    base = tmp_path / "release"
    store = open_store(str(base / "repo"))
    origin = open_store(str(tmp_path / "origin"))
    finder = content_keys.ContentKeys(base / "keys").find
    publish(store, [origin], PRODUCT, ["1.0.0", "1.1.0", "1.2.0"], channels=["stable", "beta"], keys=finder)
    (tmp_path / "root.json").write_bytes(root_of(base))
    w = {"base": base, "store": store, "origin": origin, "origin_dir": tmp_path / "origin", "finder": finder,
         "key": content_keys.load(base / "keys", PRODUCT, "1.2.0"), "game": tmp_path / "game",
         "env": {**os.environ, "DEPOT_DATA_DIR": str(tmp_path / "player")}, "root": tmp_path / "root.json"}
    p = player(w, "install", "--origin", w["origin_dir"], "-p", PRODUCT, "-c", "stable", "--dest", w["game"])
    assert p.returncode == 0, p.stderr
    return w


def player(w, *args) -> subprocess.CompletedProcess:
    return subprocess.run(DEPOT + ["--json"] + [str(a) for a in args] + ["--trust", str(w["root"])], cwd=ROOT,
                          capture_output=True, text=True, env=w["env"])


def publish_again(w, at=None):
    """Release 1.2.0 (now, or at a time to come) and publish what that signed."""
    release(w["store"], PRODUCT, "1.2.0", w["key"], now=T0, at=at)
    repository.sign_documents(w["store"], Keyring(w["base"] / "keys"), PRODUCT)
    publish(w["store"], [w["origin"]], PRODUCT, ["1.2.0"], channels=["beta"], keys=w["finder"])


def game_files(dest) -> dict:
    """The game as the player sees it (depot's own state left out)."""
    return {k: v for k, v in tree(dest).items() if not k.startswith(".depot")}


def needed(w) -> dict[str, int]:
    """The objects of 1.2.0 that 1.1.0 lacks, by key, with their sizes."""
    listed = Preload.from_bytes(w["store"].get(layout.preload_key(PRODUCT, "1.2.0")), "list")
    have = set(sealed.load_manifest(w["store"], PRODUCT, "1.1.0", lambda k: None).unique_chunks())
    return {layout.chunk_key(c.id, c.key_id): c.stored_size for c in listed.chunks if c.id not in have}


def test_before_release_install_and_update_are_locked_and_write_nothing(world, tmp_path):
    w = world
    before = tree(w["game"])
    p = player(w, "update", "--origin", w["origin_dir"], "--dest", w["game"], "-c", "beta")
    out = json.loads(p.stdout)
    assert (p.returncode, out["error"]) == (22, "CONTENT_LOCKED")
    assert out["message"] == f"{PRODUCT} 1.2.0 is embargoed: its content key is not released yet"
    publish_again(w, at=T0 + datetime.timedelta(days=2))  # scheduled: players learn when
    p = player(w, "install", "--origin", w["origin_dir"], "-p", PRODUCT, "-v", "1.2.0", "--dest", tmp_path / "new")
    assert (p.returncode, json.loads(p.stdout)["message"]) == (
        22, f"{PRODUCT} 1.2.0 is embargoed: its content key is not released yet (release at 2026-12-26T18:00:00Z)")
    assert not (tmp_path / "new").exists() and tree(w["game"]) == before


def test_preload_killed_and_resumed_then_release_unlocks_without_downloading(world, v120, build_dirs):
    w = world
    want = needed(w)
    assert want and all(k.endswith("." + w["key"].key_id) for k in want if "." in k.rsplit("/", 1)[-1])
    staging = w["game"] / ".depot" / "preload"
    with StaticOrigin(w["origin_dir"]) as origin:
        args = DEPOT + ["--json", "preload", "--origin", origin.url, "-p", PRODUCT, "-c", "beta", "--dest",
                        str(w["game"]), "--trust", str(w["root"]), "--jobs", "2", "--max-rate", "64KiB"]

        def asked(share: float):
            return lambda: sum(n for p, n in origin.requests_by_path.items() if p.startswith("/chunks/")) >= \
                share * len(want)

        def staged_right() -> bool:  # only whole, right objects are ever staged
            for path in staging.rglob("*"):
                key = str(path.relative_to(staging))
                if path.is_file() and key.startswith("chunks/") and not path.name.startswith("."):
                    assert path.read_bytes() == w["origin"].get(key)
            return False

        kills = kill_when(args, [asked(0.3), asked(0.6)], staged_right)
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=w["env"])
        assert done.returncode == 0, done.stderr
        r = json.loads(done.stdout)
        requests = {p: n for p, n in origin.requests_by_path.items() if p.startswith("/chunks/")}
    assert kills == 2
    assert (r["version"], r["key_id"], r["chunks"], r["bytes"]) == ("1.2.0", w["key"].key_id, len(want),
                                                                    sum(want.values()))
    assert r["chunks_present"] + r["chunks_fetched"] == len(want) and r["chunks_present"] > 0
    assert {"/" + k for k in want} == set(requests) and sum(requests.values()) <= len(want) + 2 * 2
    assert {str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file()} == set(want) | {"list.json"}
    assert game_files(w["game"]) == game_files(build_dirs["1.1.0"])  # the game itself untouched: still 1.1.0
    again = json.loads(player(w, "preload", "--origin", w["origin_dir"], "-p", PRODUCT, "-v", "1.2.0",
                              "--dest", w["game"]).stdout)
    assert (again["chunks_fetched"], again["chunks_present"]) == (0, len(want))

    publish_again(w)
    with StaticOrigin(w["origin_dir"]) as origin:
        p = player(w, "update", "--origin", origin.url, "--dest", w["game"], "-c", "beta")
        chunk_requests = [q for q in origin.requests_by_path if q.startswith("/chunks/")]
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert (r["to_version"], r["method"], r["bytes_downloaded"], chunk_requests) == ("1.2.0", "chunks", 0, [])
    assert game_files(w["game"]) == game_files(v120)
    assert not staging.exists()
    assert subprocess.run(DEPOT + ["verify", "--dest", str(w["game"])], cwd=ROOT).returncode == 0


KILLED_AT = """
import os, signal, sys
from pathlib import Path
from helpers import signed_player
from pipeline.client import game_dir
from pipeline.client.update import update

origin, root, data, dest, step, nth = sys.argv[1:]
reached = []

def die(at):
    if at == step:
        reached.append(at)
        if len(reached) == int(nth):
            os.kill(os.getpid(), signal.SIGKILL)

game_dir.fault_point = die
update(signed_player(origin, Path(root).read_bytes(), Path(data)), Path(dest), "1.2.0", jobs=1,
       progress=lambda n: die("write"))
"""


@pytest.mark.parametrize("step, nth", [("write", 3), ("place", 3), ("record", 1)])
def test_unlock_killed_midway_then_run_again_is_byte_exact(world, v120, step, nth):
    """Killed while it writes chunks opened from staging (after the third), while it swaps
    files in, or as it records the version: run again, it downloads no chunk."""
    w = world
    p = player(w, "preload", "--origin", w["origin_dir"], "-p", PRODUCT, "-v", "1.2.0", "--dest", w["game"])
    assert p.returncode == 0, p.stderr
    publish_again(w)
    killed = subprocess.run([sys.executable, "-c", KILLED_AT, str(w["origin_dir"]), str(w["root"]),
                             w["env"]["DEPOT_DATA_DIR"], str(w["game"]), step, str(nth)], cwd=ROOT,
                            env={**w["env"], "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{ROOT}"},
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with StaticOrigin(w["origin_dir"]) as origin:
        p = player(w, "update", "--origin", origin.url, "--dest", w["game"], "--to", "1.2.0")
        chunk_requests = [q for q in origin.requests_by_path if q.startswith("/chunks/")]
    assert p.returncode == 0, p.stderr
    assert (json.loads(p.stdout)["bytes_downloaded"], chunk_requests) == (0, [])
    assert game_files(w["game"]) == game_files(v120)


def sealed_objects(w) -> list[str]:
    return sorted(k for k in needed(w) if k.endswith("." + w["key"].key_id))


def test_a_tampered_or_swapped_object_or_another_versions_key_is_refused_and_nothing_changes(world, tmp_path):
    w = world
    p = player(w, "preload", "--origin", w["origin_dir"], "-p", PRODUCT, "-v", "1.2.0", "--dest", w["game"])
    assert p.returncode == 0, p.stderr
    publish_again(w)
    before = game_files(w["game"])
    staging = w["game"] / ".depot" / "preload"
    a, b = sealed_objects(w)[:2]
    originals = {k: w["origin"].get(k) for k in (a, b)}

    def put_both(key: str, data: bytes) -> None:  # the origin and the player's staged copy alike
        for root in (w["origin_dir"], staging):
            (root / key).write_bytes(data)

    # a byte of ciphertext changed: the tag refuses it, wherever it comes from
    box = bytearray(originals[a])
    box[60] ^= 1
    put_both(a, bytes(box))
    p = player(w, "update", "--origin", w["origin_dir"], "--dest", w["game"], "--to", "1.2.0")
    out = json.loads(p.stdout)
    assert (p.returncode, out["error"]) == (7, "CONTENT_AUTHENTICATION_FAILED") and a in out["message"]
    assert game_files(w["game"]) == before
    # a sealed chunk swapped for another of the same key: its name is bound in
    put_both(a, originals[b])
    swapped = player(w, "update", "--origin", w["origin_dir"], "--dest", w["game"], "--to", "1.2.0")
    assert (swapped.returncode, json.loads(swapped.stdout)["error"]) == (7, "CONTENT_AUTHENTICATION_FAILED")
    assert game_files(w["game"]) == before
    put_both(a, originals[a])

    # another version's key under 1.2.0's key id (an unsigned origin: only the key check stands)
    other = ContentKey.generate(PRODUCT, "1.3.0")
    unsigned = tmp_path / "unsigned"
    shutil.copytree(w["origin_dir"], unsigned)
    (unsigned / layout.content_key_key(PRODUCT, w["key"].key_id)).write_bytes(
        other.released("2026-12-24T18:00:00Z").to_bytes())
    with pytest.raises(ContentAuthenticationFailed, match=f"the key published as {w['key'].key_id} is not"):
        update(fetcher(unsigned), w["game"], "1.2.0")
    assert game_files(w["game"]) == before
    r = update(fetcher(w["origin_dir"]), w["game"], "1.2.0")  # the true objects: it unlocks
    assert r.to_version == "1.2.0"


def test_preload_of_a_version_that_is_not_embargoed_is_refused(world):
    p = player(world, "preload", "--origin", world["origin_dir"], "-p", PRODUCT, "-v", "1.1.0", "--dest",
               world["game"])
    out = json.loads(p.stdout)
    assert (p.returncode, out["error"], out["message"]) == (
        2, "INVALID_ARGUMENT", f"{PRODUCT} 1.1.0 has no pre-load list: it is not embargoed (install it)")
    with pytest.raises(ContentLocked):
        install(fetcher(world["origin_dir"]), PRODUCT, "1.2.0", world["game"].parent / "elsewhere")


def test_without_preload_a_released_version_updates_through_its_sealed_plan(world, v120):
    """The plan 1.1.0 -> 1.2.0 made before release is sealed, its patches too: once the key is
    out, a player who did not pre-load updates by it, each patch checked then opened."""
    import concurrent.futures as cf

    from pipeline.delta.diff import diff

    w = world
    with cf.ThreadPoolExecutor(2) as ex:
        made = diff(w["store"], PRODUCT, "1.1.0", "1.2.0", ex, keys=w["finder"])
    plan_name = layout.plan_key(PRODUCT, "1.1.0", "1.2.0")
    assert made.files_patched and sealed.key_id(w["store"].get(plan_name), plan_name) == w["key"].key_id
    publish_again(w)
    p = player(w, "update", "--origin", w["origin_dir"], "--dest", w["game"], "--to", "1.2.0")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert (r["method"], r["route"], r["patches_applied"], r["fallbacks"]) == (
        "delta", ["1.1.0", "1.2.0"], made.files_patched, [])
    assert r["bytes_downloaded"] == made.delta_download_bytes
    assert game_files(w["game"]) == game_files(v120)
