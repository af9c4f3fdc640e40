"""Hot state: what changes many times a second and every instance of the service must
share, behind one small interface, kept in process (one instance) or in Redis (several).

- progress samples: each task's recent (time, bytes) reports, from which its speed and
  time left are computed, whichever instance a report reached;
- rate limits: a token bucket per subject (a user, or a client address), so that a limit
  holds across instances;
- fan-out: messages for a user published on one instance reach the subscribers of every
  instance (Redis pub/sub, a channel per user).

The database stays the truth for tasks; nothing here is needed after a restart. Redis keys
(the service documents' section 4.2.2, where they name one): ``download_task_speed:<taskId>``
(LIST of samples, with a TTL), ``rate_limit:<subject>:cdn_url_requests`` (HASH: a token
bucket, with a TTL), channels ``download_events:<userId>``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from abc import ABC, abstractmethod
from typing import Callable, Sequence

from ...core.rate import TokenBucket

SAMPLES_KEPT = 32  # reports remembered per task (a client reports about once a second)
SAMPLES_TTL_S = 3600  # a task not reported for this long is forgotten
BUCKET_TTL_S = 3600  # an idle rate-limit bucket is forgotten (it would be full again anyway)

log = logging.getLogger(__name__)

Deliver = Callable[[str, bytes], None]  # (user, payload), called in the subscriber's event loop
Sample = tuple[str, float, int]  # (task id, wall time, bytes downloaded)


class Subscription(ABC):
    """An instance's one subscription to user channels: ``watch`` and ``unwatch`` users,
    and ``run`` (a task of the event loop) hands what is published for them to ``deliver``."""

    @abstractmethod
    async def watch(self, user: str) -> None: ...

    @abstractmethod
    async def unwatch(self, user: str) -> None: ...

    @abstractmethod
    async def run(self) -> None:
        """Deliver until cancelled."""

    @abstractmethod
    async def close(self) -> None: ...


class HotState(ABC):
    """Progress samples, rate limits and fan-out. Thread-safe; ``subscribe`` is for an
    event loop, the rest for any thread."""

    @abstractmethod
    def record(self, samples: Sequence[Sample]) -> list[list[tuple[float, int]]]:
        """Append each (task id, time, bytes) sample to its task's; for each, the task's
        samples kept (it included), oldest first. The times are wall time (instances
        compare them)."""

    @abstractmethod
    def forget(self, task_id: str) -> None:
        """Drop a task's samples (it stopped: its next start measures afresh)."""

    @abstractmethod
    def take(self, subject: str, rate: float, n: int = 1) -> float:
        """Take ``n`` tokens from ``subject``'s bucket (``rate`` a second, a burst of
        ``max(rate, 1)``): 0.0 when taken, else the seconds until they would be there
        (nothing is taken then)."""

    @abstractmethod
    def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Hand each (user, payload) to every subscription watching the user, on every
        instance, in order."""

    @abstractmethod
    async def subscribe(self, deliver: Deliver) -> Subscription:
        """This instance's subscription, ready to ``watch``."""

    def watched(self, user: str) -> bool:
        """Whether a message for ``user`` may reach anyone (False: it need not be built).
        Redis cannot tell without a round trip: always True there."""
        return True

    def close(self) -> None:
        pass


def open_hot_state(redis_url: str | None) -> HotState:
    """Redis at ``redis_url`` (``redis://host:port/db``), or in process when None."""
    return RedisHotState(redis_url) if redis_url else InProcess()


class InProcess(HotState):
    """One instance: everything in this process's memory."""

    def __init__(self, bucket_clock: Callable[[], float] = time.monotonic):
        self.bucket_clock = bucket_clock
        self._lock = threading.Lock()
        self._samples: dict[str, list[tuple[float, int]]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._subscriptions: list[_LocalSubscription] = []

    def record(self, samples: Sequence[Sample]) -> list[list[tuple[float, int]]]:
        out = []
        with self._lock:
            if len(self._samples) > 100_000:  # tasks that stopped without saying so
                self._samples.clear()
            for task_id, at, downloaded in samples:
                kept = self._samples.setdefault(task_id, [])
                kept.append((at, downloaded))
                del kept[:-SAMPLES_KEPT]
                out.append(list(kept))
        return out

    def forget(self, task_id: str) -> None:
        with self._lock:
            self._samples.pop(task_id, None)

    def take(self, subject: str, rate: float, n: int = 1) -> float:
        now = self.bucket_clock()
        with self._lock:
            bucket = self._buckets.get(subject)
            if bucket is None:
                if len(self._buckets) >= 100_000:  # forget idle subjects
                    self._buckets.clear()
                bucket = self._buckets[subject] = TokenBucket(rate, max(rate, 1.0), now)
            return bucket.take(n, now)

    def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions)
            # one hand-off to each subscription's loop for all its messages, not one a message
            batches = [(s, [(user, payload) for user, payload in messages if user in s.users])
                       for s in subscriptions]
        for s, batch in batches:
            if batch:
                s.loop.call_soon_threadsafe(s.deliver_all, batch)

    def watched(self, user: str) -> bool:
        return any(user in s.users for s in self._subscriptions)

    async def subscribe(self, deliver: Deliver) -> Subscription:
        s = _LocalSubscription(self, deliver, asyncio.get_running_loop())
        with self._lock:
            self._subscriptions.append(s)
        return s


