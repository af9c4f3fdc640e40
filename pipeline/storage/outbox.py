"""The events outbox: CloudEvents kept on disk until every sink has them.

Every event is first written to the outbox, a local directory, one file per event; then it
is delivered to every configured sink (a JSON-lines file, a webhook, a Kafka topic). A
sink that has an event gets a marker file beside it; the event leaves the outbox once every
sink has it. So a sink that is down gets the event later (``flush``), the others do not get
it twice, and the caller never fails or waits long because a sink is unreachable.

Delivery is at least once per sink (a crash between a delivery and its marker sends that
event again) and in outbox order per sink (a sink that fails on one event is not sent the
later ones in the same pass). Publishing (publish.events) and the service's download tasks
both announce through it; docs/events.md says what consumers see.
"""

from __future__ import annotations

import dataclasses
import datetime
import fcntl
import json
import logging
import os
import re
import secrets
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import urllib3

from ..errors import InvalidArgument, InvalidLocation, StoreUnavailable

TOPIC = "com.platform.download.events.v1"
CONTENT_TYPE = "application/cloudevents+json"  # structured mode; JSON is UTF-8 by definition (RFC 8259)

_EVENT_SUFFIX = ".json"
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})")
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")  # what Kafka accepts as a topic name
_log = logging.getLogger(__name__)


# -- configuration --------------------------------------------------------------------------


