"""Progress over WebSocket: ``/ws/download/progress`` (the service documents' section 3.3).

A client connects with its bearer token (the ``token`` query parameter, as the documents
suggest, or an ``Authorization: Bearer`` header) and hears about its own tasks only:

- ``downloadTaskStatusUpdate`` when a task is created or changes status, and after each
  progress report, with the speed and the time left the service computes from the recent
  reports (hot state, so whichever instance they reached);
- ``downloadItemProgressUpdate`` for each item a report changed;
- ``downloadError`` when a task or an item fails.

On connecting it is sent a ``downloadTaskStatusUpdate`` for each of its unfinished tasks.
Nothing is expected from the client. A connection refused (no token, a bad one) is an HTTP
401 with the REST API's error body.

``ProgressPublisher`` is the queue's listener: it turns committed changes into messages, in
a thread of its own (one hot-state round trip for all the reports that arrived meanwhile),
and publishes them on the user's channel. ``ProgressHub`` holds this instance's sockets and
its one subscription, and hands each message to the user's sockets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from fastapi import APIRouter, FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from ...errors import DepotError
from .auth import unauthorized
from .hot import HotState, Subscription
from .listener import TaskListener
from .task import Item, Task, TaskChange

if TYPE_CHECKING:
    from .api import Tasks

log = logging.getLogger(__name__)

PATH = "/ws/download/progress"
SPEED_WINDOW_S = 20.0  # speed is measured over the reports of this long
STOPPED = frozenset({"paused", "completed", "error", "cancelled", "queued"})  # a later start measures afresh
ENDED = frozenset({"completed", "error", "cancelled"})
SOCKET_BACKLOG = 256  # payloads waiting for a slow socket before it is closed (1013: come back)


@dataclass(frozen=True)
class Speed:
    """A task's speed over its recent reports, and the time left at that speed (None while
    there is no speed to go by)."""

    bytes_per_second: int
    eta_seconds: int | None


def speed_of(samples: Sequence[tuple[float, int]], downloaded: int, total: int) -> Speed:
    """The speed between the oldest and the newest sample within ``SPEED_WINDOW_S`` of the
    newest, and the seconds left for ``total - downloaded`` bytes at it."""
    if not samples:
        return Speed(0, None)
    samples = sorted(samples)
    newest_at, newest_bytes = samples[-1]
    oldest_at, oldest_bytes = next(s for s in samples if s[0] >= newest_at - SPEED_WINDOW_S)
    if newest_at <= oldest_at or newest_bytes <= oldest_bytes:
        return Speed(0, None)
    bps = (newest_bytes - oldest_bytes) / (newest_at - oldest_at)
    return Speed(round(bps), math.ceil(max(0, total - downloaded) / bps))


# -- the messages -----------------------------------------------------------------------------


def task_status(task: Task, speed: Speed) -> dict:
    if task.status == "completed":
        speed = Speed(0, 0)
    error = {"errorCode": task.error_code, "errorMessage": task.error_message} if task.status == "error" else None
    return {"type": "downloadTaskStatusUpdate", "payload": {
        "taskId": task.id, "status": task.status, "totalProgressPercentage": task.progress_percentage,
        "downloadSpeedBps": speed.bytes_per_second, "estimatedTimeLeftSeconds": speed.eta_seconds,
        "downloadedBytes": task.downloaded_bytes, "totalSizeBytes": task.total_size_bytes, "errorDetails": error}}


def item_progress(task: Task, item: Item) -> dict:
    return {"type": "downloadItemProgressUpdate", "payload": {
        "taskId": task.id, "itemId": item.id, "relativePath": item.relative_path, "status": item.status,
        "downloadedBytes": item.downloaded_bytes, "totalFileSizeBytes": item.total_size_bytes}}


def download_error(task: Task, item: Item | None = None) -> dict:
    code = (item.error_code if item else task.error_code) or "DOWNLOAD_FAILED"
    message = task.error_message if item is None and task.error_message else f"{code}: " + (
        f"{item.relative_path} failed" if item else "the download failed")
    payload = {"taskId": task.id, "itemId": item.id if item else None, "errorCode": code, "errorMessage": message}
    return {"type": "downloadError", "payload": payload}


def encode(messages: Sequence[dict]) -> bytes:
    """Messages as one payload: compact JSON, one a line (JSON text has no raw newline)."""
    return b"\n".join(json.dumps(m, separators=(",", ":"), ensure_ascii=False).encode() for m in messages)


# -- the publishing side ------------------------------------------------------------------------


class ProgressPublisher(TaskListener):
    """Turns the queue's committed changes into messages on the users' channels, in a
    thread of its own, in the order they were told."""

    def __init__(self, hot: HotState, clock: Callable[[], float] = time.time):
        self.hot, self.clock = hot, clock
        self._todo: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = threading.Condition()
        self._pending = 0
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="depot-progress", daemon=True)
        self._thread.start()

    def task_changed(self, change: TaskChange) -> None:
        self._put(("status", change.task, None, 0.0))

    def items_progressed(self, task: Task, items: Sequence[Item]) -> None:
        self._put(("progress", task, tuple(items), self.clock()))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything told so far is published; False if it took longer."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        self._put(None)
        self._thread.join(timeout=10)

    def _put(self, entry) -> None:
        with self._idle:
            self._pending += 1
        self._todo.put(entry)

    def _run(self) -> None:
        while True:
            batch = [self._todo.get()]
            while len(batch) < 1000:
                try:
                    batch.append(self._todo.get_nowait())
                except queue.Empty:
                    break
            work = [e for e in batch if e is not None]
            try:
                if work:
                    self._publish(work)
                if self._failing:
                    self._failing = False
                    log.warning("progress messages are published again")
            except Exception:  # Redis away: these messages are lost, the next ones may pass
                if not self._failing:
                    self._failing = True
                    log.exception("progress messages cannot be published (they are dropped until they can)")
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()
            if len(work) < len(batch):
                return

    def _publish(self, work: list) -> None:
        """One round trip records the samples of the reports in ``work``; a stop in between
        (its samples forgotten) is taken in its place, after the reports before it."""
        out: list[tuple[str, bytes]] = [("", b"")] * len(work)
        waiting: list[int] = []  # reports whose samples are not recorded yet

        def measure() -> None:
            reports = [work[i] for i in waiting]
            kept = self.hot.record([(task.id, at, task.downloaded_bytes) for _, task, _, at in reports])
            for i, (_, task, items, _), samples in zip(waiting, reports, kept):
                if not self.hot.watched(task.user_id):  # no socket anywhere: nothing to build
                    out[i] = (task.user_id, b"")
                    continue
                messages = [] if task.status in ENDED else [  # ended by this report: its status was told
                    task_status(task, speed_of(samples, task.downloaded_bytes, task.total_size_bytes))]
                messages += [item_progress(task, item) for item in items]
                messages += [download_error(task, item) for item in items if item.status == "error"]
                out[i] = (task.user_id, encode(messages))
            waiting.clear()

        for i, (kind, task, _, _) in enumerate(work):
            if kind == "progress":
                waiting.append(i)
                continue
            messages = [task_status(task, Speed(0, None))]
            if task.status == "error":
                messages.append(download_error(task))
            out[i] = (task.user_id, encode(messages))
            if task.status in STOPPED:
                if any(work[j][1].id == task.id for j in waiting):
                    measure()
                self.hot.forget(task.id)
        if waiting:
            measure()
        self.hot.publish(out)


# -- the receiving side -------------------------------------------------------------------------


class _Socket:
    def __init__(self, ws: WebSocket, user: str):
        self.ws, self.user = ws, user
        self.backlog: asyncio.Queue[list[str] | None] = asyncio.Queue(SOCKET_BACKLOG)  # payloads, as frames


class ProgressHub:
    """This instance's WebSockets, by user, and its one subscription to their channels."""

    def __init__(self, hot: HotState, authenticate: Callable[[str], str],
                 unfinished: Callable[[str], Sequence[Task]] | None = None):
        self.hot = hot
        self.authenticate = authenticate  # a bearer token's user; DepotError (UNAUTHORIZED) if none
        self.unfinished = unfinished  # the user's unfinished tasks, told on connecting
        self.sockets: dict[str, set[_Socket]] = {}
        self._watching: dict[str, asyncio.Future] = {}  # by user: the subscription's watch, once done
        self.subscription: Subscription | None = None
        self._reader: asyncio.Task | None = None
        self._starting = asyncio.Lock()

    async def start(self) -> Subscription:
        """Subscribe (once: the first socket does it, in the server's event loop)."""
        async with self._starting:
            if self.subscription is None:
                subscription = await self.hot.subscribe(self._deliver)
                self._reader = asyncio.create_task(subscription.run())
                self.subscription = subscription
        return self.subscription

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.subscription is not None:
            await self.subscription.close()
        self.subscription = self._reader = None

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_websocket_route(PATH, self.serve)
        return router

    def _deliver(self, user: str, payload: bytes) -> None:
        """A payload to each of the user's sockets: cut into its frames once, for them all."""
        sockets = self.sockets.get(user)
        if not sockets:
            return
        frames = _frames(payload)
        for s in sockets:
            try:
                s.backlog.put_nowait(frames)
            except asyncio.QueueFull:  # too slow: it is closed, and comes back for the state
                while not s.backlog.empty():
                    s.backlog.get_nowait()
                s.backlog.put_nowait(None)

    async def serve(self, ws: WebSocket) -> None:
        token = ws.query_params.get("token") or _bearer(ws.headers.get("authorization", ""))
        try:
            if not token:
                raise unauthorized("no bearer token: connect with ?token=JWT or an Authorization header", None)
            user = self.authenticate(token)
        except DepotError as exc:
            await _refuse(ws, exc)
            return
        subscription = await self.start()
        s = _Socket(ws, user)
        if user not in self.sockets:
            self.sockets[user] = set()
            self._watching[user] = asyncio.ensure_future(subscription.watch(user))
        self.sockets[user].add(s)
        try:
            # subscribed and the state read before the handshake ends: a change the client
            # makes once connected comes after both
            await asyncio.shield(self._watching[user])
            tasks = await asyncio.to_thread(self.unfinished, user) if self.unfinished is not None else []
            if tasks:
                s.backlog.put_nowait(_frames(encode([task_status(t, Speed(0, None)) for t in tasks])))
            await ws.accept()
            await _until_either(self._send(s), self._drain(ws))
        finally:
            self.sockets[user].discard(s)
            if not self.sockets[user]:
                del self.sockets[user], self._watching[user]
                await subscription.unwatch(user)

    @staticmethod
    async def _send(s: _Socket) -> None:
        while True:
            frames = await s.backlog.get()
            if frames is None:
                await s.ws.close(code=1013, reason="too slow: connect again for the current state")
                return
            for frame in frames:
                await s.ws.send_text(frame)

    @staticmethod
    async def _drain(ws: WebSocket) -> None:
        """Read (and ignore) what the client sends, until it goes."""
        try:
            while True:
                await ws.receive_text()
        except (WebSocketDisconnect, RuntimeError):
            return


