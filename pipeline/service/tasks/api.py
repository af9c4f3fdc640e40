"""The download tasks' REST routes under ``/api/v1/download`` (spec section 3.1): JSON:API
bodies with the documents' field names, statuses and codes; every route needs a bearer
token, and a user sees only their own tasks (another's is NOT_FOUND, never FORBIDDEN).

Routes are plain functions: FastAPI runs them in its thread pool, where the database and
the catalogue are read. The progress report, the one route a running client calls every
half second, is a coroutine instead, and ``ReportsFirst`` answers most reports before
FastAPI's routing: a report that can be taken in memory (running.py) from a token verified
lately is answered there, in the event loop, without a thread hand-off; any other request
goes on to the routes unchanged, which answer it (errors included) as ever."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Callable, Literal, TypeVar

from fastapi import APIRouter, FastAPI, Query, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, ValidationError, model_validator
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ... import layout
from ...errors import DepotError, InvalidArgument
from ..catalog import Catalog
from ..links import LinkSigner
from .auth import Authenticator, Entitlements, User, unauthorized
from .listener import Listeners
from .models import TASK_STATUSES
from .queue import ItemReport, Queue, Report
from .repository import Repository
from .running import RunningTasks
from .settings import TaskSettings
from .task import Item, Task
from .work import documents, download_work, latest, update_work

PREFIX = "/api/v1/download"
STATUS = {"UNAUTHORIZED": 401, "FORBIDDEN": 403, "DOWNLOAD_QUEUE_FULL": 409, "INVALID_TASK_STATE": 409}
VERIFICATION_STATUS = {"queued": "pending", "preparing": "pending", "verifying": "in_progress",
                       "downloading": "in_progress", "completed": "completed", "error": "failed",
                       "cancelled": "cancelled", "paused": "paused"}
TEXT = r"^[^\x00]*$"  # what a database text column holds (PostgreSQL refuses NUL)
M = TypeVar("M", bound=BaseModel)


@dataclass
class Tasks:
    """Download tasks as mounted on the app (``app.state.tasks``): what the service's other
    parts plug into (listeners, the queue, token verification)."""

    settings: TaskSettings
    repository: Repository
    queue: Queue
    listeners: Listeners
    auth: Authenticator
    entitlements: Entitlements

    def close(self) -> None:
        self.queue.close()  # the progress taken in memory written first
        self.repository.close()


# -- request bodies --------------------------------------------------------------------------


class TaskRequestAttributes(BaseModel):
    productId: str = Field(min_length=1, max_length=255, examples=["starfall"])
    versionId: str | None = Field(None, min_length=1, max_length=255, examples=["1.2.0"])
    targetPath: str = Field(min_length=1, max_length=4096, pattern=TEXT, examples=["/games/starfall"])
    priority: int = Field(0, ge=0, le=100)


class TaskRequestData(BaseModel):
    type: Literal["downloadTaskRequest"]
    attributes: TaskRequestAttributes


class TaskRequest(BaseModel):
    data: TaskRequestData


class UpdateInitiateAttributes(BaseModel):
    productId: str = Field(min_length=1, max_length=255, examples=["starfall"])
    targetVersionId: str | None = Field(None, min_length=1, max_length=255, examples=["1.2.0"])
    # else: the user's last completed task of the product
    currentVersionId: str | None = Field(None, min_length=1, max_length=255, examples=["1.0.0"])
    targetPath: str | None = Field(None, min_length=1, max_length=4096, pattern=TEXT, examples=["/games/starfall"])
    priority: int = Field(0, ge=0, le=100)


class UpdateInitiateData(BaseModel):
    type: Literal["updateInitiateRequest"]
    attributes: UpdateInitiateAttributes


class UpdateInitiate(BaseModel):
    data: UpdateInitiateData


class VerificationAttributes(BaseModel):
    productId: str = Field(min_length=1, max_length=255, examples=["starfall"])
    installedVersionId: str = Field(min_length=1, max_length=255, examples=["1.1.0"])
    targetPath: str | None = Field(None, min_length=1, max_length=4096, pattern=TEXT, examples=["/games/starfall"])


class VerificationData(BaseModel):
    type: Literal["integrityVerificationRequest"]
    attributes: VerificationAttributes


class VerificationRequest(BaseModel):
    data: VerificationData


class QueuePlace(BaseModel):
    taskId: str = Field(max_length=64)
    order: int = Field(ge=0, le=1_000_000)


class Reorder(BaseModel):
    data: list[QueuePlace] = Field(min_length=1, max_length=1000)


class ErrorDetails(BaseModel):
    errorCode: str = Field(min_length=1, max_length=64, pattern=r"^[A-Z0-9_]+$")
    errorMessage: str | None = Field(None, max_length=4096, pattern=TEXT)


class ItemProgress(BaseModel):
    itemId: str | None = Field(None, max_length=64)
    relativePath: str | None = Field(None, min_length=1, max_length=4096, pattern=TEXT)
    downloadedBytes: int = Field(ge=0, le=2**62)
    status: Literal["downloading", "paused", "completed", "error", "verifying"] | None = None
    errorCode: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Z0-9_]+$")

    @model_validator(mode="after")
    def named_once(self) -> "ItemProgress":
        if (self.itemId is None) == (self.relativePath is None):
            raise ValueError("name the item by itemId or by relativePath (one of them)")
        return self


class ProgressAttributes(BaseModel):
    items: list[ItemProgress] = Field([], max_length=10_000)
    downloadedBytes: int | None = Field(None, ge=0, le=2**62)
    status: Literal["downloading", "verifying", "completed", "error"] | None = None
    errorDetails: ErrorDetails | None = None


class ProgressData(BaseModel):
    type: Literal["downloadProgressReport"]
    attributes: ProgressAttributes


class ProgressReport(BaseModel):
    data: ProgressData


# -- answers ---------------------------------------------------------------------------------


def _time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(task: Task) -> dict | None:
    if task.error_code is None:
        return None
    return {"errorCode": task.error_code, "errorMessage": task.error_message}


def item_resource(item: Item, with_operation: bool) -> dict:
    out = {"itemId": item.id, "relativePath": item.relative_path, "status": item.status,
           "downloadedBytes": item.downloaded_bytes, "totalFileSizeBytes": item.total_size_bytes,
           "expectedHashSha256": item.expected_hash_sha256, "retryCount": item.retry_count,
           "errorCode": item.error_code}
    if with_operation:
        out["operation"] = item.operation
    return out


def task_resource(task: Task, links: dict | None = None) -> dict:
    """The documents' ``DownloadTask``."""
    attributes: dict[str, object] = {
        "taskType": task.kind, "productId": task.product_id, "versionId": task.version_id,
        "targetPath": task.target_path, "status": task.status, "priority": task.priority,
        "queuePosition": task.queue_position, "totalSizeBytes": task.total_size_bytes,
        "downloadedBytes": task.downloaded_bytes, "totalProgressPercentage": task.progress_percentage,
        "errorDetails": _error(task), "createdAt": _time(task.created_at), "updatedAt": _time(task.updated_at)}
    if task.kind == "update":
        attributes["fromVersionId"] = task.from_version_id
    if task.items is not None:
        attributes["items"] = [item_resource(i, task.kind == "update") for i in task.items]
    return {"type": "downloadTask", "id": task.id, "attributes": attributes,
            "links": {"self": f"{PREFIX}/tasks/{task.id}", **(links or {})}}


