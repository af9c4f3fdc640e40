"""The lookup service, as a real uvicorn server over a published origin behind a real nginx
(secure_link): the documents' shapes, update checks priced like the client prices them,
installs through the service's signed links, links nginx refuses, refresh, regions,
metrics, and schemathesis against the OpenAPI document."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from helpers import DEPOT, ROOT, assert_installed, get
from depot_testing.fixtures import PRODUCT, signed_repository
from pipeline import layout
from pipeline.delta.route import update_route
from pipeline.formats import manifest as manifest_doc, plan as plan_doc, plan_index
from pipeline.publish.channels import promote
from pipeline.publish.publish import publish
from pipeline.service.app import ServiceConfig, create_app
from pipeline.service.catalog import Origin
from pipeline.storage import Location, open_origin, open_store
from depot_testing.servers import nginx, uvicorn_server
from pipeline.trust import repository
from pipeline.trust.keys import Keyring

SECRET = "cdn-secret"
API = "/api/v1/download"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A signed repository (1.0.0, 1.1.0, 1.2.0; stable -> 1.2.0) published to an origin
    directory, nginx in front of it, and the service over it, verifying from its root."""
    base = signed_repository(tmp_path_factory.mktemp("service"), versions=("1.0.0", "1.1.0", "1.2.0"))
    repo = open_store(str(base / "repo"))
    origin_dir = base / "origin"
    publish(repo, [open_store(str(origin_dir))], PRODUCT, ["1.0.0", "1.1.0", "1.2.0"], channels=["stable"])
    with nginx(origin_dir, SECRET, base / "nginx") as cdn:
        msk = Location(str(origin_dir), region="ru-msk", priority=1, public_url=cdn)
        dead = Location("http://127.0.0.1:9/depot", region="ru-spb", priority=0, timeout=1)
        config = ServiceConfig([Origin("msk", open_origin(msk), msk), Origin("spb-down", open_origin(dead), dead)],
                               link_secret=SECRET, link_rate=20, refresh_s=0.5, trust=root_of(base))
        app = create_app(config)
        with uvicorn_server(app) as url:
            yield {"base": base, "repo": repo, "origin": origin_dir, "cdn": cdn, "url": url, "app": app}


def root_of(base: Path) -> bytes:
    """The repository's first root: what players and the service are given to trust."""
    return (base / "repo" / layout.metadata_key("root", 1)).read_bytes()


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


def test_a_packed_versions_chunks_are_listed_whole_and_its_update_priced_by_the_objects(world):
    """The fixture's small files are packed into a chunk they share: the chunk list names
    each chunk once, at its whole size and its object's; the update check from 1.1.0 prices
    the plan and the chunks by the objects on the origin."""
    url, repo, origin = world["url"], world["repo"], world["origin"]
    new, old = (manifest_doc.load(repo, PRODUCT, v) for v in ("1.2.0", "1.1.0"))
    slices: dict[str, set[tuple[int, int]]] = {}  # chunk id -> the distinct slices the files hold
    for f in new.files:
        for c in f.chunks:
            slices.setdefault(c.id, set()).add((c.chunk_offset, c.size))
    packed = [i for i, held in slices.items() if len(held) > 1]
    assert len(packed) == 1 and len(slices[packed[0]]) == sum(f.size < 16 << 10 for f in new.files if f.size)

    def stored(key: str) -> int:
        return (origin / key).stat().st_size

    status, body = get(url, f"{API}/products/{PRODUCT}/versions/1.2.0/chunks?page[size]=1000")
    assert status == 200
    assert {d["id"]: d["attributes"] for d in body["data"]} == \
        {i: {"size": sum(n for _, n in held), "storedSize": stored(layout.chunk_key(i))} for i, held in slices.items()}

    old_ids = {c.id for f in old.files for c in f.chunks}
    chunk_cost = sum(stored(layout.chunk_key(i)) for i in set(slices) - old_ids)
    plan = plan_doc.load(repo, PRODUCT, "1.1.0", "1.2.0")
    fetched = {c.id for op in plan.files if op.op == "chunks" for c in new.entry(op.path).chunks} - old_ids
    delta = sum(stored(layout.chunk_key(i)) for i in fetched) + \
        sum(stored(layout.patch_key(s.id)) for op in plan.files for s in op.segments)
    assert plan.delta_download_bytes == delta < chunk_cost
    status, answer = post(url, f"{API}/updates/check", {"data": [
        {"type": "installedProduct", "attributes": {"productId": PRODUCT, "currentVersionId": "1.1.0"}}]})
    assert status == 200
    assert answer["data"][0]["attributes"] == {
        "productId": PRODUCT, "isUpdateAvailable": True, "latestVersionId": "1.2.0", "updateType": "delta",
        "downloadSizeBytes": delta, "requiredDiskSpaceBytes": plan.required_disk_space_bytes}


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
        assert json.loads(r.read()) == {"status": "ok", "metadata": served_metadata(world["origin"])}
    assert "depot_metadata_ok 1.0" in text