async def _until_either(*coroutines) -> None:
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
    for t in done:
        if not t.cancelled():
            t.exception()  # a socket that went away ends its connection, nothing more


def _frames(payload: bytes) -> list[str]:
    """A payload's messages, one a frame (none for an empty payload)."""
    return payload.decode().split("\n") if payload else []


def _bearer(header: str) -> str:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _refuse(ws: WebSocket, exc: DepotError) -> None:
    """The REST API's answer to the same token: 401 and its error body."""
    body = {"errors": [{"status": "401", "code": exc.code, "title": (type(exc).__doc__ or exc.code).strip(),
                        "detail": str(exc)}]}
    try:
        await ws.send_denial_response(JSONResponse(body, status_code=401, headers=getattr(exc, "headers", None)))
    except RuntimeError:  # the server cannot answer a WebSocket handshake with HTTP
        await ws.close(code=1008, reason=exc.code)


class Progress:
    """The WebSocket progress of download tasks as mounted on the app (``app.state.progress``)."""

    def __init__(self, tasks: Tasks, hot: HotState, clock: Callable[[], float] = time.time):
        self.publisher = ProgressPublisher(hot, clock)
        tasks.listeners.add(self.publisher)
        self.hub = ProgressHub(hot, lambda token: tasks.auth.verify(token).id, tasks.queue.queue)

    async def stop(self) -> None:
        await self.hub.stop()
        self.publisher.close()


def mount(app: FastAPI, tasks: Tasks, hot: HotState) -> Progress:
    """Add ``/ws/download/progress`` to ``app``, told by ``tasks``' queue."""
    progress = Progress(tasks, hot)
    app.include_router(progress.hub.router())
    app.state.progress = progress
    return progress
