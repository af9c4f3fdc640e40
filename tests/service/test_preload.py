"""The lookup service over an origin holding an embargoed version (a real uvicorn): the key
route answers CONTENT_LOCKED (423) until release, with the release time and Retry-After
once one is scheduled; then the signed key, and the manifest opened with it; update checks
say what is there to pre-load. A scheduled time is honoured on the service's own clock."""

from __future__ import annotations

import datetime
import json
import urllib.error
import urllib.request

import pytest

from depot_testing.embargo import embargoed_repository
from depot_testing.fixtures import PRODUCT
from depot_testing.servers import uvicorn_server
from helpers import get, root_of
from pipeline import layout
from pipeline.formats import sealed
from pipeline.formats.manifest import Manifest
from pipeline.formats.release import iso
from pipeline.publish.publish import publish
from pipeline.publish.release import release
from pipeline.service.app import ServiceConfig, create_app
from pipeline.service.catalog import Origin
from pipeline.storage import Location, open_origin, open_store
from pipeline.trust import content_keys, repository
from pipeline.trust.keys import Keyring

API = "/api/v1/download"
KEY = f"{API}/products/{PRODUCT}/versions/1.2.0/key"


@pytest.fixture
def world(tmp_path):
    key, _ = embargoed_repository(tmp_path)
    store = open_store(str(tmp_path / "repo"))
    origin = tmp_path / "origin"
    finder = content_keys.ContentKeys(tmp_path / "keys").find

    def push():
        repository.sign_documents(store, Keyring(tmp_path / "keys"), PRODUCT)
        publish(store, [open_store(str(origin))], PRODUCT, ["1.0.0", "1.1.0", "1.2.0"], channels=["stable", "beta"],
                keys=finder)

    push()
    location = Location(str(origin))
    app = create_app(ServiceConfig([Origin("msk", open_origin(location), location)], trust=root_of(tmp_path),
                                   refresh_s=3600))
    with uvicorn_server(app) as url:
        yield {"url": url, "store": store, "key": key, "push": push, "catalog": app.state.catalog, "base": tmp_path}


def headers_of(url: str) -> tuple[int, dict, dict]:
    """The status, the headers (names in lowercase) and the JSON body of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, json.loads(e.read())


def check(url: str, current: str, channel: str) -> dict:
    body = {"data": [{"type": "installedProduct", "attributes": {"productId": PRODUCT, "currentVersionId": current}}]}
    req = urllib.request.Request(f"{url}{API}/updates/check?channel={channel}", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["data"][0]["attributes"]


def test_locked_until_released_then_the_key_and_the_manifest(world):
    url, store, key = world["url"], world["store"], world["key"]
    status, headers, body = headers_of(url + KEY)
    assert status == 423 and "retry-after" not in headers
    assert body == {"errors": [{"status": "423", "code": "CONTENT_LOCKED", "title": (
        "The version is embargoed: its content key is not released yet (pre-load it now;\n    it unlocks at release)."),
        "detail": f"{PRODUCT} 1.2.0 is embargoed: its content key is not released yet"}]}
    status, body = get(url, f"{API}/products/{PRODUCT}/versions/1.2.0/manifest")
    assert status == 423 and body["errors"][0]["code"] == "CONTENT_LOCKED"
    status, body = get(url, f"{API}/products/{PRODUCT}/versions/1.1.0/key")
    assert status == 404 and body["errors"][0]["detail"] == f"{PRODUCT} 1.1.0 is not embargoed: its content needs no key"
    assert check(url, "1.1.0", "beta") == {"productId": PRODUCT, "isUpdateAvailable": False,
                                           "latestVersionId": "1.1.0", "preloadVersionId": "1.2.0"}

    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    at = now + datetime.timedelta(days=1)
    release(store, PRODUCT, "1.2.0", key, now=now, at=at)
    world["push"]()
    assert world["catalog"].refresh()
    world["catalog"].clock = lambda: now.timestamp()  # the service's clock, stopped for the test
    status, headers, body = headers_of(url + KEY)
    assert status == 423 and headers["retry-after"] == "86400"
    assert body["errors"][0]["detail"] == (f"{PRODUCT} 1.2.0 is embargoed until {iso(at)}: pre-load it now, it "
                                           "unlocks then")
    assert check(url, "1.1.0", "beta")["releaseAt"] == iso(at)

    release(store, PRODUCT, "1.2.0", key, now=now)  # now, after all
    world["push"]()
    assert world["catalog"].refresh()
    status, body_key = get(url, KEY)
    released = key.released(iso(now))
    sha = __import__("hashlib").sha256(released.to_bytes()).hexdigest()
    key_doc = layout.content_key_key(PRODUCT, key.key_id)
    assert status == 200 and body_key == {"data": {"type": "contentKey", "id": key.key_id,
                                               "attributes": released.to_dict()},
                                      "meta": {"signed": {"sha256": sha,
                                                          "path": layout.hashed_target_key(key_doc, sha)}}}
    status, body = get(url, f"{API}/products/{PRODUCT}/versions/1.2.0/manifest")
    name = layout.manifest_key(PRODUCT, "1.2.0")
    opened = Manifest.from_bytes(sealed.unseal(key, name, store.get(name)), name)
    assert status == 200 and body["data"]["attributes"] == opened.to_dict()
    assert body["meta"]["contentKey"] == released.to_dict()
    latest = check(url, "1.1.0", "beta")
    assert (latest["isUpdateAvailable"], latest["latestVersionId"]) == (True, "1.2.0")
    repository.refresh(store, Keyring(world["base"] / "keys"))  # new metadata: the parsed manifest is kept
    world["push"]()
    assert world["catalog"].refresh()
    assert get(url, KEY) == (200, body_key)


def test_a_scheduled_time_is_honoured_on_the_services_clock(world):
    """A release machine whose clock runs ahead published the key before the time its
    release document says: the service still holds it back until then."""
    url, store, key = world["url"], world["store"], world["key"]
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    release(store, PRODUCT, "1.2.0", key, now=now)
    world["push"]()
    assert world["catalog"].refresh()
    world["catalog"].clock = lambda: now.timestamp() - 30  # the service's clock: 30 s before the release
    status, headers, body = headers_of(url + KEY)
    assert status == 423 and headers["retry-after"] == "30"
    assert body["errors"][0]["detail"] == (f"{PRODUCT} 1.2.0 is embargoed until {iso(now)}: pre-load it now, it "
                                           "unlocks then")
    world["catalog"].clock = lambda: now.timestamp()
    status, _, body = headers_of(url + KEY)
    assert status == 200 and body["data"]["attributes"]["released_at"] == iso(now)
