"""The fixture builds, and repositories made of them, as the tests and the benchmarks use
them."""

from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "builds"
PRODUCT = "starfall"
VERSIONS = ["1.0.0", "1.1.0", "1.2.0", "1.3.0"]


def fixture_tar(version: str) -> Path:
    return FIXTURES / PRODUCT / f"{version}.tar"


def fixture_params():
    """The fixture product's chunk sizes: small, so that its files have several chunks."""
    from pipeline.core.chunk_params import ChunkParams

    return ChunkParams(16 << 10, 64 << 10, 256 << 10)


def chunk_fixture_versions(root: Path, versions=VERSIONS, params=None):
    """A repository at ``root`` with the fixture versions ingested and chunked."""
    from pipeline.build import products
    from pipeline.build.chunk import chunk
    from pipeline.build.ingest import ingest
    from pipeline.storage import open_store

    store = open_store(str(root))
    products.configure(store, PRODUCT, params or fixture_params())
    with cf.ThreadPoolExecutor(2) as ex:
        for v in versions:
            ingest(store, str(fixture_tar(v)), PRODUCT, v, ex)
            chunk(store, PRODUCT, v, ex)
    return store


def signed_repository(base: Path, versions=("1.0.0", "1.1.0")) -> Path:
    """``base/repo``: the fixture versions chunked, every pair planned, signed with TUF
    (one root key), stable -> the last version; ``base/keys`` holds the keys."""
    from pipeline.delta.diff import diff
    from pipeline.publish.channels import promote
    from pipeline.trust import keys, repository
    from pipeline.trust.keys import Keyring

    made = {k.name: keys.load_signer(k.private)
            for k in keys.generate(base / "keys", ["root", "targets", "snapshot", "timestamp", PRODUCT])}
    store = chunk_fixture_versions(base / "repo", versions=list(versions))
    repository.init(store, [made["root"]], 1, made["targets"], made["snapshot"], made["timestamp"])
    ring = Keyring(base / "keys")
    repository.set_keys(store, ring, PRODUCT, add=[made[PRODUCT].public_key])
    with cf.ThreadPoolExecutor(2) as ex:
        for i, b in enumerate(versions):
            for a in versions[:i]:
                diff(store, PRODUCT, a, b, ex)
    promote(store, PRODUCT, versions[-1], "stable")
    repository.sign_documents(store, ring, PRODUCT)
    return base
