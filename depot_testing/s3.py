"""A real S3 API on loopback: moto's server over HTTP, for tests and benchmarks."""

from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Start moto's threaded S3 server on 127.0.0.1 (an ephemeral port); yields its
    endpoint URL. Requests need credentials, any will do."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


_CHILD = """\
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(f"http://{host}:{port}", flush=True)
sys.stdin.buffer.read()
server.stop()
"""


@contextlib.contextmanager
def moto_server_process() -> Iterator[str]:
    """A moto S3 server in its own process, so with its own buckets: a second region's
    S3, for proving that each location reaches its own endpoint."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None  # both are pipes
    try:
        endpoint = proc.stdout.readline().decode().strip()
        if not endpoint.startswith("http://"):
            raise RuntimeError(f"moto server did not start (exit {proc.poll()})")
        yield endpoint
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
