"""A task and its items as the queue hands them out: frozen values, read in the transaction
that changed them (listeners, the API and other services get these, never database rows)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

FINAL = frozenset({"completed", "cancelled"})  # nothing changes a task in these
UNFINISHED = frozenset({"queued", "preparing", "downloading", "paused", "verifying"})  # in the user's queue


@dataclass(frozen=True)
class Item:
    id: str
    task_id: str
    relative_path: str
    status: str  # pending, downloading, paused, completed, error, verifying
    downloaded_bytes: int
    total_size_bytes: int
    expected_hash_sha256: str | None
    retry_count: int
    position: int
    operation: str | None  # an update's: copy, patch or chunks; None: the file is fetched
    error_code: str | None
    updated_at: datetime.datetime


@dataclass(frozen=True)
class Task:
    id: str
    user_id: str
    kind: str  # download, update, verify
    product_id: str
    version_id: str
    from_version_id: str | None  # an update's installed version
    target_path: str
    status: str  # queued, preparing, downloading, paused, verifying, completed, error, cancelled
    priority: int
    total_size_bytes: int
    downloaded_bytes: int
    error_code: str | None
    error_message: str | None
    created_at: datetime.datetime
    updated_at: datetime.datetime
    queue_position: int | None  # 0 first; None when not in the queue (finished, in error, or a verify task)
    items: tuple[Item, ...] | None = None  # None: not read

    @property
    def progress_percentage(self) -> float:
        if self.total_size_bytes <= 0:
            return 100.0 if self.status == "completed" else 0.0
        return round(100.0 * self.downloaded_bytes / self.total_size_bytes, 2)


@dataclass(frozen=True)
class TaskChange:
    """One committed change of a task's status (or its creation: ``old_status`` None)."""

    task: Task
    old_status: str | None

    @property
    def new_status(self) -> str:
        return self.task.status
