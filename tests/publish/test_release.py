"""release: an embargoed version (its new chunks and its manifest sealed) published to a
directory origin and an S3 origin (moto), pre-loaded as a channel's "preload", then
released now or at a time (a clock passed in). Before release, no object of any origin
holds the key or the new content; after, a player reads the key through the signed
metadata, and it opens what the origin holds. gc keeps what a sealed version needs."""

from __future__ import annotations

import base64
import datetime
import json
import shutil

import pytest

from depot_testing.embargo import embargoed_repository, holding, markers
from depot_testing.fixtures import PRODUCT
from helpers import root_of, signed_player
from pipeline import layout
from pipeline.errors import ContentAuthenticationFailed, ContentLocked, InvalidArgument, VersionConflict
from pipeline.formats import channel as channel_doc
from pipeline.formats import sealed
from pipeline.formats.manifest import Manifest
from pipeline.formats.release import Release, checked_key, iso
from pipeline.publish import events
from pipeline.publish.gc import Retention, gc
from pipeline.publish.publish import publish
from pipeline.publish.release import due, release
from pipeline.storage import Locations, open_store
from pipeline.trust import content_keys, repository
from pipeline.trust.keys import Keyring

T0 = datetime.datetime(2026, 12, 24, 18, 0, 0, tzinfo=datetime.timezone.utc)
HOUR = datetime.timedelta(hours=1)
MARKERS = (b"arena02.dat", b"data/lang/ru.txt")  # paths new in 1.2.0: the manifest is a spoiler


@pytest.fixture(scope="module")
def embargoed(tmp_path_factory):
    """A signed repository: 1.0.0 and 1.1.0 public (stable -> 1.1.0), 1.2.0 embargoed with
    beta pre-loading it; the plaintext of the objects sealed, by chunk id."""
    base = tmp_path_factory.mktemp("embargoed")
    _, plain = embargoed_repository(base)
    return base, plain, markers(open_store(str(base / "repo")), plain)


@pytest.fixture
def world(embargoed, tmp_path, s3, s3_bucket):
    """A private copy of the repository, published to a directory and an S3 origin."""
    base, plain, pieces = embargoed
    shutil.copytree(base, tmp_path / "release")
    base = tmp_path / "release"
    store = open_store(str(base / "repo"))
    origins = [open_store(str(tmp_path / "origin")), open_store(s3.resolve(f"{s3_bucket}/depot"))]
    finder = content_keys.ContentKeys(base / "keys").find
    publish(store, origins, PRODUCT, ["1.0.0", "1.1.0", "1.2.0"], channels=["stable", "beta"], keys=finder)
    key = content_keys.load(base / "keys", PRODUCT, "1.2.0")
    return {"base": base, "store": store, "origins": origins, "key": key, "plain": plain, "pieces": pieces,
            "finder": finder,
            "ring": Keyring(base / "keys"), "s3": s3}


def secrets_of(w) -> dict[str, bytes]:
    """What must be on no origin before release: the key in every spelling, the new
    paths, and a piece of each sealed object's plaintext."""
    key = w["key"].key
    found = {"key": key, "key base64": base64.b64encode(key), "key hex": key.hex().encode()}
    found.update({f"path {m.decode()}": m for m in MARKERS})
    return {**found, **w["pieces"]}


def player(w, tmp_path, i: int = 0):
    origin = w["origins"][i]
    return signed_player(origin.url, root_of(w["base"]), tmp_path / f"data-{i}", w["s3"])


def publish_again(w, versions=("1.2.0",), channels=("beta",)):
    repository.sign_documents(w["store"], w["ring"], PRODUCT)
    publish(w["store"], w["origins"], PRODUCT, list(versions), channels=list(channels), keys=w["finder"])


def test_before_release_no_origin_holds_the_key_or_the_new_content(world, tmp_path):
    w = world
    assert len(w["plain"]) >= 3 and len(w["pieces"]) == len(w["plain"])  # the version's new chunks, sealed
    for origin in w["origins"]:
        assert holding(origin, secrets_of(w)) == []
        beta = channel_doc.load(origin, PRODUCT, "beta")
        assert (beta.version, beta.serial, beta.preload) == ("1.2.0", 1, True)
        assert json.loads(origin.get(layout.channel_key(PRODUCT, "beta")))["preload"] is True
        assert "preload" not in json.loads(origin.get(layout.channel_key(PRODUCT, "stable")))
        box = origin.get(layout.manifest_key(PRODUCT, "1.2.0"))
        assert sealed.key_id(box, layout.manifest_key(PRODUCT, "1.2.0")) == w["key"].key_id
        for chunk_id in w["plain"]:
            name = layout.chunk_key(chunk_id, w["key"].key_id)  # its sealed name: never the plain chunk's
            assert not origin.has(layout.chunk_key(chunk_id))
            assert sealed.unseal(w["key"], name, origin.get(name)) \
                == w["plain"][chunk_id]
        assert not origin.has(layout.content_key_key(PRODUCT, w["key"].key_id))
    # nor the repository: the key is on the release side only
    assert holding(w["store"], {k: v for k, v in secrets_of(w).items() if k.startswith("key")}) == []
    with pytest.raises(ContentLocked) as locked:
        checked_key(player(w, tmp_path).document, PRODUCT, "1.2.0", w["key"].key_id)
    assert (locked.value.code, locked.value.release_at) == ("CONTENT_LOCKED", None)
    assert str(locked.value) == f"{PRODUCT} 1.2.0 is embargoed: its content key is not released yet"


