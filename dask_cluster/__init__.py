"""The only place that talks to dask.distributed.

``executor()`` gives the pipeline a ``concurrent.futures.Executor`` backed by a Dask
cluster: an existing scheduler when an address is given, otherwise a LocalCluster of
worker processes; ``executor_for()`` decides where a job runs.
The cluster starts on the first task, so commands with nothing to do start none.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import os
import signal
import threading
import warnings
from typing import Callable, Iterator

# Bounds on stopping a local cluster: its workers finish or drop their task, then the
# nannies end the processes that are still there.
CLOSE_TIMEOUT_S = 10


def _apart_from_ctrl_c(target: Callable[[], None]) -> threading.Thread:
    """Run ``target`` on a thread that never receives SIGINT, nor do the threads and
    processes it starts: a blocked signal mask is inherited by both. Ctrl-C reaches every
    process of the command; worker processes started from here never see it, not even
    while they import, before any handler of theirs could be set."""
    thread = threading.Thread(target=target, name="depot-dask-cluster", daemon=True)
    if not hasattr(signal, "pthread_sigmask"):
        thread.start()
        return thread
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return thread


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker now, on this thread. Started by the first
    worker process instead, it would unblock SIGINT on the thread that starts the workers
    (it restores no mask, it unblocks), and the workers after it would get Ctrl-C."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Hold Ctrl-C for the block, and deliver it once the block is done: the steps in it
    (starting a thread, waiting for a bounded close) must not be cut half-way. Only the
    main thread receives KeyboardInterrupt; elsewhere there is nothing to hold."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # ignored, or the default action: not ours to change
        yield
        return
    pressed: list[tuple] = []
    signal.signal(signal.SIGINT, lambda signum, frame: pressed.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pressed:
            previous(*pressed[0])


class LazyDaskExecutor(cf.Executor):
    """Starts and stops its cluster on a thread of its own, apart from Ctrl-C: a cluster
    half started or half closed when Ctrl-C lands cannot be closed cleanly, and its
    workers would print tracebacks. Ctrl-C ends the command's wait for the start or for a
    task; ``shutdown`` then lets the start finish, closes the cluster, and only then
    raises the Ctrl-C it held meanwhile."""

    def __init__(self, scheduler: str | None = None, workers: int | None = None, threads_per_worker: int = 1):
        self.scheduler = scheduler
        self.workers = workers
        self.threads_per_worker = threads_per_worker
        self._lock = threading.Lock()
        self._starter: threading.Thread | None = None
        self._start_failure: BaseException | None = None
        self._close_failure: BaseException | None = None
        self._client = None
        self._cluster = None

    @property
    def client(self):
        with self._lock, _ctrl_c_held():
            if self._starter is None:
                self._starter = _apart_from_ctrl_c(self._start)
            starter = self._starter
        starter.join()  # Ctrl-C ends this wait; shutdown() waits for the start itself
        if self._start_failure is not None:
            raise self._start_failure
        return self._client

    def _start(self) -> None:
        try:
            self._start_cluster()
        except BaseException as exc:  # raised again on the caller's thread
            self._start_failure = exc

    def _start_cluster(self) -> None:
        import dask
        from distributed import Client, LocalCluster

        # Tasks here are few and long; the per-worker statistical profiler (a stack sample
        # every 10 ms) and work stealing cost more CPU than they give back.
        dask.config.set({"distributed.worker.profile.enabled": False, "distributed.scheduler.work-stealing": False})

        # Worker start-up chatter ("scratch directories ... taking a long time") is not
        # something a user can act on; real failures still raise.
        warnings.filterwarnings("ignore", message="Creating scratch directories", category=UserWarning)
        if self.scheduler:
            self._client = Client(self.scheduler)
        else:
            _start_resource_tracker()
            self._cluster = LocalCluster(
                n_workers=self.workers or os.cpu_count() or 1,
                threads_per_worker=self.threads_per_worker,
                processes=True,
                dashboard_address=":0",  # never collide with another cluster on this machine
                silence_logs=logging.ERROR,
                # The pipeline bounds each task's memory itself; let workers use the machine.
                memory_limit=0,
                # Ctrl-C reaches every process of the command: the workers start with it
                # blocked (see _apart_from_ctrl_c) and then ignore it; depot stops them.
                preload=[f"{__name__}.worker_setup"],
            )
            self._client = Client(self._cluster)
            # A result being fetched as Ctrl-C cancels its task cannot be gathered, and
            # the scheduler, in this process, logs it; a real failure raises in the caller.
            logging.getLogger("distributed.scheduler").addFilter(
                lambda record: not str(record.msg).startswith("Couldn't gather keys"))

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        return _submit(self.client, fn, *args, **kwargs)  # the client starts the cluster on first use

    def _close(self) -> None:
        # Tasks cancelled by the close end their callbacks with "CANCELLED" errors that the
        # event loop logs (tornado.application, asyncio): noise once the command is ending.
        # A close that fails still raises, on the caller's thread.
        for name in ("tornado.application", "asyncio"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        try:
            if self._client is not None:
                self._client.close(timeout=CLOSE_TIMEOUT_S)
            if self._cluster is not None:
                self._cluster.close(timeout=CLOSE_TIMEOUT_S)
        except BaseException as exc:  # raised again on the caller's thread
            self._close_failure = exc

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the cluster (after its start, if it is starting), Ctrl-C or not: a second
        Ctrl-C does not leave processes behind. A Ctrl-C pressed meanwhile is raised once
        the cluster is gone."""
        with _ctrl_c_held():
            with self._lock:
                starter, self._starter = self._starter, None
            if starter is not None:
                starter.join()
                closer = _apart_from_ctrl_c(self._close)
                closer.join()
                self._client = self._cluster = None
        failure, self._close_failure = self._close_failure, None
        if failure is not None:
            raise failure


