"""/ws/download/progress over real uvicorn with a real WebSocket client: the documents'
messages with the exact bodies, speed and time left from the reports, a user hears only
their own tasks, tokens are checked like the REST API's; in process and over a real Redis."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi import FastAPI
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from depot_testing.servers import uvicorn_server
from depot_testing.tasks import Clock
from pipeline.service.tasks.auth import Authenticator
from pipeline.service.tasks.hot import open_hot_state
from pipeline.service.tasks.progress import ProgressHub, ProgressPublisher, speed_of
from pipeline.service.tasks.queue import ItemReport, NewItem, Queue, Report
from pipeline.service.tasks.repository import Repository
from pipeline.service.tasks.settings import TaskSettings

KEY = ed25519.Ed25519PrivateKey.generate()
PEM = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
ITEMS = [NewItem("data/level1.pak", 3_000_000, "ab" * 32), NewItem("bin/game.exe", 1_000_000, "cd" * 32)]


def token(user: str, expires_in: float = 3600, key=KEY) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time() + expires_in)}, key, algorithm="EdDSA")


@contextlib.contextmanager
def service(tmp_path, redis_url: str | None, clock: Clock, name: str = "tasks.db"):
    """The queue on SQLite with the progress publisher as its listener, and the hub's
    WebSocket route under uvicorn; yields (queue, publisher, hub, ws base URL)."""
    repository = Repository(str(tmp_path / name))
    repository.migrate()
    hot = open_hot_state(redis_url)
    publisher = ProgressPublisher(hot, clock)
    queue = Queue(repository, publisher)
    hub = ProgressHub(hot, lambda t: Authenticator(TaskSettings(jwt_keys=(PEM,))).verify(t).id, queue.queue)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await hub.start()
        yield
        await hub.stop()

    app = FastAPI(lifespan=lifespan)
    app.include_router(hub.router())
    try:
        with uvicorn_server(app) as url:
            yield queue, publisher, hub, "ws" + url.removeprefix("http") + "/ws/download/progress"
    finally:
        publisher.close()
        hot.close()
        repository.close()


@pytest.fixture(params=["in process", "redis"])
def hot_url(request):
    return request.getfixturevalue("redis_url") if request.param == "redis" else None


def received(ws) -> dict:
    return json.loads(ws.recv(timeout=10))


def test_a_task_s_life_in_the_documents_messages(tmp_path, hot_url):
    clock = Clock(1_000.0)
    with service(tmp_path, hot_url, clock) as (queue, publisher, _, ws_url), \
            connect(f"{ws_url}?token={token('alice')}") as ws:
        task, created = queue.create("alice", "download", "game", "1.0.0", "/games/game", 0, ITEMS)
        assert created
        # the exact text: compact JSON, the documents' field names in their order
        assert ws.recv(timeout=10) == (
            '{"type":"downloadTaskStatusUpdate","payload":{"taskId":"%s","status":"queued",'
            '"totalProgressPercentage":0.0,"downloadSpeedBps":0,"estimatedTimeLeftSeconds":null,'
            '"downloadedBytes":0,"totalSizeBytes":4000000,"errorDetails":null}}' % task.id)
        items = {i.relative_path: i.id for i in queue.get("alice", task.id).items}

        clock.now = 1_000.0
        queue.report("alice", task.id, Report(items=(ItemReport(1_000_000, relative_path="data/level1.pak"),)))
        started = received(ws)  # the report started it: queued -> downloading
        assert started["payload"]["status"] == "downloading"
        assert received(ws) == {"type": "downloadTaskStatusUpdate", "payload": {
            "taskId": task.id, "status": "downloading", "totalProgressPercentage": 25.0, "downloadSpeedBps": 0,
            "estimatedTimeLeftSeconds": None, "downloadedBytes": 1_000_000, "totalSizeBytes": 4_000_000,
            "errorDetails": None}}
        assert received(ws) == {"type": "downloadItemProgressUpdate", "payload": {
            "taskId": task.id, "itemId": items["data/level1.pak"], "relativePath": "data/level1.pak",
            "status": "downloading", "downloadedBytes": 1_000_000, "totalFileSizeBytes": 3_000_000}}

        clock.now = 1_002.5  # 2,500,000 bytes more in 2.5 s: 1 MB/s, 500,000 bytes left
        queue.report("alice", task.id, Report(items=(
            ItemReport(3_000_000, relative_path="data/level1.pak", status="completed"),
            ItemReport(500_000, relative_path="bin/game.exe"))))
        assert received(ws)["payload"] == {
            "taskId": task.id, "status": "downloading", "totalProgressPercentage": 87.5,
            "downloadSpeedBps": 1_000_000, "estimatedTimeLeftSeconds": 1, "downloadedBytes": 3_500_000,
            "totalSizeBytes": 4_000_000, "errorDetails": None}
        assert [received(ws)["payload"]["status"] for _ in range(2)] == ["completed", "downloading"]

        queue.pause("alice", task.id)
        assert received(ws)["payload"] | {"taskId": None} == {
            "taskId": None, "status": "paused", "totalProgressPercentage": 87.5, "downloadSpeedBps": 0,
            "estimatedTimeLeftSeconds": None, "downloadedBytes": 3_500_000, "totalSizeBytes": 4_000_000,
            "errorDetails": None}
        queue.resume("alice", task.id)
        assert received(ws)["payload"]["status"] == "downloading"

        clock.now = 1_100.0  # the pause started the measure afresh: one sample, no speed yet
        queue.report("alice", task.id, Report(items=(ItemReport(600_000, relative_path="bin/game.exe",
                                                                status="error", error_code="FILE_HASH_MISMATCH"),),
                                              status="error", error_code="FILE_HASH_MISMATCH",
                                              error_message="bin/game.exe: SHA-256 differs"))
        assert received(ws) == {"type": "downloadTaskStatusUpdate", "payload": {
            "taskId": task.id, "status": "error", "totalProgressPercentage": 90.0, "downloadSpeedBps": 0,
            "estimatedTimeLeftSeconds": None, "downloadedBytes": 3_600_000, "totalSizeBytes": 4_000_000,
            "errorDetails": {"errorCode": "FILE_HASH_MISMATCH", "errorMessage": "bin/game.exe: SHA-256 differs"}}}
        assert received(ws) == {"type": "downloadError", "payload": {
            "taskId": task.id, "itemId": None, "errorCode": "FILE_HASH_MISMATCH",
            "errorMessage": "bin/game.exe: SHA-256 differs"}}
        assert received(ws)["payload"]["status"] == "error"  # the report's item (its status told once, above)
        assert received(ws) == {"type": "downloadError", "payload": {
            "taskId": task.id, "itemId": items["bin/game.exe"], "errorCode": "FILE_HASH_MISMATCH",
            "errorMessage": "FILE_HASH_MISMATCH: bin/game.exe failed"}}


def test_a_user_hears_only_their_own_tasks(tmp_path, hot_url):
    with service(tmp_path, hot_url, Clock(1_000.0)) as (queue, publisher, _, ws_url), \
            connect(f"{ws_url}?token={token('alice')}") as alice, \
            connect(ws_url, additional_headers={"Authorization": f"Bearer {token('bob')}"}) as bob:
        theirs, _ = queue.create("alice", "download", "game", "1.0.0", "/a", 0, ITEMS)
        queue.report("alice", theirs.id, Report(items=(ItemReport(10, relative_path="bin/game.exe"),)))
        mine, _ = queue.create("bob", "download", "game", "1.0.0", "/b", 0, ITEMS)
        assert publisher.flush()
        first = received(bob)  # nothing of alice's came before bob's own
        assert (first["type"], first["payload"]["taskId"], first["payload"]["status"]) == \
            ("downloadTaskStatusUpdate", mine.id, "queued")
        assert [received(alice)["payload"]["taskId"] for _ in range(4)] == [theirs.id] * 4


def test_a_socket_is_told_the_state_of_unfinished_tasks_on_connecting(tmp_path, hot_url):
    with service(tmp_path, hot_url, Clock(1_000.0)) as (queue, publisher, _, ws_url):
        first, _ = queue.create("alice", "download", "game", "1.0.0", "/a", 0, ITEMS)
        second, _ = queue.create("alice", "download", "game", "1.0.0", "/b", 0, ITEMS)
        queue.report("alice", first.id, Report(items=(ItemReport(2_000_000, relative_path="data/level1.pak"),)))
        queue.cancel("alice", second.id)
        assert publisher.flush()  # what those changes published is out before the socket comes
        with connect(f"{ws_url}?token={token('alice')}") as ws:
            told = received(ws)
            assert told["payload"] == {
                "taskId": first.id, "status": "downloading", "totalProgressPercentage": 50.0,
                "downloadSpeedBps": 0, "estimatedTimeLeftSeconds": None, "downloadedBytes": 2_000_000,
                "totalSizeBytes": 4_000_000, "errorDetails": None}
            third, _ = queue.create("alice", "download", "game", "1.0.0", "/c", 0, ITEMS)
            assert received(ws)["payload"]["taskId"] == third.id  # the cancelled one is not told


@pytest.fixture(scope="module")
def refusing(tmp_path_factory) -> Iterator[str]:
    """The hub's WebSocket URL, for the tests that are refused before any task is read."""
    with service(tmp_path_factory.mktemp("refusing"), None, Clock(1_000.0)) as (_, _, _, ws_url):
        yield ws_url


