"""The lookup service, as a real uvicorn server over a published origin behind a real nginx
(secure_link): the documents' shapes, update checks priced like the client prices them,
installs through the service's signed links, links nginx refuses, refresh, regions,
metrics, and schemathesis against the OpenAPI document."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import DEPOT, PRODUCT, ROOT, assert_installed, signed_repository
from pipeline import layout
from pipeline.delta.route import update_route
from pipeline.formats import manifest as manifest_doc, plan_index
from pipeline.publish.channels import promote
from pipeline.publish.publish import publish
from pipeline.service.app import ServiceConfig, create_app
from pipeline.service.catalog import Origin
from pipeline.storage import Location, open_origin, open_store
from pipeline.testing.servers import nginx, uvicorn_server
from pipeline.trust import repository
from pipeline.trust.keys import Keyring

SECRET = "cdn-secret"
API = "/api/v1/download"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A signed repository (1.0.0, 1.1.0, 1.2.0; stable -> 1.2.0) published to an origin
    directory, nginx in front of it, and the service over it."""
    base = signed_repository(tmp_path_factory.mktemp("service"), versions=("1.0.0", "1.1.0", "1.2.0"))
    repo = open_store(str(base / "repo"))
    origin_dir = base / "origin"
    publish(repo, [open_store(str(origin_dir))], PRODUCT, ["1.0.0", "1.1.0", "1.2.0"], channels=["stable"])
    with nginx(origin_dir, SECRET, base / "nginx") as cdn:
        msk = Location(str(origin_dir), region="ru-msk", priority=1, public_url=cdn)
        dead = Location("http://127.0.0.1:9/depot", region="ru-spb", priority=0, timeout=1)
        config = ServiceConfig([Origin("msk", open_origin(msk), msk), Origin("spb-down", open_origin(dead), dead)],
                               link_secret=SECRET, link_rate=20, refresh_s=0.5)
        app = create_app(config)
        with uvicorn_server(app) as url:
            yield {"base": base, "repo": repo, "origin": origin_dir, "cdn": cdn, "url": url, "app": app}


