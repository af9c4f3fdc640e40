"""Each attack on a signed repository, built against a real origin (a directory and HTTP;
S3 on moto for an honest install and three attacks), is refused with its own error, and nothing is written to the game directory. A
lagging mirror cannot roll a player back, and publishers signing at once both land in the
metadata."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import json
import shutil
import threading
from pathlib import Path

import pytest

from helpers import assert_installed, fetcher, run_together
from depot_testing.fixtures import PRODUCT, fixture_tar, signed_repository
from pipeline import layout
from pipeline.build.chunk import chunk
from pipeline.build.ingest import ingest
from pipeline.client.install import install, resolve_version
from pipeline.client.update import update
from pipeline.errors import MetadataExpired, MetadataRollback, NotFound, SignatureInvalid, TargetMismatch
from pipeline.formats.channel import Channel
from pipeline.formats.trust_settings import Lifetimes
from pipeline.publish.channels import promote
from pipeline.storage import Locations, open_store
from depot_testing.http_origins import StaticOrigin
from pipeline.trust import keys, repository
from pipeline.trust.anchors import Anchors
from pipeline.trust.checking import TrustedMetadata
from pipeline.trust.keys import Keyring

KINDS = ["dir", "http"]  # every attack; S3 only for those below, where the store's own reads matter
ON_S3_TOO = pytest.mark.parametrize("origin", KINDS + ["s3"], indirect=True)


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


@ON_S3_TOO
def test_an_honest_origin_installs(origin, tmp_path, build_dirs):
    r = install(origin.client(tmp_path / "data"), PRODUCT, "1.1.0", tmp_path / "game")
    assert r.files_written == r.files
    assert_installed(tmp_path / "game", build_dirs["1.1.0"])


@ON_S3_TOO
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


@ON_S3_TOO
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


@ON_S3_TOO
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


def _tamper(files: Path, key: str) -> None:
    """Flip one bit in the middle of a signed document, in its copy under its hash and under
    its name, as a compromised origin would."""
    for path in (hashed(files, key), files / key):
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("document", ["plan", "channel"])
def test_a_tampered_plan_or_channel_pointer_byte_is_refused(origin, tmp_path, document):
    data, game = tmp_path / "data", tmp_path / "game"
    install(origin.client(data), PRODUCT, "1.0.0", game)  # before the origin is compromised
    installed = (game / ".depot" / "installed.json").read_bytes()
    if document == "plan":
        _tamper(origin.files, layout.plan_key(PRODUCT, "1.0.0", "1.1.0"))
        origin.serve()
        with pytest.raises(TargetMismatch, match="plans/1.0.0/1.1.0.json"):
            update(origin.client(data), game, to_version="1.1.0")
    else:
        _tamper(origin.files, layout.channel_key(PRODUCT, "stable"))
        origin.serve()
        with pytest.raises(TargetMismatch, match="channels/stable.json"):
            update(origin.client(data), game, channel="stable")
    assert (game / ".depot" / "installed.json").read_bytes() == installed  # still 1.0.0, untouched


def test_a_document_the_signed_metadata_does_not_name_is_refused(origin, tmp_path):
    """An origin offers a version and a channel the repository never signed (documents
    valid in themselves, each also under its hash): neither is used."""
    unsigned = layout.manifest_key(PRODUCT, "1.2.0")  # a version the repository does not have
    source = origin.files / layout.manifest_key(PRODUCT, "1.1.0")
    pointer = Channel.first(PRODUCT, "beta", "1.1.0", "2026-01-01T00:00:00Z").to_bytes()
    for key, data in ((unsigned, source.read_bytes()), (layout.channel_key(PRODUCT, "beta"), pointer)):
        sha = hashlib.sha256(data).hexdigest()
        for path in (origin.files / key, origin.files / layout.hashed_target_key(key, sha)):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    origin.serve()
    client = origin.client(tmp_path / "data")
    with pytest.raises(NotFound, match="versions/1.2.0/manifest.json not found"):
        install(client, PRODUCT, "1.2.0", tmp_path / "game")
    with pytest.raises(NotFound, match="channels/beta.json not found"):
        resolve_version(client, PRODUCT, "beta")
    assert not (tmp_path / "game").exists()


def test_a_product_key_cannot_sign_another_products_documents(origin, signed, tmp_path):
    """starfall's release key, delegated `products/starfall/...` only, signs a manifest for
    another product into starfall's metadata: the signature is good, the client still does
    not take it."""
    from tuf.api.metadata import Metadata, TargetFile

    forged_key = layout.manifest_key("moonrise", "1.0.0")
    forged = (origin.files / layout.manifest_key(PRODUCT, "1.1.0")).read_bytes()
    info = TargetFile.from_data(forged_key, forged, ["sha256"])
    for path in (origin.files / forged_key, origin.files / layout.hashed_target_key(forged_key, info.hashes["sha256"])):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(forged)
    role = max(origin.files.glob(f"metadata/*.product-{PRODUCT}.json"), key=lambda p: int(p.name.split(".")[0]))
    md = Metadata.from_bytes(role.read_bytes())
    md.signed.targets[forged_key] = info
    md.signatures.clear()
    md.sign(keys.load_signer(signed / "keys" / f"{PRODUCT}.key"))  # the real release key: a good signature
    role.write_bytes(md.to_bytes())
    origin.serve()
    client = origin.client(tmp_path / "data")
    assert resolve_version(client, PRODUCT, "stable") == "1.1.0"  # starfall's role, as re-signed, is trusted
    with pytest.raises(NotFound, match="moonrise/versions/1.0.0/manifest.json not found"):
        install(client, "moonrise", "1.0.0", tmp_path / "game")
    assert not (tmp_path / "game").exists()


def test_every_origin_of_a_repository_shares_one_cache_so_no_mirror_rolls_it_back(signed, tmp_path):
    """Two mirrors of one repository, a directory and an HTTP server: one has the newer
    metadata, the other lags. A player who saw the newer one from the first is refused the
    older one from the second, even trusting the root afresh for it."""
    repo = signed / "repo"
    ahead, behind = tmp_path / "ahead", tmp_path / "behind"
    shutil.copytree(repo, behind)
    shutil.copytree(repo, ahead)
    repository.refresh(open_store(str(ahead)), Keyring(signed / "keys"))  # a new timestamp, on one mirror only
    root = (repo / layout.metadata_key("root", 1)).read_bytes()
    data = tmp_path / "data"
    with StaticOrigin(behind) as http:
        def client(url: str):
            f = fetcher(url, retries=0)
            f.trust = TrustedMetadata(f.get, Anchors(data).trust(root, [url]), url)
            return f

        assert resolve_version(client(str(ahead)), PRODUCT, "stable") == "1.1.0"
        with pytest.raises(MetadataRollback, match="timestamp"):
            client(http.url)
    fresh = tmp_path / "another-player"  # a player who never saw the newer metadata takes the lagging mirror
    f = fetcher(str(behind), retries=0)
    f.trust = TrustedMetadata(f.get, Anchors(fresh).trust(root, [str(behind)]), str(behind))
    assert resolve_version(f, PRODUCT, "stable") == "1.1.0"


def test_two_publishers_signing_at_once_both_end_up_in_the_metadata(signed, tmp_path):
    """Two products' releases sign at the same moment: both sign over the same committed
    metadata before either commits; the one whose commit loses signs again over the
    winner's, so the metadata ends up naming both."""
    files = tmp_path / "repo"
    shutil.copytree(signed / "repo", files)
    store, ring = open_store(str(files)), Keyring(signed / "keys")
    moonrise = keys.generate(tmp_path / "keys", ["moonrise"])[0]
    ring.add(keys.load_signer(moonrise.private))
    repository.set_keys(store, ring, "moonrise", add=[keys.load_public(moonrise.public)])
    with cf.ThreadPoolExecutor(2) as ex:  # a second product with a build of its own
        ingest(store, str(fixture_tar("1.0.0")), "moonrise", "1.0.0", ex)
        chunk(store, "moonrise", "1.0.0", ex)
    before = {r.role: r.version for r in repository.status(store)}
    timestamp = layout.metadata_key("timestamp")
    barrier = threading.Barrier(2)
    first_commit = threading.local()
    real_put = store.put_if_match

    def commit_after_both_signed(key, data, tag):
        if key == timestamp and not getattr(first_commit, "done", False):
            first_commit.done = True
            barrier.wait(timeout=30)  # both signed over the same snapshot before either commits
        return real_put(key, data, tag)

    store.put_if_match = commit_after_both_signed
    commits, errors = {}, []

    def release(product: str, version: str, channel: str) -> None:
        try:
            promote(store, product, version, channel)
            commits[product] = repository.sign_documents(store, ring, product)
        except Exception as exc:  # noqa: BLE001 - neither may fail: the assertion below says how
            errors.append(exc)

    try:
        run_together(release, [(PRODUCT, "1.0.0", "beta"), ("moonrise", "1.0.0", "stable")])
    finally:
        del store.put_if_match
    assert errors == [] and set(commits) == {PRODUCT, "moonrise"}
    t = before["timestamp"]
    assert sorted(c.timestamp_version for c in commits.values()) == [t + 1, t + 2]  # one after the other
    # each role's new version: the winner's first, the loser's second (its first went with the lost commit)
    assert sorted([commits[PRODUCT].roles[f"product-{PRODUCT}"] - before[f"product-{PRODUCT}"],
                   commits["moonrise"].roles["product-moonrise"] - before["product-moonrise"]]) == [1, 2]
    client = fetcher(files, retries=0)
    client.trust = TrustedMetadata(client.get, Anchors(tmp_path / "data").trust(
        (files / layout.metadata_key("root", 1)).read_bytes(), [str(files)]), str(files))
    assert resolve_version(client, PRODUCT, "beta") == "1.0.0"
    assert resolve_version(client, "moonrise", "stable") == "1.0.0"