def _submit(client, fn, /, *args, **kwargs) -> cf.Future:
    """Run ``fn`` as a task of ``client``; its outcome as a concurrent.futures future, and
    cancelling that future cancels the task. (distributed's own adapter,
    ``Client.get_executor``, lets the error of a task cancelled while its result is being
    fetched escape to the event loop, which logs it: Ctrl-C cancels tasks at any moment.)"""
    task = client.submit(fn, *args, pure=False, **kwargs)
    outcome: cf.Future = cf.Future()
    outcome.add_done_callback(lambda f: f.cancelled() and task.cancel())
    client.loop.add_callback(_settle, client, task, outcome)
    return outcome


async def _settle(client, task, outcome: cf.Future) -> None:
    """Wait for ``task`` on the client's event loop and give its outcome to ``outcome``."""
    try:
        result = (await client.gather([task], asynchronous=True))[0]
    except cf.CancelledError:  # before it ran, or while its result was being fetched
        if outcome.cancel():
            outcome.set_running_or_notify_cancel()
    except BaseException as exc:  # the task's error, raised where its result is asked for
        if outcome.set_running_or_notify_cancel():
            outcome.set_exception(exc)
    else:
        if outcome.set_running_or_notify_cancel():
            outcome.set_result(result)


@contextlib.contextmanager
def executor(scheduler: str | None = None, workers: int | None = None) -> Iterator[cf.Executor]:
    ex = LazyDaskExecutor(scheduler, workers)
    try:
        yield ex
    finally:
        ex.shutdown()


def executor_for(scheduler: str | None = None, workers: int | None = None,
                 in_process: bool = False) -> contextlib.AbstractContextManager[cf.Executor]:
    """Where a job runs: on an existing Dask cluster (``scheduler``), on a local one of
    ``workers`` processes, else on threads in this process. The work (SHA-256, BLAKE3,
    zstd, the patch engines) releases the GIL, so on one machine threads do it with less
    CPU than worker processes and no cluster to start (docs/benchmarks.md); a cluster
    pays across machines, or where per-chunk Python would keep many cores waiting on the
    interpreter. Jobs whose data lives in this process (``in_process``) always run here."""
    if in_process or scheduler is None and workers is None:
        return cf.ThreadPoolExecutor(os.cpu_count() or 1)
    return executor(scheduler, workers)