def test_release_now_publishes_the_signed_key_and_moves_the_channel(world, tmp_path):
    w = world
    step = release(w["store"], PRODUCT, "1.2.0", w["key"], now=T0)
    assert (step.released, step.at, step.key_id) == (True, "2026-12-24T18:00:00Z", w["key"].key_id)
    assert [(c.channel, c.version, c.serial, c.preload, c.history[0].action) for c in step.channels] == \
        [("beta", "1.2.0", 2, False, "release")]
    assert w["store"].get(layout.release_key(PRODUCT, "1.2.0")) == Release(
        PRODUCT, "1.2.0", w["key"].key_id, "2026-12-24T18:00:00Z").to_bytes()
    key_doc = layout.content_key_key(PRODUCT, w["key"].key_id)
    assert w["store"].get(key_doc) == w["key"].released("2026-12-24T18:00:00Z").to_bytes()
    publish_again(w)
    for i, origin in enumerate(w["origins"]):
        assert origin.get(key_doc) == w["store"].get(key_doc)
        assert channel_doc.load(origin, PRODUCT, "beta").preload is False
        client = player(w, tmp_path, i)
        key = checked_key(client.document, PRODUCT, "1.2.0", w["key"].key_id)
        assert key == w["key"].released("2026-12-24T18:00:00Z")
        name = layout.manifest_key(PRODUCT, "1.2.0")
        m = client.document(name, sealed.opening(Manifest.from_bytes, name, sealed.one_key(key)))
        assert {e.path for e in m.entries} >= {"data/levels/arena02.dat", "data/lang/ru.txt"}
        for chunk_id in w["plain"]:
            c = m.unique_chunks()[chunk_id]
            assert c.stored_size == len(w["plain"][chunk_id]) + sealed.OVERHEAD
            assert c.key_id == key.key_id
            data = sealed.unseal_chunk(key, chunk_id, origin.get(layout.chunk_key(chunk_id, c.key_id)), c.size)
            assert len(data) == c.size
    again = release(w["store"], PRODUCT, "1.2.0", w["key"], now=T0 + HOUR)  # released already: nothing changes
    assert (again.released, again.at, again.channels) == (True, "2026-12-24T18:00:00Z", [])
    with pytest.raises(VersionConflict) as moved:
        release(w["store"], PRODUCT, "1.2.0", w["key"], now=T0 + HOUR, at=T0 + 2 * HOUR)
    assert str(moved.value) == (f"{PRODUCT} 1.2.0 was released at 2026-12-24T18:00:00Z: its key is public, it "
                                "cannot be released at another time")


def test_a_scheduled_release_publishes_when_and_the_key_only_once_due(world, tmp_path):
    w = world
    step = release(w["store"], PRODUCT, "1.2.0", w["key"], now=T0, at=T0 + HOUR, channels=["stable"])
    assert (step.released, step.at) == (False, "2026-12-24T19:00:00Z")
    assert [(c.channel, c.version, c.preload) for c in step.channels] == [("stable", "1.2.0", True)]
    assert not w["store"].has(layout.content_key_key(PRODUCT, w["key"].key_id))
    publish_again(w, channels=("beta", "stable"))
    for origin in w["origins"]:
        assert holding(origin, secrets_of(w)) == []
        assert Release.from_bytes(origin.get(layout.release_key(PRODUCT, "1.2.0")), "").at == "2026-12-24T19:00:00Z"
    with pytest.raises(ContentLocked) as locked:
        checked_key(player(w, tmp_path).document, PRODUCT, "1.2.0", w["key"].key_id)
    assert locked.value.release_at == "2026-12-24T19:00:00Z"
    assert str(locked.value) == (f"{PRODUCT} 1.2.0 is embargoed: its content key is not released yet "
                                 "(release at 2026-12-24T19:00:00Z)")
    assert due(w["store"], T0 + HOUR - datetime.timedelta(seconds=1)) == []
    assert due(w["store"], T0 + HOUR) == [Release(PRODUCT, "1.2.0", w["key"].key_id, "2026-12-24T19:00:00Z")]
    step = release(w["store"], PRODUCT, "1.2.0", w["key"], now=T0 + HOUR + datetime.timedelta(seconds=30))
    assert (step.released, step.at) == (True, "2026-12-24T19:00:00Z")
    assert sorted((c.channel, c.serial, c.preload) for c in step.channels) == [("beta", 2, False), ("stable", 3, False)]
    assert due(w["store"], T0 + 2 * HOUR) == []
    publish_again(w, channels=("beta", "stable"))
    key = checked_key(player(w, tmp_path, 1).document, PRODUCT, "1.2.0", w["key"].key_id)
    assert key == w["key"].released("2026-12-24T19:00:30Z")


