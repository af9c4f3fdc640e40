"""Each attack on a signed repository, built against a real origin (a directory, S3 on moto,
and HTTP), is refused with its own error, and nothing is written to the game directory."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from helpers import PRODUCT, assert_installed, fetcher, signed_repository
from pipeline import layout
from pipeline.client.install import install, resolve_version
from pipeline.client.update import update
from pipeline.errors import MetadataExpired, MetadataRollback, SignatureInvalid, TargetMismatch
from pipeline.formats.channel import Channel
from pipeline.formats.trust_settings import Lifetimes
from pipeline.publish.channels import promote
from pipeline.storage import Locations, open_store
from pipeline.testing.http_origins import StaticOrigin
from pipeline.trust import keys, repository
from pipeline.trust.anchors import Anchors
from pipeline.trust.checking import TrustedMetadata
from pipeline.trust.keys import Keyring

KINDS = ["dir", "s3", "http"]


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A signed repository: 1.0.0 and 1.1.0 chunked and planned, stable -> 1.1.0; its keys."""
    return signed_repository(tmp_path_factory.mktemp("signed"))


class Origin:
    """A copy of the signed repository served as a directory, from S3, or over HTTP; the
    attacks edit ``files`` and ``serve()`` makes the origin show the edit."""

    def __init__(self, kind: str, files: Path, request):
        self.kind, self.files, self.locations = kind, files, Locations()
        if kind == "http":
            self.server = StaticOrigin(files)
            request.addfinalizer(self.server.stop)
            self.url = self.server.url
        elif kind == "s3":
            self.locations = request.getfixturevalue("s3")
            self.url = f"{request.getfixturevalue('s3_bucket')}/origin"
        else:
            self.url = str(files)
        self.serve()

    def serve(self) -> None:
        if self.kind == "s3":
            fs, path = self.locations.resolve(self.url).filesystem()
            fs.put(str(self.files) + "/", path + "/", recursive=True)

    def client(self, data: Path):
        """A player's fetcher that trusts the repository's root, with its state in ``data``."""
        f = fetcher(self.url, locations=self.locations, retries=0)
        anchor = Anchors(data).trust((self.files / layout.metadata_key("root", 1)).read_bytes(), [self.url])
        f.trust = TrustedMetadata(f.get, anchor, self.url)
        return f


@pytest.fixture(params=KINDS)
def origin(request, signed, tmp_path):
    files = tmp_path / "origin"
    shutil.copytree(signed / "repo", files)
    return Origin(request.param, files, request)


def publisher(signed: Path, origin: Origin):
    """The release side, working on the origin's files."""
    return open_store(str(origin.files)), Keyring(signed / "keys")


def hashed(files: Path, key: str) -> Path:
    """The copy of a signed document that clients download."""
    sha = __import__("hashlib").sha256((files / key).read_bytes()).hexdigest()
    return files / layout.hashed_target_key(key, sha)


def test_an_honest_origin_installs(origin, tmp_path, build_dirs):
    r = install(origin.client(tmp_path / "data"), PRODUCT, "1.1.0", tmp_path / "game")
    assert r.files_written == r.files
    assert_installed(tmp_path / "game", build_dirs["1.1.0"])


def test_a_tampered_manifest_byte_is_refused(origin, tmp_path):
    key = layout.manifest_key(PRODUCT, "1.1.0")
    for path in (hashed(origin.files, key), origin.files / key):
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    origin.serve()
    with pytest.raises(TargetMismatch, match="manifest.json"):
        install(origin.client(tmp_path / "data"), PRODUCT, "1.1.0", tmp_path / "game")
    assert not (tmp_path / "game").exists()


def test_another_versions_manifest_swapped_in_is_refused(origin, tmp_path):
    old, new = layout.manifest_key(PRODUCT, "1.0.0"), layout.manifest_key(PRODUCT, "1.1.0")
    for path in (hashed(origin.files, new), origin.files / new):
        shutil.copyfile(origin.files / old, path)
    origin.serve()
    with pytest.raises(TargetMismatch):
        install(origin.client(tmp_path / "data"), PRODUCT, "1.1.0", tmp_path / "game")
    assert not (tmp_path / "game").exists()


def test_a_replayed_timestamp_is_refused(origin, signed, tmp_path):
    stale = (origin.files / layout.metadata_key("timestamp")).read_bytes()
    store, ring = publisher(signed, origin)
    repository.refresh(store, ring)  # the repository moves on; the client sees it
    origin.serve()
    origin.client(tmp_path / "data")
    (origin.files / layout.metadata_key("timestamp")).write_bytes(stale)  # a mirror serves the old one
    origin.serve()
    with pytest.raises(MetadataRollback, match="timestamp"):
        origin.client(tmp_path / "data")


