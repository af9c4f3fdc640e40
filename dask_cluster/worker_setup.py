"""Loaded by every worker of a local cluster depot starts (Dask's ``preload``)."""

from __future__ import annotations

import logging
import signal


def dask_setup(worker) -> None:
    # The terminal sends Ctrl-C to every process of the command. depot handles it (exit
    # 130) and stops the cluster; a worker interrupted on its own would only print a
    # traceback of its own first. Workers start with SIGINT blocked (dask_cluster), so
    # none arrives before this point; ignoring it also drops one pending since then.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A worker busy with a task when depot closes the cluster finds the scheduler gone at
    # its next heartbeat: depot is stopping it, not a failure to report.
    logging.getLogger("distributed.worker").addFilter(
        lambda record: not str(record.msg).startswith("Failed to communicate with scheduler during heartbeat"))
