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
