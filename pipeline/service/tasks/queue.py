"""The user's download queue: the documents' statuses and what moves a task between them
(spec 4.1, flows 14.2 and 14.4), queue order and priorities, and the limits.

The service does not download: the player's client does, and reports. So:

- A new task is ``queued``, placed after the user's unfinished tasks of its priority or
  higher (``queuePosition`` 0 is first). At most ``max_active_tasks`` unfinished tasks a
  user (queued, preparing, downloading, paused, verifying); one more is
  ``DOWNLOAD_QUEUE_FULL``. The same download asked again (product, version, target path)
  while unfinished is the task already there: a second terminal joins it.
- The first ``max_concurrent_downloads`` of the user's runnable tasks (in queue order, paused
  ones passed over) hold the download slots. A queued task starts (``downloading``) when
  its client reports and it holds a slot; a downloading task that a task ahead of it
  takes the slot from goes back to ``queued`` (its client's next report says so), as does
  the lowest when a resumed or reordered task ahead starts. ``verifying`` is never taken back.
- pause: queued, preparing or downloading -> ``paused``. resume: paused or error ->
  ``downloading`` if the task holds a slot, else ``queued``. cancel (DELETE): anything not
  completed or cancelled -> ``cancelled``. Reports: downloading -> ``verifying`` ->
  ``completed``, or -> ``error``. Anything else is ``INVALID_TASK_STATE``; a report to a
  task that is not running changes nothing and answers its status (paused, cancelled...).
- Integrity checks (kind ``verify``) are tasks outside the queue: queued (pending) ->
  verifying (in progress) at the first report -> completed, or error.

Every change is one transaction holding the user's lock (repository.writing); listeners
hear of it once it is committed. A progress report that only moves bytes of a running task
is taken in memory and written behind (running.py); every transaction writes the user's
progress taken so far before it changes anything.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from ...errors import InvalidArgument, NotFound, QueueFull, TaskStateConflict
from .listener import Listeners, TaskListener
from .models import DownloadItem, DownloadTask, UserDownloadHistory, utcnow
from .repository import Repository, item_snapshot, snapshot, uuid_of
from .running import RUNNING, RunningTasks, task_key
from .task import FINAL, UNFINISHED, Item, Task, TaskChange

DOWNLOADS = ("download", "update")  # the kinds in the queue
RUNNABLE = ("queued", "preparing", "downloading", "verifying")  # hold or wait for a slot


@dataclass(frozen=True)
class NewItem:
    relative_path: str
    total_size_bytes: int
    expected_hash_sha256: str | None = None
    operation: str | None = None


@dataclass(frozen=True)
class ItemReport:
    """One item's progress: by ``item_id`` or by ``relative_path``."""

    downloaded_bytes: int
    item_id: str | None = None
    relative_path: str | None = None
    status: str | None = None  # downloading, paused, completed, error, verifying (None: downloading)
    error_code: str | None = None


@dataclass(frozen=True)
class Report:
    """What the client that runs a task reports: items' progress, the task's bytes, and
    perhaps its new status (verifying, completed, error)."""

    items: tuple[ItemReport, ...] = ()
    downloaded_bytes: int | None = None  # the task's; None: the sum of its items'
    status: str | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass
class _Change:
    """What a transaction changed, told to listeners once committed."""

    session: Session
    statuses: list[tuple[DownloadTask, str | None]] = field(default_factory=list)
    items: list[DownloadItem] = field(default_factory=list)
    queue_touched: bool = False
    queue: list[DownloadTask] | None = None  # the user's queue as the change left it, if it has it in order
    progress: bool = False  # a report was applied
    answer: DownloadTask | None = None
    with_items: bool = False
    # filled in before the commit
    told: tuple[list[TaskChange], tuple[Task, list[Item]] | None, list[Task] | None] = ([], None, None)
    result: Task | None = None

    def status(self, row: DownloadTask, old: str | None) -> None:
        """``row`` leaves ``old`` (the first status it had in this transaction is the one told)."""
        if all(r is not row for r, _ in self.statuses):
            self.statuses.append((row, old))


