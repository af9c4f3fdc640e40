"""The lookup service answers only from metadata that verifies: python-tuf from the trusted
root, as players' clients check. Real uvicorn servers over origin directories that an
attacker (a tampered origin) or time (a frozen one) has changed."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata

from helpers import DEPOT, ROOT, get
from pipeline import layout
from pipeline.errors import MetadataExpired, SignatureInvalid, TargetMismatch
from pipeline.formats import manifest as manifest_doc
from pipeline.formats.trust_settings import Lifetimes
from pipeline.publish.channels import promote
from pipeline.publish.publish import publish
from pipeline.service.app import ServiceConfig, create_app
from pipeline.service.catalog import Origin
from pipeline.storage import Location, open_origin, open_store
from depot_testing.fixtures import PRODUCT, signed_repository
from depot_testing.servers import uvicorn_server
from pipeline.trust import repository
from pipeline.trust.keys import Keyring

API = "/api/v1/download"
VERSIONS = ["1.0.0", "1.1.0"]


@pytest.fixture(scope="module")
def signed(tmp_path_factory) -> Path:
    """A signed repository (1.0.0, 1.1.0; stable -> 1.1.0) and an origin it was published to."""
    base = signed_repository(tmp_path_factory.mktemp("verified"), versions=tuple(VERSIONS))
    publish(open_store(str(base / "repo")), [open_store(str(base / "origin"))], PRODUCT, VERSIONS, channels=["stable"])
    return base


@pytest.fixture
def world(signed, tmp_path) -> dict:
    """This test's own copy of the repository and its origin, to change at will."""
    shutil.copytree(signed / "repo", tmp_path / "repo")
    shutil.copytree(signed / "origin", tmp_path / "origin")
    return {"repo": open_store(str(tmp_path / "repo")), "origin": tmp_path / "origin", "keys": signed / "keys",
            "root": (signed / "repo" / layout.metadata_key("root", 1)).read_bytes(), "tmp": tmp_path}


@contextlib.contextmanager
def service(root: bytes, *origin_dirs: Path):
    """The service over ``origin_dirs`` (mirrors, in priority order), verifying from ``root``."""
    origins = []
    for i, d in enumerate(origin_dirs):
        loc = Location(str(d), priority=i)
        origins.append(Origin(d.name, open_origin(loc), loc))
    app = create_app(ServiceConfig(origins, link_secret="s", refresh_s=0.5, trust=root))
    with uvicorn_server(app) as url:
        yield url


