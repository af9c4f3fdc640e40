"""Download tasks' metrics (the service documents' section 11) on the service's /metrics.

Counters count what this instance did (Prometheus adds the instances up); the tasks by
status are read from the database at each scrape, so every instance shows the same,
whole figure. docs/service.md lists them.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from typing import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from .events import ItemStatuses
from .listener import TaskListener
from .models import KINDS, DownloadItem, DownloadTask
from .repository import Repository
from .task import UNFINISHED, Item, Task, TaskChange

SHOWN = tuple(sorted(UNFINISHED)) + ("error",)  # the statuses counted in the database: unfinished, or stuck in error
ENDED = ("completed", "error", "cancelled")
PATCH_FAILED = "DELTA_PATCH_APPLICATION_FAILED"

log = logging.getLogger(__name__)


class TaskMetrics(TaskListener):
    """Counts task endings, bytes reported, item errors and delta updates' results."""

    def __init__(self, registry: CollectorRegistry, repository: Repository, seen: int = 100_000):
        self.repository = repository
        self.ended = Counter("depot_download_tasks_ended", "Tasks that ended, by kind and status (completed, error, "
                             "cancelled)", ["kind", "status"], registry=registry)
        self.bytes = Counter("depot_download_bytes", "Bytes players' clients reported downloaded",
                             registry=registry)
        self.item_errors = Counter("depot_download_item_errors", "Items reported failed, by error code "
                                   "(CDN_UNREACHABLE, FILE_HASH_MISMATCH, ...)", ["code"], registry=registry)
        self.patches = Counter("depot_download_patches", "Delta updates (update tasks with patch operations) "
                               "that ended: applied, or failed to apply", ["result"], registry=registry)
        for kind in KINDS:
            for status in ENDED:
                self.ended.labels(kind, status)
        for result in ("applied", "failed"):
            self.patches.labels(result)
        registry.register(TasksByStatus(repository))
        self.items = ItemStatuses()
        self.size = seen
        self._bytes_seen: OrderedDict[str, int] = OrderedDict()  # task -> its bytes at the last report seen here
        self._lock = threading.Lock()

    def task_changed(self, change: TaskChange) -> None:
        task = change.task
        if change.old_status is None:
            self._remember(task.id, task.downloaded_bytes)
        if task.status not in ENDED:
            return
        self.ended.labels(task.kind, task.status).inc()
        if task.kind == "update" and (task.status == "completed" or task.error_code == PATCH_FAILED) \
                and self._patches_in(task):
            self.patches.labels("applied" if task.status == "completed" else "failed").inc()

    def items_progressed(self, task: Task, items: Sequence[Item]) -> None:
        with self._lock:
            before = self._bytes_seen.get(task.id)
        if before is not None and task.downloaded_bytes > before:
            self.bytes.inc(task.downloaded_bytes - before)
        self._remember(task.id, task.downloaded_bytes)
        for item in self.items.changed(items):
            if item.status == "error":
                self.item_errors.labels(item.error_code or "UNKNOWN").inc()

    def _remember(self, task_id: str, downloaded: int) -> None:
        """The bytes a task had at the last report seen here. A task this instance has not
        seen since it started counts from its next report: with several instances, a
        report's bytes are counted once, by the instance that took it, never twice."""
        with self._lock:
            self._bytes_seen[task_id] = downloaded
            self._bytes_seen.move_to_end(task_id)
            while len(self._bytes_seen) > self.size:
                self._bytes_seen.popitem(last=False)

    def _patches_in(self, task: Task) -> bool:
        with self.repository.reading() as s:
            found = s.scalar(select(DownloadItem.id).where(DownloadItem.download_task_id == uuid.UUID(task.id),
                                                           DownloadItem.operation == "patch").limit(1))
        return found is not None


class TasksByStatus(Collector):
    """``depot_download_tasks{kind,status}``: the tasks in the database that are unfinished
    or in error, by kind and status, read at each scrape (active downloads are
    ``status="downloading"``, the queues' sizes ``status="queued"``)."""

    def __init__(self, repository: Repository):
        self.repository = repository

    def collect(self) -> Iterable[Metric]:
        try:
            with self.repository.reading() as s:
                counts = {(kind, status): n for kind, status, n in s.execute(
                    select(DownloadTask.kind, DownloadTask.status, func.count())
                    .where(DownloadTask.status.in_(SHOWN)).group_by(DownloadTask.kind, DownloadTask.status))}
        except SQLAlchemyError as exc:  # the other metrics are still worth serving
            log.warning("metrics: cannot count the tasks: %s", exc)
            return
        family = GaugeMetricFamily("depot_download_tasks", "Tasks unfinished or in error, by kind and status",
                                   labels=["kind", "status"])
        for kind in KINDS:
            for status in SHOWN:
                family.add_metric([kind, status], counts.get((kind, status), 0))
        yield family