def test_refused_a_version_not_embargoed_and_another_versions_key(world, tmp_path):
    w = world
    before = sorted(w["store"].list())
    with pytest.raises(InvalidArgument) as public:
        release(w["store"], PRODUCT, "1.1.0", w["key"], now=T0)
    assert str(public.value) == (f"{PRODUCT} 1.1.0 is not embargoed: its content is public already, there is no key "
                                 "to release")
    other = content_keys.create(w["base"] / "keys", PRODUCT, "1.3.0")
    with pytest.raises(ContentAuthenticationFailed) as wrong:
        release(w["store"], PRODUCT, "1.2.0", other, now=T0)
    assert wrong.value.code == "CONTENT_AUTHENTICATION_FAILED"
    assert str(wrong.value) == f"the content key given is {PRODUCT} 1.3.0's, not {PRODUCT} 1.2.0's"
    forged = type(other)(PRODUCT, "1.2.0", other.key)  # another key, with this version's name on it
    with pytest.raises(ContentAuthenticationFailed) as forged_refused:
        release(w["store"], PRODUCT, "1.2.0", forged, now=T0)
    assert str(forged_refused.value) == (f"{layout.manifest_key(PRODUCT, '1.2.0')}: sealed with content key "
                                         f"{w['key'].key_id}, not with {other.key_id} ({PRODUCT} 1.2.0)")
    assert sorted(w["store"].list()) == before


def test_gc_keeps_what_a_sealed_version_needs_before_and_after_release(world):
    w = world
    origin = w["origins"][0]
    sealed_chunks = {layout.chunk_key(c, w["key"].key_id) for c in w["plain"]}
    chunks = {k for k in origin.list(layout.CHUNK_PREFIX)}
    retention = Retention(keep_last=1, keep_history=0, grace_s=0)
    report = gc(origin, retention, delete=True)  # no key at hand: 1.2.0's chunks are not known
    assert report.locked == [f"{PRODUCT} 1.2.0"] and set(origin.list(layout.CHUNK_PREFIX)) == chunks
    report = gc(origin, retention, delete=False, keys=w["finder"])  # the release side's keys
    assert report.locked == [] and report.retained == {PRODUCT: ["1.1.0", "1.2.0"]}
    release(w["store"], PRODUCT, "1.2.0", w["key"], now=T0)
    publish_again(w)
    report = gc(origin, retention, delete=True)  # the key published there opens it
    assert report.locked == [] and report.freed_objects > 0
    left = set(origin.list(layout.CHUNK_PREFIX))
    assert sealed_chunks <= left < chunks
    key_doc = layout.content_key_key(PRODUCT, w["key"].key_id)
    assert origin.has(key_doc) and origin.get(key_doc) == w["key"].released(iso(T0)).to_bytes()


def test_release_event(tmp_path):
    sinks = events.EventSinks(tmp_path / "outbox", str(tmp_path / "events.jsonl"))
    event = events.version_released(PRODUCT, "1.2.0", "https://cdn.example/depot/products/starfall/keys/k.json",
                                    key_id="ab" * 16, released_at="2026-12-24T18:00:00Z", channels=["beta"],
                                    origin="msk")
    delivery = events.emit(sinks, event)
    assert delivery.pending == ()
    [line] = (tmp_path / "events.jsonl").read_text().splitlines()
    sent = json.loads(line)
    assert {k: v for k, v in sent.items() if k != "id"} == {
        "specversion": "1.0", "source": "depot", "type": "com.platform.download.version.released.v1",
        "time": "2026-12-24T18:00:00Z", "datacontenttype": "application/json", "subject": f"{PRODUCT}/1.2.0",
        "data": {"productId": PRODUCT, "versionId": "1.2.0", "releasedAt": "2026-12-24T18:00:00Z",
                 "keyId": "ab" * 16, "keyUrl": "https://cdn.example/depot/products/starfall/keys/k.json",
                 "channels": ["beta"], "origin": "msk"}}
    announced = events.announce_release(Locations(events=(("jsonl", str(tmp_path / "two.jsonl")),
                                                          ("outbox", str(tmp_path / "outbox2")))),
                                        open_store(str(tmp_path / "repo")).location, PRODUCT, "1.2.0", "cd" * 16,
                                        "2026-12-24T18:00:00Z", [str(tmp_path / "o1"), str(tmp_path / "o2")])
    assert announced is not None and announced.pending == ()
    sent = [json.loads(line)["data"] for line in (tmp_path / "two.jsonl").read_text().splitlines()]
    assert [(d["keyUrl"], d["origin"]) for d in sent] == [
        (f"{tmp_path}/o{i}/products/{PRODUCT}/keys/{'cd' * 16}.json", f"{tmp_path}/o{i}") for i in (1, 2)]