@pytest.mark.parametrize("credentials, detail", [
    ("", "no bearer token: connect with ?token=JWT or an Authorization header"),
    ("?token=not-a-jwt", "not a JWT: Not enough segments"),
    ("?token={expired}", "the token has expired"),
    ("?token={forged}", "the token's signature does not verify (Signature verification failed)"),
])
def test_a_socket_without_a_good_token_is_refused_like_the_rest_api(refusing, credentials, detail):
    forged = token("alice", key=ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(InvalidStatus) as refused:
        connect(refusing + credentials.format(expired=token("alice", -60), forged=forged))
    response = refused.value.response
    assert response.status_code == 401
    assert json.loads(response.body) == {"errors": [{
        "status": "401", "code": "UNAUTHORIZED",
        "title": "No valid bearer token: missing, malformed, forged, expired or not for this service.",
        "detail": detail}]}
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="depot"')


@pytest.mark.parametrize("samples, downloaded, total, speed, eta", [
    ([], 0, 100, 0, None),
    ([(10.0, 0)], 0, 100, 0, None),
    ([(10.0, 0), (12.0, 50)], 50, 100, 25, 2),
    ([(0.0, 0), (30.0, 100), (40.0, 200), (50.0, 700)], 700, 1000, 30, 10),  # only the last 20 s count
    ([(12.0, 50), (10.0, 0)], 50, 51, 25, 1),  # two instances may record out of order
    ([(10.0, 50), (12.0, 40)], 40, 100, 0, None),  # fewer bytes (the client started again): no speed
])
def test_speed_and_time_left(samples, downloaded, total, speed, eta):
    assert (speed_of(samples, downloaded, total).bytes_per_second, speed_of(samples, downloaded, total).eta_seconds) \
        == (speed, eta)


def test_a_socket_that_falls_behind_is_closed_and_told_to_come_back(tmp_path, monkeypatch):
    import pipeline.service.tasks.progress as progress
    from websockets.exceptions import ConnectionClosed

    monkeypatch.setattr(progress, "SOCKET_BACKLOG", 2)
    with service(tmp_path, None, Clock(1_000.0)) as (queue, publisher, hub, ws_url), \
            connect(f"{ws_url}?token={token('alice')}") as ws:
        # three reports' messages in one turn of the server's loop: the socket cannot have
        # sent any of them before the third comes, and a backlog of two overflows
        payloads = [progress.encode([{"type": "downloadTaskStatusUpdate", "payload": {"n": n}}]) for n in range(3)]
        hub.subscription.loop.call_soon_threadsafe(lambda: [hub._deliver("alice", p) for p in payloads])
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1013, "too slow: connect again for the current state")


