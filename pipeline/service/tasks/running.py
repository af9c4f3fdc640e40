"""The tasks running on this instance: what their progress reports need, kept in memory,
and the progress they bring, written to the database behind them.

A client reports every half second while its task runs, and most reports only move bytes
(the task's, and a few items'). Such a report is taken here, without the database: checked
against the task as this instance last saw it (its owner, its status, the sizes of the
items it names), answered, told to the listeners, and kept until the writer thread writes
what every task gathered at once, every ``WRITE_S`` (or sooner once ``WRITE_AFTER`` reports
wait): one statement for the tasks' bytes, one for the items'. Anything else (a task's
first report, a report with a status, an item in error or named by its path, a task
queued) is the queue's, in a transaction, as every other change is; the progress of the
user's tasks not written yet is written first in that transaction, so a status change
always comes after the bytes reported before it.

What a crash loses: the progress taken since the last write (at most ``WRITE_S`` of
reports; the client's next report carries its bytes again). Never a task, a status or
anything else the queue changed: those are committed before they are answered. A stop
(the service's lifespan ending) writes everything first.

Several instances: each takes the reports that reach it. Writes are conditional (a task's
bytes only while it runs, an item's only while it is pending or downloading, and never a
report's over a newer change), so instances writing the same task, or a write landing
after a status change, undo nothing. On PostgreSQL the writer skips rows a transaction
holds (``FOR UPDATE SKIP LOCKED``) and keeps their progress for its next write, so it never
waits for, nor deadlocks with, a user's change. A change made on another instance (a
pause, a cancel) reaches this instance's answers when the writer next reads again the
status and queue position of the tasks known here (one query, every ``REFRESH_S``): within
about a second. (SQLite is one instance's, so it is not read again.) Reads (a task, the
queue) on this instance show the progress it took, written or not.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence, TypeVar

from ...errors import InvalidArgument
from .models import utcnow
from .task import Item, Task

if TYPE_CHECKING:
    from .queue import Report
    from .repository import Repository

log = logging.getLogger(__name__)

WRITE_S = 0.5  # progress taken in memory is written this often
WRITE_AFTER = 2000  # or as soon as this many reports wait
REFRESH_S = 1.0  # how often the tasks known here are read again (another instance may have changed them)
IDLE_S = 300.0  # a task not reported on for this long is forgotten here (its next report reads it again)
RUNNING = ("downloading", "verifying")  # a report moves its bytes
STOPPED = ("paused", "error", "cancelled", "completed")  # a report changes nothing: answered as it is
OPEN = ("pending", "downloading")  # an item whose bytes a report may move in memory
DOWNLOADS = ("download", "update")  # the kinds taken here (an integrity check's answer lists its items)

V = TypeVar("V", Task, Item)
Answer = tuple[Task, "list[Item] | None"]  # the task now, and the items the report moved (None: nothing applied)


@dataclass
class Progress:
    """A task's progress taken in memory and not written yet: its bytes, and its items'
    (id -> (bytes, time)), each as at its latest report."""

    user_id: str
    task_id: str
    downloaded_bytes: int
    at: datetime.datetime
    items: dict[str, tuple[int, datetime.datetime]] = field(default_factory=dict)

    def merge(self, newer: Progress) -> Progress:
        """This progress with ``newer``'s (reported after it) laid over it."""
        return Progress(self.user_id, self.task_id, newer.downloaded_bytes, newer.at, {**self.items, **newer.items})


@dataclass
class _Entry:
    task: Task  # as this instance last answered it (without items)
    items: dict[str, Item]  # the items reports named that are open and not full yet
    stamp: int  # the change count when this instance last changed it
    used: float  # monotonic time of its last report


