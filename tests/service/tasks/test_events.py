"""Download tasks' events on real sinks: a JSON-lines file and Kafka (the Tansu broker), from
a real uvicorn service driven through the REST API: the documents' payloads, one item
event per status change (never per report or chunk), a task's events in one partition in
order; the catalogue's version.published events read from Kafka refresh the catalogue
and tell users whose installs are older."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from depot_testing.fixtures import PRODUCT
from depot_testing.integrations import jsonl_events, service, until
from depot_testing.kafka import read_topic
from depot_testing.tasks import VERSIONS, Client, database_in
from helpers import DEPOT, ROOT
from pipeline.publish.channels import promote, rollback
from pipeline.publish.publish import publish
from pipeline.service.tasks.events import (ITEM_STATUS_CHANGED, TASK_STATUS_CHANGED, UPDATE_AVAILABLE,
                                           VERSION_PUBLISHED)
from pipeline.service.tasks.integrations import IntegrationSettings
from pipeline.storage import open_store
from pipeline.storage.outbox import CONTENT_TYPE, TOPIC, EventSinks
from pipeline.trust import repository
from pipeline.trust.keys import Keyring

SECOND = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def delivered(sinks: EventSinks, type_: str | None = None) -> list[dict]:
    """What the JSON-lines sink has once the outbox is empty (everything written so far
    delivered to every sink)."""
    until(lambda: not list(sinks.outbox.glob("*.json")), message="the outbox empties")
    return jsonl_events(Path(sinks.jsonl or ""), type_)


def second(stamp: str) -> str:
    """An API time (milliseconds) as the events give it (to the second)."""
    return stamp[:19] + "Z"


def test_task_and_item_events_carry_the_documents_payloads_once_per_change(published, signer, tmp_path):
    sinks = EventSinks(tmp_path / "outbox", jsonl=str(tmp_path / "events.jsonl"))
    with service(published, signer, database_in(tmp_path), IntegrationSettings(sinks)) as (url, _):
        player = Client(url, signer.token("ev-user", [PRODUCT]))
        _, created, _ = player.create("/games/events", "1.2.0")
        task_id = created["data"]["id"]
        _, body, _ = player.call("GET", f"/tasks/{task_id}")
        one, two = body["data"]["attributes"]["items"][:2]
        total = body["data"]["attributes"]["totalSizeBytes"]
        _, started, _ = player.report(task_id, items=[{"itemId": one["itemId"], "downloadedBytes": 1},
                                                      {"itemId": two["itemId"], "downloadedBytes": 1}])
        player.report(task_id, items=[{"itemId": one["itemId"], "downloadedBytes": 2},  # no status changed
                                      {"itemId": two["itemId"], "downloadedBytes": 2}])
        player.report(task_id, items=[{"itemId": one["itemId"], "downloadedBytes": one["totalFileSizeBytes"],
                                       "status": "completed"},
                                      {"itemId": two["itemId"], "downloadedBytes": 3}])
        player.report(task_id, items=[{"itemId": two["itemId"], "downloadedBytes": 3, "status": "error",
                                       "errorCode": "CDN_UNREACHABLE"}])
        _, done, _ = player.report(task_id, status="completed")
        events = delivered(sinks)

    def task(new, old, percentage, downloaded, at):
        return (TASK_STATUS_CHANGED, {
            "taskId": task_id, "userId": "ev-user", "productId": PRODUCT, "versionId": "1.2.0", "newStatus": new,
            "oldStatus": old, "totalProgressPercentage": percentage, "downloadedBytes": downloaded,
            "totalSizeBytes": total, "changeTimestamp": second(at), "errorDetails": None, "taskType": "download"})

    def item(it, status, downloaded, error=None):
        return (ITEM_STATUS_CHANGED, {
            "taskId": task_id, "itemId": it["itemId"], "relativePath": it["relativePath"], "newStatus": status,
            "downloadedBytes": downloaded, "totalFileSizeBytes": it["totalFileSizeBytes"],
            "errorDetails": {"errorCode": error, "errorMessage": None} if error else None})

    started_at = started["data"]["attributes"]
    assert [(e["type"], {k: v for k, v in e["data"].items() if not (e["type"] == ITEM_STATUS_CHANGED
                                                                     and k == "changeTimestamp")})
            for e in events] == [
        task("queued", None, 0.0, 0, created["data"]["attributes"]["updatedAt"]),
        task("downloading", "queued", started_at["totalProgressPercentage"], 2, started_at["updatedAt"]),
        item(one, "downloading", 1), item(two, "downloading", 1),
        item(one, "completed", one["totalFileSizeBytes"]),
        item(two, "error", 3, "CDN_UNREACHABLE"),
        task("completed", "downloading", 100.0, total, done["data"]["attributes"]["updatedAt"]),
    ]
    for e in events:
        assert (e["specversion"], e["source"], e["subject"], e["partitionkey"], e["datacontenttype"]) == (
            "1.0", "depot/service", task_id, task_id, "application/json")
        assert uuid.UUID(e["id"]).version == 4
        assert SECOND.fullmatch(e["time"]) and e["time"] == e["data"]["changeTimestamp"]
    assert len({e["id"] for e in events}) == len(events)


def test_a_tasks_events_reach_kafka_in_order_keyed_by_the_task(published, signer, broker, tmp_path):
    sinks = EventSinks(tmp_path / "outbox", jsonl=str(tmp_path / "events.jsonl"), kafka=broker)
    with service(published, signer, database_in(tmp_path), IntegrationSettings(sinks)) as (url, _):
        player = Client(url, signer.token("kafka-user", [PRODUCT]))
        _, created, _ = player.create("/games/kafka", "1.1.0")
        task_id = created["data"]["id"]
        player.call("POST", f"/tasks/{task_id}/pause")
        player.call("POST", f"/tasks/{task_id}/resume")
        player.call("DELETE", f"/tasks/{task_id}")
        lines = Path(sinks.jsonl).read_bytes().splitlines() if delivered(sinks) else []
    messages = read_topic(broker, TOPIC, len(lines))
    assert [json.loads(m.value())["data"]["newStatus"] for m in messages] == ["queued", "paused", "downloading",
                                                                             "cancelled"]
    assert [m.value() for m in messages] == lines  # the same bytes, in the order they were written
    assert {m.key() for m in messages} == {task_id.encode()}
    assert all(dict(m.headers())["content-type"] == CONTENT_TYPE.encode() for m in messages)


@pytest.fixture(scope="module")
def rolled_back(published, tmp_path_factory):
    """A copy of the published repository with stable rolled back to 1.1.0, published to an
    origin of its own; ``promote()`` moves stable to 1.2.0 there, signed and published."""
    base = tmp_path_factory.mktemp("rolled")
    shutil.copytree(published["base"] / "repo", base / "repo")
    repo, origin, ring = open_store(str(base / "repo")), base / "origin", Keyring(published["base"] / "keys")

    def release(move) -> None:
        move(repo)
        repository.sign_documents(repo, ring, PRODUCT)
        publish(repo, [open_store(str(origin))], PRODUCT, list(VERSIONS), channels=["stable"])

    release(lambda r: rollback(r, PRODUCT, "stable", "1.1.0"))
    return {**published, "origin": origin, "promote": lambda: release(lambda r: promote(r, PRODUCT, "1.2.0", "stable"))}


def test_a_published_version_refreshes_the_catalogue_and_tells_older_installs(rolled_back, signer, broker,
                                                                             tmp_path):
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": broker})
    producer.produce(VERSION_PUBLISHED, b"not an event")  # passed over; and the topic exists before the service reads it
    producer.produce(VERSION_PUBLISHED, json.dumps({"type": "com.platform.catalog.product.created.v1",
                                                    "data": {"productId": PRODUCT}}).encode())
    assert producer.flush(10) == 0
    sinks = EventSinks(tmp_path / "outbox", jsonl=str(tmp_path / "events.jsonl"), kafka=broker)
    with service(rolled_back, signer, database_in(tmp_path), IntegrationSettings(sinks)) as (url, app):
        for user, versions in (("upd-a", ["1.0.0", "1.1.0"]), ("upd-b", ["1.0.0"]), ("upd-c", [])):
            player = Client(url, signer.token(user, [PRODUCT]))
            for version in versions:
                _, body, _ = player.create(f"/games/{user}", version)
                assert player.report(body["data"]["id"], status="completed")[0] == 200
        _, body, _ = Client(url, signer.token("upd-c", [PRODUCT])).create("/games/upd-c", "1.0.0")  # not completed
        consumer = app.state.integrations.consumer
        until(lambda: consumer.read == 2, message="the consumer reads what was there before it")
        assert delivered(sinks, UPDATE_AVAILABLE) == []
        assert check(url, "1.0.0")["latestVersionId"] == "1.1.0"  # the reading the service started with

        rolled_back["promote"]()
        published_event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "catalog",
                           "type": VERSION_PUBLISHED, "datacontenttype": "application/json",
                           "data": {"productId": PRODUCT, "versionId": "1.2.0",
                                    "manifestS3Path": f"products/{PRODUCT}/versions/1.2.0/manifest.json",
                                    "releaseNotesUrl": "https://example.com/starfall/1.2.0"}}
        producer.produce(VERSION_PUBLISHED, json.dumps(published_event).encode(),
                         headers=[("content-type", CONTENT_TYPE.encode())])
        assert producer.flush(10) == 0
        until(lambda: consumer.read == 3, message="the version.published event is read")
        told = delivered(sinks, UPDATE_AVAILABLE)
        prices = {v: check(url, v) for v in ("1.0.0", "1.1.0")}
        assert all(p["latestVersionId"] == "1.2.0" for p in prices.values())  # read again, without waiting
        assert [e["data"] for e in told] == [
            {"userId": user, "productId": PRODUCT, "latestVersionId": "1.2.0",
             "updateType": prices[installed]["updateType"],
             "downloadSizeBytes": prices[installed]["downloadSizeBytes"],
             "releaseNotesUrl": "https://example.com/starfall/1.2.0"}
            for user, installed in (("upd-a", "1.1.0"), ("upd-b", "1.0.0"))]
        assert [(e["subject"], e["partitionkey"]) for e in told] == [(f"{PRODUCT}/1.2.0", "upd-a"),
                                                                     (f"{PRODUCT}/1.2.0", "upd-b")]

        # the same event again, in binary mode: the same notices, with the same ids (consumers drop them)
        producer.produce(VERSION_PUBLISHED, json.dumps(published_event["data"]).encode(), headers=[
            ("ce_specversion", b"1.0"), ("ce_id", str(uuid.uuid4()).encode()), ("ce_source", b"catalog"),
            ("ce_type", VERSION_PUBLISHED.encode()), ("content-type", b"application/json")])
        assert producer.flush(10) == 0
        until(lambda: consumer.read == 4, message="the event is read again")
        again = delivered(sinks, UPDATE_AVAILABLE)[2:]
        assert [(e["id"], e["data"]) for e in again] == [(e["id"], e["data"]) for e in told]


def check(url: str, installed: str) -> dict:
    _, body, _ = Client(url, None).call("POST", "/updates/check", {"data": [
        {"type": "installedProduct", "attributes": {"productId": PRODUCT, "currentVersionId": installed}}]})
    return body["data"][0]["attributes"]


def test_depot_serve_sends_task_events_to_the_locations_files_sinks(published, signer, tmp_path):
    (tmp_path / "jwt.pem").write_bytes(signer.pem)
    (tmp_path / "root.json").write_bytes(published["root"])
    (tmp_path / "locations.toml").write_text('[events]\njsonl = "events.jsonl"\noutbox = "outbox"\n')
    proc = subprocess.Popen(DEPOT + ["--locations", str(tmp_path / "locations.toml"), "serve", "--origin",
                                     str(published["origin"]), "--trust", str(tmp_path / "root.json"),
                                     "--link-secret", "s", "--port", "0", "--tasks-db", str(tmp_path / "tasks.db"),
                                     "--jwt-key", str(tmp_path / "jwt.pem")],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        url = re.search(r"on (http://\S+)/api/v1/download", line).group(1)
        _, created, _ = Client(url, signer.token("cli-events", [PRODUCT])).create("/games/cli", "1.0.0")
        events = until(lambda: jsonl_events(tmp_path / "events.jsonl"), message="the task's event")
    finally:
        proc.terminate()
        proc.wait(30)
    assert [(e["type"], e["data"]["taskId"], e["data"]["newStatus"]) for e in events] == [
        (TASK_STATUS_CHANGED, created["data"]["id"], "queued")]
