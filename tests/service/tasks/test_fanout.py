"""The WebSocket fan-out's costs: a message is built once and cut into frames once for all
of a user's sockets, not built at all for a user no socket watches (its report still
measured), and an in-process publish hands each subscription's loop one batch."""

from __future__ import annotations

import asyncio
import datetime
import json
import threading

from websockets.sync.client import connect

from depot_testing.fixtures import PRODUCT
from depot_testing.tasks import Client
from pipeline.service.tasks.hot import InProcess
from pipeline.service.tasks.progress import ProgressPublisher
from pipeline.service.tasks.task import Item, Task

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def task(user: str, task_id: str, downloaded: int) -> Task:
    return Task(task_id, user, "download", "starfall", "1.2.0", None, "/g", "downloading", 0, 10_000, downloaded,
                None, None, NOW, NOW, 0)


def test_a_user_no_socket_watches_gets_no_message_built_and_is_still_measured():
    alice = task("alice", "5f0c4a52-2b0e-4a7e-9d7e-3c6b1e0f0a11", 1_000)
    bob = task("bob", "6a1d9c1e-5b7f-4e55-8d0b-6f1f5f3c2e90", 2_000)
    item = Item("7a1d9c1e-5b7f-4e55-8d0b-6f1f5f3c2e91", bob.id, "bin/game.exe", "downloading", 2_000, 10_000, None,
                0, 0, None, None, NOW)

    async def scenario() -> list:
        hot = InProcess()
        published: list = []
        real_publish = hot.publish
        hot.publish = lambda messages: (published.append(list(messages)), real_publish(messages))  # type: ignore
        subscription = await hot.subscribe(lambda user, payload: None)
        assert not hot.watched("bob")
        await subscription.watch("bob")
        assert hot.watched("bob") and not hot.watched("alice")
        publisher = ProgressPublisher(hot)
        await asyncio.to_thread(publisher._publish, [("progress", alice, (), 1_000.0),
                                                     ("progress", bob, (item,), 1_000.0)])
        publisher.close()
        assert hot.record([(alice.id, 1_001.0, 1_500)]) == [[(1_000.0, 1_000), (1_001.0, 1_500)]]  # measured
        await subscription.unwatch("bob")
        assert not hot.watched("bob")
        return published

    (out,) = asyncio.run(scenario())
    assert out[0] == ("alice", b"")  # nothing built
    assert out[1][0] == "bob" and [json.loads(line)["type"] for line in out[1][1].split(b"\n")] == \
        ["downloadTaskStatusUpdate", "downloadItemProgressUpdate"]


def test_an_in_process_publish_is_one_hand_off_to_the_subscription_s_loop():
    async def scenario() -> tuple[int, list]:
        hot = InProcess()
        got: list = []
        subscription = await hot.subscribe(lambda user, payload: got.append((user, payload)))
        for user in ("a", "b", "c"):
            await subscription.watch(user)
        loop = asyncio.get_running_loop()
        handed = [0]
        real = loop.call_soon_threadsafe

        def counted(*args, **kwargs):
            handed[0] += 1
            return real(*args, **kwargs)
        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        publishing = threading.Thread(target=hot.publish, args=([("a", b"1"), ("b", b"2"), ("nobody", b"x"),
                                                                  ("c", b"3"), ("a", b"4")],))
        publishing.start()
        publishing.join()
        for _ in range(100):
            if len(got) == 4:
                break
            await asyncio.sleep(0.01)
        return handed[0], got

    handed, got = asyncio.run(scenario())
    assert (handed, got) == (1, [("a", b"1"), ("b", b"2"), ("c", b"3"), ("a", b"4")])


def test_every_socket_of_a_user_gets_the_same_frames(signer, tasks_url):
    token = signer.token("carol", [PRODUCT])
    ws_url = "ws" + tasks_url.removeprefix("http") + f"/ws/download/progress?token={token}"
    with connect(ws_url) as one, connect(ws_url) as two, connect(ws_url) as three:
        made = Client(tasks_url, token).create("/games/carol")[1]["data"]
        frames = [ws.recv(timeout=10) for ws in (one, two, three)]
    assert frames[0] == frames[1] == frames[2]
    assert json.loads(frames[0]) == {"type": "downloadTaskStatusUpdate", "payload": {
        "taskId": made["id"], "status": "queued", "totalProgressPercentage": 0.0, "downloadSpeedBps": 0,
        "estimatedTimeLeftSeconds": None, "downloadedBytes": 0, "totalSizeBytes": made["attributes"]["totalSizeBytes"],
        "errorDetails": None}}