class RunningTasks:
    """Reports taken in memory, and their writer thread (``close`` stops it, writing first)."""

    def __init__(self, repository: Repository, write_s: float = WRITE_S, write_after: int = WRITE_AFTER,
                 clock: Callable[[], float] = time.monotonic):
        self.repository, self.write_s, self.write_after, self.clock = repository, write_s, write_after, clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._pending: dict[str, Progress] = {}  # by task
        self._by_user: dict[str, set[str]] = {}  # the tasks with pending progress, by user
        self._writing: dict[str, Progress] = {}  # taken by the writer, not committed yet
        self._stamp = 0
        self._waiting = 0  # reports pending since the last write
        self._failing = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="depot-progress-writer", daemon=True)
        self._thread.start()

    # -- reports ----------------------------------------------------------------------------

    def take(self, user_id: str, task_id: str, report: Report, status_changes: bool = True) -> Answer | None:
        """The report applied in memory, if it can be: (the task now, the items it moved), or
        (the task, None) for a stopped task, which a report does not change. None: the
        queue must take it (the task or an item not known here, a status to change, or an
        item that would change status while ``status_changes`` is False). A report naming
        more bytes than an item or the task has is INVALID_ARGUMENT, as in the queue."""
        with self._lock:
            entry = self._entries.get(task_id)
            if entry is None or entry.task.user_id != user_id:
                return None
            task = entry.task
            if task.status in STOPPED:
                return task, None
            if task.status not in RUNNING or report.status is not None \
                    or (report.downloaded_bytes is None and report.items):
                return None
            named: list[Item] = []
            for r in report.items:
                item = entry.items.get(r.item_id or "")
                if item is None or r.status not in (None, "downloading") \
                        or (not status_changes and item.status != "downloading"):
                    return None
                named.append(item)
            for r, item in zip(report.items, named):
                if r.downloaded_bytes > item.total_size_bytes:
                    raise InvalidArgument(f"item {item.relative_path!r}: {r.downloaded_bytes} bytes reported, it "
                                          f"has {item.total_size_bytes}")
            if report.downloaded_bytes is not None and report.downloaded_bytes > task.total_size_bytes:
                raise InvalidArgument(f"{report.downloaded_bytes} bytes reported, task {task.id} has "
                                      f"{task.total_size_bytes}")
            now = utcnow()
            moved: dict[str, Item] = {}
            for r, item in zip(report.items, named):
                moved[item.id] = _with(item, downloaded_bytes=r.downloaded_bytes, status="downloading",
                                       updated_at=now, error_code=None)
                if r.downloaded_bytes < item.total_size_bytes:
                    entry.items[item.id] = moved[item.id]
                else:  # full: no report moves it again but the last (the queue's)
                    entry.items.pop(item.id, None)
            downloaded = task.downloaded_bytes if report.downloaded_bytes is None else report.downloaded_bytes
            entry.task = task = _with(task, downloaded_bytes=downloaded, updated_at=now)
            entry.used = self.clock()
            self._keep(Progress(user_id, task_id, downloaded, now,
                                {i.id: (i.downloaded_bytes, now) for i in moved.values()}))
        return task, list(moved.values())

    def missing(self, user_id: str, task_id: str, report: Report) -> list[str]:
        """The items a report names by id that this instance has not seen, for a task it
        knows to be running: read them (``add_items``) and the report may be taken here."""
        with self._lock:
            entry = self._entries.get(task_id)
            if entry is None or entry.task.user_id != user_id or entry.task.status not in RUNNING:
                return []
            return [r.item_id for r in report.items if r.item_id and r.item_id not in entry.items]

    def add_items(self, task_id: str, items: Sequence[Item]) -> None:
        """Items of a running task read from the database (unless this instance moved
        them since, or they are not open)."""
        with self._lock:
            entry = self._entries.get(task_id)
            if entry is None:
                return
            for item in items:
                if item.status in OPEN and item.id not in entry.items and item.task_id == task_id:
                    entry.items[item.id] = self._overlaid_item(item)

    def known(self, user_id: str, task_id: str) -> bool:
        with self._lock:
            entry = self._entries.get(task_id)
            return entry is not None and entry.task.user_id == user_id

    def stamp(self) -> int:
        """The count of changes told so far (for ``fill``)."""
        with self._lock:
            return self._stamp

    def fill(self, task: Task, since: int) -> None:
        """A task read from the database (without a lock): kept, unless this instance
        knows it already or a change was told since ``stamp`` was ``since`` (the read may
        be older than that change)."""
        if task.kind not in DOWNLOADS:
            return
        with self._lock:
            if task.id not in self._entries and self._stamp == since:
                self._entries[task.id] = _Entry(_without_items(task), {}, since, self.clock())

    # -- what the queue tells ---------------------------------------------------------------

    def remember(self, task: Task, items: Sequence[Item]) -> None:
        """A report the queue took, committed: its task (as answered) and the items it named."""
        if task.kind not in DOWNLOADS:
            return
        with self._lock:
            self._stamp += 1
            entry = self._entries.get(task.id)
            if entry is None:
                entry = self._entries[task.id] = _Entry(task, {}, self._stamp, self.clock())
            entry.task, entry.stamp, entry.used = _without_items(task), self._stamp, self.clock()
            for item in items:
                if item.status in OPEN and item.downloaded_bytes < item.total_size_bytes:
                    entry.items[item.id] = item
                else:
                    entry.items.pop(item.id, None)
            if task.status not in RUNNING:
                entry.items.clear()

    def changed(self, tasks: Sequence[Task]) -> None:
        """Tasks as a committed change left them (their status, their place in the queue)."""
        with self._lock:
            self._stamp += 1
            for task in tasks:
                entry = self._entries.get(task.id)
                if entry is None:
                    continue
                entry.task, entry.stamp = _without_items(task), self._stamp
                if task.status not in RUNNING:
                    entry.items.clear()

    def pending_for(self, user_id: str) -> list[Progress]:
        """The user's progress not written yet, handed to the queue to write in its
        transaction (``restore`` it if that fails)."""
        with self._lock:
            return [self._pending.pop(t) for t in self._by_user.pop(user_id, ())]

    def restore(self, progress: Sequence[Progress]) -> None:
        """Progress that could not be written, kept for the next write (under what came since)."""
        with self._lock:
            for p in progress:
                newer = self._pending.get(p.task_id)
                self._pending[p.task_id] = p.merge(newer) if newer is not None else p
                self._by_user.setdefault(p.user_id, set()).add(p.task_id)

    def overlay(self, task: Task) -> Task:
        """``task`` as read from the database, with the progress this instance took and has
        not written yet (or is writing) laid over it."""
        with self._lock:
            p = self._unwritten(task.id)
        if p is None:
            return task
        changes: dict = {}
        if p.at > task.updated_at:
            changes.update(downloaded_bytes=p.downloaded_bytes, updated_at=p.at)
        if task.items is not None:
            changes["items"] = tuple(_item_with(i, p) for i in task.items)
        return dataclasses.replace(task, **changes) if changes else task

    # -- the writer -------------------------------------------------------------------------

    def write(self, refresh: bool = True) -> None:
        """Write the progress waiting, then (``refresh``, on PostgreSQL) read again the
        status and place of the tasks known here. The writer thread does this every
        ``write_s``, reading at most every ``REFRESH_S``. On SQLite there is one instance:
        nothing changes a task but this one."""
        refresh = refresh and not self.repository.sqlite
        with self._lock:
            batch, self._pending, self._by_user, self._waiting = self._pending, {}, {}, 0
            self._writing = batch
            stamp = self._stamp
            ids = list(self._entries) if refresh else []
        try:
            if batch:
                with self.repository.writing(None) as s:
                    kept = self.repository.write_progress(s, list(batch.values()), wait=False)
                self.restore(kept)  # rows a transaction held: next time
            states = self.repository.running_states(ids) if ids else {}
        except Exception:
            self.restore(list(batch.values()))
            raise
        finally:
            with self._lock:
                self._writing = {}
        if refresh:
            self._refreshed(states, ids, stamp)

    def _refreshed(self, states: dict[str, tuple[str, int | None]], ids: list[str], stamp: int) -> None:
        """Forget the tasks whose status or place another instance changed (unless this one
        changed them since it read), and those idle too long."""
        idle = self.clock() - IDLE_S
        with self._lock:
            for task_id in ids:
                entry = self._entries.get(task_id)
                if entry is None or entry.stamp > stamp:
                    continue
                if states.get(task_id) != (entry.task.status, entry.task.queue_position) or entry.used < idle:
                    del self._entries[task_id]

    def close(self) -> None:
        """Stop the writer, writing what is pending first."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def _run(self) -> None:
        refreshed = self.clock()
        while True:
            self._wake.wait(self.write_s)
            self._wake.clear()
            stopping = self._stopping.is_set()
            refresh = self.clock() - refreshed >= REFRESH_S
            try:
                self.write(refresh)
                if refresh:
                    refreshed = self.clock()
                if self._failing:
                    self._failing = False
                    log.warning("progress is written to the tasks' database again")
            except Exception as exc:  # the database away: kept, and tried again
                if not self._failing:
                    self._failing = True
                    log.warning("progress cannot be written to the tasks' database (kept, tried again): %s", exc)
            if stopping:
                return

    # -- inside the lock --------------------------------------------------------------------

    def _keep(self, progress: Progress) -> None:
        older = self._pending.get(progress.task_id)
        self._pending[progress.task_id] = older.merge(progress) if older is not None else progress
        self._by_user.setdefault(progress.user_id, set()).add(progress.task_id)
        self._waiting += 1
        if self._waiting == self.write_after:
            self._wake.set()

    def _overlaid_item(self, item: Item) -> Item:
        p = self._unwritten(item.task_id)
        return _item_with(item, p) if p is not None else item

    def _unwritten(self, task_id: str) -> Progress | None:
        """A task's progress not written yet: pending, or being written, or both."""
        pending, writing = self._pending.get(task_id), self._writing.get(task_id)
        if pending is not None and writing is not None:
            return writing.merge(pending)
        return pending or writing


def _item_with(item: Item, progress: Progress) -> Item:
    moved = progress.items.get(item.id)
    if moved is None or moved[1] <= item.updated_at or item.status not in OPEN:
        return item
    return dataclasses.replace(item, downloaded_bytes=moved[0], status="downloading", updated_at=moved[1],
                               error_code=None)


def _with(value: V, **changes) -> V:
    """A frozen dataclass with some fields changed: ``dataclasses.replace`` without its
    checks (which cost more than the rest of a report)."""
    new = object.__new__(type(value))
    new.__dict__.update(value.__dict__, **changes)
    return new


def _without_items(task: Task) -> Task:
    return task if task.items is None else dataclasses.replace(task, items=None)


def task_key(task_id: str) -> str | None:
    """A task id in the one form entries are kept by (None: not a UUID)."""
    try:
        return str(uuid.UUID(task_id))
    except ValueError:
        return None
