"""The observer seam: whatever must hear of tasks (the WebSocket fan-out, events, metrics)
is a ``TaskListener``. The queue calls each listener after every committed change, in the
thread that made it (a worker thread of the web server), in the order the changes were
committed for that task; a progress report taken in memory (running.py) is told as it is
taken, before it is written, in the thread that took it: a worker thread, or the server's
event loop when no item changes status. A listener must be quick (hand work to its own
thread or loop) and must not raise: what it raises is logged and dropped, never the
caller's error."""

from __future__ import annotations

import logging
from typing import Sequence

from .task import Item, Task, TaskChange

log = logging.getLogger(__name__)


class TaskListener:
    """Override what you need; the others do nothing."""

    def task_changed(self, change: TaskChange) -> None:
        """A task was created (``old_status`` None) or its status changed."""

    def items_progressed(self, task: Task, items: Sequence[Item]) -> None:
        """A progress report was applied (committed, or taken in memory): ``task`` as it is
        now (its bytes) and the items the report changed, as they are now (one call per
        report, not per chunk)."""

    def queue_changed(self, user_id: str, queue: Sequence[Task]) -> None:
        """The user's queue (unfinished download and update tasks, in order, without items)
        after a change of its order or membership."""


class Listeners(TaskListener):
    """Several listeners as one; each is told in turn, and one that raises is logged."""

    def __init__(self, listeners: Sequence[TaskListener] = ()):
        self.listeners = list(listeners)

    def add(self, listener: TaskListener) -> None:
        self.listeners.append(listener)

    def task_changed(self, change: TaskChange) -> None:
        for listener in self.listeners:
            _safely(listener.task_changed, change)

    def items_progressed(self, task: Task, items: Sequence[Item]) -> None:
        for listener in self.listeners:
            _safely(listener.items_progressed, task, items)

    def queue_changed(self, user_id: str, queue: Sequence[Task]) -> None:
        for listener in self.listeners:
            _safely(listener.queue_changed, user_id, queue)


def _safely(call, *args) -> None:
    try:
        call(*args)
    except Exception:  # a listener never breaks the change it hears of
        log.exception("task listener %r failed", call)
