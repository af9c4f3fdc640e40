"""gc and rm: what is retained is never deleted, nothing younger than the grace period is,
and what goes leaves no document naming a missing object."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from helpers import DEPOT, ROOT as DEPOT_ROOT, assert_installed, dangling, fetcher
from depot_testing.fixtures import PRODUCT, fixture_tar, signed_repository
from pipeline import layout
from pipeline.build.chunk import chunk
from pipeline.build.ingest import ingest
from pipeline.client.install import install, resolve_version
from pipeline.errors import NotFound, VersionConflict
from pipeline.publish.channels import promote
from pipeline.publish.gc import Retention, gc
from pipeline.publish.retire import retire
from pipeline.storage import open_store
from pipeline.trust import repository
from pipeline.trust.keys import Keyring

VERSIONS = ("1.0.0", "1.1.0", "1.2.0", "1.3.0")
LATER = time.time() + 30 * 24 * 3600  # a month on: everything is past the grace period


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    return signed_repository(tmp_path_factory.mktemp("gc"), versions=VERSIONS)


@pytest.fixture
def repo(signed, tmp_path):
    shutil.copytree(signed, tmp_path / "release")
    return tmp_path / "release"


def keys_of(store) -> set[str]:
    return set(store.list())


def test_a_dry_run_deletes_nothing_and_says_what_would_go(repo):
    store = open_store(str(repo / "repo"))
    before = keys_of(store)
    r = gc(store, Retention(keep_last=1, keep_history=0), now=LATER)
    assert keys_of(store) == before and r.dry_run
    assert r.retained == {PRODUCT: ["1.3.0"]}  # stable delivers 1.3.0, the newest
    assert r.freed_objects == sum(row["objects"] for row in r.by_product.values()) > 0
    assert r.by_product[PRODUCT]["objects"] > 0 and r.listed == len(before)


def test_gc_keeps_what_channels_and_pins_need_and_players_still_install(repo, tmp_path, build_dirs):
    store, ring = open_store(str(repo / "repo")), Keyring(repo / "keys")
    promote(store, PRODUCT, "1.0.0", "beta")
    promote(store, PRODUCT, "1.1.0", "beta")  # beta's history: 1.1.0, 1.0.0
    repository.sign_documents(store, ring, PRODUCT)
    r = gc(store, Retention(keep_last=1, keep_history=1, pinned=((PRODUCT, "1.2.0"),)), delete=True, now=LATER)
    assert r.retained == {PRODUCT: ["1.1.0", "1.2.0", "1.3.0"]}
    assert not store.has(layout.manifest_key(PRODUCT, "1.0.0"))
    assert not store.has(layout.plan_key(PRODUCT, "1.0.0", "1.3.0"))
    assert store.has(layout.plan_key(PRODUCT, "1.1.0", "1.3.0"))
    assert dangling(store) == []
    assert gc(store, Retention(keep_last=1, keep_history=1, pinned=((PRODUCT, "1.2.0"),)), now=LATER).freed_objects == 0
    for v in ("1.1.0", "1.2.0", "1.3.0"):
        f = fetcher(repo / "repo")
        install(f, PRODUCT, v, tmp_path / v)
        assert_installed(tmp_path / v, build_dirs[v])


def test_nothing_younger_than_the_grace_period_is_deleted(repo):
    """What a publish or a build running now has written (its chunks before its manifest)
    is unreferenced for a moment: gc must leave it."""
    store = open_store(str(repo / "repo"))
    orphan = layout.chunk_key("ab" * 32)
    store.put_if_absent(orphan, b"a chunk whose manifest is not written yet")
    temp = repo / "repo" / "chunks" / "ab" / f".{'ab' * 32}.dead.tmp"
    temp.write_bytes(b"left by a killed write")
    now = time.time()
    r = gc(store, Retention(keep_last=4, grace_s=3600), delete=True, now=now)
    assert store.has(orphan) and temp.exists() and r.too_young >= 2
    old = now - 7200
    os.utime(temp, (old, old))
    r = gc(store, Retention(keep_last=4, grace_s=3600), delete=True, now=now)
    assert not temp.exists() and store.has(orphan)
    gc(store, Retention(keep_last=4, grace_s=3600), delete=True, now=now + 7200)
    assert not store.has(orphan)
    assert dangling(store) == []


def test_rm_refuses_a_version_a_channel_delivers_and_retires_the_others(repo):
    store, ring = open_store(str(repo / "repo")), Keyring(repo / "keys")
    with pytest.raises(VersionConflict, match="what channel stable delivers"):
        retire(store, PRODUCT, "1.3.0")
    r = retire(store, PRODUCT, "1.1.0")
    assert r.state == "chunked"
    assert not any(layout.plain_key_of(k).startswith(f"products/{PRODUCT}/versions/1.1.0/") for k in keys_of(store))
    assert not any("1.1.0" in (layout.plan_pair_of(layout.plain_key_of(k)) or ()) for k in keys_of(store))
    repository.sign_documents(store, ring, PRODUCT)  # the product's metadata no longer offers it
    role = [k for k in keys_of(store) if k.endswith(f".product-{PRODUCT}.json")]
    latest = max(role, key=lambda k: int(k.split("/")[1].split(".")[0]))
    assert b"versions/1.1.0/manifest.json" not in store.get(latest)
    assert dangling(store) == []
    with pytest.raises(NotFound):
        retire(store, PRODUCT, "1.1.0")


def test_rm_drops_a_version_that_was_never_chunked(tmp_path, build_dirs):
    from archives import zip_of_dir

    store = open_store(str(tmp_path / "repo"))
    with cf.ThreadPoolExecutor(2) as ex:
        ingest(store, str(zip_of_dir(build_dirs["1.0.0"], tmp_path / "b.zip")), PRODUCT, "9", ex)
        assert store.has(layout.staged_pack_key(PRODUCT, "9"))
        assert retire(store, PRODUCT, "9").state == "ingested"
        assert list(store.list()) == [layout.STORE_MARKER_KEY]
        ingest(store, str(fixture_tar("1.0.0")), PRODUCT, "9", ex)  # the name is free again
        chunk(store, PRODUCT, "9", ex)


def test_a_version_still_being_built_keeps_its_inventory_and_pack_past_the_grace_period(repo, tmp_path, build_dirs):
    from archives import zip_of_dir

    store = open_store(str(repo / "repo"))
    with cf.ThreadPoolExecutor(2) as ex:
        ingest(store, str(zip_of_dir(build_dirs["1.3.0"], tmp_path / "b.zip")), PRODUCT, "2.0.0", ex)
        building = {layout.inventory_key(PRODUCT, "2.0.0"), layout.staged_pack_key(PRODUCT, "2.0.0")}
        assert building <= keys_of(store)
        r = gc(store, Retention(keep_last=1, keep_history=0), delete=True, now=LATER)  # everything is old
        assert r.retained == {PRODUCT: ["1.3.0"]} and r.freed_objects > 0 and r.too_young == 0
        assert not store.has(layout.manifest_key(PRODUCT, "1.0.0"))
        assert building <= keys_of(store)
        chunk(store, PRODUCT, "2.0.0", ex)  # the build goes on
    f = fetcher(repo / "repo")
    install(f, PRODUCT, "2.0.0", tmp_path / "game")
    assert_installed(tmp_path / "game", build_dirs["1.3.0"])


def test_gc_defaults_keep_3_versions_3_moves_and_24_hours(repo):
    """`depot gc` without options: the last 3 chunked versions, each channel's latest 3
    moves, and nothing younger than 24 hours."""
    store, ring = open_store(str(repo / "repo")), Keyring(repo / "keys")
    for v in VERSIONS:
        promote(store, PRODUCT, v, "beta")  # beta's moves, newest first: 1.3.0, 1.2.0, 1.1.0, 1.0.0
    repository.sign_documents(store, ring, PRODUCT)

    def depot_gc(*args) -> dict:
        p = subprocess.run(DEPOT + ["--json", "--repo", str(repo / "repo"), "gc", *args], capture_output=True,
                           text=True)
        assert p.returncode == 0, p.stderr
        [report] = json.loads(p.stdout)["gc"]
        return report

    def age_everything(hours: float) -> None:
        then = time.time() - hours * 3600
        for p in (repo / "repo").rglob("*"):
            os.utime(p, (then, then))

    kept = {PRODUCT: ["1.1.0", "1.2.0", "1.3.0"]}
    assert depot_gc("--keep-last", "0")["retained"] == kept  # beta's latest 3 moves
    assert depot_gc("--keep-history", "0")["retained"] == kept  # the last 3 versions
    age_everything(23)
    before = keys_of(store)
    young = depot_gc("--delete")
    assert young["retained"] == kept and not young["dry_run"]
    assert (young["freed_objects"], keys_of(store)) == (0, before) and young["too_young"] > 0
    age_everything(25)  # the snapshots superseded an hour ago were kept: a player may still hold them
    old = depot_gc("--delete")
    superseded = young["kept_objects"] - old["kept_objects"]
    assert old["retained"] == kept and (old["freed_objects"], old["too_young"]) == (young["too_young"] + superseded, 0)
    assert superseded > 0 and old["by_product"]["(metadata)"]["objects"] > 0
    assert len(keys_of(store)) == len(before) - old["freed_objects"]
    assert not store.has(layout.manifest_key(PRODUCT, "1.0.0")) and store.has(layout.manifest_key(PRODUCT, "1.1.0"))
    assert not store.has(layout.plan_key(PRODUCT, "1.0.0", "1.3.0"))
    assert dangling(store) == []


# -- day two: gc as release engineers run it, on stores days old -----------------------------


def depot(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(DEPOT + [str(a) for a in args], capture_output=True, text=True)


def gc_json(repo, *args) -> dict:
    p = depot("--json", "--repo", repo / "repo", "gc", *args)
    assert p.returncode == 0, p.stderr
    [report] = json.loads(p.stdout)["gc"]
    return report


def chunk_keys(store, version: str) -> set[str]:
    from pipeline.formats import manifest

    return {layout.chunk_key(c) for c in manifest.load(store, PRODUCT, version).unique_chunks()}


def root_of(repo) -> bytes:
    return (repo / "repo" / layout.metadata_key("root", 1)).read_bytes()


@pytest.mark.parametrize("when", ["two days later", "at once with --grace 0"])
def test_gc_on_an_origin_keeps_every_signed_copy_players_read(repo, tmp_path, build_dirs, when):
    from helpers import age_tree, signed_player
    from pipeline.client.update import update
    from pipeline.publish.publish import publish

    store, origin_dir = open_store(str(repo / "repo")), tmp_path / "origin"
    publish(store, [open_store(str(origin_dir))], PRODUCT, list(VERSIONS), channels=["stable"])
    grace = []
    if when == "two days later":
        age_tree(origin_dir, 2)
    else:
        grace = ["--grace", "0"]
    r = gc_json(repo, "--origin", origin_dir, "--keep-last", "2", "--keep-history", "0", "--delete", *grace)
    assert r["retained"] == {PRODUCT: ["1.2.0", "1.3.0"]} and r["freed_objects"] > 0
    origin = open_store(str(origin_dir))
    assert not origin.has(layout.manifest_key(PRODUCT, "1.0.0")) and dangling(origin) == []
    for v in ("1.2.0", "1.3.0"):  # through the signed paths: <sha256>.manifest.json and the like
        install(signed_player(origin_dir, root_of(repo), tmp_path / "data"), PRODUCT, v, tmp_path / v)
        assert_installed(tmp_path / v, build_dirs[v])
    u = update(signed_player(origin_dir, root_of(repo), tmp_path / "data"), tmp_path / "1.2.0", channel="stable")
    assert (u.to_version, u.method) == ("1.3.0", "delta")
    assert_installed(tmp_path / "1.2.0", build_dirs["1.3.0"])


def test_gc_of_a_repository_days_old_leaves_it_publishable(repo, tmp_path, build_dirs):
    from helpers import age_tree, signed_player
    from pipeline.publish.publish import publish

    age_tree(repo / "repo", 2)
    r = gc_json(repo, "--keep-last", "1", "--keep-history", "0", "--delete")
    assert r["retained"] == {PRODUCT: ["1.3.0"]} and r["freed_objects"] > 0
    store = open_store(str(repo / "repo"))
    publish(store, [open_store(str(tmp_path / "origin"))], PRODUCT, ["1.3.0"], channels=["stable"])
    install(signed_player(tmp_path / "origin", root_of(repo), tmp_path / "data"), PRODUCT, "1.3.0", tmp_path / "g")
    assert_installed(tmp_path / "g", build_dirs["1.3.0"])


def test_gc_refuses_what_is_not_a_depot_store_and_bad_values(repo, tmp_path):
    from helpers import age_tree, tree_snapshot

    photos = tmp_path / "photos"
    (photos / "2024").mkdir(parents=True)
    (photos / "2024" / "beach.jpg").write_bytes(b"\xff\xd8 a photo")
    (photos / "chunks").mkdir()
    (photos / "chunks" / "ab").write_bytes(b"not a chunk")
    age_tree(photos, 3)
    before = tree_snapshot(photos)
    for where in (photos, tmp_path / "no-such-dir"):
        p = depot("--json", "gc", "--origin", where, "--grace", "0", "--delete")
        assert (p.returncode, json.loads(p.stdout)["error"]) == (2, "INVALID_LOCATION")
        assert f"{where} is not a depot repository or origin" in json.loads(p.stdout)["message"]
    assert tree_snapshot(photos) == before and not (tmp_path / "no-such-dir").exists()
    store = open_store(str(repo / "repo"))
    listed = keys_of(store)
    for grace in ("nan", "inf", "-inf", "-1"):
        p = depot("--repo", repo / "repo", "gc", "--grace", grace, "--delete")
        assert p.returncode == 2 and "--grace" in p.stderr and "Traceback" not in p.stderr
    p = depot("--json", "--repo", repo / "repo", "gc", "--pin", "nosuch=1.0", "--grace", "0", "--delete")
    assert (p.returncode, json.loads(p.stdout)["error"]) == (3, "NOT_FOUND") and "--pin nosuch=1.0" in p.stdout
    p = depot("--json", "--repo", repo / "repo", "gc", "--pin", f"{PRODUCT}=9.9", "--grace", "0", "--delete")
    assert (p.returncode, json.loads(p.stdout)["error"]) == (3, "NOT_FOUND")
    assert keys_of(store) == listed
    theirs = ["notes.txt", "chunks/README.txt", "chunks/zz", "products/index.html", "metadata/root.json",
              "staging/x.jpg", f"products/{PRODUCT}/versions/1.0.0/notes.txt"]  # someone's files in a store
    for name in theirs:
        (repo / "repo" / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / "repo" / name).write_text(f"not depot's: {name}")
    age_tree(repo / "repo", 3)
    r = gc_json(repo, "--keep-last", "1", "--keep-history", "0", "--delete")
    # a patch the diff made and then left out of its plan is depot's, unreferenced
    assert r["foreign"] == len(theirs) and set(r["by_product"]) - {"(unreferenced)"} == {PRODUCT, "(metadata)"}
    assert all((repo / "repo" / name).read_text() == f"not depot's: {name}" for name in theirs)


def test_gc_on_signed_metadata_it_cannot_read_deletes_nothing(repo):
    from helpers import age_tree, tree_snapshot

    store = open_store(str(repo / "repo"))
    role = max((k for k in keys_of(store) if layout.metadata_role_of(k)[1] == f"product-{PRODUCT}"),
               key=layout.metadata_role_of)
    (repo / "repo" / role).write_bytes(b'{"signed": "cut sh')
    age_tree(repo / "repo", 2)
    before = tree_snapshot(repo / "repo")
    p = depot("--json", "--repo", repo / "repo", "gc", "--keep-last", "1", "--delete")
    assert (p.returncode, json.loads(p.stdout)["error"]) == (8, "MANIFEST_INVALID")
    assert role in json.loads(p.stdout)["message"] and tree_snapshot(repo / "repo") == before


def test_a_pin_holds_where_the_version_is_and_is_refused_where_it_is_nowhere(repo, tmp_path):
    from pipeline.publish.publish import publish

    store = open_store(str(repo / "repo"))
    publish(store, [open_store(str(tmp_path / "a"))], PRODUCT, ["1.0.0", "1.3.0"], channels=["stable"])
    publish(store, [open_store(str(tmp_path / "b"))], PRODUCT, ["1.3.0"], channels=["stable"])
    p = depot("--json", "gc", "--origin", tmp_path / "a", "--origin", tmp_path / "b", "--pin", f"{PRODUCT}=1.1.0",
              "--keep-last", "1", "--keep-history", "0", "--grace", "0", "--delete")
    assert (p.returncode, json.loads(p.stdout)["error"]) == (3, "NOT_FOUND")  # 1.1.0 is on neither origin
    assert (tmp_path / "a" / layout.manifest_key(PRODUCT, "1.0.0")).exists()  # nothing collected anywhere
    p = depot("--json", "gc", "--origin", tmp_path / "a", "--origin", tmp_path / "b", "--pin", f"{PRODUCT}=1.0.0",
              "--keep-last", "1", "--keep-history", "0", "--grace", "0", "--delete")
    assert p.returncode == 0, p.stderr
    a, b = json.loads(p.stdout)["gc"]
    assert (a["retained"], b["retained"]) == ({PRODUCT: ["1.0.0", "1.3.0"]}, {PRODUCT: ["1.3.0"]})


def test_gc_during_a_build_that_reuses_old_chunks_takes_none_of_them(repo, tmp_path, build_dirs):
    """A version whose content was seen before finds its chunks in the store, days old and
    named by no retained version; gc runs before its manifest is written."""
    from helpers import PauseBefore, age_tree

    store = open_store(str(repo / "repo"))
    reused = chunk_keys(store, "1.0.0") - chunk_keys(store, "1.3.0")
    assert reused  # what gc would take: 1.0.0 is not retained below
    age_tree(repo / "repo", 2)
    paused = PauseBefore(store, lambda key: key == layout.manifest_key(PRODUCT, "2.0.0"))
    with cf.ThreadPoolExecutor(2) as ex:
        ingest(store, str(fixture_tar("1.0.0")), PRODUCT, "2.0.0", ex)
        building = ex.submit(chunk, paused, PRODUCT, "2.0.0", ex)
        assert paused.reached.wait(120)  # the chunks are found, the manifest not written
        r = gc_json(repo, "--keep-last", "1", "--keep-history", "0", "--delete")
        paused.released.set()
        building.result()
    assert r["retained"] == {PRODUCT: ["1.3.0"]} and not store.has(layout.manifest_key(PRODUCT, "1.0.0"))
    assert reused <= keys_of(store)
    install(fetcher(repo / "repo"), PRODUCT, "2.0.0", tmp_path / "game")
    assert_installed(tmp_path / "game", build_dirs["1.0.0"])


def test_gc_during_a_publish_that_reuses_old_chunks_takes_none_of_them(repo, tmp_path, build_dirs):
    """An origin days old holds 1.0.0's chunks, which no version it retains names; a publish
    of a version with that content finds them there, and gc runs before its manifest goes."""
    from helpers import PauseBefore, age_tree, signed_player
    from pipeline.publish.publish import publish

    store, ring = open_store(str(repo / "repo")), Keyring(repo / "keys")
    origin_dir = tmp_path / "origin"
    publish(store, [open_store(str(origin_dir))], PRODUCT, list(VERSIONS), channels=["stable"])
    with cf.ThreadPoolExecutor(2) as ex:
        ingest(store, str(fixture_tar("1.0.0")), PRODUCT, "2.0.0", ex)
        chunk(store, PRODUCT, "2.0.0", ex)
    repository.sign_documents(store, ring, PRODUCT)
    reused = chunk_keys(store, "1.0.0") - chunk_keys(store, "1.3.0")
    age_tree(origin_dir, 2)
    origin = PauseBefore(open_store(str(origin_dir)),
                         lambda key: key.startswith(f"products/{PRODUCT}/versions/2.0.0/"))
    with cf.ThreadPoolExecutor(1) as ex:
        publishing = ex.submit(publish, store, [origin], PRODUCT, ["2.0.0"])
        assert origin.reached.wait(120)  # its data is there, its documents not yet
        r = gc_json(repo, "--origin", origin_dir, "--keep-last", "1", "--keep-history", "0", "--delete")
        origin.released.set()
        publishing.result()
    assert r["retained"] == {PRODUCT: ["1.3.0"]} and r["freed_objects"] > 0
    assert reused <= keys_of(open_store(str(origin_dir)))
    install(signed_player(origin_dir, root_of(repo), tmp_path / "data"), PRODUCT, "2.0.0", tmp_path / "game")
    assert_installed(tmp_path / "game", build_dirs["1.0.0"])


def test_gc_during_a_publish_that_reuses_metadata_a_killed_publish_left(repo, tmp_path, build_dirs):
    """A publish killed before its commit left the new signed metadata on the origin; days
    later the next publish finds it there, and gc runs before the timestamp commits to it."""
    from helpers import PauseBefore, age_tree, signed_player
    from pipeline.publish.metadata import committed_metadata
    from pipeline.publish.publish import publish

    store, ring = open_store(str(repo / "repo")), Keyring(repo / "keys")
    origin_dir = tmp_path / "origin"
    publish(store, [open_store(str(origin_dir))], PRODUCT, ["1.2.0", "1.3.0"], channels=["stable"])
    promote(store, PRODUCT, "1.2.0", "beta")
    repository.sign_documents(store, ring, PRODUCT)
    left = [k for k in committed_metadata(store)[0] if not (origin_dir / k).exists()]
    assert left  # the new snapshot and product role: what the killed publish had copied
    for key in left:
        (origin_dir / key).write_bytes(store.get(key))
    age_tree(origin_dir, 2)
    origin = PauseBefore(open_store(str(origin_dir)), lambda key: key == layout.metadata_key("timestamp"))
    with cf.ThreadPoolExecutor(1) as ex:
        publishing = ex.submit(publish, store, [origin], PRODUCT, ["1.2.0"], ["beta"])
        assert origin.reached.wait(120)  # everything is there but the commit
        gc_json(repo, "--origin", origin_dir, "--delete")
        origin.released.set()
        publishing.result()
    assert all((origin_dir / key).exists() for key in left)
    player = signed_player(origin_dir, root_of(repo), tmp_path / "data")
    assert resolve_version(player, PRODUCT, "beta") == "1.2.0"
    install(player, PRODUCT, "1.2.0", tmp_path / "game")
    assert_installed(tmp_path / "game", build_dirs["1.2.0"])


SIGNAL_AT_PRUNE = """
import os, signal, sys
from depot_app import cli
from pipeline.storage import local_store
prune, calls = local_store.LocalStore.prune, []
def killed_midway(self, key, written_before):
    calls.append(key)
    if len(calls) == {at}:
        os.kill(os.getpid(), signal.{signal})
    return prune(self, key, written_before)
