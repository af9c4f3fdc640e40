"""Real servers on 127.0.0.1 for tests and benchmarks: nginx serving a published origin with
``secure_link`` (Debian's nginx, installed with apt-get when missing), and the lookup
service under uvicorn in a thread."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

from .debian import ensure_binary

SECURE_LINK = """
            secure_link $arg_md5,$arg_expires;
            secure_link_md5 "$secure_link_expires$uri {secret}";
            if ($secure_link = "") {{ return 403; }}
            if ($secure_link = "0") {{ return 410; }}"""
NGINX_CONF = """\
daemon off;
{user}
worker_processes {workers};
pid {state}/nginx.pid;
error_log {state}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {access_log};
    sendfile on;
    keepalive_requests 100000;
    client_body_temp_path {state}/body;
    proxy_temp_path {state}/proxy;
    fastcgi_temp_path {state}/fastcgi;
    uwsgi_temp_path {state}/uwsgi;
    scgi_temp_path {state}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        location {prefix}/metadata/ {{   # TUF metadata is public
            alias {root}/metadata/;
        }}
        location {prefix}/ {{{guard}
            alias {root}/;
        }}
        location = /static {{ alias {state}/static; }}  # a plain file: the machine's ceiling
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_nginx() -> str:
    """The nginx binary, from Debian's package (installed now if missing)."""
    return ensure_binary("nginx", "nginx-light")


@contextlib.contextmanager
def nginx(root: Path, secret: str | None, state: Path, prefix: str = "/depot", workers: int = 1,
          static: bytes = b"", access_log: bool = False) -> Iterator[str]:
    """nginx serving ``root`` under ``prefix`` with secure_link (or, without a ``secret``,
    as a plain CDN edge); yields its base URL. With ``access_log`` it logs each request to
    ``state/access.log`` (nginx's combined format)."""
    binary = ensure_nginx()
    state.mkdir(parents=True, exist_ok=True)
    (state / "static").write_bytes(static)
    port = free_port()
    conf = state / "nginx.conf"
    # As root, nginx's workers would drop to "nobody" and could not read a private temp dir.
    user = "user root;" if os.geteuid() == 0 else ""
    guard = SECURE_LINK.format(secret=secret) if secret is not None else ""
    conf.write_text(NGINX_CONF.format(user=user, workers=workers, state=state, port=port, prefix=prefix,
                                      root=Path(root).resolve(), guard=guard,
                                      access_log=f"{state}/access.log" if access_log else "off"))
    proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(state)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        _wait_for(port, proc, lambda: (state / "error.log").read_text() if (state / "error.log").exists() else "")
        yield f"http://127.0.0.1:{port}{prefix}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def uvicorn_server(app, port: int | None = None) -> Iterator[str]:
    """The ASGI ``app`` under a real uvicorn server in a thread; yields its base URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        _wait_for(port, None, lambda: "")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _wait_for(port: int, proc, log) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read().decode(errors='replace')} {log()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after 15 s: {log()}")