class _LocalSubscription(Subscription):
    def __init__(self, hot: InProcess, deliver: Deliver, loop: asyncio.AbstractEventLoop):
        self.hot, self.deliver, self.loop = hot, deliver, loop
        self.users: set[str] = set()

    async def watch(self, user: str) -> None:
        with self.hot._lock:
            self.users.add(user)

    async def unwatch(self, user: str) -> None:
        with self.hot._lock:
            self.users.discard(user)

    def deliver_all(self, batch: Sequence[tuple[str, bytes]]) -> None:
        for user, payload in batch:
            self.deliver(user, payload)

    async def run(self) -> None:
        await asyncio.Event().wait()  # publish() delivers straight into the loop

    async def close(self) -> None:
        with self.hot._lock:
            if self in self.hot._subscriptions:
                self.hot._subscriptions.remove(self)


# core.rate.TokenBucket's take (without debt), read and written in one step on the server,
# on the server's clock (so instances whose clocks differ share one bucket). Returns the
# wait as text: Lua numbers come back as integers.
_TAKE = """
local rate, n, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local burst = math.max(rate, 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens < n then wait = (n - tokens) / rate else tokens = tokens - n end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], ttl)
return tostring(wait)
"""


class RedisHotState(HotState):
    """Several instances: everything in one Redis."""

    def __init__(self, url: str):
        import redis

        self.url = url
        self._failing = False
        self.redis = redis.Redis.from_url(url, health_check_interval=30)
        self._take = self.redis.register_script(_TAKE)

    def record(self, samples: Sequence[Sample]) -> list[list[tuple[float, int]]]:
        with self.redis.pipeline(transaction=False) as pipe:  # one round trip for them all
            for task_id, at, downloaded in samples:
                key = f"download_task_speed:{task_id}"
                pipe.rpush(key, f"{at:.3f} {downloaded}")
                pipe.ltrim(key, -SAMPLES_KEPT, -1)
                pipe.expire(key, SAMPLES_TTL_S)
                pipe.lrange(key, 0, -1)
            answers = pipe.execute()
        return [[(float(t), int(b)) for t, b in (s.split() for s in kept)] for kept in answers[3::4]]

    def forget(self, task_id: str) -> None:
        self.redis.delete(f"download_task_speed:{task_id}")

    def take(self, subject: str, rate: float, n: int = 1) -> float:
        import redis

        try:
            wait = float(self._take(keys=[f"rate_limit:{subject}:cdn_url_requests"], args=[rate, n, BUCKET_TTL_S]))
        except redis.RedisError as exc:  # Redis away: players keep their links, unlimited meanwhile
            self._down(exc)
            return 0.0
        self._down(None)
        return wait

    def _down(self, exc: Exception | None) -> None:
        """Log when Redis goes away and when it is back, once each."""
        if (exc is not None) != self._failing:
            self._failing = exc is not None
            if exc is not None:
                log.warning("Redis at %s unreachable, link rate limits are off until it is back: %s", self.url, exc)
            else:
                log.warning("Redis at %s is back", self.url)

    def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            for user, payload in messages:
                pipe.publish(f"download_events:{user}", payload)
            pipe.execute()

    async def subscribe(self, deliver: Deliver) -> Subscription:
        s = _RedisSubscription(self.url, deliver)
        await s.pubsub.subscribe(s.own)  # its one connection, made before any watch()
        return s

    def close(self) -> None:
        self.redis.close()


class _RedisSubscription(Subscription):
    """One pub/sub connection per instance, subscribed to the channels of the users with
    a socket here. It starts subscribed to a channel of its own, so that it has its
    connection, and can be read, before any user comes. ``watch`` returns once Redis has
    confirmed: what is published after it is delivered."""

    def __init__(self, url: str, deliver: Deliver):
        import redis.asyncio

        self.deliver = deliver
        self.client = redis.asyncio.Redis.from_url(url, health_check_interval=30)
        self.pubsub = self.client.pubsub()
        self.own = f"download_events_instance:{uuid.uuid4()}"
        self._confirming: dict[bytes, list[asyncio.Future]] = {}

    async def watch(self, user: str) -> None:
        channel = f"download_events:{user}"
        confirmed = asyncio.get_running_loop().create_future()
        self._confirming.setdefault(channel.encode(), []).append(confirmed)
        await self.pubsub.subscribe(channel)
        await asyncio.wait_for(confirmed, 30)

    async def unwatch(self, user: str) -> None:
        await self.pubsub.unsubscribe(f"download_events:{user}")

    async def run(self) -> None:
        import redis

        while True:
            try:
                message = await self.pubsub.get_message(timeout=None)
            except redis.ConnectionError:  # Redis restarted: the reconnect subscribes again
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            if message["type"] == "message":
                self.deliver(message["channel"].decode().partition(":")[2], message["data"])
            elif message["type"] == "subscribe":
                for confirmed in self._confirming.pop(message["channel"], []):
                    if not confirmed.done():
                        confirmed.set_result(None)

    async def close(self) -> None:
        await self.pubsub.aclose()
        await self.client.aclose()