def get(url: str, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url + path, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def post(url: str, path: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_products_versions_channels_and_manifests(world):
    url, repo = world["url"], world["repo"]
    status, body = get(url, f"{API}/products")
    assert status == 200 and body["data"] == [{"type": "product", "id": PRODUCT, "attributes": {
        "versions": ["1.0.0", "1.1.0", "1.2.0"], "channels": {"stable": "1.2.0"}}}]
    status, body = get(url, f"{API}/products/{PRODUCT}/versions/1.1.0/manifest")
    assert body["data"]["attributes"] == manifest_doc.load(repo, PRODUCT, "1.1.0").to_dict()
    key = layout.manifest_key(PRODUCT, "1.1.0")
    assert body["meta"]["signed"]["path"] == layout.hashed_target_key(
        key, __import__("hashlib").sha256(repo.get(key)).hexdigest())
    status, body = get(url, f"{API}/products/{PRODUCT}/channels")
    assert [(c["id"], c["attributes"]["versionId"], c["attributes"]["serial"]) for c in body["data"]] == \
        [("stable", "1.2.0", 1)]
    status, body = get(url, f"{API}/products/nosuch/versions")
    assert status == 404 and body["errors"][0]["code"] == "NOT_FOUND" and "nosuch" in body["errors"][0]["detail"]


def test_update_checks_are_priced_the_way_the_client_updates(world):
    url, repo = world["url"], world["repo"]
    body = {"data": [{"type": "installedProduct", "attributes": {"productId": PRODUCT, "currentVersionId": v}}
                     for v in ("1.0.0", "1.2.0")]
                    + [{"type": "installedProduct", "attributes": {"productId": "nosuch", "currentVersionId": "1"}}]}
    status, answer = post(url, f"{API}/updates/check", body)
    assert status == 200
    old, latest, unknown = (d["attributes"] for d in answer["data"])
    target, installed = (manifest_doc.load(repo, PRODUCT, v) for v in ("1.2.0", "1.0.0"))
    route = update_route(plan_index.load(repo, PRODUCT), "1.0.0", "1.2.0", target.chunk_cost_from(installed))
    assert route is not None
    assert old == {"productId": PRODUCT, "isUpdateAvailable": True, "latestVersionId": "1.2.0", "updateType": "delta",
                   "downloadSizeBytes": route.download_bytes, "requiredDiskSpaceBytes": max(
                       __import__("pipeline.formats.plan", fromlist=["load"]).load(repo, PRODUCT, a, b)
                       .required_disk_space_bytes for a, b in zip(route.versions, route.versions[1:]))}
    assert latest == {"productId": PRODUCT, "isUpdateAvailable": False, "latestVersionId": "1.2.0"}
    assert unknown == {"productId": "nosuch", "isUpdateAvailable": False}
    status, bad = post(url, f"{API}/updates/check", {"data": [{"type": "game"}]})
    assert status == 400 and bad["errors"][0]["code"] == "INVALID_ARGUMENT"


def test_a_player_installs_through_nginx_with_the_services_links(world, tmp_path, build_dirs):
    env = {**os.environ, "DEPOT_DATA_DIR": str(tmp_path / "data")}
    root = world["base"] / "repo" / layout.metadata_key("root", 1)
    p = subprocess.run(DEPOT + ["--json", "install", "--service", world["url"], "--trust", str(root), "-p", PRODUCT,
                                "-c", "stable", "--dest", str(tmp_path / "game")],
                       capture_output=True, text=True, cwd=ROOT, env=env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["version"] == "1.2.0"
    assert_installed(tmp_path / "game", build_dirs["1.2.0"])


def test_nginx_refuses_expired_forged_and_missing_links(world):
    chunk = next(iter(manifest_doc.load(world["repo"], PRODUCT, "1.0.0").unique_chunks()))
    status, body = get(world["url"], f"{API}/links?key={layout.chunk_key(chunk)}")
    href = body["data"][0]["attributes"]["href"]
    assert href.startswith(world["cdn"] + "/chunks/")
    with urllib.request.urlopen(href) as r:
        assert r.read() == (world["origin"] / layout.chunk_key(chunk)).read_bytes()

    def refused(link: str) -> int:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(link)
        return err.value.code

    assert refused(href.replace("md5=", "md5=A")) == 403  # forged
    assert refused(href.split("?")[0]) == 403  # no link at all
    other = next(c for c in manifest_doc.load(world["repo"], PRODUCT, "1.1.0").unique_chunks() if c != chunk)
    assert refused(href.replace(chunk, other)) == 403  # another object's link
    from pipeline.service.links import LinkSigner

    expired, _ = LinkSigner(world["cdn"], secret=SECRET, ttl=-10).link(layout.chunk_key(chunk))
    assert refused(expired) == 410


def test_link_requests_are_rate_limited_per_client(world):
    codes = [get(world["url"], f"{API}/links?key=metadata/timestamp.json")[0] for _ in range(40)]
    assert 429 in codes and codes[0] == 200
    status, body = get(world["url"], f"{API}/links?key=metadata/timestamp.json")
    if status == 429:
        assert body["errors"][0]["code"] == "CDN_LINK_RATE_LIMITED"
    time.sleep(1.1)  # the bucket refills: a second's worth of links again (not a timing assert)
    assert get(world["url"], f"{API}/links?key=metadata/timestamp.json")[0] == 200


def test_regions_skip_an_unhealthy_origin_and_metrics_count(world):
    status, body = get(world["url"], f"{API}/regions")
    health = {d["id"]: d["attributes"]["healthy"] for d in body["data"]}
    assert health == {"msk": True, "spb-down": False}
    assert get(world["url"], f"{API}/regions/preferred?region=ru-spb")[1]["data"]["id"] == "msk"  # its region is down
    assert get(world["url"], f"{API}/regions/preferred?region=ru-msk")[1]["data"]["id"] == "msk"
    with urllib.request.urlopen(world["url"] + "/metrics") as r:
        text = r.read().decode()
    assert f'depot_requests_total{{route="{API}/products",status="200"}}' in text
    assert "depot_links_total" in text and "depot_request_seconds_bucket" in text
    with urllib.request.urlopen(world["url"] + "/healthz") as r:
        assert json.loads(r.read()) == {"status": "ok"}


def test_the_cache_follows_the_origins_timestamp(world):
    repo, ring = world["repo"], Keyring(world["base"] / "keys")
    promote(repo, PRODUCT, "1.1.0", "beta")
    repository.sign_documents(repo, ring, PRODUCT)
    publish(repo, [open_store(str(world["origin"]))], PRODUCT, ["1.1.0"], channels=["beta"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the service looks every 0.5 s
        channels = get(world["url"], f"{API}/products")[1]["data"][0]["attributes"]["channels"]
        if "beta" in channels:
            break
        time.sleep(0.1)
    assert channels == {"beta": "1.1.0", "stable": "1.2.0"}


def test_schemathesis_finds_no_server_error(world, tmp_path):
    st = shutil.which("st") or shutil.which("schemathesis")
    if st is None:
        pytest.fail("schemathesis is in depot's test extra: pip install -e '.[test]'")
    p = subprocess.run([st, "run", f"{world['url']}/openapi.json", "--checks", "not_a_server_error",
                        "--max-examples", "15", "--seed", "1", "--no-color"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