def test_a_replayed_snapshot_is_refused(origin, signed, tmp_path):
    store, ring = publisher(signed, origin)
    before = repository.refresh(store, ring).snapshot_version
    origin.serve()
    origin.client(tmp_path / "data")  # the client trusts snapshot `before`
    after = repository.refresh(store, ring).snapshot_version
    old = (origin.files / layout.metadata_key("snapshot", before)).read_bytes()
    (origin.files / layout.metadata_key("snapshot", after)).write_bytes(old)
    origin.serve()
    with pytest.raises(MetadataRollback, match="snapshot"):
        origin.client(tmp_path / "data")


def test_a_channel_pointer_older_than_one_seen_is_refused(origin, signed, tmp_path):
    """Even signed (a release key misused), a pointer whose serial went down is refused."""
    store, ring = publisher(signed, origin)
    promote(store, PRODUCT, "1.0.0", "stable")  # serial 2
    repository.sign_documents(store, ring, PRODUCT)
    origin.serve()
    assert resolve_version(origin.client(tmp_path / "data"), PRODUCT, "stable") == "1.0.0"
    store.put(layout.channel_key(PRODUCT, "stable"), Channel.first(PRODUCT, "stable", "1.1.0", "2026-01-01T00:00:00Z").to_bytes())
    repository.sign_documents(store, ring, PRODUCT)
    origin.serve()
    with pytest.raises(MetadataRollback, match="serial 1.*serial 2"):
        resolve_version(origin.client(tmp_path / "data"), PRODUCT, "stable")


def test_expired_metadata_is_refused(origin, signed, tmp_path):
    store, ring = publisher(signed, origin)
    repository.refresh(store, ring, dataclasses.replace(Lifetimes(), timestamp=-60))  # signed, but a minute stale
    origin.serve()
    with pytest.raises(MetadataExpired, match="timestamp"):
        origin.client(tmp_path / "data")


def _resign_product_role(origin: Origin, signer) -> None:
    """What an attacker without the release key can do: re-sign the product's metadata,
    with a new target, under the name clients will fetch."""
    from tuf.api.metadata import Metadata, TargetFile

    path = max(origin.files.glob("metadata/*.product-starfall.json"), key=lambda p: int(p.name.split(".")[0]))
    md = Metadata.from_bytes(path.read_bytes())
    md.signed.targets["products/starfall/versions/9.9.9/manifest.json"] = TargetFile.from_data(
        "products/starfall/versions/9.9.9/manifest.json", b"{}", ["sha256"])
    md.sign(signer)
    path.write_bytes(md.to_bytes())
    origin.serve()


def test_metadata_signed_with_an_unknown_key_is_refused(origin, tmp_path):
    from securesystemslib.signer import CryptoSigner

    _resign_product_role(origin, CryptoSigner.generate_ed25519())
    with pytest.raises(SignatureInvalid, match="product-starfall"):
        install(origin.client(tmp_path / "data"), PRODUCT, "1.1.0", tmp_path / "game")
    assert not (tmp_path / "game").exists()


def test_metadata_signed_with_a_revoked_key_is_refused(origin, signed, tmp_path):
    store, ring = publisher(signed, origin)
    old = keys.load_signer(signed / "keys" / f"{PRODUCT}.key")
    new = keys.generate(tmp_path / "newkeys", ["starfall-2"])[0]
    ring.add(keys.load_signer(new.private))
    repository.set_keys(store, ring, PRODUCT, add=[keys.load_public(new.public)], only=True)  # rotate: old revoked
    origin.serve()
    _resign_product_role(origin, old)
    with pytest.raises(SignatureInvalid, match="product-starfall"):
        install(origin.client(tmp_path / "data"), PRODUCT, "1.1.0", tmp_path / "game")


def test_a_rotated_key_keeps_installed_clients_working(origin, signed, tmp_path, build_dirs):
    data = tmp_path / "data"
    install(origin.client(data), PRODUCT, "1.0.0", tmp_path / "game")
    store, ring = publisher(signed, origin)
    new = keys.generate(tmp_path / "newkeys", ["starfall-2"])[0]
    new_ring = Keyring(tmp_path / "newkeys")
    ring.add(keys.load_signer(new.private))
    repository.set_keys(store, ring, PRODUCT, add=[keys.load_public(new.public)], only=True)
    promote(store, PRODUCT, "1.0.0", "beta")
    for k in ("snapshot", "timestamp"):  # the online keys stay; only the release key changed
        new_ring.add(keys.load_signer(signed / "keys" / f"{k}.key"))
    repository.sign_documents(store, new_ring, PRODUCT)
    origin.serve()
    client = origin.client(data)
    assert resolve_version(client, PRODUCT, "beta") == "1.0.0"
    r = update(client, tmp_path / "game", to_version="1.1.0")
    assert r.method == "delta"
    assert_installed(tmp_path / "game", build_dirs["1.1.0"])
