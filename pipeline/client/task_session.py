"""A download run as a task of the download service: what ``--service URL --token T`` adds
to ``depot install``, ``update`` and ``verify`` (docs/cli.md).

The client creates the user's task for the product and version, or joins the one already
open for them (the service answers the same task for the same download), waits while the
task is queued behind the user's others, then downloads as it always does, through the
service's signed links. A thread reports progress every half second, never per chunk;
each answer carries the task's status as it is now. Paused or cancelled from elsewhere
(the API, another terminal), the download stops before its next request: only the
requests already in flight finish, and every chunk fetched is written whole, so a resume
downloads each chunk once. The command then ends with ``DOWNLOAD_PAUSED`` (the staging is
kept: run it again once the task is resumed) or ``DOWNLOAD_CANCELLED`` (the partly
downloaded files are removed, as the documents' DELETE says). A service that does not
answer a report is not a reason to stop: the download goes on and the reports resume
when it answers again.

The task's bytes are the file bytes in place (already intact, or written); a file's bytes
are the task's laid over the files in manifest order, the order install writes them in.
For an update, whose items count the bytes to download, the task's bytes are the share of
the update's work done.
"""

from __future__ import annotations

import bisect
import itertools
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Callable, TypeVar

import urllib3

from ..core.progress import Progress
from ..core.rate import Cancel, RateLimiter
from ..errors import (DepotError, DownloadCancelled, DownloadPaused, EntitlementUnavailable, Forbidden,
                      InstallBusy, InvalidArgument, InvalidKey, LinkGenerationFailed, NotFound, QueueFull,
                      StoreUnavailable, TaskStateConflict, Unauthorized)
from ..storage.translate import translated
from .game_dir import GameDir
from .verify import VerifyReport, verify

T = TypeVar("T")
API = "/api/v1/download"
INTERVAL = 0.5  # seconds between progress reports
MOST_ITEMS = 10_000  # items a report may carry
FINAL_TRIES = 5  # the last report is tried this often (backoff from INTERVAL), for a service restarting
WAITING = ("queued", "preparing")
STOPPING: dict[str, type[DepotError]] = {"paused": DownloadPaused, "cancelled": DownloadCancelled}
# What the service answers, as the client raises it (an unknown code is the service's failure).
ANSWERS = {c.code: c for c in (NotFound, InvalidKey, InvalidArgument, Unauthorized, Forbidden, QueueFull,
                               TaskStateConflict, EntitlementUnavailable, LinkGenerationFailed)}

Notice = Callable[[str], None]


def quiet(message: str) -> None:
    """A Notice that says nothing."""