def test_depot_release_scheduled_then_now_with_its_event_and_refusals(world, tmp_path):
    import os
    import subprocess

    from helpers import DEPOT, ROOT

    w = world
    origin = str(tmp_path / "origin")
    (tmp_path / "locations.toml").write_text('[events]\njsonl = "events.jsonl"\noutbox = "outbox"\n')
    env = {**os.environ, "DEPOT_KEYS": str(w["base"] / "keys")}

    def depot(*args, keys=True):
        p = subprocess.run(DEPOT + ["--json", "--repo", str(w["base"] / "repo"), "--locations",
                                    str(tmp_path / "locations.toml"), *args], capture_output=True, text=True,
                           cwd=ROOT, env=env if keys else {k: v for k, v in env.items() if k != "DEPOT_KEYS"})
        assert "Traceback" not in p.stderr
        return p.returncode, json.loads(p.stdout) if p.stdout else None

    code, out = depot("release", "-p", PRODUCT, "-v", "1.2.0", "--at", "2099-01-01T03:00:00+03:00", "--origin", origin)
    assert code == 0 and (out["released"], out["at"], out["events"]) == (False, "2099-01-01T00:00:00Z", None)
    assert Release.from_bytes(w["origins"][0].get(layout.release_key(PRODUCT, "1.2.0")), "").at == out["at"]
    assert holding(w["origins"][0], secrets_of(w)) == []
    assert depot("release", "--due", "--origin", origin) == (0, {"released": []})
    assert not (tmp_path / "events.jsonl").exists()

    code, out = depot("release", "-p", PRODUCT, "-v", "1.2.0", "--origin", origin)
    key_doc = layout.content_key_key(PRODUCT, w["key"].key_id)
    assert code == 0 and out["released"] is True and out["published"]["origins"][0]["timestamp"] == "updated"
    assert [(c["channel"], c["serial"], "preload" in c) for c in out["channels"]] == [("beta", 2, False)]
    released = w["store"].get(key_doc)
    assert w["origins"][0].get(key_doc) == released and json.loads(released)["key"] == \
        base64.b64encode(w["key"].key).decode()
    [event] = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert event["type"] == "com.platform.download.version.released.v1" and event["data"] == {
        "productId": PRODUCT, "versionId": "1.2.0", "releasedAt": out["at"], "keyId": w["key"].key_id,
        "keyUrl": f"{origin}/{key_doc}", "channels": ["beta"], "origin": origin}

    assert depot("release", "--due", "-p", PRODUCT)[0] == 2  # usage: one or the other
    assert depot("release", "-p", PRODUCT, "-v", "1.2.0", "--at", "2099-01-01T00:00:00")[0] == 2  # no offset
    code, out = depot("release", "-p", PRODUCT, "-v", "1.1.0")
    assert (code, out["error"]) == (2, "INVALID_ARGUMENT") and "1.1.0 is not embargoed" in out["message"]
    code, out = depot("release", "-p", PRODUCT, "-v", "9.9")
    assert (code, out["error"]) == (3, "NOT_FOUND")
    code, out = depot("release", "-p", PRODUCT, "-v", "1.2.0", keys=False)
    assert (code, out["error"]) == (2, "SIGNING_KEY_MISSING") and "--keys DIR" in out["message"]


def test_publishing_a_sealed_version_without_its_key_is_content_locked_and_writes_nothing(world, tmp_path):
    w = world
    fresh = open_store(str(tmp_path / "fresh"))
    with pytest.raises(ContentLocked) as locked:
        publish(w["store"], [fresh], PRODUCT, ["1.2.0"])
    assert (locked.value.code, locked.value.exit_code) == ("CONTENT_LOCKED", 22)
    assert str(locked.value) == (f"{PRODUCT} 1.2.0 is embargoed: publishing it before release needs its content key "
                                 "(--keys DIR, where the release side keeps it)")
    assert list(fresh.list()) == []
