"""Publishing one product pushes that product and the signed metadata: another product's
versions and pointers go only to origins that already carry it, where they keep its
players working."""

from __future__ import annotations

import concurrent.futures as cf
import random
import shutil
from pathlib import Path

import pytest

from helpers import assert_installed, root_of, signed_player
from pipeline import layout
from pipeline.build import products
from pipeline.build.chunk import chunk
from pipeline.build.ingest import ingest
from pipeline.client.install import install, resolve_version
from pipeline.formats import manifest as manifest_doc
from pipeline.publish.channels import promote
from pipeline.publish.publish import publish
from pipeline.storage import open_store
from depot_testing.fixtures import PRODUCT, fixture_params, signed_repository
from pipeline.trust import keys, repository
from pipeline.trust.keys import Keyring

OTHER = "nebula"


def other_build(root: Path, version: str) -> Path:
    """A small build of the other product, its bytes its own (no chunk shared with PRODUCT)."""
    rnd = random.Random(version)
    d = root / f"{OTHER}-{version}"
    (d / "data").mkdir(parents=True)
    (d / "data" / "pak0.bin").write_bytes(rnd.randbytes(300_000))
    (d / "readme.txt").write_bytes(f"{OTHER} {version}\n".encode())
    return d


def add_other_version(base: Path, version: str) -> None:
    store, ring = open_store(str(base / "repo")), Keyring(base / "keys")
    with cf.ThreadPoolExecutor(2) as ex:
        ingest(store, str(other_build(base / "builds", version)), OTHER, version, ex)
        chunk(store, OTHER, version, ex)
    promote(store, OTHER, version, "stable")
    repository.sign_documents(store, ring, OTHER)


@pytest.fixture(scope="module")
def two_products(tmp_path_factory):
    """A signed repository of PRODUCT (1.0.0, 1.1.0) and OTHER (1.0, stable -> 1.0)."""
    base = signed_repository(tmp_path_factory.mktemp("two"))
    store = open_store(str(base / "repo"))
    [made] = keys.generate(base / "keys", [OTHER])
    products.configure(store, OTHER, fixture_params())
    repository.set_keys(store, Keyring(base / "keys"), OTHER, add=[keys.load_signer(made.private).public_key])
    add_other_version(base, "1.0")
    return base


@pytest.fixture
def repo(two_products, tmp_path):
    shutil.copytree(two_products, tmp_path / "release")
    return tmp_path / "release"


def test_publishing_a_product_to_a_new_origin_pushes_no_other_product(repo, tmp_path, build_dirs):
    store = open_store(str(repo / "repo"))
    origin = tmp_path / "origin"
    r = publish(store, [open_store(str(origin))], PRODUCT, ["1.0.0"]).origins[0]
    assert r.timestamp == "updated" and all(not v.startswith(OTHER) for v in r.versions)
    assert not (origin / layout.PRODUCT_PREFIX / OTHER).exists()
    theirs = {layout.chunk_key(c) for c in manifest_doc.load(store, OTHER, "1.0").unique_chunks()}
    held = {str(p.relative_to(origin)) for p in (origin / "chunks").rglob("*") if p.is_file()}
    assert theirs and not theirs & held
    install(signed_player(origin, root_of(repo), tmp_path / "data"), PRODUCT, "1.0.0", tmp_path / "game")
    assert_installed(tmp_path / "game", build_dirs["1.0.0"])


def test_a_product_the_origin_carries_keeps_its_players_when_another_is_published(repo, tmp_path):
    store = open_store(str(repo / "repo"))
    origin = tmp_path / "origin"
    publish(store, [open_store(str(origin))], OTHER, ["1.0"], channels=["stable"])
    add_other_version(repo, "2.0")  # the other product's stable moves in the repository only
    r = publish(store, [open_store(str(origin))], PRODUCT, ["1.1.0"]).origins[0]
    assert sorted(r.versions) == [f"{OTHER} 2.0", f"{PRODUCT} 1.1.0"]
    client = signed_player(origin, root_of(repo), tmp_path / "data")
    assert resolve_version(client, OTHER, "stable") == "2.0"
    install(client, OTHER, "2.0", tmp_path / "game")
    assert_installed(tmp_path / "game", other_build(tmp_path / "expected", "2.0"))
