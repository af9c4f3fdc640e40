"""Two service instances on one real PostgreSQL and one real Redis behave as one: a task
made on one is seen and changed on the other, the queue limit holds across them, progress
reported to one reaches a WebSocket on the other with the exact message (its speed from
reports that reached both), and link rate limits are shared."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import uuid
from typing import Iterator

import pytest
from websockets.sync.client import connect

from depot_testing.fixtures import PRODUCT
from depot_testing.servers import uvicorn_server
from depot_testing.tasks import Client, Clock, code, config
from pipeline import layout
from pipeline.service.app import create_app
from pipeline.service.tasks.settings import TaskSettings


@contextlib.contextmanager
def instances(published, signer, database: str, redis: str, clock: Clock, n: int = 2, link_rate: float = 50.0,
              **settings) -> Iterator[list[str]]:
    """``n`` instances of the service on one database and one Redis; yields their URLs."""
    with contextlib.ExitStack() as stack:
        urls = []
        for _ in range(n):
            tasks = TaskSettings(database, redis, jwt_keys=(signer.pem,), **settings)
            app = create_app(dataclasses.replace(config(published, tasks), link_rate=link_rate))
            app.state.progress.publisher.clock = clock
            urls.append(stack.enter_context(uvicorn_server(app)))
        yield urls


@pytest.fixture(scope="module")
def two(published, signer, postgres_server, redis_server_url):
    """Two instances on a new database and the session's Redis, for this module's tests
    (each with users of its own); yields their URLs and their clock."""
    from depot_testing.databases import create_database

    clock = Clock(5_000.0)
    database = create_database(postgres_server, f"scale_{uuid.uuid4().hex[:12]}")
    with instances(published, signer, database, redis_server_url, clock, max_active_tasks=2) as urls:
        yield urls, clock


def socket(url: str, token: str):
    return connect("ws" + url.removeprefix("http") + f"/ws/download/progress?token={token}")


def received(ws) -> dict:
    return json.loads(ws.recv(timeout=10))


def test_a_task_made_on_one_instance_is_seen_and_changed_on_the_other(two, signer):
    (a, b), _ = two
    token = signer.token("player-scale", [PRODUCT])
    on_a, on_b = Client(a, token), Client(b, token)
    status, made, _ = on_a.create("/games/one", "1.1.0")
    assert status == 202
    task_id = made["data"]["id"]
    status, seen, _ = on_b.call("GET", f"/tasks/{task_id}")
    assert status == 200
    assert seen["data"]["attributes"] | {"items": None} == made["data"]["attributes"] | {"items": None}
    status, paused, _ = on_b.call("POST", f"/tasks/{task_id}/pause")
    assert (status, paused["data"]["attributes"]["status"]) == (200, "paused")
    _, seen, _ = on_a.call("GET", f"/tasks/{task_id}")
    assert seen["data"]["attributes"]["status"] == "paused"
    # the queue's limit (2) counts the tasks made on both
    assert on_b.create("/games/two", "1.1.0")[0] == 202
    status, full, _ = on_a.create("/games/three", "1.1.0")
    assert (status, code(full)) == (409, "DOWNLOAD_QUEUE_FULL")
    _, queue, _ = on_a.call("GET", "/tasks/queue")
    assert [t["attributes"]["targetPath"] for t in queue["data"]] == ["/games/one", "/games/two"]


def test_progress_reported_to_one_instance_reaches_a_socket_on_the_other(two, signer):
    (a, b), clock = two
    token = signer.token("player-watch", [PRODUCT])
    on_a, on_b = Client(a, token), Client(b, token)
    with socket(b, token) as watching, socket(b, signer.token("someone-else", [PRODUCT])) as other:
        _, made, _ = on_a.create("/games/watched", "1.1.0")
        task_id = made["data"]["id"]
        total = made["data"]["attributes"]["totalSizeBytes"]
        assert received(watching)["payload"]["status"] == "queued"
        _, detail, _ = on_a.call("GET", f"/tasks/{task_id}")
        item = max(detail["data"]["attributes"]["items"], key=lambda i: i["totalFileSizeBytes"])
        assert item["totalFileSizeBytes"] > 1_001

        clock.now = 5_000.0
        assert on_a.report(task_id, items=[{"itemId": item["itemId"], "downloadedBytes": 1}])[0] == 200
        assert received(watching)["payload"]["status"] == "downloading"  # the report started it
        assert received(watching)["payload"]["downloadedBytes"] == 1
        assert received(watching)["type"] == "downloadItemProgressUpdate"

        clock.now = 5_004.0  # the next report reaches the other instance: 4 s for 1,000 more bytes
        assert on_b.report(task_id, items=[{"itemId": item["itemId"], "downloadedBytes": 1_001}])[0] == 200
        left = total - 1_001
        assert watching.recv(timeout=10) == (
            '{"type":"downloadTaskStatusUpdate","payload":{"taskId":"%s","status":"downloading",'
            '"totalProgressPercentage":%s,"downloadSpeedBps":250,"estimatedTimeLeftSeconds":%d,'
            '"downloadedBytes":1001,"totalSizeBytes":%d,"errorDetails":null}}'
            % (task_id, round(100 * 1_001 / total, 2), -(-left // 250), total))
        assert watching.recv(timeout=10) == (
            '{"type":"downloadItemProgressUpdate","payload":{"taskId":"%s","itemId":"%s","relativePath":"%s",'
            '"status":"downloading","downloadedBytes":1001,"totalFileSizeBytes":%d}}'
            % (task_id, item["itemId"], item["relativePath"], item["totalFileSizeBytes"]))

        on_a.call("POST", f"/tasks/{task_id}/pause")
        assert received(watching)["payload"]["status"] == "paused"
        mine = Client(b, signer.token("someone-else", [PRODUCT]))
        _, theirs, _ = mine.create("/games/theirs", "1.1.0")
        first = received(other)  # nothing of player-watch's came before its own
        assert (first["payload"]["taskId"], first["payload"]["status"]) == (theirs["data"]["id"], "queued")


def test_link_rate_limits_hold_across_instances(published, signer, postgres_url, redis_url):
    key = layout.manifest_key(PRODUCT, "1.1.0")
    with instances(published, signer, postgres_url, redis_url, Clock(5_000.0), link_rate=0.1) as (a, b):
        alice, bob = signer.token("alice", [PRODUCT]), signer.token("bob", [PRODUCT])
        assert Client(a, alice).call("GET", f"/links?key={key}")[0] == 200  # a burst of one, then one in 10 s
        status, refused, headers = Client(b, alice).call("GET", f"/links?key={key}")
        assert (status, code(refused)) == (429, "CDN_LINK_RATE_LIMITED")
        assert refused["errors"][0]["detail"].startswith("user:alice: more than 0.1 link requests a second")
        assert 1 <= int(headers["Retry-After"]) <= 10
        assert Client(b, bob).call("GET", f"/links?key={key}")[0] == 200  # a bucket per user
        assert Client(b, None).call("GET", f"/links?key={key}")[0] == 200  # no token: the address's bucket
        assert Client(a, None).call("GET", f"/links?key={key}")[0] == 429