local_store.LocalStore.prune = killed_midway
sys.exit(cli.main())
"""


def test_gc_killed_midway_then_run_again_loses_nothing_referenced(repo, tmp_path, build_dirs):
    from helpers import age_tree, signed_player
    from pipeline.publish.publish import publish

    origin_dir = tmp_path / "origin"
    store = open_store(str(repo / "repo"))
    publish(store, [open_store(str(origin_dir))], PRODUCT, list(VERSIONS), channels=["stable"])
    age_tree(origin_dir, 2)
    args = ["--repo", str(repo / "repo"), "gc", "--origin", str(origin_dir), "--keep-last", "2",
            "--keep-history", "0", "--delete"]
    doomed = gc_json(repo, *args[3:-1])["freed_objects"]  # a dry run
    for at in (doomed // 3, doomed // 2 + 1):
        code = SIGNAL_AT_PRUNE.replace("{at}", str(at)).replace("{signal}", "SIGKILL")
        killed = subprocess.run([sys.executable, "-c", code, *args],
                                capture_output=True, text=True, cwd=DEPOT_ROOT)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert dangling(open_store(str(origin_dir))) == []  # documents went first
    r = gc_json(repo, *args[3:])
    assert 0 < r["freed_objects"] < doomed and r["retained"] == {PRODUCT: ["1.2.0", "1.3.0"]}
    for v in ("1.2.0", "1.3.0"):
        install(signed_player(origin_dir, root_of(repo), tmp_path / "data"), PRODUCT, v, tmp_path / v)
        assert_installed(tmp_path / v, build_dirs[v])


def test_ctrl_c_during_gc_is_one_line_and_running_it_again_finishes(repo, tmp_path, build_dirs):
    from helpers import age_tree

    age_tree(repo / "repo", 2)
    args = ["--repo", str(repo / "repo"), "gc", "--keep-last", "1", "--keep-history", "0", "--delete"]
    doomed = gc_json(repo, *args[3:-1])["freed_objects"]
    code = SIGNAL_AT_PRUNE.replace("{at}", str(doomed // 2)).replace("{signal}", "SIGINT")
    stopped = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=DEPOT_ROOT)
    assert (stopped.returncode, stopped.stdout) == (130, "")
    assert stopped.stderr.splitlines() == ["depot: error: interrupted [INTERRUPTED]"]
    store = open_store(str(repo / "repo"))
    assert dangling(store) == []
    r = gc_json(repo, *args[3:])
    assert r["freed_objects"] == doomed - (doomed // 2 - 1)  # the stop came before the prune it interrupted
    install(fetcher(repo / "repo"), PRODUCT, "1.3.0", tmp_path / "game")
    assert_installed(tmp_path / "game", build_dirs["1.3.0"])


def test_gc_keeps_every_packed_chunk_a_retained_version_needs(tmp_path):
    """Small files packed into shared chunks: gc keeps each chunk any file of a retained
    version has a slice of, and takes the packed chunks only the dropped version had, its
    plan's patches and the patches a plan computed and dropped; both retained versions
    still install byte for byte."""
    from depot_testing.packed import PRODUCT as GAME, chunk_packed_versions, write_builds
    from pipeline.formats import manifest, plan as plan_doc

    builds = write_builds(tmp_path / "builds")
    store = chunk_packed_versions(tmp_path / "repo", builds)  # 1.0, 2.0, 3.0; plans 1.0 -> 2.0 -> 3.0
    sliced = {v: {layout.chunk_key(c.id) for f in manifest.load(store, GAME, v).files for c in f.chunks}
              for v in ("1.0", "2.0", "3.0")}
    packed_1 = {layout.chunk_key(c.id) for f in manifest.load(store, GAME, "1.0").files for c in f.chunks if not c.whole}
    kept_patches = {layout.patch_key(s.id) for op in plan_doc.load(store, GAME, "2.0", "3.0").files for s in op.segments}
    before = set(store.list(layout.CHUNK_PREFIX))
    assert before == sliced["1.0"] | sliced["2.0"] | sliced["3.0"] and len(packed_1) == 2
    assert len(set(store.list(layout.PATCH_PREFIX))) == 5  # 2 dropped, 1 of 1.0 -> 2.0, 2 of 2.0 -> 3.0

    r = gc(store, Retention(keep_last=2, keep_history=0), delete=True, now=LATER)
    assert r.retained == {GAME: ["2.0", "3.0"]}
    assert set(store.list(layout.CHUNK_PREFIX)) == sliced["2.0"] | sliced["3.0"]
    assert before - set(store.list(layout.CHUNK_PREFIX)) == packed_1  # bin/game's chunks are 2.0's too
    assert set(store.list(layout.PATCH_PREFIX)) == kept_patches and len(kept_patches) == 2
    assert dangling(store) == []
    for v in ("2.0", "3.0"):
        install(fetcher(tmp_path / "repo"), GAME, v, tmp_path / v)
        assert_installed(tmp_path / v, builds[v])
