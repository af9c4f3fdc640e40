"""Real PostgreSQL and Redis on 127.0.0.1 for tests and benchmarks, each started in a
temporary directory of its own from Debian's packages (installed with apt-get when missing)
and removed afterwards. Both are tuned for tests: nothing is synced to disk."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

from .debian import ensure_binary
from .servers import _wait_for, free_port

POSTGRES_BIN = "/usr/lib/postgresql/*/bin"  # Debian keeps the server's programs off PATH


def ensure_postgres() -> Path:
    """The directory of Debian's PostgreSQL programs (initdb, postgres), newest version."""
    return Path(ensure_binary("initdb", "postgresql", also=POSTGRES_BIN)).resolve().parent


@contextlib.contextmanager
def postgres(database: str = "depot", settings: tuple[str, ...] = ()) -> Iterator[str]:
    """A PostgreSQL server with an empty ``database``, trusting local connections; yields
    its URL, ``postgresql://postgres@127.0.0.1:PORT/DATABASE``. ``settings``: more
    ``name=value`` for the server. PostgreSQL refuses to run as root: as root it runs as
    the ``postgres`` user the package creates."""
    bin_dir = ensure_postgres()
    user = _server_user()
    with _state_dir("depot-pg-", user) as state:
        data = state / "data"
        _run(user, [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C"])
        port = free_port()
        proc = subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(state),
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200", *(arg for setting in settings for arg in ("-c", setting))],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, user=user)
        try:
            _wait_for(port, proc, lambda: "")
            server = f"postgresql://postgres@127.0.0.1:{port}/postgres"
            _ready(server, proc)
            yield create_database(server, database)
        finally:
            proc.send_signal(signal.SIGINT)  # fast shutdown: SIGTERM's would wait for every client to leave
            proc.wait(timeout=30)
            if proc.stderr:
                proc.stderr.close()


def create_database(url: str, name: str) -> str:
    """A new empty database on the server of ``url``; its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}"


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A Redis server, nothing persisted; yields its URL, ``redis://127.0.0.1:PORT/0``."""
    binary = ensure_binary("redis-server")
    with _state_dir("depot-redis-", None) as state:
        port = free_port()
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(state), "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning", "--maxclients", "10000"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            _wait_for(port, proc, lambda: "")
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            if proc.stdout:
                proc.stdout.close()


def _server_user() -> str | None:
    """Who runs PostgreSQL: ``postgres`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("running as root, and there is no postgres user to run PostgreSQL as") from None
    return "postgres"


@contextlib.contextmanager
def _state_dir(prefix: str, user: str | None) -> Iterator[Path]:
    """A fresh directory in the system's temp dir, owned by ``user`` (or us), removed after."""
    state = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        if user is not None:
            shutil.chown(state, user, user)
        yield state
    finally:
        shutil.rmtree(state, ignore_errors=True)


def _run(user: str | None, argv: list[str]) -> None:
    res = subprocess.run(argv, capture_output=True, text=True, user=user)
    if res.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} failed (exit {res.returncode}): {res.stderr.strip()[-800:]}")


def _ready(url: str, proc: subprocess.Popen) -> None:
    """Wait until the server accepts connections (it listens before it finishes starting)."""
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg.connect(url, connect_timeout=5).close()
            return
        except psycopg.OperationalError as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL at {url} did not start (exit {proc.poll()}): {exc}") from exc
        time.sleep(0.05)