def served_metadata(origin: Path) -> dict:
    """What /healthz says of an origin's verified metadata: its timestamp's version and the
    earliest expiry of every role the service read."""
    from tuf.api.metadata import Metadata

    ts = Metadata.from_bytes((origin / layout.metadata_key("timestamp")).read_bytes()).signed
    snap = Metadata.from_bytes((origin / layout.metadata_key("snapshot", ts.snapshot_meta.version)).read_bytes()).signed
    roles = [ts, snap] + [Metadata.from_bytes((origin / layout.metadata_key(name.removesuffix(".json"), meta.version))
                                              .read_bytes()).signed for name, meta in snap.meta.items()]
    roots = sorted(origin.glob("metadata/*.root.json"), key=lambda p: int(p.name.split(".")[0]))
    roles.append(Metadata.from_bytes(roots[-1].read_bytes()).signed)
    return {"signed": True, "timestampVersion": ts.version, "refused": [],
            "expiresAt": min(r.expires for r in roles).strftime("%Y-%m-%dT%H:%M:%SZ")}


def test_the_cache_follows_the_origins_timestamp(world):
    """The channels, and the update checks answered from them (kept per reading of the
    origins), change once the origins' timestamp does."""
    repo, ring = world["repo"], Keyring(world["base"] / "keys")
    body = {"data": [{"type": "installedProduct", "attributes": {"productId": PRODUCT, "currentVersionId": "1.0.0"}}]}
    before = post(world["url"], f"{API}/updates/check?channel=beta", body)[1]["data"][0]["attributes"]
    assert before == {"productId": PRODUCT, "isUpdateAvailable": False}  # no beta yet: never the newest build
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
    after = post(world["url"], f"{API}/updates/check?channel=beta", body)[1]["data"][0]["attributes"]
    assert after["latestVersionId"] == "1.1.0" and after["isUpdateAvailable"] is True


