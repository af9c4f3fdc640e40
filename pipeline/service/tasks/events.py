"""Download tasks' events (the service documents' section 5), through the events outbox.

- ``task.status.changed.v1``: each committed change of a task's status, its creation too.
- ``item.status.changed.v1``: an item whose status a progress report changed; one outbox
  write per report, however many items it names, never one event per chunk or per byte.
- ``update.available.v1``: when a version is published (the Catalog Service's
  ``product.version.published.v1`` on Kafka, or ``NotifyNewVersionAvailable`` over gRPC),
  the catalogue is read again and each user whose last completed task left an older
  version than the service's channel now offers is told, priced like ``updates/check``.

Events are written to the outbox in the thread that made the change (a file each) and
delivered by a thread of their own, so a sink that is down never slows a request.
docs/events.md has the payloads.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
import uuid
from collections import OrderedDict
from typing import Callable, Sequence

from sqlalchemy import select

from ...core.versions import version_key
from ...errors import DepotError
from ...storage import outbox
from ...storage.outbox import EventSinks, cloud_event
from ..catalog import Catalog
from ..updates import check
from .listener import TaskListener
from .models import UserDownloadHistory
from .repository import Repository
from .task import Item, Task, TaskChange

TASK_STATUS_CHANGED = "com.platform.download.task.status.changed.v1"
ITEM_STATUS_CHANGED = "com.platform.download.item.status.changed.v1"
UPDATE_AVAILABLE = "com.platform.download.update.available.v1"
VERSION_PUBLISHED = "com.platform.catalog.product.version.published.v1"  # also the topic it is read from
CONSUMER_GROUP = "download-service-group"  # the documents' consumer_group
SOURCE = "depot/service"
RETRY_S = 5.0  # how often events a sink still lacks are offered again

log = logging.getLogger(__name__)


# -- the payloads ---------------------------------------------------------------------------


def task_status_changed(change: TaskChange, source: str = SOURCE) -> dict:
    """The documents' task.status.changed payload (``oldStatus`` null for a new task), and
    depot's ``taskType``: download, update or verify, as the REST API names it."""
    task = change.task
    at = _rfc3339(task.updated_at)
    return _event(TASK_STATUS_CHANGED, {
        "taskId": task.id, "userId": task.user_id, "productId": task.product_id, "versionId": task.version_id,
        "newStatus": task.status, "oldStatus": change.old_status,
        "totalProgressPercentage": task.progress_percentage, "downloadedBytes": task.downloaded_bytes,
        "totalSizeBytes": task.total_size_bytes, "changeTimestamp": at,
        "errorDetails": _error(task.error_code, task.error_message) if task.status == "error" else None,
        "taskType": task.kind,
    }, task, at, source)


def item_status_changed(task: Task, item: Item, source: str = SOURCE) -> dict:
    """The documents' item.status.changed payload."""
    at = _rfc3339(item.updated_at)
    return _event(ITEM_STATUS_CHANGED, {
        "taskId": task.id, "itemId": item.id, "relativePath": item.relative_path, "newStatus": item.status,
        "downloadedBytes": item.downloaded_bytes, "totalFileSizeBytes": item.total_size_bytes,
        "changeTimestamp": at,
        "errorDetails": _error(item.error_code, None) if item.status == "error" else None,
    }, task, at, source)


def update_available(user_id: str, installed: str, info: dict, release_notes_url: str | None = None,
                     source: str = SOURCE) -> dict:
    """The documents' update.available payload for ``user_id``, whose ``installed`` version
    ``info`` (an ``updates/check`` answer) prices the update from. Its id is the same each
    time it is made for this user, product and pair of versions: consumers drop repeats."""
    product, latest = info["productId"], info["latestVersionId"]
    data = {"userId": user_id, "productId": product, "latestVersionId": latest, "updateType": info["updateType"],
            "downloadSizeBytes": info["downloadSizeBytes"], "releaseNotesUrl": release_notes_url}
    same = uuid.uuid5(uuid.NAMESPACE_URL, f"depot:{UPDATE_AVAILABLE}:{user_id}:{product}:{installed}:{latest}")
    event = cloud_event(UPDATE_AVAILABLE, data, subject=f"{product}/{latest}", source=source, id_=str(same))
    event["partitionkey"] = user_id  # a user's notices in order
    return event


def _event(type_: str, data: dict, task: Task, at: str, source: str) -> dict:
    event = cloud_event(type_, data, subject=task.id, source=source, time_=at)
    event["partitionkey"] = task.id  # a task's events, its items' too, in one partition: in order
    return event


def _error(code: str | None, message: str | None) -> dict:
    return {"errorCode": code, "errorMessage": message}


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- writing and delivering -----------------------------------------------------------------


class Announcer:
    """Writes events to the outbox at once and delivers them from a thread of its own:
    woken by each write, and every ``RETRY_S`` for what a sink still lacks."""

    def __init__(self, sinks: EventSinks, retry_s: float = RETRY_S):
        self.sinks, self.retry_s = sinks, retry_s
        self.last: outbox.Delivery | None = None  # the latest delivery's report
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="depot-events", daemon=True)

    def announce(self, *events: dict) -> None:
        if events:
            outbox.write(self.sinks, *events)
            self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Deliver what is pending once more, then stop."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.retry_s)
            self._wake.clear()
            try:
                self.last = outbox.flush(self.sinks)
            except DepotError:
                log.exception("events: cannot read the outbox %s", self.sinks.outbox)
            if self._stopping.is_set():
                return


