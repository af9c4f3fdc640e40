"""Download tasks under test: a signed repository published to an origin, the service over
it with tasks on (a real uvicorn, SQLite in a temporary directory unless a test gives
another database), bearer tokens signed with a key made here, and a player's calls."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path
from typing import Iterator

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from depot_testing.fixtures import PRODUCT
from depot_testing.servers import uvicorn_server
from pipeline.service.app import ServiceConfig, create_app
from pipeline.service.catalog import Origin
from pipeline.service.tasks.settings import TaskSettings
from pipeline.storage import Location, open_origin

API = "/api/v1/download"
SECRET = "cdn-secret"
VERSIONS = ("1.0.0", "1.1.0", "1.2.0")


class Signer:
    """Tokens as the platform's auth service would issue them."""

    def __init__(self) -> None:
        self.key = ed25519.Ed25519PrivateKey.generate()
        self.pem = self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)

    def token(self, sub: str, products: list[str] | None = None, ttl: float = 600, **claims) -> str:
        body = {"sub": sub, "exp": int(time.time() + ttl), **claims}
        if products is not None:
            body["products"] = products
        return jwt.encode(body, self.key, algorithm="EdDSA")


def config(published: dict, settings: TaskSettings) -> ServiceConfig:
    where = Location(str(published["origin"]), region="ru-msk", public_url="http://cdn.example/depot")
    return ServiceConfig([Origin("msk", open_origin(where), where)], link_secret=SECRET, refresh_s=60,
                         trust=published["root"], tasks=settings)


@contextlib.contextmanager
def service(published: dict, signer: Signer, database: str, **settings) -> Iterator[str]:
    """The service with tasks on, its tokens verified with ``signer``'s key; yields its URL."""
    app = create_app(config(published, TaskSettings(database, jwt_keys=(signer.pem,), **settings)))
    with uvicorn_server(app) as url:
        yield url


class Clock:
    """A clock the test moves: calling it gives ``now``."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Client:
    """A player's calls to the tasks API, as one user."""

    def __init__(self, url: str, token: str | None):
        self.url, self.token = url, token

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None, Message]:
        headers = {"Content-Type": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + API + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None, r.headers
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, json.loads(raw) if raw else None, e.headers

    def create(self, target: str = "/games/starfall", version: str | None = "1.2.0", priority: int = 0,
               product: str = PRODUCT) -> tuple[int, dict | None, Message]:
        attributes: dict = {"productId": product, "targetPath": target, "priority": priority}
        if version is not None:
            attributes["versionId"] = version
        return self.call("POST", "/tasks", {"data": {"type": "downloadTaskRequest", "attributes": attributes}})

    def report(self, task_id: str, status: str | None = None, items: list | None = None,
               downloaded: int | None = None, error: dict | None = None, path: str = "tasks"
               ) -> tuple[int, dict | None, Message]:
        attributes: dict = {"items": items or []}
        if status is not None:
            attributes["status"] = status
        if downloaded is not None:
            attributes["downloadedBytes"] = downloaded
        if error is not None:
            attributes["errorDetails"] = error
        return self.call("POST", f"/{path}/{task_id}/progress",
                         {"data": {"type": "downloadProgressReport", "attributes": attributes}})


def code(body: dict | None) -> str:
    assert body is not None and "errors" in body, body
    return body["errors"][0]["code"]


def database_in(tmp: Path) -> str:
    return f"sqlite:///{tmp / 'tasks.db'}"
