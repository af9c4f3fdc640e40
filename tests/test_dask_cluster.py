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