# -- metadata failover: one mirror's metadata refused, the next one's used --------------------


def _mirror_copies(signed: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Two mirrors of the repository: ``first`` and ``second``, the same files for now."""
    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(signed / "repo", first)
    shutil.copytree(signed / "repo", second)
    return first, second


def _timestamp_version(path: Path) -> int:
    return json.loads(path.read_bytes())["signed"]["version"]


def _player(data: Path, root: bytes, *urls):
    f = fetcher(*urls, retries=0)
    f.check_with(Anchors(data).trust(root, [str(u) for u in urls]))
    return f


@pytest.mark.parametrize("refusal", ["rollback", "bad signature", "expired"])
def test_metadata_refused_on_the_first_origin_is_passed_over_for_the_next(signed, tmp_path, build_dirs, refusal):
    """The first origin (HTTP) serves metadata the client must refuse; the second (a
    directory) serves good metadata: the install uses the second's, byte for byte, and the
    trusted state keeps the highest versions seen."""
    first, second = _mirror_copies(signed, tmp_path)
    root = (second / layout.metadata_key("root", 1)).read_bytes()
    data = tmp_path / "data"
    ring = Keyring(signed / "keys")
    timestamp = layout.metadata_key("timestamp")
    if refusal == "rollback":  # the second mirror got a newer publish, which the player has seen
        repository.refresh(open_store(str(second)), ring)
        _player(data, root, second)
    elif refusal == "bad signature":  # a version raised by hand: the signature no longer holds
        doc = json.loads((first / timestamp).read_bytes())
        doc["signed"]["version"] += 5
        (first / timestamp).write_bytes(json.dumps(doc).encode())
    else:  # the first mirror froze on a timestamp that has expired since; the second moved on
        repository.refresh(open_store(str(second)), ring, dataclasses.replace(Lifetimes(), timestamp=-60))
        shutil.rmtree(first)
        shutil.copytree(second, first)
        repository.refresh(open_store(str(second)), ring)
    cache = data / "trust" / hashlib.sha256(root).hexdigest()[:16] / "metadata" / "timestamp.json"
    seen = _timestamp_version(cache) if cache.exists() else 0
    with StaticOrigin(first) as http:
        player = _player(data, root, http.url, second)
        assert player.trust.where == str(second)
        r = install(player, PRODUCT, "1.1.0", tmp_path / "game")
    assert r.files_written == r.files
    assert_installed(tmp_path / "game", build_dirs["1.1.0"])
    assert _timestamp_version(cache) == _timestamp_version(second / timestamp) >= seen


@pytest.mark.parametrize("refusal, error, code", [
    ("rollback", MetadataRollback, "METADATA_ROLLBACK"),
    ("bad signature", SignatureInvalid, "METADATA_SIGNATURE_INVALID"),
])
def test_no_origin_with_metadata_that_verifies_fails_naming_each(signed, tmp_path, refusal, error, code):
    """Every origin's metadata refused: the command fails with the documented code, its
    message naming each origin and why; nothing is written and the trusted state stays."""
    first, second = _mirror_copies(signed, tmp_path)
    root = (first / layout.metadata_key("root", 1)).read_bytes()
    data = tmp_path / "data"
    timestamp = layout.metadata_key("timestamp")
    if refusal == "rollback":
        ahead = tmp_path / "ahead"
        shutil.copytree(first, ahead)
        repository.refresh(open_store(str(ahead)), Keyring(signed / "keys"))
        _player(data, root, ahead)
    else:
        for mirror in (first, second):
            doc = json.loads((mirror / timestamp).read_bytes())
            doc["signed"]["version"] += 5
            (mirror / timestamp).write_bytes(json.dumps(doc).encode())
    cache = data / "trust" / hashlib.sha256(root).hexdigest()[:16] / "metadata" / "timestamp.json"
    before = cache.read_bytes() if cache.exists() else None
    with StaticOrigin(first) as http:
        with pytest.raises(error) as refused:
            _player(data, root, http.url, second)
    message = str(refused.value)
    assert refused.value.code == code
    assert message.startswith("no origin gives metadata that verifies: ")
    assert f"{http.url}: " in message and f"{second}: " in message and message.count(f"({code})") == 2
    assert (cache.read_bytes() if cache.exists() else None) == before  # the highest version seen stays


def test_a_document_a_lagging_mirrors_metadata_does_not_list_is_looked_for_in_the_next(signed, tmp_path):
    """A fresh player: the first mirror's metadata verifies but is older and does not list
    the new channel; the second's, newer, does. The pointer comes from the second's."""
    first, second = _mirror_copies(signed, tmp_path)
    store = open_store(str(second))
    promote(store, PRODUCT, "1.0.0", "beta")
    repository.sign_documents(store, Keyring(signed / "keys"), PRODUCT)
    root = (first / layout.metadata_key("root", 1)).read_bytes()
    player = _player(tmp_path / "data", root, first, second)
    assert player.trust.where == str(first)
    assert resolve_version(player, PRODUCT, "beta") == "1.0.0"
    assert player.trust.where == str(second)
    with pytest.raises(NotFound, match=f"{second}: .*channels/gamma.json not found"):
        resolve_version(player, PRODUCT, "gamma")  # listed by none: the answer of the one in use