def test_schemathesis_finds_no_server_error(world, tmp_path):
    st = shutil.which("st") or shutil.which("schemathesis")
    if st is None:
        pytest.fail("schemathesis is in depot's test extra: pip install -e '.[test]'")
    p = subprocess.run([st, "run", f"{world['url']}/openapi.json", "--checks", "not_a_server_error",
                        "--max-examples", "15", "--seed", "1", "--no-color"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]


def service_config(world, **settings) -> ServiceConfig:
    """A service's settings over the world's origin (nginx in front), with its own link rate
    (the world's service may have spent it)."""
    msk = Location(str(world["origin"]), region="ru-msk", priority=1, public_url=world["cdn"])
    return ServiceConfig([Origin("msk", open_origin(msk), msk)],
                         **{"link_secret": SECRET, "link_rate": 100, "refresh_s": 0.5, "trust": root_of(world["base"]),
                            **settings})


@contextlib.contextmanager
def another_service(world, config: ServiceConfig | None = None, asked: list | None = None, **settings):
    """Another service over the world's origin, with its own settings (or ``config``): its
    URL and application. The keys of each link request it receives, as received, are
    appended to ``asked``."""
    app = create_app(config or service_config(world, **settings))

    async def recording(scope, receive, send):
        if asked is not None and scope["type"] == "http" and scope["path"] == f"{API}/links":
            asked.append([v for k, v in urllib.parse.parse_qsl(scope["query_string"].decode()) if k == "key"])
        await app(scope, receive, send)

    with uvicorn_server(recording) as url:
        yield url, app


def origin_state(root: Path) -> dict:
    """Every entry under ``root``: kind, inode, size, modification and change times, and a
    file's bytes' hash. Any write (a new, changed, renamed or removed file; a temporary left
    or not) changes it."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        out[str(p.relative_to(root))] = (p.is_dir(), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest)
    st = root.stat()
    out["."] = (True, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, "")
    return out


def test_the_service_never_writes_to_an_origin(world):
    before = origin_state(world["origin"])
    started = time.time()
    with another_service(world) as (url, app):  # every kind of request it answers
        assert get(url, f"{API}/products")[0] == 200
        for v in ("1.0.0", "1.2.0"):
            assert get(url, f"{API}/products/{PRODUCT}/versions/{v}/manifest")[0] == 200
            assert get(url, f"{API}/products/{PRODUCT}/versions/{v}/chunks?page[size]=5")[0] == 200
        assert get(url, f"{API}/products/{PRODUCT}/channels")[0] == 200
        assert get(url, f"{API}/links?key=metadata/timestamp.json&key={layout.plan_index_key(PRODUCT)}")[0] == 200
        body = {"data": [{"type": "installedProduct", "attributes": {"productId": PRODUCT,
                                                                     "currentVersionId": "1.0.0"}}]}
        assert post(url, f"{API}/updates/check", body)[0] == 200
        assert get(url, f"{API}/regions/preferred?region=ru-msk")[0] == 200
        assert get(url, f"{API}/products/{PRODUCT}/versions/9.9.9/manifest")[0] == 404
        with urllib.request.urlopen(url + "/metrics") as r:
            r.read()
        origin = app.state.catalog.origins[0]
        deadline = time.monotonic() + 10
        while origin.probed_at <= started and time.monotonic() < deadline:  # and a look from the background
            time.sleep(0.05)
        assert origin.probed_at > started
    assert origin_state(world["origin"]) == before


def test_a_link_the_service_cannot_make_is_cdn_link_generation_failed(world):
    chunk = next(iter(manifest_doc.load(world["repo"], PRODUCT, "1.0.0").unique_chunks()))
    for settings in ({"link_secret": ""}, {"link_style": "token", "link_keys": ()}):  # no key to sign with
        with another_service(world, **settings) as (url, _):
            assert get(url, f"{API}/products")[0] == 200  # everything else is served
            for path in (f"{API}/links?key={layout.chunk_key(chunk)}", f"{API}/products/{PRODUCT}/versions/1.0.0/chunks"):
                status, body = get(url, path)
                assert status == 503 and body["errors"][0]["code"] == "CDN_LINK_GENERATION_FAILED"
                assert body["errors"][0]["status"] == "503"
            with urllib.request.urlopen(url + "/metrics") as r:
                assert 'depot_link_errors_total{code="CDN_LINK_GENERATION_FAILED"} 2.0' in r.read().decode()


def test_chunks_are_paged_with_next_links_and_links_take_up_to_1000_keys(world):
    ids = sorted(manifest_doc.load(world["repo"], PRODUCT, "1.1.0").unique_chunks())
    size = len(ids) // 3 + 1  # three pages, the last one shorter
    with another_service(world) as (url, _):
        seen, pages, path = [], [], f"{API}/products/{PRODUCT}/versions/1.1.0/chunks?page[size]={size}"
        while path:
            status, body = get(url, path)
            assert status == 200 and body["meta"] == {"total": len(ids), "pages": 3}
            pages.append(len(body["data"]))
            for item in body["data"]:
                seen.append(item["id"])
                with urllib.request.urlopen(item["links"]["download"]) as r:  # through nginx
                    assert r.read() == (world["origin"] / layout.chunk_key(item["id"])).read_bytes()
            path = body["links"]["next"]
        assert seen == ids and pages == [size, size, len(ids) - 2 * size]

        documents = [layout.manifest_key(PRODUCT, f"1.{i}") for i in range(1001)]
        chunks = [layout.chunk_key(hashlib.sha256(b"%d" % i).hexdigest()) for i in range(750)]
        for keys in (documents[:1000], chunks):  # chunks: as many as a URL of 64 KiB holds, encoded as clients do
            status, body = get(url, f"{API}/links?" + urllib.parse.urlencode([("key", k) for k in keys]))
            assert status == 200 and [d["id"] for d in body["data"]] == keys
            assert all(d["attributes"]["href"].startswith(f"{world['cdn']}/{k}?md5=") for d, k in zip(body["data"], keys))
        status, body = get(url, f"{API}/links?" + urllib.parse.urlencode([("key", k) for k in documents]))
        assert status == 400 and body["errors"][0]["code"] == "INVALID_ARGUMENT" and "1000" in body["errors"][0]["detail"]


def player_clock(monkeypatch, service_store) -> list[float]:
    """The player's clock, the real one moved by as many seconds as the list's one item."""
    import types

    real_time, moved = time.time, [0.0]
    monkeypatch.setattr(service_store, "time", types.SimpleNamespace(time=lambda: real_time() + moved[0]))
    return moved


def test_a_player_whose_link_expired_asks_the_service_for_a_new_one(world, monkeypatch):
    """What `depot install --service` reads through: a link that expired (the CDN answers 410),
    or is about to, is asked for again; the download goes on."""
    from pipeline.client.fetch import Fetcher
    from pipeline.storage import service_store

    keys = [layout.chunk_key(c) for c in sorted(manifest_doc.load(world["repo"], PRODUCT, "1.0.0").unique_chunks())[:2]]
    moved = player_clock(monkeypatch, service_store)
    config, asked = service_config(world, link_ttl=-10), []  # links expired when signed: the CDN refuses them
    with another_service(world, config, asked) as (url, _):
        store = service_store.ServiceStore(Location(url))
        client = Fetcher([store], backoff=0.01)
        store.prefetch(keys[:1])
        moved[0] = -3600  # the player's clock an hour behind: it believes the expired link good
        config.link_ttl = 300
        assert client.get(keys[0]) == (world["origin"] / keys[0]).read_bytes()
        assert (asked, client.retried) == ([keys[:1], keys[:1]], 1)  # one refused request (410), one new link

        config.link_ttl = service_store.MARGIN // 2  # a link of 15 s is used for half its life
        moved[0] = 0
        store.prefetch(keys[1:])
        moved[0] = service_store.MARGIN // 2 / 2 + 2  # then it is about to expire: asked for again before use
        config.link_ttl = 300
        assert client.get(keys[1]) == (world["origin"] / keys[1]).read_bytes()
        assert (asked[2:], client.retried) == ([keys[1:], keys[1:]], 1)  # no refused request
        assert client.get(keys[1]) == (world["origin"] / keys[1]).read_bytes()
        assert len(asked) == 4  # the new link is good for minutes


def test_links_are_asked_a_batch_at_a_time_as_the_download_goes(world, monkeypatch):
    """`depot install --service` names the keys in download order; each request brings the
    next batch's links, and a batch that expired meanwhile is asked again as one request,
    never one key at a time."""
    from pipeline.storage import service_store

    monkeypatch.setattr(service_store, "BATCH", 3)
    keys = [layout.chunk_key(c) for c in sorted(manifest_doc.load(world["repo"], PRODUCT, "1.0.0").unique_chunks())[:8]]
    moved, asked = player_clock(monkeypatch, service_store), []
    with another_service(world, asked=asked) as (url, _):
        store = service_store.ServiceStore(Location(url))
        store.prefetch(keys)
        assert asked == [keys[0:3]]
        for key in keys[:5]:
            assert store.get(key) == (world["origin"] / key).read_bytes()
        assert asked == [keys[0:3], keys[3:6]]
        moved[0] = 3600  # a long download: every link it holds is past its life
        assert store.get(keys[4]) == (world["origin"] / keys[4]).read_bytes()
        assert store.get(keys[6]) == (world["origin"] / keys[6]).read_bytes()
        assert asked == [keys[0:3], keys[3:6], keys[4:7]]


def test_depot_serve_takes_its_link_secret_from_depot_link_secret(world, tmp_path):
    """`depot serve` as a user starts it, the nginx secret only in the environment: its links
    are the ones nginx's secure_link accepts for that secret."""
    from pipeline.service.links import verify_nginx
    from depot_testing.servers import free_port

    port = free_port()
    env = {**os.environ, "DEPOT_LINK_SECRET": SECRET}
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen(DEPOT + ["serve", "--origin", str(world["origin"]), "--port", str(port), "--trust",
                                         str(world["base"] / "repo" / layout.metadata_key("root", 1))],
                                cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = get(url, f"{API}/links?key=chunks/00/x")
                break
            except urllib.error.URLError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.1)
        assert status == 200, body
        link = urllib.parse.urlsplit(body["data"][0]["attributes"]["href"])
        query = dict(urllib.parse.parse_qsl(link.query))
        verify_nginx(link.path, query["md5"], query["expires"], SECRET)  # raises if signed with another secret
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("ttl, clock_ahead", [(20, 0), (300, 600)])
def test_a_short_link_life_or_a_clock_ahead_still_asks_once_a_batch(world, monkeypatch, ttl, clock_ahead):
    """A link's life is read on the service's clock and counted on the player's: links
    that live 20 s, or a player's clock 10 minutes ahead, do not make every link look
    expired and every chunk cost a request."""
    from pipeline.storage import service_store

    keys = [layout.chunk_key(c) for c in sorted(manifest_doc.load(world["repo"], PRODUCT, "1.0.0").unique_chunks())[:6]]
    player_clock(monkeypatch, service_store)[0] = clock_ahead
    asked: list[list[str]] = []
    with another_service(world, link_ttl=ttl, asked=asked) as (url, _):
        store = service_store.ServiceStore(Location(url))
        store.prefetch(keys)
        for key in keys:
            assert store.get(key) == (world["origin"] / key).read_bytes()
        assert asked == [keys]


def test_a_plan_the_origins_lack_is_priced_by_chunks_and_a_mirror_behind_is_skipped(world, tmp_path):
    """An update whose plan is indexed but on no origin is a `full` update by chunks, not
    "no update"; a mirror that lacks a document (its publish under way) gives way to the
    next origin that has it."""
    from pipeline.service.catalog import Catalog
    from pipeline.service.updates import check

    ahead, behind = tmp_path / "ahead", tmp_path / "behind"
    shutil.copytree(world["origin"], ahead)
    shutil.copytree(world["origin"], behind)
    plan = layout.plan_key(PRODUCT, "1.1.0", "1.2.0")
    for root in (ahead, behind):
        for copy in root.glob(f"{Path(plan).parent}/*{Path(plan).name}"):
            copy.unlink()  # the plan, plain and hashed, on no origin
    for copy in behind.glob("products/*/versions/1.2.0/*manifest.json"):
        copy.unlink()  # this mirror has not the new version's manifest yet

    def origin(name: str, root: Path, priority: int) -> Origin:
        loc = Location(str(root), priority=priority)
        return Origin(name, open_origin(loc), loc)

    catalog = Catalog([origin("behind", behind, 0), origin("ahead", ahead, 1)], trust=root_of(world["base"]))
    target, installed = (manifest_doc.load(world["repo"], PRODUCT, v) for v in ("1.2.0", "1.1.0"))
    assert check(catalog, PRODUCT, "1.1.0", "stable") == {
        "productId": PRODUCT, "isUpdateAvailable": True, "latestVersionId": "1.2.0", "updateType": "full",
        "downloadSizeBytes": target.chunk_cost_from(installed),
        "requiredDiskSpaceBytes": sum(f.size for f in target.files
                                      if (f.path, f.hash_sha256) not in {(i.path, i.hash_sha256) for i in installed.files})}


def test_every_refusal_has_the_one_error_shape_and_a_429_says_when_to_retry(world):
    """No such route, a method a route does not take, too many link requests: JSON:API
    errors with the documents' codes; a 429 carries Retry-After."""
    for method, path, status, code in (("GET", "/api/v1/download/nosuch", 404, "NOT_FOUND"),
                                       ("DELETE", f"{API}/products", 405, "INVALID_ARGUMENT")):
        req = urllib.request.Request(world["url"] + path, method=method)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=10)
        body = json.loads(refused.value.read())
        assert refused.value.code == status and body["errors"][0]["code"] == code and path in body["errors"][0]["detail"]
    with another_service(world, link_rate=1) as (url, _):
        assert get(url, f"{API}/links?key=metadata/timestamp.json")[0] == 200
        with pytest.raises(urllib.error.HTTPError) as limited:
            urllib.request.urlopen(url + f"{API}/links?key=metadata/timestamp.json", timeout=10)
        assert limited.value.code == 429 and limited.value.headers["Retry-After"] == "1"
        assert json.loads(limited.value.read())["errors"][0]["code"] == "CDN_LINK_RATE_LIMITED"


