"""The lookup service: a read-only FastAPI application over published origins, under
``/api/v1/download`` (the service documents' shapes: JSON:API bodies, their field names and
error codes). It never writes to an origin. See docs/service.md.
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict, cast

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field

from .. import layout
from ..errors import DepotError, InvalidArgument, LinkGenerationFailed, LinkRateLimited, NotFound
from ..formats.manifest import Chunk
from .catalog import DEFAULT_CACHE_BYTES, Catalog, Origin, iso_time
from .links import LinkSigner
from .tasks.hot import open_hot_state
from .tasks.settings import TaskSettings
from .updates import check

if TYPE_CHECKING:
    from .tasks.integrations import IntegrationSettings

PREFIX = "/api/v1/download"
STATUS = {"NOT_FOUND": 404, "INVALID_NAME": 400, "INVALID_ARGUMENT": 400, "CDN_LINK_GENERATION_FAILED": 503,
          "CDN_LINK_RATE_LIMITED": 429, "UNAUTHORIZED": 401, "FORBIDDEN": 403, "DOWNLOAD_QUEUE_FULL": 409,
          "INVALID_TASK_STATE": 409, "CONTENT_LOCKED": 423}


@dataclass
class ServiceConfig:
    origins: list[Origin]
    link_secret: str = ""
    link_keys: tuple[tuple[str, bytes], ...] = ()
    link_style: str = "nginx"
    link_ttl: int = 300
    link_rate: float = 50.0  # links a client may ask for, per second (a burst of as many)
    channel: str = "stable"  # the channel update checks compare with
    refresh_s: float = 5.0  # how often the origins' timestamp is looked at, and their health
    page_size: int = 500
    cache_bytes: int = DEFAULT_CACHE_BYTES  # parsed documents kept, by their published size
    trust: bytes | None = None  # the repository's root metadata: required to serve a signed origin
    tasks: TaskSettings | None = None  # download tasks (tasks/): off without
    integrations: IntegrationSettings | None = None  # the tasks' events and gRPC port (metrics: always)


class InstalledProductAttributes(BaseModel):
    productId: str
    currentVersionId: str


class InstalledProduct(BaseModel):
    type: str = Field("installedProduct", pattern="^installedProduct$")
    attributes: InstalledProductAttributes


class UpdateCheck(BaseModel):
    """The service documents' request: the products a client has installed."""

    data: list[InstalledProduct] = Field(..., max_length=1000)


class _Metrics(TypedDict):
    requests: Counter
    latency: Histogram
    link_errors: Counter
    links: Counter
    refreshes: Counter
    refresh_errors: Counter
    refusals: Counter


class BackgroundRefresh(threading.Thread):
    def __init__(self, catalog: Catalog, interval: float, metrics: _Metrics):
        super().__init__(name="depot-refresh", daemon=True)
        self.catalog, self.interval, self.metrics = catalog, interval, metrics
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.catalog.probe()
            refresh(self.catalog, self.metrics)


def refresh(catalog: Catalog, metrics: _Metrics) -> None:
    """One look at the origins, counted; a refusal keeps the state read last (until it
    expires). Each refusal counts: a mirror passed over for the next is one too."""
    try:
        if catalog.refresh():
            metrics["refreshes"].inc()
    except DepotError:
        metrics["refresh_errors"].inc()
    for _, exc in catalog.refused:
        if exc.code.startswith(("METADATA_", "TARGET_", "TRUST_")):
            metrics["refusals"].labels(exc.code).inc()