@dataclass(frozen=True)
class EventSinks:
    """Where events go, from the [events] table of depot's locations file."""

    outbox: Path  # directory where every event is written first and waits until each sink has it
    jsonl: str | None = None  # append one JSON line per event to this file
    webhook: str | None = None  # POST each event (CloudEvents HTTP binding, structured mode)
    kafka: str | None = None  # bootstrap servers "host:port[,host:port]"; produce to `topic`
    topic: str = TOPIC
    timeout: float = 5.0  # per delivery attempt; an unreachable sink must never block a publish for long

    def __post_init__(self):
        # Checked here rather than in from_table so that code building sinks directly
        # gets the same refusals as a locations file.
        if not isinstance(self.outbox, Path):
            raise InvalidLocation(f"[events] outbox must be a path, got {self.outbox!r}")
        for key in ("jsonl", "webhook", "kafka"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise InvalidLocation(f"[events] {key} must be a non-empty string, got {value!r}")
        if self.webhook is not None and not re.match(r"^https?://[^/\s]+", self.webhook):
            raise InvalidLocation(f"[events] webhook {self.webhook!r} is not an http:// or https:// URL")
        if self.kafka is not None and not all(_is_host_port(s) for s in self.kafka.split(",")):
            raise InvalidLocation(f"[events] kafka {self.kafka!r} is not a list of host:port (host:port[,host:port])")
        if not isinstance(self.topic, str) or not _TOPIC_NAME.fullmatch(self.topic):
            raise InvalidLocation(f"[events] topic {self.topic!r} is not a Kafka topic name (letters, digits, . _ -)")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) or self.timeout <= 0:
            raise InvalidLocation(f"[events] timeout must be a positive number of seconds, got {self.timeout!r}")

    @classmethod
    def from_table(cls, table: dict, default_outbox: Path) -> "EventSinks":
        """The sinks an [events] table names; the outbox is ``default_outbox`` unless the
        table gives one."""
        if not isinstance(table, dict):
            raise InvalidLocation(f"[events] must be a table, got {table!r}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise InvalidLocation(f"[events] has unknown keys {unknown}; known: {sorted(known)}")
        outbox = table.get("outbox", default_outbox)
        if isinstance(outbox, str) and outbox.strip():
            outbox = Path(outbox)
        elif not isinstance(outbox, Path):
            raise InvalidLocation(f"[events] outbox must be a non-empty path, got {outbox!r}")
        return cls(**{**table, "outbox": outbox})

    def names(self) -> list[str]:
        """The configured sinks, in the order they are delivered to."""
        return [name for name in _DELIVER if getattr(self, name) is not None]


def _is_host_port(server: str) -> bool:
    m = _HOST_PORT.fullmatch(server.strip())
    return m is not None and 0 < int(m.group(2)) < 65536


# -- the event ------------------------------------------------------------------------------


def cloud_event(type_: str, data: dict, *, subject: str, source: str = "depot", id_: str | None = None,
                time_: str | None = None) -> dict:
    """A CloudEvents 1.0 event in structured JSON: ``data`` of type ``type_`` about
    ``subject``. Its id is a random UUID unless given (an event that means the same thing
    each time it is made may carry the same id, so that consumers drop the repeats)."""
    return {
        "specversion": "1.0",
        "id": id_ or str(uuid.uuid4()),
        "source": source,
        "type": type_,
        "time": time_ or now(),
        "datacontenttype": "application/json",
        "subject": subject,
        "data": data,
    }


def now() -> str:
    """RFC 3339 in UTC, to the second: the shape of the service documents' examples."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- what emit and flush report -------------------------------------------------------------


@dataclass(frozen=True)
class SinkResult:
    delivered: int  # events this call delivered to the sink
    pending: int  # events the sink still lacks
    error: str | None = None  # why it lacks them, when it does


@dataclass(frozen=True)
class Delivery:
    """Per sink, what this call delivered and what is still pending; and how many events
    are still in the outbox."""

    sinks: tuple[tuple[str, SinkResult], ...] = ()
    outbox: int = 0

    @property
    def ok(self) -> bool:
        return self.outbox == 0

    @property
    def pending(self) -> tuple[tuple[str, SinkResult], ...]:
        """The sinks that still lack events, with why."""
        return tuple((name, result) for name, result in self.sinks if result.pending)

    def then(self, later: "Delivery") -> "Delivery":
        """This report followed by ``later``'s, as one: per sink, what both delivered, and
        what is still pending after ``later`` (what a command that emits several times says)."""
        before = dict(self.sinks)
        return Delivery(tuple((name, SinkResult((before[name].delivered if name in before else 0) + r.delivered,
                                                r.pending, r.error)) for name, r in later.sinks), later.outbox)

    def to_dict(self) -> dict:
        return {name: dataclasses.asdict(result) for name, result in self.sinks}


# -- the outbox -----------------------------------------------------------------------------


def emit(sinks: EventSinks, *events: dict) -> Delivery:
    """Write ``events`` to the outbox in order, then deliver everything pending to every
    sink in one pass (a sink that is down costs one timeout, not one per event). Raises
    only if the outbox cannot be written (then the events would be lost); a sink that is
    unreachable or failing is reported, and its events stay pending."""
    write(sinks, *events)
    return flush(sinks)


def write(sinks: EventSinks, *events: dict) -> None:
    """Write ``events`` to the outbox in order without delivering them (a later ``flush``
    does). An event that is not JSON writes none of them; an outbox that cannot be written
    raises."""
    bodies = [_encode(event) for event in events]  # all or none: a bad event writes nothing
    with _outbox_errors(sinks.outbox):
        for body in bodies:
            _write(sinks.outbox, body)


def flush(sinks: EventSinks) -> Delivery:
    """Deliver what is pending in the outbox (what `depot events flush` runs)."""
    with _outbox_errors(sinks.outbox), _locked(sinks.outbox):  # two processes must not both send an event
        events = _pending(sinks.outbox)
        results = tuple((name, _deliver(sinks, name, events)) for name in sinks.names())
        _retire(events, sinks.names())
        return Delivery(results, outbox=len(_pending(sinks.outbox)))


@contextmanager
def _outbox_errors(outbox: Path) -> Iterator[None]:
    # The sinks report their own failures; an outbox that cannot be written or read is
    # raised, since events would be lost or forgotten.
    try:
        yield
    except OSError as exc:
        raise StoreUnavailable(f"cannot use the event outbox {outbox}: {exc.strerror or exc}") from None


def _encode(event: dict) -> bytes:
    # One compact line: the same bytes go to the outbox, the jsonl file, the webhook and Kafka.
    try:
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"event is not JSON: {exc}") from None


def _write(outbox: Path, body: bytes) -> Path:
    """The event's file, written whole or not at all. Names sort in the order events were
    written (nanoseconds since the epoch, then a random part against collisions)."""
    path = outbox / f"{time.time_ns():020d}-{secrets.token_hex(4)}{_EVENT_SUFFIX}"
    tmp = outbox / f".{path.name}.tmp"  # dot-prefixed: never listed as pending
    outbox.mkdir(parents=True, exist_ok=True)
    try:
        tmp.write_bytes(body)
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@contextmanager
def _locked(outbox: Path) -> Iterator[None]:
    # The directory itself is the lock (as for local compare-and-swap): no lock file to leave behind.
    outbox.mkdir(parents=True, exist_ok=True)
    fd = os.open(outbox, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _pending(outbox: Path) -> list[Path]:
    """The events in the outbox, oldest first."""
    return sorted(p for p in outbox.iterdir() if p.name.endswith(_EVENT_SUFFIX) and not p.name.startswith("."))


def _marker(event: Path, sink: str) -> Path:
    """The file that says ``sink`` has ``event``."""
    return event.with_name(f"{event.name}.{sink}.sent")


def _deliver(sinks: EventSinks, name: str, events: list[Path]) -> SinkResult:
    """Send ``name`` the events it lacks, marking each one it acknowledges."""
    todo = [e for e in events if not _marker(e, name).exists()]
    delivered = []

    def sent(event: Path) -> None:
        _marker(event, name).touch()
        delivered.append(event)

    to = getattr(sinks, name)  # configured: names() lists no other
    error = _DELIVER[name](sinks, to, [(e, e.read_bytes()) for e in todo], sent) if todo else None
    return SinkResult(len(delivered), len(todo) - len(delivered), error)


def _retire(events: list[Path], names: list[str]) -> None:
    """Remove the events every sink has; the event file first, so that a crash leaves
    stray markers (harmless) rather than an event whose deliveries are forgotten."""
    for event in events:
        if all(_marker(event, name).exists() for name in names):
            event.unlink()
            for name in names:
                _marker(event, name).unlink()


# -- the sinks: each sends a batch in order to where it is configured to, calls sent(event)
#    per acknowledged event and returns None, or the error that stopped it -----------------

Batch = list[tuple[Path, bytes]]
Sent = Callable[[Path], None]


def _to_jsonl(sinks: EventSinks, path: str, batch: Batch, sent: Sent) -> str | None:
    # O_APPEND with one write per line: concurrent writers never interleave inside a line.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    try:
        for event, body in batch:
            os.write(fd, body + b"\n")
            sent(event)
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    finally:
        os.close(fd)
    return None


def _to_webhook(sinks: EventSinks, url: str, batch: Batch, sent: Sent) -> str | None:
    # No retries and no redirects: the outbox is the retry, and a POST must not turn into a GET.
    http = urllib3.PoolManager(timeout=urllib3.Timeout(total=sinks.timeout), retries=False)
    try:
        for event, body in batch:
            try:
                response = http.request("POST", url, body=body, headers={"Content-Type": CONTENT_TYPE},
                                        redirect=False)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                return f"{url}: {_reason(exc)}"
            if not 200 <= response.status < 300:
                return f"{url}: HTTP {response.status} {response.reason or ''}".rstrip()
            sent(event)
    finally:
        http.clear()
    return None


def _reason(exc: Exception) -> str:
    # urllib3 wraps the socket error (connection refused, timed out) in layers of context.
    return str(getattr(exc, "reason", None) or exc)


def _to_kafka(sinks: EventSinks, servers: str, batch: Batch, sent: Sent) -> str | None:
    try:
        from confluent_kafka import KafkaException, Producer  # only when a kafka sink is configured
    except ImportError:
        return "confluent-kafka is not installed (pip install confluent-kafka)"
    problems: list[str] = []  # what the client met (connection refused, ...) and what the broker refused
    acked: list[Path] = []

    def acknowledgement(event: Path) -> Callable:
        # Called from producer.flush(), on this thread, once per message with the broker's answer.
        def on_delivery(err, msg) -> None:
            if err is None:
                acked.append(event)
                sent(event)
            else:
                problems.append(err.str())
        return on_delivery

    try:
        producer = Producer(_producer_config(sinks, problems))  # to sinks.kafka, the servers named
        for event, body in batch:
            producer.produce(sinks.topic, value=body, key=_partition_key(body),
                             headers=[("content-type", CONTENT_TYPE.encode())], on_delivery=acknowledgement(event))
        if producer.flush(sinks.timeout) > 0:
            # Not acknowledged in time: take them out of the queue so that they are not sent
            # behind our back later; they stay pending and the next flush sends them again.
            producer.purge()
            producer.flush(0)
    except (KafkaException, BufferError) as exc:
        problems.append(str(exc))
    if len(acked) == len(batch):
        return None
    return problems[0] if problems else f"no acknowledgement within {sinks.timeout:g}s"


def _producer_config(sinks: EventSinks, problems: list[str]) -> dict:
    ms = max(1000, int(sinks.timeout * 1000))
    return {
        "bootstrap.servers": sinks.kafka,
        "client.id": "depot",
        # Idempotence keeps the order of a batch through retries and writes no duplicate
        # within it; it needs acks=all (every in-sync replica has the event), said here
        # rather than left implied.
        "enable.idempotence": True,
        "acks": "all",
        "message.timeout.ms": ms,
        "socket.connection.setup.timeout.ms": ms,
        # librdkafka prints every failed connection attempt to stderr; the first one is in
        # the report already, so only critical messages go on, to logging.
        "logger": _log,
        "log_level": 2,
        "error_cb": lambda err: problems.append(err.str()),
    }


def _partition_key(body: bytes) -> bytes | None:
    """Kafka keeps order within a partition. The key is the event's ``partitionkey``
    (CloudEvents' partitioning extension, which the Kafka binding maps to the key) when it
    has one, else its product: one product's events (publish, promote, rollback) are read in
    the order they were written."""
    event = json.loads(body)
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    key = event.get("partitionkey") or data.get("productId") or event.get("subject")
    return str(key).encode() if key else None


_DELIVER: dict[str, Callable[[EventSinks, str, Batch, Sent], str | None]] = {
    "jsonl": _to_jsonl,
    "webhook": _to_webhook,
    "kafka": _to_kafka,
}