def test_depot_serve_on_an_address_in_use_says_so(world):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        p = subprocess.run(DEPOT + ["--json", "serve", "--origin", str(world["origin"]), "--port", str(port),
                                    "--trust", str(world["base"] / "repo" / layout.metadata_key("root", 1))],
                           capture_output=True, text=True, cwd=ROOT, env={**os.environ, "DEPOT_LINK_SECRET": SECRET},
                           timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert json.loads(p.stdout) == {"error": "INVALID_ARGUMENT", "message": f"--host 127.0.0.1 --port {port}: "
                                    "cannot listen there (Address already in use)"}


@pytest.mark.parametrize("option, value, message", [
    ("--refresh", "nan", "Invalid value for '--refresh': nan: expected a finite number"),
    ("--refresh", "inf", "Invalid value for '--refresh': inf is not in the range 0.5<=x<=86400."),
    ("--refresh", "0", "Invalid value for '--refresh': 0.0 is not in the range 0.5<=x<=86400."),
    ("--link-rate", "nan", "Invalid value for '--link-rate': nan: expected a finite number"),
    ("--link-rate", "inf", "Invalid value for '--link-rate': inf: expected a finite number"),
    ("--link-rate", "0", "Invalid value for '--link-rate': 0.0 is not in the range x>=0.1."),
])
def test_depot_serve_refuses_a_number_option_that_is_not_finite_and_positive(world, option, value, message):
    """NaN passes a range check (it compares false with any bound): a refresh of NaN
    seconds would spin, one of infinity would stop the refresh, a link rate of NaN would
    refuse or allow at random. Each is a usage error before the service starts."""
    p = subprocess.run(DEPOT + ["--json", "serve", "--origin", str(world["origin"]), "--port", "0",
                                "--trust", str(world["base"] / "repo" / layout.metadata_key("root", 1)), option, value],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, "DEPOT_LINK_SECRET": SECRET},
                       timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert json.loads(p.stdout) == {"error": "USAGE", "message": message}


def test_parsed_documents_are_kept_within_the_cache_size_least_recently_used_first(world):
    """Manifests of every version in play would outgrow any memory: the catalogue keeps
    parsed documents up to ``--cache`` of their published size, and reads again what made
    room."""
    from pipeline.service.catalog import Catalog

    reads: list[str] = []
    loc = Location(str(world["origin"]))
    store = open_origin(loc)

    class Counting:
        url = store.url

        def get(self, key: str) -> bytes:
            reads.append(key)
            return store.get(key)

        def __getattr__(self, name):
            return getattr(store, name)

    sizes = {v: len(world["repo"].get(layout.manifest_key(PRODUCT, v))) for v in ("1.0.0", "1.1.0", "1.2.0")}
    # room for 1.0.0 and either other one, not for all three
    catalog = Catalog([Origin("o", Counting(), loc)], cache_bytes=sizes["1.0.0"] + max(sizes["1.1.0"], sizes["1.2.0"]),
                      trust=root_of(world["base"]))
    catalog.refresh()

    def manifest_reads(v: str) -> int:
        return sum(1 for k in reads if f"/versions/{v}/" in k and k.endswith("manifest.json"))

    for v in ("1.0.0", "1.1.0", "1.0.0"):  # 1.0.0 read again from memory: now the most recent
        assert catalog.manifest(PRODUCT, v).version == v
    assert [manifest_reads(v) for v in ("1.0.0", "1.1.0")] == [1, 1]
    cached = catalog.cached_bytes
    catalog.manifest(PRODUCT, "1.2.0")  # makes room: 1.1.0, the least recently used, goes
    assert catalog.cached_bytes <= catalog.cache_bytes and catalog.cached_bytes != cached
    catalog.manifest(PRODUCT, "1.0.0")
    catalog.manifest(PRODUCT, "1.1.0")
    assert [manifest_reads(v) for v in ("1.0.0", "1.1.0", "1.2.0")] == [1, 2, 1]

    # a document larger than the whole cache is not kept: the cache stays within its size
    small = Catalog([Origin("o", Counting(), loc)], cache_bytes=sizes["1.0.0"] - 1, trust=root_of(world["base"]))
    small.refresh()
    reads.clear()
    for _ in range(2):
        assert small.manifest(PRODUCT, "1.0.0").version == "1.0.0"
    assert manifest_reads("1.0.0") == 2 and small.cached_bytes <= small.cache_bytes


def test_a_refresh_reads_only_what_was_signed_since(tmp_path):
    """A new timestamp comes with every signing of any product: a refresh reads the roles
    signed since and looks for the manifests not seen before, nothing else again. The
    first refresh, which reads everything, looks for the manifests several at a time."""
    import threading

    from pipeline.service.catalog import Catalog

    base = signed_repository(tmp_path, versions=("1.0.0", "1.1.0"))
    repo, ring, origin_dir = open_store(str(base / "repo")), Keyring(base / "keys"), base / "origin"
    publish(repo, [open_store(str(origin_dir))], PRODUCT, ["1.0.0", "1.1.0"], channels=["stable"])
    loc = Location(str(origin_dir))
    store = open_origin(loc)
    asked: list[tuple[str, str]] = []

    class Counting:
        url = store.url

        def get(self, key: str) -> bytes:
            asked.append(("GET", key))
            return store.get(key)

        def has(self, key: str) -> bool:
            asked.append(("HEAD", key))
            if meeting is not None and key.endswith("manifest.json"):
                meeting.wait()  # each of the two versions' manifests waits for the other: at once, or never
            return store.has(key)

    meeting: threading.Barrier | None = threading.Barrier(2, timeout=10)
    catalog = Catalog([Origin("o", Counting(), loc)], trust=root_of(base))
    catalog.refresh()
    meeting = None
    role = repository.product_role(PRODUCT)
    assert sum(1 for m, k in asked if m == "GET" and role in k) == 1
    assert sum(1 for m, k in asked if m == "HEAD" and k.endswith("manifest.json")) == 2

    def refresh(*channels: str) -> list[tuple[str, str]]:
        asked.clear()
        publish(repo, [open_store(str(origin_dir))], PRODUCT, ["1.0.0", "1.1.0"], channels=list(channels))
        assert catalog.refresh()
        return [(m, k.rsplit("/", 1)[1]) for m, k in asked
                if not any(top in k for top in ("timestamp", "snapshot", "root"))]  # root: the probe for a newer one

    repository.refresh(repo, ring)  # a new snapshot and timestamp, no role signed
    assert refresh("stable") == []
    promote(repo, PRODUCT, "1.0.0", "beta")
    repository.sign_documents(repo, ring, PRODUCT)  # the product's role, signed again
    read = refresh("stable", "beta")
    assert [m for m, k in read if role in k] == ["GET"] and not [k for m, k in read if m == "HEAD"]
    assert catalog.channel(PRODUCT, "beta").version == "1.0.0"


def invalid_name(detail: str) -> dict:
    return {"errors": [{"status": "400", "code": "INVALID_NAME", "title": "A product, version or object key is malformed.",
                        "detail": detail}]}


BAD_VERSION, DOTS = (f"invalid version {v!r}: a letter or digit first, then letters, digits, '.', '_', '+', '-' "
                     "(128 at most)" for v in ("../../etc", ".."))
BAD_PRODUCT = ("invalid product name 'Starfall': a lowercase letter or digit first, then lowercase letters, "
               "digits, '.', '_', '-' (128 at most)")


@pytest.mark.parametrize("method, path, body, detail", [
    ("POST", f"{API}/updates/check", {"productId": PRODUCT, "currentVersionId": "../../etc"}, BAD_VERSION),
    ("POST", f"{API}/updates/check", {"productId": "Starfall", "currentVersionId": "1.0.0"}, BAD_PRODUCT),
    ("POST", f"{API}/updates/check?channel=..", {"productId": PRODUCT, "currentVersionId": "1.0.0"},
     "invalid channel name '..': use lowercase letters, digits, '.', '_', '-'"),
    ("GET", f"{API}/products/Starfall/versions", None, BAD_PRODUCT),
    ("GET", f"{API}/products/Starfall/channels", None, BAD_PRODUCT),
    ("GET", f"{API}/products/{PRODUCT}/versions/../manifest", None, DOTS),
    ("GET", f"{API}/products/Starfall/versions/1.0.0/manifest", None, BAD_PRODUCT),
    ("GET", f"{API}/products/{PRODUCT}/versions/../chunks", None, DOTS),
    ("GET", f"{API}/products/Starfall/versions/1.0.0/chunks", None, BAD_PRODUCT),
    ("GET", f"{API}/links?key=products/..%2F..%2Fetc", None, "invalid store key 'products/../../etc'"),
])
def test_every_name_an_endpoint_takes_is_checked(world, method, path, body, detail):
    """A product, version or channel the layout does not allow is INVALID_NAME (400), never
    an answer: `../../etc` as an installed version included."""
    if method == "POST":
        status, answer = post(world["url"], path, {"data": [{"type": "installedProduct", "attributes": body}]})
    else:
        status, answer = get(world["url"], path)
    assert (status, answer) == (400, invalid_name(detail))
