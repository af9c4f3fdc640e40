"""The lookup service: ``depot serve`` (docs/service.md)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import click

from pipeline.errors import InvalidArgument, StoreUnavailable

from .shared import ByteSize, Settings

if TYPE_CHECKING:
    import socket


def _finite(ctx, param, value: float) -> float:
    """A range lets NaN through (it compares false with any bound): refuse it here."""
    if not math.isfinite(value):
        raise click.BadParameter(f"{value}: expected a finite number", ctx, param)
    return value


@click.command()
@click.option("--origin", "origins", multiple=True, required=True,
              help="A published origin to serve from: a path, s3://, http(s)://, or a location's name (with its "
                   "region, priority and public_url). Repeatable: mirrors.")
@click.option("--trust", "trust_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The repository's root metadata (as players install with): every metadata document served "
                   "from is verified from it. Required for a signed origin.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--link-style", type=click.Choice(["nginx", "token"]), default="nginx", show_default=True,
              help="nginx secure_link (md5 & expires), or a prefix-scoped HMAC token with a key id.")
@click.option("--link-secret", envvar="DEPOT_LINK_SECRET", default="",
              help="The nginx secure_link secret (env DEPOT_LINK_SECRET).")
@click.option("--link-keys", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Token keys, KEY_ID=SECRET per line: the first signs, the others still verify (rotation).")
@click.option("--link-ttl", type=click.IntRange(min=1), default=300, show_default=True, help="Seconds a link is good for.")
@click.option("--link-rate", type=click.FloatRange(min=0.1), default=50.0, show_default=True, callback=_finite,
              help="Link requests a client may make, per second (each of up to 1000 keys).")
@click.option("--channel", default="stable", show_default=True, help="The channel update checks compare with.")
@click.option("--refresh", type=click.FloatRange(min=0.5, max=86400), default=5.0, show_default=True, callback=_finite,
              help="Seconds between looks at the origins' timestamp and health (at most a day).")
@click.option("--cache", "cache_bytes", type=ByteSize(), default="1GiB", show_default=True,
              help="Documents kept parsed, by their size as published (parsed, a manifest takes 2-3x that); "
                   "the least recently used make room.")
@click.option("--tasks-db", envvar="DEPOT_TASKS_DB", default=None,
              help="Download tasks' database: a path or sqlite:///PATH (one instance), or postgresql://... "
                   "(several); env DEPOT_TASKS_DB. Tasks are on with this or a --jwt-key/--jwks "
                   "(default ./depot-tasks.db).")
@click.option("--jwt-key", "jwt_keys", multiple=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A PEM public key bearer tokens are signed with (RSA, EC, Ed25519). Repeatable.")
@click.option("--jwks", "jwks_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="A JWKS file of the token keys, read again when a token names a key it lacks.")
@click.option("--jwt-audience", default=None, help="The aud tokens must carry.")
@click.option("--jwt-issuer", default=None, help="The iss tokens must carry.")
@click.option("--max-active-tasks", type=click.IntRange(min=1), default=20, show_default=True,
              help="Unfinished download tasks a user may have; one more is DOWNLOAD_QUEUE_FULL.")
@click.option("--max-concurrent-downloads", type=click.IntRange(min=1), default=1, show_default=True,
              help="Of a user's tasks, how many download at once (the first in queue order).")
@click.option("--library-url", default=None,
              help="The Library Service, asked whether a user owns a product when the token has no products claim.")
@click.option("--redis", "redis_url", envvar="DEPOT_REDIS_URL", default=None,
              help="Redis for the tasks' hot state shared by instances (env DEPOT_REDIS_URL); without: in process.")
@click.option("--grpc-port", type=click.IntRange(0, 65535), envvar="DEPOT_GRPC_PORT", default=None,
              help="Serve the internal gRPC API (download.v1) on --host at this port (env DEPOT_GRPC_PORT); "
                   "needs download tasks on.")
@click.pass_obj
def serve(s: Settings, origins, trust_file, host, port, link_style, link_secret, link_keys, link_ttl, link_rate, channel,
          refresh, cache_bytes, tasks_db, jwt_keys, jwks_file, jwt_audience, jwt_issuer, max_active_tasks,
          max_concurrent_downloads, library_url, redis_url, grpc_port):
    """Serve the read-only lookup API: products, manifests, update checks, signed CDN links."""
    import uvicorn

    from pipeline.service.app import ServiceConfig, create_app, parse_keys
    from pipeline.service.catalog import Origin
    from pipeline.storage import open_origin
    from pipeline.trust.checking import read_root

    named = dict(s.locations.named)
    found = []
    for ref in origins:
        loc = s.locations.resolve(ref)
        if loc.is_local and not os.path.isdir(loc.local_path):  # a typo would serve an empty catalogue
            raise StoreUnavailable(f"{loc.url}: no such directory to serve")
        name = ref if ref in named else loc.url
        found.append(Origin(name, open_origin(loc), loc))
    trust = read_root(trust_file) if trust_file else None
    keys = parse_keys(link_keys.read_text()) if link_keys else ()
    if link_style == "token" and not keys:
        raise InvalidArgument("--link-style token needs --link-keys FILE")
    if link_style == "nginx" and not link_secret:
        raise InvalidArgument("--link-style nginx needs --link-secret (or env DEPOT_LINK_SECRET)")
    tasks = None
    if tasks_db or jwt_keys or jwks_file:
        from pipeline.service.tasks.settings import DEFAULT_DATABASE, TaskSettings

        if not jwt_keys and not jwks_file:
            raise InvalidArgument("--tasks-db: download tasks need the keys tokens are signed with: --jwt-key or --jwks")
        for key in jwt_keys:
            if b"PRIVATE KEY-----" in key.read_bytes():
                raise InvalidArgument(f"--jwt-key {key}: a private key; give its public key (openssl pkey -in "
                                      f"{key} -pubout -out KEY.pub)")
        tasks = TaskSettings(tasks_db or DEFAULT_DATABASE, redis_url, tuple(k.read_bytes() for k in jwt_keys),
                             jwks_file, jwt_audience, jwt_issuer, max_active_tasks, max_concurrent_downloads,
                             library_url, channel=channel)
        if redis_url:
            _check_redis(redis_url)
        _check_database(tasks.database_url)
    elif redis_url:
        raise InvalidArgument("--redis holds download tasks' hot state: turn tasks on with --tasks-db, --jwt-key or "
                              "--jwks (or unset DEPOT_REDIS_URL)")
    integrations = _integrations(s, tasks is not None, host, grpc_port)
    app = create_app(ServiceConfig(found, link_secret, keys, link_style, link_ttl, link_rate, channel, refresh,
                                   cache_bytes=cache_bytes, trust=trust, tasks=tasks, integrations=integrations))
    sock = _listen(host, port)
    url_host = f"[{host}]" if ":" in host else host
    click.echo(f"serving {', '.join(o.name for o in found)} on http://{url_host}:{sock.getsockname()[1]}"
               "/api/v1/download", err=True)
    if grpc_port is not None:
        click.echo(f"gRPC download.v1 on {url_host}:{app.state.integrations.grpc_port}", err=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


def _integrations(s: Settings, tasks: bool, host: str, grpc_port: int | None):
    """Events to the sinks of the locations file's [events] table (catalogue events read
    from its Kafka), and the gRPC port: both serve download tasks."""
    if not tasks:
        if grpc_port is not None:
            raise InvalidArgument("--grpc-port serves download tasks: turn them on with --tasks-db, --jwt-key or "
                                  "--jwks")
        return None
    from pipeline.publish.events import sinks_of
    from pipeline.service.tasks.integrations import IntegrationSettings

    return IntegrationSettings(sinks_of(s.locations) if s.locations.events else None, host, grpc_port)


def _shown(url: str) -> str:
    """``url`` as an error may show it: without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def _check_database(value: str) -> None:
    """Open the tasks' database before the service starts: a mistyped --tasks-db is one
    error naming it."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from pipeline.service.tasks.repository import Repository, database_url

    url = make_url(database_url(value))
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        folder = Path(url.database).parent
        if not folder.is_dir():
            raise StoreUnavailable(f"--tasks-db {value}: no directory {folder} to keep the database in")
    repository = Repository(value)
    try:
        with repository.reading() as session:
            session.execute(text("SELECT 1"))
    except StoreUnavailable as exc:
        raise StoreUnavailable(f"--tasks-db {_shown(value)}: {exc}") from None
    finally:
        repository.close()


def _check_redis(url: str) -> None:
    """Ask Redis once before the service starts: a mistyped --redis is one error naming
    it (once running, a Redis that goes away only turns its hot state off meanwhile)."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    except ValueError as exc:
        raise InvalidArgument(f"--redis {_shown(url)}: {exc}") from None
    try:
        client.ping()
    except redis.RedisError as exc:
        raise StoreUnavailable(f"--redis {_shown(url)}: Redis does not answer: {exc}") from None
    finally:
        client.close()


def _listen(host: str, port: int) -> socket.socket:
    """The service's socket, bound here so that an address in use is a clear error (and
    ``--port 0`` says which port it got) before the server starts."""
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise InvalidArgument(f"--host {host} --port {port}: cannot listen there ({reason})") from None


COMMANDS = (serve,)