def create_app(config: ServiceConfig) -> FastAPI:
    catalog = Catalog(config.origins, config.cache_bytes, config.trust)
    catalog.check_trust()
    catalog.probe()
    hot = open_hot_state(config.tasks.redis_url if config.tasks else None)  # shared by instances with Redis
    registry = CollectorRegistry()
    metrics: _Metrics = {
        "requests": Counter("depot_requests", "Requests by route and status", ["route", "status"], registry=registry),
        "latency": Histogram("depot_request_seconds", "Request latency by route", ["route"], registry=registry,
                             buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)),
        "link_errors": Counter("depot_link_errors", "Link requests refused or failed", ["code"], registry=registry),
        "links": Counter("depot_links", "Signed links made", registry=registry),
        "refreshes": Counter("depot_cache_refreshes", "Metadata re-read after the timestamp changed",
                             registry=registry),
        "refresh_errors": Counter("depot_cache_refresh_errors", "Refreshes that failed", registry=registry),
        "refusals": Counter("depot_metadata_refusals", "Metadata that does not verify: one per mirror refused at "
                            "each refresh", ["code"], registry=registry),
    }
    Gauge("depot_metadata_ok", "1 while answers are served from verified, unexpired metadata (status ok or "
          "stale); 0 while they are refused (503)",
          registry=registry).set_function(lambda: 1.0 if metadata_state(catalog)[0] != "refused" else 0.0)
    Gauge("depot_metadata_refused_origins", "Mirrors whose newer metadata the last refresh refused",
          registry=registry).set_function(lambda: len({name for name, _ in catalog.refused if name is not None}))
    Gauge("depot_metadata_expires_timestamp_seconds", "When the signed metadata answered from expires (0: unsigned)",
          registry=registry).set_function(lambda: (catalog.last_read.expires or 0.0) if catalog.last_read else 0.0)
    refresh(catalog, metrics)  # a refusal now is answered with 503 until a refresh verifies
    refresher = BackgroundRefresh(catalog, config.refresh_s, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        refresher.start()
        if integrations is not None:
            integrations.start()
        yield
        refresher.stopping.set()
        catalog.close()
        if progress is not None:
            await progress.stop()
        if integrations is not None:
            integrations.stop()
        if tasks is not None:
            tasks.close()
        hot.close()

    app = FastAPI(title="depot lookup service", version="1", lifespan=lifespan,
                  description="Read-only: products, versions, channels, manifests, update checks and signed "
                              "CDN links over published origins.")
    app.state.catalog = catalog

    app.add_middleware(Measure, metrics=metrics)

    @app.exception_handler(DepotError)
    async def depot_error(request: Request, exc: DepotError):
        status = STATUS.get(exc.code, 503)
        if exc.code.startswith("CDN_LINK"):
            metrics["link_errors"].labels(exc.code).inc()
        retry = getattr(exc, "retry_after", None)
        return _error(status, exc.code, (type(exc).__doc__ or exc.code).strip(), str(exc),
                      {"Retry-After": str(max(1, math.ceil(retry)))} if retry is not None
                      else getattr(exc, "headers", None))  # a bearer challenge

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        """Routing's own refusals (no such route, a method a route does not take) in the
        same shape as every other error."""
        code = "NOT_FOUND" if exc.status_code == 404 else "INVALID_ARGUMENT"
        return _error(exc.status_code, code, "Not found" if exc.status_code == 404 else "Invalid request",
                      f"{request.method} {request.url.path}: {exc.detail}", getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        return _error(400, "INVALID_ARGUMENT", "Invalid request", problems)

    def signer_for(region: str | None) -> LinkSigner:
        origin = catalog.preferred(region)
        if config.link_style == "token" and not config.link_keys or config.link_style == "nginx" and not config.link_secret:
            raise LinkGenerationFailed("the service has no link key: start it with --link-secret or --link-key")
        return LinkSigner(origin.public_url, config.link_secret, config.link_keys, config.link_ttl, config.link_style)

    tasks = progress = integrations = None
    if config.tasks is not None:
        from .tasks import progress as ws
        from .tasks.api import mount

        tasks = mount(app, config.tasks, catalog, signer_for)
        from .tasks.integrations import IntegrationSettings, Integrations

        integrations = Integrations(tasks, catalog, registry, config.integrations or IntegrationSettings(),
                                    lambda: refresh(catalog, metrics))
        app.state.integrations = integrations
        progress = ws.mount(app, tasks, hot)

    def released_key(product: str, version: str) -> dict:
        """An embargoed version's key, served with its manifest once released."""
        try:
            key = catalog.content_key(product, version)
        except NotFound:  # not embargoed
            return {}
        return {"contentKey": key.to_dict()}

    def take_link(request: Request) -> None:
        """A link request from the caller's bucket: the user's when a task token comes
        with it, else the client address's."""
        subject = f"client:{_client(request)}"
        bearer = request.headers.get("authorization", "")
        if tasks is not None and bearer[:7].lower() == "bearer ":
            try:
                subject = f"user:{tasks.auth.verify(bearer[7:].strip()).id}"
            except DepotError:
                pass  # a bad token does not change whose bucket it is
        wait = hot.take(subject, config.link_rate)
        if wait:
            raise LinkRateLimited(f"{subject}: more than {config.link_rate:g} link requests a second; "
                                  f"retry in {wait:.2f} s", retry_after=wait)

    def remember(what: tuple, answer):
        """Keep an answer computed from the published state with the reading it came from
        (a new reading starts without it)."""
        answers = catalog.view().answers
        if len(answers) > 100_000:
            answers.clear()
        answers[what] = answer
        return answer

    def check_and_remember(what: tuple) -> dict:
        try:
            return remember(what, check(catalog, *what[1:]))
        except NotFound:  # a product not published here (or a document no origin has): asked again next time
            return {"productId": what[1], "isUpdateAvailable": False}

    # Routes that answer from memory are coroutines: a thread hand-off per request would
    # cost more than the answer. What may read an origin runs in the thread pool.
    @app.get("/healthz", include_in_schema=False)
    async def healthz():
        state, refused = metadata_state(catalog)
        view = catalog.last_read
        metadata = {"signed": bool(view and view.expires is not None) or catalog.verifies,
                    "timestampVersion": view.timestamp_version if view else None,
                    "expiresAt": iso_time(view.expires) if view and view.expires is not None else None,
                    "refused": [{"origin": name, "code": exc.code, "detail": str(exc)} for name, exc in refused]}
        if not any(o.healthy for o in catalog.origins):
            state = "no healthy origin"
        return JSONResponse({"status": state, "metadata": metadata},
                            status_code=200 if state in ("ok", "stale") else 503)

    @app.get("/metrics", include_in_schema=False)
    def prometheus():  # in the thread pool: the download tasks' counts are read from the database
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(f"{PREFIX}/products")
    async def products():
        return JSONResponse({"data": [{"type": "product", "id": p, "attributes": {
            "versions": catalog.versions(p),
            "channels": {name: c.version for name, c in sorted(catalog.channels(p).items())}}}
            for p in catalog.products()]})

    @app.get(f"{PREFIX}/products/{{product}}/versions")
    async def versions(product: str):
        layout.check_product(product)
        return JSONResponse({"data": [{"type": "version", "id": v, "attributes": {"productId": product}}
                                      for v in catalog.versions(product)]})

    @app.get(f"{PREFIX}/products/{{product}}/channels")
    async def channels(product: str):
        layout.check_product(product)
        return JSONResponse({"data": [{"type": "channel", "id": name, "attributes": {
            "productId": product, "versionId": c.version, "serial": c.serial,
            "history": [dict(m.__dict__) for m in c.history]}}
            for name, c in sorted(catalog.channels(product).items())]})

    @app.get(f"{PREFIX}/products/{{product}}/versions/{{version}}/manifest")
    def manifest(product: str, version: str):
        _check_names(product, version)
        m = catalog.manifest(product, version)
        return JSONResponse({"data": {"type": "manifest", "id": f"{product}/{version}", "attributes": m.to_dict()},
                             "meta": {"signed": catalog.signed(layout.manifest_key(product, version)),
                                      **released_key(product, version)}})

    @app.get(f"{PREFIX}/products/{{product}}/versions/{{version}}/key")
    def content_key(product: str, version: str):
        """An embargoed version's content key: CONTENT_LOCKED (423) until it is released."""
        _check_names(product, version)
        key = catalog.content_key(product, version)
        return JSONResponse({"data": {"type": "contentKey", "id": key.key_id, "attributes": key.to_dict()},
                             "meta": {"signed": catalog.signed(layout.content_key_key(product, key.key_id))}})

    @app.get(f"{PREFIX}/products/{{product}}/versions/{{version}}/chunks")
    def chunks(request: Request, product: str, version: str, number: int = Query(1, alias="page[number]", ge=1),
               size: int = Query(100, alias="page[size]", ge=1, le=1000), region: str | None = None):
        _check_names(product, version)
        what = ("chunks", product, version)
        refs = cast("list[Chunk] | None", catalog.view().answers.get(what))  # as remembered below
        if refs is None:
            refs = remember(what, sorted(catalog.manifest(product, version).unique_chunks().values(),
                                         key=lambda c: c.id))
        page = refs[(number - 1) * size: number * size]
        take_link(request)  # a request, however many links it carries
        signer = signer_for(region)
        data = []
        for c in page:
            url, expires = signer.link(layout.chunk_key(c.id, c.key_id))
            data.append({"type": "chunk", "id": c.id, "attributes": {"size": c.size, "storedSize": c.stored_size},
                         "links": {"download": url}, "meta": {"expiresAt": expires}})
        metrics["links"].inc(len(data))
        pages = max(1, -(-len(refs) // size))
        base = f"{PREFIX}/products/{product}/versions/{version}/chunks?page[size]={size}"
        return JSONResponse({"data": data, "meta": {"total": len(refs), "pages": pages},
                             "links": {"self": f"{base}&page[number]={number}",
                                       "next": f"{base}&page[number]={number + 1}" if number < pages else None}})

    @app.get(f"{PREFIX}/links")
    async def links(request: Request, key: list[str] = Query(..., max_length=1000), region: str | None = None):
        """Signed links for objects by key (a chunk, a patch, a document), many at once."""
        for k in key:
            layout.check_key(k)
        take_link(request)
        signer = signer_for(region)
        data = []
        for k in key:
            url, expires = signer.link(k)
            data.append({"type": "link", "id": k, "attributes": {"href": url, "expiresAt": expires}})
        metrics["links"].inc(len(data))
        return JSONResponse({"data": data})

    @app.post(f"{PREFIX}/updates/check")
    async def updates_check(body: UpdateCheck, channel: str | None = None):
        _check_names(channel=channel or config.channel)
        for item in body.data:
            _check_names(item.attributes.productId, item.attributes.currentVersionId)
        out = []
        for item in body.data:
            what = ("check", item.attributes.productId, item.attributes.currentVersionId, channel or config.channel)
            info = catalog.view().answers.get(what)
            if info is None:  # the first player on this version: its manifests may be read
                info = await run_in_threadpool(check_and_remember, what)
            out.append({"type": "updateInfo", "attributes": info})
        return JSONResponse({"data": out})

    @app.get(f"{PREFIX}/regions")
    async def regions():
        return JSONResponse({"data": [{"type": "origin", "id": o.name, "attributes": o.to_dict()}
                                      for o in catalog.ordered()]})

    @app.get(f"{PREFIX}/regions/preferred")
    async def preferred(region: str | None = None):
        o = catalog.preferred(region)
        return JSONResponse({"data": {"type": "origin", "id": o.name, "attributes": o.to_dict()}})

    return app


class Measure:
    """Requests and latency by route, as plain ASGI: Starlette's ``BaseHTTPMiddleware``
    runs each request through a task and memory streams, which costs more than most
    answers here."""

    def __init__(self, app, metrics: _Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            name = getattr(scope.get("route"), "path", "unmatched")
            self.metrics["requests"].labels(name, str(status)).inc()
            self.metrics["latency"].labels(name).observe(time.perf_counter() - started)


def _error(status: int, code: str, title: str, detail: str, headers: dict | None = None) -> JSONResponse:
    """The one error shape: JSON:API ``errors`` with the service documents' codes."""
    return JSONResponse({"errors": [{"status": str(status), "code": code, "title": title, "detail": detail}]},
                        status_code=status, headers=headers)


def metadata_state(catalog: Catalog) -> tuple[str, list[tuple[str | None, DepotError]]]:
    """The state of the metadata answered from, and what is refused (each with the mirror
    that serves it, or None): "ok"; "stale" (a mirror's newer metadata was refused: the
    newest that verified is answered from); or "refused" (nothing to answer from: none
    verified, or it expired; first, the refusal answers carry)."""
    refused = list(catalog.refused)
    try:
        catalog.view()
    except DepotError as exc:
        if not any(e.code == exc.code and str(e) == str(exc) for _, e in refused):
            refused.insert(0, (None, exc))
        return "refused", refused
    return ("stale" if refused else "ok"), refused


def _check_names(product: str | None = None, version: str | None = None, channel: str | None = None) -> None:
    """INVALID_NAME for a product, version or channel name the layout does not allow."""
    if product is not None:
        layout.check_product(product)
    if version is not None:
        layout.check_version(version)
    if channel is not None:
        layout.channel_key(product or "any", channel)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def parse_keys(text: str) -> tuple[tuple[str, bytes], ...]:
    """``kid=hexsecret`` per line (the first signs; the others still verify)."""
    keys = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        kid, sep, secret = line.partition("=")
        if not sep or not kid.strip():
            raise InvalidArgument(f"link key line {line!r}: expected KEY_ID=SECRET")
        keys.append((kid.strip(), secret.strip().encode()))
    return tuple(keys)