def verification_resource(task: Task) -> dict:
    """The documents' ``VerificationTask``: its files checked, those found corrupted."""
    attributes: dict[str, object] = {"productId": task.product_id, "installedVersionId": task.version_id,
                  "targetPath": task.target_path, "status": VERIFICATION_STATUS[task.status],
                  "errorDetails": _error(task), "createdAt": _time(task.created_at), "updatedAt": _time(task.updated_at)}
    if task.items is not None:
        attributes.update({
            "totalFiles": len(task.items),
            "checkedFiles": sum(i.status in ("completed", "error") for i in task.items),
            "corruptedFiles": [{"relativePath": i.relative_path, "errorCode": i.error_code}
                               for i in task.items if i.status == "error"],
            "items": [item_resource(i, False) for i in task.items]})
    return {"type": "verificationTask", "id": task.id, "attributes": attributes,
            "links": {"self": f"{PREFIX}/integrity/verify/{task.id}"}}


def _report(body: ProgressReport) -> Report:
    a = body.data.attributes
    if a.status == "error" and a.errorDetails is None:
        raise InvalidArgument("a report of status error needs errorDetails (errorCode, errorMessage)")
    return Report(items=tuple(ItemReport(i.downloadedBytes, i.itemId, i.relativePath, i.status, i.errorCode)
                              for i in a.items),
                  downloaded_bytes=a.downloadedBytes, status=a.status,
                  error_code=a.errorDetails.errorCode if a.errorDetails else None,
                  error_message=a.errorDetails.errorMessage if a.errorDetails else None)


