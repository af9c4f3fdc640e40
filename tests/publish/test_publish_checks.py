"""publish checks the signed metadata it is about to push as a player would, from the
repository's first root: metadata players would refuse (a tampered signature, a role
signed by a key the root does not list, an expired timestamp) is refused with the
player's error code, naming the repository and the role, and no origin is touched. And
``trust status`` counts only the signatures that verify."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess

import pytest

from helpers import DEPOT, everything
from depot_testing.fixtures import PRODUCT, signed_repository
from pipeline import layout
from pipeline.formats.trust_settings import Lifetimes
from pipeline.publish.channels import promote
from pipeline.storage import open_store
from pipeline.trust import repository
from pipeline.trust.keys import Keyring


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A signed repository: 1.0.0 and 1.1.0, stable -> 1.1.0; its keys."""
    return signed_repository(tmp_path_factory.mktemp("signed"))


def depot(*args) -> subprocess.CompletedProcess:
    return subprocess.run(DEPOT + [str(a) for a in args], capture_output=True, text=True)


@pytest.fixture
def world(signed, tmp_path):
    """An origin holding an earlier good publish; then the repository moved on (beta ->
    1.0.0, signed: a new product role, snapshot and timestamp the origin lacks)."""
    shutil.copytree(signed, tmp_path / "release")
    repo, origin = tmp_path / "release" / "repo", tmp_path / "origin"
    first = depot("--repo", repo, "publish", "-p", PRODUCT, "-v", "1.0.0", "--origin", origin)
    assert first.returncode == 0, first.stderr
    store = open_store(str(repo))
    promote(store, PRODUCT, "1.0.0", "beta")
    repository.sign_documents(store, Keyring(tmp_path / "release" / "keys"), PRODUCT)
    return repo, origin


def newest(repo, role: str):
    return max(repo.glob(f"metadata/*.{role}.json"), key=lambda p: int(p.name.split(".")[0]))


def refused_publish(repo, origin) -> tuple[int, list[str]]:
    """Publish 1.1.0 to ``origin``: the exit code and the stderr lines; the origin must be
    left exactly as it was, every file's bytes and time."""
    before = everything(origin)
    p = depot("--repo", repo, "publish", "-p", PRODUCT, "-v", "1.1.0", "--origin", origin)
    assert everything(origin) == before
    return p.returncode, p.stderr.splitlines()


def tamper_timestamp_signature(repo) -> None:
    path = repo / layout.metadata_key("timestamp")
    doc = json.loads(path.read_bytes())
    sig = doc["signatures"][0]["sig"]
    doc["signatures"][0]["sig"] = ("1" if sig[0] == "0" else "0") + sig[1:]
    path.write_text(json.dumps(doc, separators=(",", ":")))


def test_a_tampered_timestamp_signature_is_refused_and_no_origin_is_touched(world):
    repo, origin = world
    tamper_timestamp_signature(repo)
    assert refused_publish(repo, origin) == (13, [
        f"depot: error: {repo}: timestamp was signed by 0/1 keys: not published (players would refuse it) "
        "[METADATA_SIGNATURE_INVALID]"])


def test_a_tampered_snapshot_is_refused_and_no_origin_is_touched(world):
    repo, origin = world
    path = newest(repo, "snapshot")
    doc = json.loads(path.read_bytes())
    doc["signed"]["expires"] = "2099-01-01T00:00:00Z"  # changed after signing: the signature no longer holds
    path.write_text(json.dumps(doc, separators=(",", ":")))
    assert refused_publish(repo, origin) == (13, [
        f"depot: error: {repo}: snapshot was signed by 0/1 keys: not published (players would refuse it) "
        "[METADATA_SIGNATURE_INVALID]"])


def test_a_product_role_signed_by_a_key_the_root_does_not_list_is_refused_and_no_origin_is_touched(world):
    from securesystemslib.signer import CryptoSigner
    from tuf.api.metadata import Metadata

    repo, origin = world
    path = newest(repo, f"product-{PRODUCT}")
    md = Metadata.from_bytes(path.read_bytes())
    md.signatures.clear()
    md.sign(CryptoSigner.generate_ed25519())
    path.write_bytes(md.to_bytes())
    version = int(path.name.split(".")[0])
    assert refused_publish(repo, origin) == (13, [
        f"depot: error: {repo}: product-{PRODUCT} version {version}: product-{PRODUCT} was signed by 0/1 keys: "
        "not published (players would refuse it) [METADATA_SIGNATURE_INVALID]"])


def test_an_expired_timestamp_is_refused_and_no_origin_is_touched(world):
    repo, origin = world
    store = open_store(str(repo))
    repository.refresh(store, Keyring(repo.parent / "keys"), dataclasses.replace(Lifetimes(), timestamp=-60))
    code, lines = refused_publish(repo, origin)
    assert (code, len(lines)) == (14, 1)
    assert lines[0].startswith(f"depot: error: {repo}: timestamp.json is expired")
    assert lines[0].endswith("not published (players would refuse it) [METADATA_EXPIRED]")


def test_rm_with_an_origin_pushes_no_metadata_players_would_refuse(signed, tmp_path):
    """rm --origin brings the new metadata to the origin before the version goes there:
    checked the same way, and refused before the origin is touched."""
    shutil.copytree(signed, tmp_path / "release")
    repo, origin = tmp_path / "release" / "repo", tmp_path / "origin"
    first = depot("--repo", repo, "publish", "-p", PRODUCT, "-v", "1.0.0", "--origin", origin)
    assert first.returncode == 0, first.stderr
    path = newest(repo, "targets")  # rm signs a new product role, snapshot and timestamp, not this
    doc = json.loads(path.read_bytes())
    doc["signed"]["expires"] = "2099-01-01T00:00:00Z"
    path.write_text(json.dumps(doc, separators=(",", ":")))
    (tmp_path / "release" / "keys" / "root.key").unlink()  # kept offline
    before = everything(origin)
    p = subprocess.run(DEPOT + ["--repo", str(repo), "--keys", str(tmp_path / "release" / "keys"), "rm", "-p", PRODUCT,
                                "-v", "1.0.0", "--origin", str(origin)], capture_output=True, text=True)
    assert everything(origin) == before
    assert (p.returncode, p.stderr.splitlines()) == (13, [
        f"depot: error: {repo}: targets was signed by 0/1 keys: not published (players would refuse it) "
        "[METADATA_SIGNATURE_INVALID]"])


def test_metadata_that_verifies_is_published(world):
    repo, origin = world
    p = depot("--json", "--repo", repo, "publish", "-p", PRODUCT, "-v", "1.1.0", "--origin", origin)
    assert p.returncode == 0, p.stderr
    timestamp = layout.metadata_key("timestamp")
    assert (origin / timestamp).read_bytes() == (repo / timestamp).read_bytes()


def test_trust_status_counts_only_valid_signatures(world):
    repo, _ = world
    tamper_timestamp_signature(repo)
    p = depot("--repo", repo, "trust", "status")
    assert p.returncode == 0, p.stderr
    rows = {line.split("\t")[0]: line.split("\t")[3] for line in p.stdout.splitlines()}
    assert rows["timestamp"] == "signed by 0 of 1 keys, 1 needed: does not verify"
    assert rows["snapshot"] == rows[f"product-{PRODUCT}"] == "signed by 1 of 1 keys, 1 needed"
    p = depot("--json", "--repo", repo, "trust", "status")
    signed = {r["role"]: r["signed"] for r in json.loads(p.stdout)["roles"]}
    assert signed == {"root": 1, "targets": 1, "snapshot": 1, "timestamp": 0, f"product-{PRODUCT}": 1}
