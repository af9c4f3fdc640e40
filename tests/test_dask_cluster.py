"""The local Dask cluster depot starts: Ctrl-C at any moment of its life stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid

from helpers import ROOT
from test_cli import _gone

# A program that computes on a local cluster, then sends SIGINT to its own process group
# (as a terminal's Ctrl-C does) once the cluster has begun to close, and counts the worker
# processes still running when the interrupt reaches it.
CLOSING = textwrap.dedent("""
    import os, signal, threading, time
    from depot_app import dask_cluster

    ex = dask_cluster.LazyDaskExecutor(workers=2)
    assert ex.submit(pow, 2, 5).result() == 32
    client = ex.client
    workers = list(client.run(os.getpid).values())

    def ctrl_c_once_closing():
        while client.status == "running":
            time.sleep(0.001)
        os.killpg(0, signal.SIGINT)

    threading.Thread(target=ctrl_c_once_closing, daemon=True).start()
    try:
        ex.shutdown()
    except KeyboardInterrupt:
        def running(pid):
            try:
                return open(f"/proc/{pid}/stat").read().split(") ")[1][0] != "Z"
            except OSError:
                return False
        print("interrupted;", len(workers), "workers,", sum(map(running, workers)), "running", flush=True)
""")


def test_ctrl_c_while_the_cluster_closes_ends_the_close_then_interrupts(tmp_path):
    mark = f"DEPOT_TEST_RUN={uuid.uuid4().hex}"
    key, value = mark.split("=")
    proc = subprocess.Popen([sys.executable, "-c", CLOSING], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**os.environ, key: value}, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert (proc.returncode, out, err) == (0, "interrupted; 2 workers, 0 running\n", "")
    assert _gone(mark) == []


# A task cancelled (as Ctrl-C cancels the tasks still pending) while the client fetches
# its result: the fetch is held at that moment until the cancel is done.
CANCELLED_WHILE_FETCHED = textwrap.dedent("""
    import asyncio, threading
    from distributed import Client
    from depot_app import dask_cluster

    fetching, cancelled, fetched = threading.Event(), threading.Event(), threading.Event()
    fetch = Client._gather_remote

    async def fetch_once_cancelled(self, *args):
        fetching.set()
        while not cancelled.is_set():
            await asyncio.sleep(0.01)
        try:
            return await fetch(self, *args)
        finally:
            fetched.set()

    Client._gather_remote = fetch_once_cancelled
    ex = dask_cluster.LazyDaskExecutor(workers=1)
    task = ex.submit(pow, 2, 5)
    fetching.wait()
    print(task.cancel(), flush=True)
    cancelled.set()
    fetched.wait()
    Client._gather_remote = fetch
    print(ex.submit(pow, 2, 6).result(), task.cancelled(), flush=True)  # the loop has gone on past the first
    ex.shutdown()
""")


def test_a_task_cancelled_while_its_result_is_fetched_is_cancelled_and_logs_nothing():
    """Ctrl-C cancels the tasks still pending; one whose result the client is fetching at
    that moment is cancelled like the others, with no error logged on stderr (distributed's
    own executor let the cancellation escape to the event loop, which logged it)."""
    proc = subprocess.run([sys.executable, "-c", CANCELLED_WHILE_FETCHED], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "True\n64 True\n", "")