class Queue:
    def __init__(self, repository: Repository, listeners: TaskListener | None = None, max_active_tasks: int = 20,
                 max_concurrent_downloads: int = 1, running: RunningTasks | None = None):
        self.repository = repository
        self.listeners = listeners if listeners is not None else Listeners()
        self.max_active_tasks = max_active_tasks
        self.slots = max_concurrent_downloads
        self.running = running if running is not None else RunningTasks(repository)

    def close(self) -> None:
        """Write the progress taken in memory, and stop writing."""
        self.running.close()

    # -- reading ----------------------------------------------------------------------------

    def get(self, user_id: str, task_id: str, kinds: Sequence[str] = DOWNLOADS) -> Task:
        """The user's task with its items; NOT_FOUND for another user's (ids do not leak)."""
        with self.repository.reading() as s:
            row = self._own(s, user_id, task_id, kinds)
            task = snapshot(row, self._position(s, row), with_items=True)
        return self.running.overlay(task)

    def page(self, user_id: str, statuses: Sequence[str] = (), page: int = 1, limit: int = 20,
             kinds: Sequence[str] = DOWNLOADS) -> tuple[list[Task], int]:
        """A page of the user's tasks, newest first, and how many match in all."""
        with self.repository.reading() as s:
            rows, total = Repository.page(s, user_id, kinds, statuses, (page - 1) * limit, limit)
            positions = {r.id: i for i, r in enumerate(Repository.queue(s, user_id))}
            found = [snapshot(r, positions.get(r.id)) for r in rows]
        return [self.running.overlay(t) for t in found], total

    def queue(self, user_id: str) -> list[Task]:
        with self.repository.reading() as s:
            found = [snapshot(r, i) for i, r in enumerate(Repository.queue(s, user_id))]
        return [self.running.overlay(t) for t in found]

    def installed(self, user_id: str, product_id: str) -> tuple[str, str] | None:
        """The version and path of the user's last completed download or update of the product."""
        with self.repository.reading() as s:
            found = Repository.installed(s, user_id, product_id)
            return (found.version_id, found.target_path or "") if found is not None else None

    # -- changing ---------------------------------------------------------------------------

    def create(self, user_id: str, kind: str, product_id: str, version_id: str, target_path: str, priority: int,
               items: Sequence[NewItem], from_version_id: str | None = None) -> tuple[Task, bool]:
        """A new queued task, or the same one already unfinished (joined): (task, created)."""
        with self._change(user_id) as c:
            s = c.session
            queue = Repository.queue(s, user_id) if kind in DOWNLOADS else list(s.scalars(_unfinished(user_id, kind)))
            same = next((r for r in queue if (r.kind, r.product_id, r.version_id, r.target_path, r.from_version_id)
                         == (kind, product_id, version_id, target_path, from_version_id)), None)
            if same is not None:
                c.answer = same
                created = False
            else:
                if kind in DOWNLOADS and len(queue) >= self.max_active_tasks:
                    raise QueueFull(f"user {user_id} has {len(queue)} unfinished download tasks, the most allowed "
                                    f"({self.max_active_tasks}): let one finish, or cancel one")
                now = utcnow()
                row = DownloadTask(id=uuid.uuid4(), user_id=user_id, kind=kind, product_id=product_id,
                                   version_id=version_id, from_version_id=from_version_id, target_path=target_path,
                                   status="queued", priority=priority, created_at=now, updated_at=now,
                                   total_size_bytes=sum(i.total_size_bytes for i in items), downloaded_bytes=0,
                                   queue_order=0, error_message=None, error_code=None)
                if kind in DOWNLOADS:
                    place = next((n for n, r in enumerate(queue) if r.priority < priority), len(queue))
                    queue.insert(place, row)
                    _renumber(queue)
                    c.queue_touched = True
                    c.queue = queue
                Repository.add(s, row, items)  # the row stays out of the session: a value, not an object
                c.status(row, None)
                c.answer = row
                created = True
        assert c.result is not None
        return c.result, created

    def pause(self, user_id: str, task_id: str) -> Task:
        with self._change(user_id) as c:
            row = self._own(c.session, user_id, task_id, DOWNLOADS)
            _require(row, ("queued", "preparing", "downloading"), "paused")
            self._set(c, row, "paused")
        assert c.result is not None
        return c.result

    def resume(self, user_id: str, task_id: str) -> Task:
        with self._change(user_id) as c:
            s = c.session
            row = self._own(s, user_id, task_id, DOWNLOADS)
            _require(row, ("paused", "error"), "resumed")
            if row.status == "error" and len(Repository.queue(s, user_id)) >= self.max_active_tasks:
                raise QueueFull(f"user {user_id} has {self.max_active_tasks} unfinished download tasks, the most "
                                "allowed: let one finish, or cancel one, before resuming this one")
            old = row.status
            row.status, row.error_code, row.error_message = "queued", None, None
            self._start_if_slot(c, row)
            row.updated_at = utcnow()
            c.status(row, old)
            c.queue_touched = True
            c.answer = row
        assert c.result is not None
        return c.result

    def cancel(self, user_id: str, task_id: str, kinds: Sequence[str] = DOWNLOADS) -> Task:
        with self._change(user_id) as c:
            row = self._own(c.session, user_id, task_id, kinds)
            if row.status in FINAL:
                raise TaskStateConflict(f"task {task_id} is {row.status}: it cannot be cancelled")
            self._set(c, row, "cancelled")
            if row.kind in DOWNLOADS:
                c.session.add(_history(row, "cancelled"))
        assert c.result is not None
        return c.result

    def reorder(self, user_id: str, orders: Sequence[tuple[str, int]]) -> list[Task]:
        """Put each named task at its place (0 first); the others keep their order around them."""
        ids = [task_id for task_id, _ in orders]
        places = [place for _, place in orders]
        if len({uuid_of(i) or i for i in ids}) != len(ids):
            raise InvalidArgument("a task is named twice in the new order")
        if len(set(places)) != len(places):
            raise InvalidArgument("two tasks are given the same place in the new order")
        with self._change(user_id) as c:
            queue = Repository.queue(c.session, user_id)
            by_id = {r.id: r for r in queue}
            for task_id, place in orders:
                if uuid_of(task_id) not in by_id:
                    raise NotFound(f"no task {task_id} in the queue")
                if not 0 <= place < len(queue):
                    raise InvalidArgument(f"order {place}: the queue has places 0 to {len(queue) - 1}")
            placed: list[DownloadTask | None] = [None] * len(queue)
            for task_id, place in orders:
                key = uuid_of(task_id)
                assert key is not None, "checked above"
                placed[place] = by_id[key]
            named = {uuid_of(t) for t in ids}
            rest = iter([r for r in queue if r.id not in named])
            _renumber([p if p is not None else next(rest) for p in placed])
            c.queue_touched = True
        with self.repository.reading() as s:
            return [snapshot(r, i) for i, r in enumerate(Repository.queue(s, user_id))]

    def report(self, user_id: str, task_id: str, report: Report, kinds: Sequence[str] = DOWNLOADS) -> Task:
        """Apply the client's progress report, if the task runs (a queued one starts if it
        holds a slot); answer the task as it is now."""
        key = task_key(task_id)
        if key is not None and tuple(kinds) == DOWNLOADS:
            taken = self._in_memory(user_id, key, report, True)
            if taken is None and self._read_for(user_id, key, report):
                taken = self._in_memory(user_id, key, report, True)
            if taken is not None:
                return taken
        with self._change(user_id) as c:
            s = c.session
            row = self._own(s, user_id, task_id, kinds)
            c.answer = row
            if row.status in ("queued", "preparing"):
                if row.kind == "verify":
                    c.status(row, row.status)
                    row.status = "verifying"
                elif self._start_if_slot(c, row):
                    c.status(row, "queued")
                    c.queue_touched = True
            if row.status in ("downloading", "verifying"):
                self._apply(c, row, report)
        assert c.result is not None
        self.running.remember(c.result, c.told[1][1] if c.told[1] is not None else ())
        return c.result

    def report_in_memory(self, user_id: str, task_id: str, report: Report) -> Task | None:
        """The report taken without the database and without an item changing status (so
        that no listener writes anything: for the event loop), or None: ``report`` takes it."""
        key = task_key(task_id)
        return self._in_memory(user_id, key, report, False) if key is not None else None

    def _read_for(self, user_id: str, key: str, report: Report) -> bool:
        """Read (without writing or locking) what this instance lacks to take a report in
        memory: the task, if it runs and is not known here, and the items the report names
        that it has not seen. False: nothing was missing, or the task is not running."""
        known = self.running.known(user_id, key)
        missing = self.running.missing(user_id, key, report) if known else None
        if known and not missing:
            return False
        since = self.running.stamp()
        with self.repository.reading() as s:
            if not known:
                row = Repository.task(s, user_id, key, DOWNLOADS)
                if row is None or row.status not in RUNNING:
                    return False
                self.running.fill(snapshot(row, self._position(s, row)), since)
                missing = self.running.missing(user_id, key, report)
            if missing:
                self.running.add_items(key, [item_snapshot(r) for r in Repository.items(s, uuid.UUID(key), missing)])
        return True

    def _in_memory(self, user_id: str, key: str, report: Report, status_changes: bool) -> Task | None:
        taken = self.running.take(user_id, key, report, status_changes)
        if taken is None:
            return None
        task, moved = taken
        if moved is not None:
            self.listeners.items_progressed(task, moved)
        return task

    # -- inside a transaction ---------------------------------------------------------------

    def _apply(self, c: _Change, row: DownloadTask, report: Report) -> None:
        s = c.session
        now = utcnow()
        items = Repository.items(s, row.id, [r.item_id for r in report.items if r.item_id],
                                 [r.relative_path for r in report.items if r.relative_path and not r.item_id])
        by_id = {i.id: i for i in items}
        by_path = {i.relative_path: i for i in items}
        for r in report.items:
            key = uuid_of(r.item_id) if r.item_id else None
            item = (by_id.get(key) if key else None) if r.item_id else by_path.get(r.relative_path or "")
            if item is None:
                raise InvalidArgument(f"task {row.id} has no item {r.item_id or r.relative_path!r}")
            if r.downloaded_bytes > item.total_size_bytes:
                raise InvalidArgument(f"item {item.relative_path!r}: {r.downloaded_bytes} bytes reported, it has "
                                      f"{item.total_size_bytes}")
            status = r.status or "downloading"
            if item.status == "error" and status != "error":
                item.retry_count += 1
            item.downloaded_bytes, item.status, item.updated_at = r.downloaded_bytes, status, now
            item.error_code = r.error_code if status == "error" else None
            if item not in c.items:
                c.items.append(item)
        if report.downloaded_bytes is not None:
            if report.downloaded_bytes > row.total_size_bytes:
                raise InvalidArgument(f"{report.downloaded_bytes} bytes reported, task {row.id} has "
                                      f"{row.total_size_bytes}")
            row.downloaded_bytes = report.downloaded_bytes
        elif report.items:
            s.flush()
            row.downloaded_bytes = Repository.item_bytes(s, row)
        row.updated_at = now
        if report.status == "verifying" and row.status == "downloading":
            c.status(row, row.status)
            row.status = "verifying"
        elif report.status == "completed":
            self._set(c, row, "completed")
            row.downloaded_bytes = row.total_size_bytes
            s.execute(update(DownloadItem).where(
                DownloadItem.download_task_id == row.id,
                DownloadItem.status.in_(("pending", "downloading", "paused", "verifying")))
                .values(status="completed", downloaded_bytes=DownloadItem.total_size_bytes, updated_at=now))
            if row.kind in DOWNLOADS:
                s.add(_history(row, "completed"))
        elif report.status == "error":
            self._set(c, row, "error")
            row.error_code = report.error_code or "DOWNLOAD_FAILED"
            row.error_message = report.error_message
        c.progress = True

    def _set(self, c: _Change, row: DownloadTask, status: str) -> None:
        c.status(row, row.status)
        row.status, row.updated_at = status, utcnow()
        c.queue_touched = c.queue_touched or row.kind in DOWNLOADS
        c.answer = row

    def _start_if_slot(self, c: _Change, row: DownloadTask) -> bool:
        """Start ``row`` (queued) if it holds a download slot; a downloading task behind it
        that no longer holds one goes back to queued."""
        runnable = [r for r in Repository.queue(c.session, row.user_id) if r.status in RUNNABLE]
        if row not in runnable[:self.slots]:
            return False
        row.status = "downloading"
        for r in runnable[self.slots:]:
            if r.status == "downloading":
                c.status(r, r.status)
                r.status, r.updated_at = "queued", utcnow()
        return True

    @staticmethod
    def _own(s: Session, user_id: str, task_id: str, kinds: Sequence[str]) -> DownloadTask:
        row = Repository.task(s, user_id, task_id, kinds)
        if row is None:
            raise NotFound(f"no task {task_id}")
        return row

    def _position(self, s: Session, row: DownloadTask) -> int | None:
        if row.kind not in DOWNLOADS or row.status not in RUNNABLE + ("paused",):
            return None
        return next((i for i, r in enumerate(Repository.queue(s, row.user_id)) if r.id == row.id), None)

    @contextmanager
    def _change(self, user_id: str) -> Iterator[_Change]:
        """One transaction for ``user_id``, after the user's progress taken in memory is
        written; once committed, the listeners are told."""
        progress = self.running.pending_for(user_id)
        try:
            with self.repository.writing(user_id) as s:
                self.repository.write_progress(s, progress, wait=True)
                c = _Change(s)
                yield c
                s.flush()
                queue = c.queue if c.queue is not None else Repository.queue(s, user_id)
                positions = {r.id: i for i, r in enumerate(queue)}
                changes = [TaskChange(snapshot(r, positions.get(r.id)), old) for r, old in c.statuses
                           if old != r.status]
                progressed = None
                if c.progress:
                    assert c.answer is not None
                    progressed = (snapshot(c.answer, positions.get(c.answer.id)), [item_snapshot(i) for i in c.items])
                c.told = (changes, progressed, [snapshot(r, i) for i, r in enumerate(queue)] if c.queue_touched else None)
                if c.answer is not None:
                    c.result = snapshot(c.answer, positions.get(c.answer.id), with_items=c.with_items)
        except BaseException:
            self.running.restore(progress)
            raise
        changes, progressed, queue_now = c.told
        self.running.changed([change.task for change in changes] + list(queue_now or ())
                             + ([c.result] if c.result is not None else []))
        for change in changes:
            self.listeners.task_changed(change)
        if progressed is not None:
            self.listeners.items_progressed(*progressed)
        if queue_now is not None:
            self.listeners.queue_changed(user_id, queue_now)


def _unfinished(user_id: str, kind: str) -> Select[DownloadTask]:
    return select(DownloadTask).where(DownloadTask.user_id == user_id, DownloadTask.kind == kind,
                                      DownloadTask.status.in_(sorted(UNFINISHED)))


def _require(row: DownloadTask, allowed: Sequence[str], what: str) -> None:
    if row.status not in allowed:
        raise TaskStateConflict(f"task {row.id} is {row.status}: only a task that is {' or '.join(allowed)} "
                                f"can be {what}")


def _renumber(rows: Sequence[DownloadTask]) -> None:
    for n, r in enumerate(rows):
        if r.queue_order != n:
            r.queue_order = n


def _history(row: DownloadTask, status: str) -> UserDownloadHistory:
    now = utcnow()
    started = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=now.tzinfo)
    return UserDownloadHistory(user_id=row.user_id, product_id=row.product_id, version_id=row.version_id,
                               status=status, completed_at=now if status == "completed" else None,
                               total_download_time_seconds=int((now - started).total_seconds()),
                               total_bytes_downloaded=row.downloaded_bytes, download_task_id=row.id,
                               target_path=row.target_path)
