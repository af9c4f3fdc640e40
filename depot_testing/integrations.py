"""The download tasks' integrations under test: the service with events, catalogue events
from Kafka and the gRPC port configured, and what tests read back (the events a JSON-lines
sink got, the Prometheus samples of /metrics)."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from depot_testing.servers import uvicorn_server
from depot_testing.tasks import Signer, config
from pipeline.service.app import create_app
from pipeline.service.tasks.integrations import IntegrationSettings
from pipeline.service.tasks.settings import TaskSettings

T = TypeVar("T")


@contextlib.contextmanager
def service(published: dict, signer: Signer, database: str, integrations: IntegrationSettings, refresh_s: float = 60,
            **settings) -> Iterator[tuple[str, object]]:
    """The service over ``published`` with tasks and ``integrations`` on; yields its URL and
    the app (``app.state.integrations`` has the gRPC port it got)."""
    cfg = config(published, TaskSettings(database, jwt_keys=(signer.pem,), **settings))
    cfg.integrations = integrations
    cfg.refresh_s = refresh_s
    app = create_app(cfg)
    with uvicorn_server(app) as url:
        yield url, app


def until(what: Callable[[], T], timeout: float = 30, message: str = "") -> T:
    """``what()`` once it is truthy, asked every 50 ms; fails after ``timeout`` seconds
    (a bound against hanging, never a measure: tests wait for a condition, not a time)."""
    deadline = time.monotonic() + timeout
    while True:
        found = what()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {message or what}")
        time.sleep(0.05)


def jsonl_events(path: Path, type_: str | None = None) -> list[dict]:
    """The events a JSON-lines sink has, in order (of one type, if given)."""
    if not path.exists():
        return []
    events = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in events if type_ is None or e["type"] == type_]


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the service's /metrics: (name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}
