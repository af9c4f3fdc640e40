"""Hot state shared by instances: two RedisHotState objects on one real Redis stand for two
service instances (and the in-process one for a single instance): rate limits hold across
them, progress samples recorded on either are seen by both, and what one publishes for a
user reaches the other's subscription, for that user only."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from depot_testing.tasks import Clock
from pipeline.service.tasks.hot import SAMPLES_KEPT, InProcess, open_hot_state
from pipeline.service.tasks.task import Task

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
TASK = Task("5f0c4a52-2b0e-4a7e-9d7e-3c6b1e0f0a11", "alice", "download", "starfall", "1.2.0", None, "/games/starfall",
            "downloading", 0, 100, 10, None, None, NOW, NOW, 0)


def test_in_process_token_bucket_figures():
    clock = Clock(100.0)
    hot = InProcess(bucket_clock=clock)
    assert [hot.take("user:alice", 2.0) for _ in range(3)] == [0.0, 0.0, 0.5]  # a burst of 2, then 1/2 s each
    assert hot.take("user:bob", 2.0) == 0.0  # a bucket each
    clock.now = 100.25
    assert hot.take("user:alice", 2.0) == 0.25  # half a token came back
    clock.now = 100.5
    assert hot.take("user:alice", 2.0) == 0.0
    assert hot.take("user:carol", 0.5, n=1) == 0.0  # a rate below 1 still lets one through
    assert hot.take("user:carol", 0.5, n=1) == 2.0


def test_a_rate_limit_holds_across_instances(redis_url):
    a, b = open_hot_state(redis_url), open_hot_state(redis_url)
    try:
        # one token a thousand seconds: what the first instance took, the second cannot
        assert a.take("user:alice", 0.001) == 0.0
        wait = b.take("user:alice", 0.001)
        assert 990.0 < wait <= 1000.0
        assert 990.0 < a.take("user:alice", 0.001) <= wait
        assert b.take("user:bob", 0.001) == 0.0
        assert b.take("client:127.0.0.1", 3.0, n=3) == 0.0
    finally:
        a.close()
        b.close()


@pytest.fixture(params=[True, False], ids=["redis", "in process"])
def two(request):
    """Two instances' hot state: two on one Redis, or the in-process one standing for both."""
    url = request.getfixturevalue("redis_url") if request.param else None
    a = open_hot_state(url)
    b = open_hot_state(url) if request.param else a
    yield a, b
    a.close()
    b.close()


def test_progress_samples_are_shared_and_kept_bounded(two):
    a, b = two
    assert a.record([("t1", 10.0, 0), ("t2", 10.0, 5)]) == [[(10.0, 0)], [(10.0, 5)]]
    assert b.record([("t1", 12.5, 100)]) == [[(10.0, 0), (12.5, 100)]]
    b.forget("t2")
    assert a.record([("t2", 13.0, 7)]) == [[(13.0, 7)]]
    kept = a.record([("t1", 20.0 + n, n) for n in range(SAMPLES_KEPT)])[-1]
    assert kept == [(20.0 + n, n) for n in range(SAMPLES_KEPT)]  # the oldest went


def test_what_one_instance_publishes_reaches_the_other_s_subscription(two):
    a, b = two

    async def scenario():
        got: asyncio.Queue = asyncio.Queue()
        subscription = await b.subscribe(lambda user, payload: got.put_nowait((user, payload)))
        reader = asyncio.create_task(subscription.run())
        await subscription.watch("alice")
        await subscription.watch("carol")
        await asyncio.to_thread(a.publish, [("bob", b"not watched"), ("alice", b"one"), ("carol", b"two")])
        assert [await asyncio.wait_for(got.get(), 10) for _ in range(2)] == [("alice", b"one"), ("carol", b"two")]
        await subscription.unwatch("alice")
        await asyncio.to_thread(a.publish, [("alice", b"gone"), ("carol", b"three")])
        assert await asyncio.wait_for(got.get(), 10) == ("carol", b"three")  # nothing for alice came before
        reader.cancel()
        await subscription.close()

    asyncio.run(scenario())


def test_with_redis_away_links_are_not_limited_and_progress_is_dropped(caplog):
    from depot_testing.servers import free_port
    from pipeline.service.tasks.progress import ProgressPublisher

    away = open_hot_state(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    assert [away.take("user:alice", 0.001) for _ in range(3)] == [0.0, 0.0, 0.0]
    publisher = ProgressPublisher(away)
    publisher.items_progressed(TASK, ())  # the caller is not held up, nor told
    publisher.items_progressed(TASK, ())
    assert publisher.flush()
    publisher.close()
    said = [r.getMessage() for r in caplog.records]
    assert said.count("progress messages cannot be published (they are dropped until they can)") == 1
    assert sum(m.startswith("Redis at redis://127.0.0.1:") and "link rate limits are off" in m for m in said) == 1