def check(url: str, current: str) -> tuple[int, dict]:
    body = {"data": [{"type": "installedProduct", "attributes": {"productId": PRODUCT, "currentVersionId": current}}]}
    req = urllib.request.Request(url + f"{API}/updates/check", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def metrics(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        return r.read().decode()


def refused(error: type, detail: str) -> dict:
    return {"errors": [{"status": "503", "code": error.code, "title": error.__doc__.strip(), "detail": detail}]}


def until(condition, seconds: float = 20):
    """Wait for ``condition()`` to be true (the service looks every 0.5 s); its last value."""
    deadline = time.monotonic() + seconds
    while not (found := condition()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def timestamp(origin: Path) -> Metadata:
    return Metadata.from_bytes((origin / layout.metadata_key("timestamp")).read_bytes())


def product_role_file(origin: Path) -> Path:
    ts = timestamp(origin).signed
    snap = Metadata.from_bytes((origin / layout.metadata_key("snapshot", ts.snapshot_meta.version)).read_bytes())
    role = repository.product_role(PRODUCT)
    return origin / layout.metadata_key(role, snap.signed.meta[f"{role}.json"].version)


def tamper_role(path: Path) -> None:
    """Point the stable channel at other bytes in the product's role, its signature kept."""
    doc = json.loads(path.read_bytes())
    doc["signed"]["targets"][layout.channel_key(PRODUCT, "stable")]["hashes"]["sha256"] = "0" * 64
    path.write_text(json.dumps(doc))


def health(url: str) -> tuple[int, dict]:
    return get(url, "/healthz")


def iso(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_product_role_altered_after_signing_is_refused_until_the_origin_is_repaired(world):
    role = product_role_file(world["origin"])
    good = role.read_bytes()
    tamper_role(role)
    role_version = int(role.name.split(".")[0])
    detail = f"origin: product-{PRODUCT} version {role_version}: product-{PRODUCT} was signed by 0/1 keys"
    with service(world["root"], world["origin"]) as url:
        assert get(url, f"{API}/products") == (503, refused(SignatureInvalid, detail))
        assert get(url, f"{API}/products/{PRODUCT}/channels") == (503, refused(SignatureInvalid, detail))
        assert check(url, "1.0.0") == (503, refused(SignatureInvalid, detail))
        assert health(url) == (503, {"status": "refused", "metadata": {
            "signed": True, "timestampVersion": None, "expiresAt": None,
            "refused": [{"origin": "origin", "code": "METADATA_SIGNATURE_INVALID", "detail": detail}]}})
        text = metrics(url)
        assert "depot_metadata_ok 0.0" in text
        assert 'depot_metadata_refusals_total{code="METADATA_SIGNATURE_INVALID"}' in text
        role.write_bytes(good)  # the origin repaired: answers come back
        assert until(lambda: get(url, f"{API}/products")[0] == 200)
        assert get(url, f"{API}/products")[1]["data"][0]["attributes"] == {
            "versions": VERSIONS, "channels": {"stable": "1.1.0"}}
        assert health(url)[1]["status"] == "ok" and "depot_metadata_ok 1.0" in metrics(url)


def test_a_manifest_altered_after_signing_is_target_mismatch_and_a_good_mirror_is_used(world):
    bad = world["tmp"] / "bad"
    shutil.copytree(world["origin"], bad)
    key = layout.manifest_key(PRODUCT, "1.0.0")
    other = world["repo"].get(layout.manifest_key(PRODUCT, "1.1.0"))  # a valid manifest, not the one signed
    for copy in (bad / key).parent.glob("*manifest.json"):
        copy.write_bytes(other)
    hashed = next(p for p in (bad / key).parent.glob("*.manifest.json"))
    detail = f"{hashed.relative_to(bad)}: not the signed document on bad"
    with service(world["root"], bad) as url:
        assert get(url, f"{API}/products/{PRODUCT}/versions/1.0.0/manifest") == (503, refused(TargetMismatch, detail))
        assert check(url, "1.0.0") == (503, refused(TargetMismatch, detail))
        assert get(url, f"{API}/products/{PRODUCT}/versions/1.1.0/manifest")[0] == 200
    with service(world["root"], bad, world["origin"]) as url:  # a mirror with the signed bytes answers
        status, body = get(url, f"{API}/products/{PRODUCT}/versions/1.0.0/manifest")
        assert status == 200
        assert body["data"]["attributes"] == manifest_doc.load(world["repo"], PRODUCT, "1.0.0").to_dict()


def test_new_metadata_that_does_not_verify_leaves_the_last_verified_state_answered(world):
    """A refresh that is refused keeps what was verified last (while it has not expired);
    /healthz says "stale" and why."""
    ring = Keyring(world["keys"])
    staged = world["tmp"] / "staged"
    shutil.copytree(world["origin"], staged)
    promote(world["repo"], PRODUCT, "1.0.0", "beta")
    repository.sign_documents(world["repo"], ring, PRODUCT)
    publish(world["repo"], [open_store(str(staged))], PRODUCT, VERSIONS, channels=["stable", "beta"])
    tamper_role(product_role_file(staged))
    with service(world["root"], world["origin"]) as url:
        before = get(url, f"{API}/products")
        _, healthy = health(url)
        ts_key = layout.metadata_key("timestamp")
        shutil.copytree(staged, world["origin"], dirs_exist_ok=True, ignore=lambda d, names: [
            n for n in names if Path(d, n) == staged / ts_key])
        shutil.copy(staged / ts_key, world["origin"] / ts_key)  # the commit, last
        role_version = int(product_role_file(staged).name.split(".")[0])
        detail = f"origin: product-{PRODUCT} version {role_version}: product-{PRODUCT} was signed by 0/1 keys"
        assert until(lambda: health(url)[1]["status"] == "stale")
        assert health(url) == (200, {"status": "stale", "metadata": {
            **healthy["metadata"], "refused": [{"origin": "origin", "code": "METADATA_SIGNATURE_INVALID",
                                                "detail": detail}]}})
        assert get(url, f"{API}/products") == before
        assert before[1]["data"][0]["attributes"]["channels"] == {"stable": "1.1.0"}
        text = metrics(url)  # answers are still served
        assert "depot_metadata_ok 1.0" in text and "depot_metadata_refused_origins 1.0" in text


def test_a_frozen_origin_is_refused_once_its_timestamp_expires(world):
    """The timestamp lives 10 seconds and the origin is not re-signed: once it expires,
    answers are METADATA_EXPIRED (503); signed again, the service answers again. (publish
    refuses expired metadata: the 10 seconds are for it to check and push them.)"""
    ring = Keyring(world["keys"])
    repository.refresh(world["repo"], ring, Lifetimes().with_changes({"timestamp": 10}))
    publish(world["repo"], [open_store(str(world["origin"]))], PRODUCT, VERSIONS, channels=["stable"])
    expires = timestamp(world["origin"]).signed.expires
    with service(world["root"], world["origin"]) as url:
        assert get(url, f"{API}/products")[0] == 200
        assert health(url)[1]["metadata"]["expiresAt"] == iso(expires)
        detail = (f"the origins' signed metadata expired at {iso(expires)} and nothing newer verifies "
                  "(a frozen origin, or one not re-signed)")
        assert until(lambda: get(url, f"{API}/products")[0] == 503, seconds=30)
        assert get(url, f"{API}/products") == (503, refused(MetadataExpired, detail))
        assert check(url, "1.0.0") == (503, refused(MetadataExpired, detail))
        status, body = health(url)
        assert (status, body["status"], body["metadata"]["refused"]) == (
            503, "refused", [{"origin": None, "code": "METADATA_EXPIRED", "detail": detail}])
        assert "depot_metadata_ok 0.0" in metrics(url)
        repository.refresh(world["repo"], ring, Lifetimes())
        publish(world["repo"], [open_store(str(world["origin"]))], PRODUCT, VERSIONS, channels=["stable"])
        assert until(lambda: get(url, f"{API}/products")[0] == 200)
        assert health(url)[1]["status"] == "ok"


def test_a_timestamp_signed_with_a_past_expiry_is_refused(world):
    """Re-signed by the timestamp key with an expiry in the past: a service that verified
    the origin before keeps its state (stale); one that starts now answers nothing."""
    ring = Keyring(world["keys"])
    root = Metadata.from_bytes(world["root"]).signed
    ts = timestamp(world["origin"])
    ts.signed.version += 1
    ts.signed.expires = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(hours=1)
    ts.signatures.clear()
    for signer in ring.signers(root.roles["timestamp"].keyids, "timestamp"):
        ts.sign(signer, append=True)
    detail = "origin: timestamp.json is expired (a frozen or stale origin)"
    with service(world["root"], world["origin"]) as url:
        before = get(url, f"{API}/products")
        (world["origin"] / layout.metadata_key("timestamp")).write_bytes(ts.to_bytes())
        assert until(lambda: health(url)[1]["status"] == "stale")
        assert health(url)[1]["metadata"]["refused"] == [
            {"origin": "origin", "code": "METADATA_EXPIRED", "detail": detail}]
        assert get(url, f"{API}/products") == before and before[0] == 200
    with service(world["root"], world["origin"]) as url:
        assert get(url, f"{API}/products") == (503, refused(MetadataExpired, detail))


def test_depot_serve_refuses_a_signed_origin_without_a_trusted_root(world):
    p = subprocess.run(DEPOT + ["--json", "serve", "--origin", str(world["origin"]), "--port", "0"],
                       capture_output=True, text=True, cwd=ROOT, timeout=60,
                       env={**os.environ, "DEPOT_LINK_SECRET": "s"})
    assert p.returncode == 17 and "Traceback" not in p.stderr
    assert json.loads(p.stdout) == {"error": "TRUST_MISSING", "message": (
        f"{world['origin']} is signed: give `depot serve --trust ROOT.json` (the repository's root metadata, "
        "as players install with) to verify what it serves")}


def test_with_a_trusted_root_an_origin_without_metadata_is_never_served_unsigned(world):
    shutil.rmtree(world["origin"] / "metadata")
    detail = ("the origins serve no signed metadata (no metadata/timestamp.json), but the service was given a "
              "trusted root: an unsigned origin is never served in its place")
    with service(world["root"], world["origin"]) as url:
        status, body = get(url, f"{API}/products")
        assert (status, body["errors"][0]["code"], body["errors"][0]["detail"]) == (503, "TRUST_MISSING", detail)


def test_a_mirror_whose_metadata_does_not_verify_is_passed_over_for_the_next(world):
    """msk serves a timestamp altered after signing (its version raised, so its signature
    no longer verifies); spb is then published newer metadata, signed. The service answers
    from spb's, /healthz names msk and why, and answers count as served."""
    ring = Keyring(world["keys"])
    msk, spb = world["tmp"] / "msk", world["tmp"] / "spb"
    shutil.copytree(world["origin"], msk)
    shutil.copytree(world["origin"], spb)
    ts_path = msk / layout.metadata_key("timestamp")
    first = timestamp(msk).signed.version
    forged = json.loads(ts_path.read_bytes())
    forged["signed"]["version"] += 5
    detail = "msk: timestamp was signed by 0/1 keys"
    with service(world["root"], msk, spb) as url:
        _, healthy = health(url)
        assert (healthy["status"], healthy["metadata"]["timestampVersion"]) == ("ok", first)
        ts_path.write_text(json.dumps(forged))
        assert until(lambda: health(url)[1]["status"] == "stale")
        assert health(url) == (200, {"status": "stale", "metadata": {**healthy["metadata"], "refused": [
            {"origin": "msk", "code": "METADATA_SIGNATURE_INVALID", "detail": detail}]}})
        promote(world["repo"], PRODUCT, "1.0.0", "beta")
        repository.sign_documents(world["repo"], ring, PRODUCT)
        repository.refresh(world["repo"], ring, Lifetimes())
        publish(world["repo"], [open_store(str(spb))], PRODUCT, VERSIONS, channels=["stable", "beta"])
        newer = timestamp(spb).signed.version
        assert first < newer < forged["signed"]["version"]  # msk claims to be newer still
        assert until(lambda: health(url)[1]["metadata"]["timestampVersion"] == newer)
        status, body = health(url)
        assert (status, body["status"], body["metadata"]["refused"]) == (200, "stale", [
            {"origin": "msk", "code": "METADATA_SIGNATURE_INVALID", "detail": detail}])
        assert body["metadata"]["expiresAt"] > healthy["metadata"]["expiresAt"]
        assert get(url, f"{API}/products")[1]["data"][0]["attributes"]["channels"] == {
            "beta": "1.0.0", "stable": "1.1.0"}
        text = metrics(url)
        assert "depot_metadata_ok 1.0" in text and "depot_metadata_refused_origins 1.0" in text
        assert 'depot_metadata_refusals_total{code="METADATA_SIGNATURE_INVALID"}' in text
        shutil.copytree(spb, msk, dirs_exist_ok=True)  # msk repaired: nothing is refused
        assert until(lambda: health(url)[1]["status"] == "ok")
        assert health(url)[1]["metadata"] == {**body["metadata"], "refused": []}
        assert "depot_metadata_refused_origins 0.0" in metrics(url)


def test_a_service_started_on_a_refused_mirror_answers_from_the_next(world):
    """The first mirror's product role was altered after signing, its timestamp the same
    as the second's: from the start, answers come from the second's metadata. Once the
    state answered from is that timestamp's, the first is not looked at again."""
    bad = world["tmp"] / "bad"
    shutil.copytree(world["origin"], bad)
    tamper_role(product_role_file(bad))
    with service(world["root"], bad, world["origin"]) as url:
        assert get(url, f"{API}/products")[1]["data"][0]["attributes"] == {
            "versions": VERSIONS, "channels": {"stable": "1.1.0"}}
        assert until(lambda: health(url)[1]["status"] == "ok")
        status, body = health(url)
        assert (status, body["metadata"]["timestampVersion"], body["metadata"]["refused"]) == (
            200, timestamp(world["origin"]).signed.version, [])