def test_reports_and_a_stop_taken_in_one_batch_are_measured_in_their_order():
    """The publisher sends what arrived meanwhile in one go: a pause and a resume between
    two reports of the same batch still restart the measure in their place."""
    import asyncio
    import datetime

    from pipeline.service.tasks.hot import InProcess
    from pipeline.service.tasks.task import Task

    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)

    def task(status: str, downloaded: int) -> Task:
        return Task("5f0c4a52-2b0e-4a7e-9d7e-3c6b1e0f0a11", "alice", "download", "starfall", "1.2.0", None, "/g",
                    status, 0, 10_000, downloaded, None, None, now, now, 0)

    work = [("progress", task("downloading", 0), (), 1_000.0), ("progress", task("downloading", 2_000), (), 1_002.0),
            ("status", task("paused", 2_000), None, 0.0), ("status", task("downloading", 2_000), None, 0.0),
            ("progress", task("downloading", 3_000), (), 1_010.0)]

    async def scenario() -> list:
        hot = InProcess()
        got: asyncio.Queue = asyncio.Queue()
        subscription = await hot.subscribe(lambda user, payload: got.put_nowait(payload))
        await subscription.watch("alice")
        publisher = ProgressPublisher(hot)
        await asyncio.to_thread(publisher._publish, work)
        publisher.close()
        told = [json.loads(await asyncio.wait_for(got.get(), 10)) for _ in work]
        assert hot.record([(work[0][1].id, 1_011.0, 3_000)]) == [[(1_010.0, 3_000), (1_011.0, 3_000)]]
        return told

    told = asyncio.run(scenario())
    assert [(m["payload"]["status"], m["payload"]["downloadSpeedBps"], m["payload"]["estimatedTimeLeftSeconds"])
            for m in told] == [("downloading", 0, None), ("downloading", 1_000, 8), ("paused", 0, None),
                               ("downloading", 0, None), ("downloading", 0, None)]
