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
import threading
import warnings
from typing import Iterator


class LazyDaskExecutor(cf.Executor):
    def __init__(self, scheduler: str | None = None, workers: int | None = None, threads_per_worker: int = 1):
        self.scheduler = scheduler
        self.workers = workers
        self.threads_per_worker = threads_per_worker
        self._lock = threading.Lock()
        self._client = None
        self._cluster = None
        self._executor = None

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                self._start()
            return self._client

    def _start(self) -> None:
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
            self._cluster = LocalCluster(
                n_workers=self.workers or os.cpu_count() or 1,
                threads_per_worker=self.threads_per_worker,
                processes=True,
                dashboard_address=":0",  # never collide with another cluster on this machine
                silence_logs=logging.ERROR,
                # The pipeline bounds each task's memory itself; let workers use the machine.
                memory_limit=0,
                # Ctrl-C reaches every process of the command: the workers leave it to depot,
                # which stops the cluster on its way out.
                preload=["dask_cluster.worker_setup"],
            )
            self._client = Client(self._cluster)
        self._executor = self._client.get_executor(pure=False)

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        self.client  # noqa: B018 - starts the cluster on first use
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
            if self._cluster is not None:
                self._cluster.close()
            self._client = self._cluster = self._executor = None


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