class ItemStatuses:
    """The status each item was last seen in, for the items reports name: which of them a
    report changed. Bounded: an item forgotten is announced again at its next report."""

    def __init__(self, size: int = 100_000):
        self.size = size
        self._seen: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def changed(self, items: Sequence[Item]) -> list[Item]:
        out = []
        with self._lock:
            for item in items:
                if self._seen.get(item.id, "pending") != item.status:
                    out.append(item)
                self._seen[item.id] = item.status
                self._seen.move_to_end(item.id)
            while len(self._seen) > self.size:
                self._seen.popitem(last=False)
        return out


class TaskEvents(TaskListener):
    """Announces task and item status changes."""

    def __init__(self, announcer: Announcer):
        self.announcer = announcer
        self.items = ItemStatuses()

    def task_changed(self, change: TaskChange) -> None:
        self.announcer.announce(task_status_changed(change))

    def items_progressed(self, task: Task, items: Sequence[Item]) -> None:
        self.announcer.announce(*(item_status_changed(task, item) for item in self.items.changed(items)))


# -- a version is published: update.available -----------------------------------------------


class UpdateNotices:
    """What the service does when a version is published: read the catalogue again, then
    tell each user whose last completed task of the product left an older version (when
    there are sinks to tell)."""

    def __init__(self, catalog: Catalog, repository: Repository, announcer: Announcer | None, channel: str,
                 refresh: Callable[[], None]):
        self.catalog, self.repository, self.announcer, self.channel = catalog, repository, announcer, channel
        self.refresh = refresh  # reads the origins again (counted as the service's refreshes are)

    def version_published(self, product: str, version: str, release_notes_url: str | None = None) -> int:
        """Announce update.available to every user concerned; returns how many were told."""
        self.refresh()
        if self.announcer is None:
            return 0
        events = []
        priced: dict[str, dict | None] = {}  # one price per installed version
        for user_id, installed in sorted(installed_versions(self.repository, product).items()):
            if installed not in priced:
                priced[installed] = self._price(product, installed)
            info = priced[installed]
            if info is not None:
                events.append(update_available(user_id, installed, info, release_notes_url))
        self.announcer.announce(*events)
        log.info("version %s/%s published: %d users told of an update", product, version, len(events))
        return len(events)

    def _price(self, product: str, installed: str) -> dict | None:
        """The update check's answer when the channel now offers a newer version than
        ``installed`` (never a downgrade); None otherwise."""
        try:
            info = check(self.catalog, product, installed, self.channel)
        except DepotError as exc:  # not published on the origins (yet), or no such channel
            log.info("no update for %s %s: %s", product, installed, exc)
            return None
        newer = info["isUpdateAvailable"] and version_key(installed) < version_key(info["latestVersionId"])
        return info if newer else None


def installed_versions(repository: Repository, product: str) -> dict[str, str]:
    """Per user, the version their last completed download or update of ``product`` left
    (the download history, as the queue's ``installed`` reads it for one user)."""
    history = UserDownloadHistory
    with repository.reading() as s:
        rows = s.execute(select(history.user_id, history.version_id)
                         .where(history.product_id == product, history.status == "completed")
                         .order_by(history.completed_at, history.id))
        return {user: version for user, version in rows}  # the last wins


# -- reading the catalogue's events from Kafka ----------------------------------------------


class CatalogConsumer:
    """Reads ``product.version.published.v1`` events from Kafka in a thread of its own, in
    the documents' consumer group (one instance of the service handles each event), and
    hands each to ``handle(productId, versionId, releaseNotesUrl)``. The offset is
    committed once the event is handled: at least once; events read twice make the same
    notices, with the same ids. Structured and binary CloudEvents are both read."""

    def __init__(self, servers: str, handle: Callable[[str, str, str | None], object], topic: str = VERSION_PUBLISHED,
                 group: str = CONSUMER_GROUP):
        self.servers, self.handle, self.topic, self.group = servers, handle, topic, group
        self.read = 0  # messages read and committed, handled or passed over
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="depot-catalog-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        from confluent_kafka import Consumer

        consumer = Consumer({
            "bootstrap.servers": self.servers, "group.id": self.group, "client.id": "depot-service",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",  # a new group reads what came before it
            # a restarted instance's partitions move to the others within seconds (the broker's default minimum)
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
            "logger": log, "log_level": 2,
        })
        try:
            consumer.subscribe([self.topic])
            while not self._stopping.is_set():
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    log.warning("catalog events: %s", error.str())
                    continue
                self._handle(msg.value(), dict(msg.headers() or ()))
                consumer.commit(message=msg, asynchronous=False)
                self.read += 1
        except Exception:
            log.exception("catalog events: the consumer stopped")
        finally:
            consumer.close()

    def _handle(self, value: bytes | None, headers: dict) -> None:
        try:
            if "ce_type" in headers:  # binary mode: the attributes are headers, the value is the data
                kind, data = headers["ce_type"].decode(), json.loads(value or b"null")
            else:
                event = json.loads(value or b"null")
                kind, data = event.get("type"), event.get("data")
            if kind != VERSION_PUBLISHED:
                return
            product, version = data["productId"], data["versionId"]
            if not (isinstance(product, str) and isinstance(version, str)):
                raise TypeError("productId and versionId must be strings")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("catalog events: not a %s event, passed over: %s", VERSION_PUBLISHED, exc)
            return
        notes = data.get("releaseNotesUrl")
        try:
            self.handle(product, version, notes if isinstance(notes, str) else None)
        except Exception:  # one event that cannot be handled must not stop the others
            log.exception("catalog events: %s/%s", product, version)