async def _parsed(request: Request, model: type[M]) -> M:
    """A request's JSON body as ``model``; INVALID_ARGUMENT as FastAPI's own validation says it."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def _json_body(model: type[BaseModel]) -> dict:
    """OpenAPI for a body read by ``_parsed`` (its schema is listed by the routes that take it)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


class ReportsFirst:
    """Plain ASGI in front of the routes, for the progress report: what it can answer
    from memory (a token verified lately, a body the model accepts, a report
    ``Queue.report_in_memory`` takes) it answers as the route would, byte for byte;
    everything else, errors included, goes on to the route with its body replayed."""

    PATH = re.compile(f"^{PREFIX}/tasks/([^/]+)/progress$")
    MOST = 4 << 20  # bytes of body read here; a larger one goes on as it comes

    def __init__(self, app: ASGIApp, tasks: Tasks, route: object):
        self.app, self.tasks, self.route = app, tasks, route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.PATH.match(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        user = self.tasks.auth.remembered(_bearer_of(scope)) if found else None
        if found is None or user is None:
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more and len(body) <= self.MOST:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
        task = None
        if not more:
            try:
                report = _report(ProgressReport.model_validate_json(body))
                task = self.tasks.queue.report_in_memory(user.id, found.group(1), report)
            except (ValidationError, DepotError):  # the route says what is wrong
                task = None
        if task is None:
            return await self.app(scope, _replaying(body, more, receive), send)
        scope["route"] = self.route  # named in the request metrics as the route is
        await JSONResponse({"data": task_resource(task)})(scope, receive, send)


def _bearer_of(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


def _replaying(body: bytes, more: bool, receive: Receive) -> Receive:
    """``receive`` with ``body`` (read already) first."""
    first = True

    async def replay() -> Message:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()
    return replay


def _created(get: str) -> dict:
    """OpenAPI links from a creation's answer to the routes that take its id."""
    by_id = {"operationId": get, "parameters": {"taskId": "$response.body#/data/id"}}
    follow = {get: by_id}
    if get == "getDownloadTask":
        follow.update({op: {**by_id, "operationId": op} for op in (
            "pauseDownloadTask", "resumeDownloadTask", "cancelDownloadTask", "reportDownloadProgress")})
    else:
        follow["reportIntegrityProgress"] = {**by_id, "operationId": "reportIntegrityProgress"}
    return {202: {"description": "Accepted: queued (or, 200, the same task already there)", "links": follow}}


# -- the routes ------------------------------------------------------------------------------


def mount(app: FastAPI, settings: TaskSettings, catalog: Catalog, signer_for: Callable[[str | None], LinkSigner]
          ) -> Tasks:
    """Open (and migrate) the database and add the task routes to ``app``."""
    auth = Authenticator(settings)
    repository = Repository(settings.database_url)
    repository.migrate()
    listeners = Listeners()
    queue = Queue(repository, listeners, settings.max_active_tasks, settings.max_concurrent_downloads,
                  RunningTasks(repository, settings.progress_write_s))
    tasks = Tasks(settings, repository, queue, listeners, auth, Entitlements(settings.library_url,
                                                                             settings.library_timeout_s))
    api = router(tasks, catalog, signer_for)
    app.include_router(api)
    report_route = next(r for r in api.routes if getattr(r, "name", None) == "progress")
    app.user_middleware.append(Middleware(ReportsFirst, tasks=tasks, route=report_route))  # inside the others
    app.state.tasks = tasks
    return tasks


def router(tasks: Tasks, catalog: Catalog, signer_for: Callable[[str | None], LinkSigner]) -> APIRouter:
    queue, settings = tasks.queue, tasks.settings
    bearer = HTTPBearer(auto_error=False, description="A JWT whose sub is the user")
    api = APIRouter(prefix=PREFIX, tags=["download tasks"])

    async def user(credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> User:
        """The caller (a token verified once is remembered: this is quick enough for the loop)."""
        if credentials is None:
            raise unauthorized("no bearer token: send Authorization: Bearer <JWT>", error=None)
        return tasks.auth.verify(credentials.credentials)

    def links(task: Task) -> dict:
        """Signed links to the documents the client reads for ``task``."""
        keys = documents(catalog, task.kind, task.product_id, task.from_version_id, task.version_id)
        signer = signer_for(None)
        signed = []
        for key in keys:
            where = catalog.signed(key)
            signed.append(signer.link(where["path"] if where else key)[0])
        return {"manifest": signed[0], "plans": signed[1:],
                "chunks": f"{PREFIX}/products/{task.product_id}/versions/{task.version_id}/chunks"}

    def links_if_any(task: Task) -> dict | None:
        """A task is shown whatever the catalogue says now: without document links once
        its version is gone from the origins, or while their metadata is refused."""
        if task.status in ("completed", "cancelled"):
            return None
        try:
            return links(task)
        except DepotError:
            return None

    def allowed(who: User, product: str, *versions: str | None) -> None:
        """A request for ``product``: its names valid first, then the user entitled to it."""
        layout.check_names(product, *versions)
        tasks.entitlements.check(who, product)

    def accepted(resource: dict, created: bool) -> JSONResponse:
        """A creation's answer: 202 with what it made, or 200 with the same one already there."""
        return JSONResponse({"data": resource, "meta": {"created": created}}, status_code=202 if created else 200)

    @api.post("/tasks", status_code=202, operation_id="createDownloadTask",
              responses=_created("getDownloadTask"))
    def create_task(body: TaskRequest, who: User = Security(user)):
        """Queue a download of a product's version (the channel's, without one)."""
        a = body.data.attributes
        allowed(who, a.productId, a.versionId)
        version = a.versionId or latest(catalog, a.productId, settings.channel)
        work = download_work(catalog, a.productId, version)
        task, created = queue.create(who.id, "download", a.productId, version, a.targetPath, a.priority, work.items)
        return accepted(task_resource(task, links(task)), created)

    @api.get("/tasks", operation_id="listDownloadTasks")
    def list_tasks(who: User = Security(user), status: list[Literal[TASK_STATUSES]] | None = Query(None),  # type: ignore[valid-type]
                   page: int = Query(1, ge=1, le=1_000_000), limit: int = Query(20, ge=1, le=100)):
        found, total = queue.page(who.id, status or (), page, limit)
        pages = max(1, -(-total // limit))
        base = f"{PREFIX}/tasks?limit={limit}" + "".join(f"&status={s}" for s in status or ())
        return JSONResponse({"data": [task_resource(t) for t in found],
                             "meta": {"total": total, "page": page, "limit": limit, "pages": pages},
                             "links": {"self": f"{base}&page={page}",
                                       "next": f"{base}&page={page + 1}" if page < pages else None}})

    @api.get("/tasks/queue", operation_id="getDownloadQueue")
    def user_queue(who: User = Security(user)):
        return JSONResponse({"data": [task_resource(t) for t in queue.queue(who.id)]})

    @api.post("/tasks/queue/reorder", operation_id="reorderDownloadQueue")
    def reorder(body: Reorder, who: User = Security(user)):
        now = queue.reorder(who.id, [(p.taskId, p.order) for p in body.data])
        return JSONResponse({"data": [task_resource(t) for t in now]})

    @api.get("/tasks/{taskId}", operation_id="getDownloadTask")
    def get_task(taskId: str, who: User = Security(user)):
        task = queue.get(who.id, taskId)
        return JSONResponse({"data": task_resource(task, links_if_any(task))})

    @api.post("/tasks/{taskId}/pause", operation_id="pauseDownloadTask")
    def pause(taskId: str, who: User = Security(user)):
        return JSONResponse({"data": task_resource(queue.pause(who.id, taskId))})

    @api.post("/tasks/{taskId}/resume", operation_id="resumeDownloadTask")
    def resume(taskId: str, who: User = Security(user)):
        return JSONResponse({"data": task_resource(queue.resume(who.id, taskId))})

    @api.delete("/tasks/{taskId}", status_code=204, operation_id="cancelDownloadTask")
    def cancel(taskId: str, who: User = Security(user)):
        queue.cancel(who.id, taskId)
        return Response(status_code=204)

    @api.post("/tasks/{taskId}/progress", operation_id="reportDownloadProgress", openapi_extra=_json_body(ProgressReport))
    async def progress(taskId: str, request: Request, who: User = Security(user)):
        """The client that runs the task reports; the answer is the task as it is now
        (``paused``, ``cancelled`` or ``queued``: stop; ``downloading``: go on)."""
        report = _report(await _parsed(request, ProgressReport))
        task = queue.report_in_memory(who.id, taskId, report)
        if task is None:
            task = await run_in_threadpool(queue.report, who.id, taskId, report)
        return JSONResponse({"data": task_resource(task)})

    @api.post("/updates/initiate", status_code=202, operation_id="initiateUpdate",
              responses=_created("getDownloadTask"))
    def initiate_update(body: UpdateInitiate, who: User = Security(user)):
        """Queue an update of an installed product: the plan's operations, or its chunks."""
        a = body.data.attributes
        allowed(who, a.productId, a.targetVersionId, a.currentVersionId)
        target = a.targetVersionId or latest(catalog, a.productId, settings.channel)
        installed = queue.installed(who.id, a.productId)
        current = a.currentVersionId or (installed[0] if installed else None)
        path = a.targetPath or (installed[1] if installed else None)
        if path is None:
            raise InvalidArgument(f"no completed task installed {a.productId} for this user: give targetPath "
                                  "and currentVersionId")
        if current == target:
            raise InvalidArgument(f"{a.productId} {target} is the version installed: there is nothing to update")
        work = update_work(catalog, a.productId, current, target)
        task, created = queue.create(who.id, "update", a.productId, target, path, a.priority, work.items,
                                     from_version_id=current)
        return accepted(task_resource(task, links(task)), created)

    @api.post("/integrity/verify", status_code=202, operation_id="startIntegrityVerification",
              responses=_created("getIntegrityVerification"))
    def verify(body: VerificationRequest, who: User = Security(user)):
        """Start an integrity check of an installed version: its files, sizes and hashes."""
        a = body.data.attributes
        allowed(who, a.productId, a.installedVersionId)
        installed = queue.installed(who.id, a.productId)
        path = a.targetPath or (installed[1] if installed else None)
        if path is None:
            raise InvalidArgument(f"no completed task installed {a.productId} for this user: give targetPath")
        work = download_work(catalog, a.productId, a.installedVersionId)
        task, created = queue.create(who.id, "verify", a.productId, a.installedVersionId, path, 0, work.items)
        task = queue.get(who.id, task.id, ("verify",))
        return accepted(verification_resource(task), created)

    @api.get("/integrity/verify/{taskId}", operation_id="getIntegrityVerification")
    def verification(taskId: str, who: User = Security(user)):
        return JSONResponse({"data": verification_resource(queue.get(who.id, taskId, ("verify",)))})

    @api.post("/integrity/verify/{taskId}/progress", operation_id="reportIntegrityProgress")
    def verification_progress(taskId: str, body: ProgressReport, who: User = Security(user)):
        """The client checking the files reports each one: ``completed`` (intact) or
        ``error`` with its code (``FILE_HASH_MISMATCH``, ``NOT_FOUND``)."""
        queue.report(who.id, taskId, _report(body), ("verify",))
        return JSONResponse({"data": verification_resource(queue.get(who.id, taskId, ("verify",)))})

    return api

