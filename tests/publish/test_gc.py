"""gc and rm: what is retained is never deleted, nothing younger than the grace period is,
and what goes leaves no document naming a missing object."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import shutil
import subprocess
import time

import pytest

from helpers import DEPOT, assert_installed, dangling, fetcher
from pipeline.testing.fixtures import PRODUCT, fixture_tar, signed_repository
from pipeline import layout
from pipeline.build.chunk import chunk
from pipeline.build.ingest import ingest
from pipeline.client.install import install
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
        assert list(store.list()) == []
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
    age_everything(25)
    old = depot_gc("--delete")
    assert old["retained"] == kept and (old["freed_objects"], old["too_young"]) == (young["too_young"], 0)
    assert len(keys_of(store)) == len(before) - young["too_young"]
    assert not store.has(layout.manifest_key(PRODUCT, "1.0.0")) and store.has(layout.manifest_key(PRODUCT, "1.1.0"))
    assert not store.has(layout.plan_key(PRODUCT, "1.0.0", "1.3.0"))
    assert dangling(store) == []