class TaskApi:
    """The service's tasks API, called as the user a bearer token names."""

    def __init__(self, url: str, token: str, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._pool = urllib3.PoolManager(maxsize=2, retries=False,
                                         timeout=urllib3.Timeout(connect=min(timeout, 3.0), read=timeout))

    def call(self, method: str, path: str, kind: str | None = None, attributes: dict | None = None) -> dict:
        """The answer's ``data``; the service's refusals as depot's errors, naming it."""
        body = json.dumps({"data": {"type": kind, "attributes": attributes}}).encode() if kind else None
        with translated(self.url):
            r = self._pool.request(method, self.url + API + path, body=body, headers=self._headers)
        if r.status >= 300:
            error = _first_error(r.data)
            if not error:  # a web server, not the service: its page says nothing depot can use
                raise StoreUnavailable(f"{self.url}: answered {method} {API}{path} with HTTP {r.status} and no "
                                       "depot error: is this the depot service's URL?")
            known = ANSWERS.get(error.get("code", ""))
            detail = error.get("detail") or error.get("title") or ""
            if known is Unauthorized:
                raise Unauthorized(f"{self.url} refused the bearer token (--token, env DEPOT_TOKEN): {detail}")
            if known is not None:
                raise known(f"{self.url}: {detail}")
            raise StoreUnavailable(f"{self.url}: the service answered HTTP {r.status} {error.get('code', '')}: "
                                   f"{detail}")
        return json.loads(r.data)["data"] if r.data else {}

    def open(self, path: str, kind: str, attributes: dict) -> dict:
        """A task created (or joined) by POST ``path``. A service that does not run
        download tasks has no such route: said so, not as a plain NOT_FOUND."""
        try:
            return self.call("POST", path, kind, attributes)
        except NotFound:
            if self._runs_tasks():
                raise  # the product or version, named by the service
            raise NotFound(f"{self.url} does not run download tasks (no route POST {API}{path}): start it with "
                           "--jwt-key or --jwks (docs/cli.md: depot serve), or download without a token "
                           "(leave out --token, unset DEPOT_TOKEN)") from None

    def _runs_tasks(self) -> bool:
        """Whether the service has the tasks API: its queue route answers anything but 404."""
        try:
            self.call("GET", "/tasks/queue")
        except NotFound:
            return False
        except DepotError:
            pass
        return True

    def download(self, product: str, version: str, target: Path) -> dict:
        """The user's task downloading ``version`` into ``target``: created, or joined."""
        task = self.open("/tasks", "downloadTaskRequest",
                         {"productId": product, "versionId": version, "targetPath": str(target)})
        return self.call("GET", f"/tasks/{task['id']}")  # with its items

    def update(self, product: str, installed: str, version: str, target: Path) -> dict:
        task = self.open("/updates/initiate", "updateInitiateRequest",
                         {"productId": product, "currentVersionId": installed, "targetVersionId": version,
                          "targetPath": str(target)})
        return self.call("GET", f"/tasks/{task['id']}")

    def verification(self, product: str, version: str, target: Path) -> dict:
        return self.open("/integrity/verify", "integrityVerificationRequest",
                         {"productId": product, "installedVersionId": version, "targetPath": str(target)})

    def report(self, task: dict, attributes: dict) -> dict:
        where = "integrity/verify" if task["type"] == "verificationTask" else "tasks"
        return self.call("POST", f"/{where}/{task['id']}/progress", "downloadProgressReport", attributes)


def _first_error(data: bytes) -> dict:
    try:
        return json.loads(data)["errors"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return {}


class TaskSession:
    """One download task as this client runs it: progress reported in the background,
    the task's status read from each answer, the download held or stopped by it."""

    def __init__(self, api: TaskApi, task: dict, notice: Notice = quiet, interval: float = INTERVAL):
        self.api, self.task, self.notice, self.interval = api, task, notice, interval
        a = task["attributes"]
        self.id, self.status, self.total = task["id"], a["status"], a["totalSizeBytes"]
        self.exact = a.get("taskType") != "update"  # a download counts file bytes, as the client does
        self.items = [(i["itemId"], i["totalFileSizeBytes"]) for i in a.get("items", [])]
        self._reported: dict[str, int] = {i["itemId"]: i["downloadedBytes"] for i in a.get("items", [])}
        self._starts = list(itertools.accumulate((size for _, size in self.items), initial=0))  # where each file begins
        self._last: int | None = None  # the task's bytes as last reported
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # the status moved
        self._written = 0  # file bytes written by this run
        self._to_write: int | None = None  # what this run will write, once known
        self._done = threading.Event()
        self.stopped = threading.Event()  # set while the task is paused or cancelled: ends a wait for the rate
        self._unreported: str | None = None  # why reports fail, while they do

    # -- the download's side ----------------------------------------------------------------

    def guard(self, limit: RateLimiter | None) -> RateLimiter:
        """What the fetcher asks before each download (in place of ``limit``, which it also
        applies): held while the task waits for its turn, refused once it is stopped."""
        return _Gate(self, limit)

    def progress(self, then: Progress) -> Progress:
        def counted(n: int) -> None:
            with self._lock:
                self._written += n
            then(n)
        return counted

    def on_total(self, then: Progress) -> Progress:
        def total(n: int) -> None:
            with self._lock:
                self._to_write = (self._to_write or 0) + n
            then(n)
        return total

    def check(self) -> None:
        """Raise if the task is paused or cancelled; while it waits for its turn, wait."""
        with self._changed:
            while self.status in WAITING and not self._done.is_set():
                self._changed.wait()
            stop = STOPPING.get(self.status)
        if stop is not None:
            raise stop(f"task {self.id} is {self.status}" + (
                f": what was downloaded is kept; resume the task (POST {self.api.url}{API}/tasks/{self.id}/resume), "
                "then run this again" if stop is DownloadPaused else ": the files it had partly downloaded are removed"))

    # -- running ----------------------------------------------------------------------------

    def run(self, work: Callable[[], T], dest: Path) -> T:
        """``work()`` (an install or update given this session's ``guard``, ``progress`` and
        ``on_total``) run as the task: started once it holds a download slot, reported on
        as it goes, and its end reported (completed, or error with the code). A directory
        another process works on ends this run alone: that process is most likely this
        task's own run in another terminal, which goes on."""
        self._set(self.api.report(self.task, {})["attributes"]["status"])
        self.notice(f"task {self.id} ({self.status}): {self.api.url}{API}/tasks/{self.id}")
        if self.status in WAITING:
            ahead = self.task["attributes"].get("queuePosition")
            self.notice(f"task {self.id} is queued behind {ahead} of the user's tasks: waiting for its turn")
        reporter = threading.Thread(target=self._report_every, name="depot-task-report", daemon=True)
        reporter.start()
        try:
            self.check()
            result = work()
        except BaseException as exc:
            self._stop(reporter)
            if isinstance(exc, DownloadCancelled):
                _remove_staging(dest)
            elif isinstance(exc, DepotError) and not isinstance(exc, (DownloadPaused, InstallBusy)):
                self._finish({"status": "error", "errorDetails": {"errorCode": exc.code,
                                                                  "errorMessage": str(exc)[:4000]}})
            raise
        self._stop(reporter)
        self._finish({"status": "completed", "downloadedBytes": self.total})
        return result

    def _stop(self, reporter: threading.Thread) -> None:
        self._done.set()
        with self._changed:
            self._changed.notify_all()
        reporter.join()

    def _set(self, status: str) -> None:
        with self._changed:
            if status != self.status and status in STOPPING:
                self.notice(f"task {self.id} was {status} at the service: stopping after the downloads in flight")
            if status in STOPPING:
                self.stopped.set()
            else:
                self.stopped.clear()  # resumed before this run stopped: the limit holds again
            self.status = status
            self._changed.notify_all()

    def _report_every(self) -> None:
        while not self._done.wait(self.interval):
            try:
                answer = self.api.report(self.task, self._progress())
            except DepotError as exc:
                if self._unreported is None:
                    self.notice(f"warning: task {self.id}: progress not reported ({exc}); downloading on, "
                                "reporting again when the service answers")
                self._unreported = str(exc)
                continue
            if self._unreported is not None:
                self.notice(f"task {self.id}: the service answers again: progress reported")
                self._unreported = None
            self._set(answer["attributes"]["status"])

    def _finish(self, attributes: dict) -> None:
        """The last report, tried a few times: a service restarting is back within them.
        Failing that, a warning: the files are what they are, whatever the task says."""
        for attempt in range(FINAL_TRIES):
            try:
                self.api.report(self.task, attributes)
                return
            except DepotError as exc:
                if attempt == FINAL_TRIES - 1:
                    self.notice(f"warning: task {self.id}: its end ({attributes['status']}) was not reported: {exc}")
                    return
                time.sleep(self.interval * 2 ** attempt)

    def _progress(self) -> dict:
        """The task's bytes, and the files whose bytes moved since the last report."""
        with self._lock:
            written, to_write = self._written, self._to_write
        if to_write is None:
            return {}
        if self.exact:
            done = self.total - to_write + written
        else:
            done = self.total * written // max(1, to_write)
        done = max(0, min(self.total, done))
        # Only the files where the bytes moved since the last report (all of them the first time).
        lo, hi = (0, self.total) if self._last is None else sorted((self._last, done))
        first = max(0, bisect.bisect_right(self._starts, lo) - 1)
        items: list[dict] = []
        for n in range(first, bisect.bisect_left(self._starts, hi, lo=first) if hi > lo else first):
            if n >= len(self.items) or len(items) == MOST_ITEMS:
                break
            item_id, size = self.items[n]
            mine = max(0, min(size, done - self._starts[n]))
            if mine != self._reported.get(item_id):
                items.append({"itemId": item_id, "downloadedBytes": mine})
                self._reported[item_id] = mine
        if len(items) < MOST_ITEMS:
            self._last = done  # else the rest of the files next time
        return {"downloadedBytes": done, "items": items}


class _Gate(RateLimiter):
    """A limiter that admits no download while the task waits for its turn, and none once
    it is paused or cancelled (a rate of zero); otherwise the user's own limit, if any.
    A download waiting its share of that limit (long, at a low rate) stops waiting when
    the task stops or the fetcher does (Ctrl-C): only the requests already sent finish."""

    def __init__(self, session: TaskSession, limit: RateLimiter | None):
        self.session, self.limit = session, limit

    def acquire(self, n: int, cancel: Cancel | None = None) -> bool:
        self.session.check()
        if self.limit is None or self.limit.acquire(n, _Either(self.session.stopped, cancel)):
            return True
        self.session.check()  # the task stopped while it waited: raises
        return cancel is None or not cancel.is_set()  # False: the fetcher stopped


class _Either:
    """Set when either event is: a wait for the rate watches the task's stop and the
    fetcher's. An event cannot wait on another, so the wait looks at both in short steps."""

    STEP = 0.05  # seconds

    def __init__(self, first: threading.Event, second: Cancel | None):
        self.first = first
        self.events: list[Cancel] = [first] if second is None else [first, second]

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)

    def wait(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not self.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.first.wait(min(self.STEP, left))
        return True


def _remove_staging(dest: Path) -> None:
    """What a cancelled task had partly downloaded; the version installed stays."""
    inst = GameDir(Path(dest))
    with inst.locked():
        shutil.rmtree(inst.staging, ignore_errors=True)


# -- the commands' entry points ------------------------------------------------------------------


def download_task(api: TaskApi, product: str, version: str, dest: Path, notice: Notice = quiet) -> TaskSession:
    """The session of the user's task installing ``version`` into ``dest``."""
    return TaskSession(api, api.download(product, version, Path(dest).resolve()), notice)


def update_task(api: TaskApi, dest: Path, version: str, notice: Notice = quiet) -> TaskSession:
    """The session of the user's task updating the installation in ``dest`` to ``version``."""
    installed = GameDir(Path(dest)).manifest()
    return TaskSession(api, api.update(installed.product, installed.version, version, Path(dest).resolve()), notice)


def verify_task(api: TaskApi, dest: Path, fast: bool = False) -> tuple[VerifyReport, str]:
    """Verify ``dest`` as an integrity task: each file reported intact (completed) or not
    (error, with ``NOT_FOUND`` or ``FILE_HASH_MISMATCH``), in batches. (The report, the
    task's id.)"""
    installed = GameDir(Path(dest)).manifest()
    task = api.verification(installed.product, installed.version, Path(dest).resolve())
    api.report(task, {})  # in progress
    r = verify(dest, fast=fast)
    wrong = {p: "NOT_FOUND" for p in r.missing} | {d["path"]: "FILE_HASH_MISMATCH" for d in r.damaged}
    items = [{"relativePath": f.path, "downloadedBytes": f.size, "status": "error" if f.path in wrong else "completed",
              **({"errorCode": wrong[f.path]} if f.path in wrong else {})} for f in installed.files]
    for start in range(0, max(1, len(items)), MOST_ITEMS):
        batch: dict[str, object] = {"items": items[start: start + MOST_ITEMS]}
        if start + MOST_ITEMS >= len(items):
            batch.update({"status": "completed"} if r.intact else {"status": "error", "errorDetails": {
                "errorCode": "FILE_HASH_MISMATCH",
                "errorMessage": f"{len(r.missing)} missing and {len(r.damaged)} damaged entries"}})
        api.report(task, batch)
    return r, task["id"]
