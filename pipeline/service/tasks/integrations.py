"""The download tasks' ties to the rest of the platform (the documents' sections 3.2, 5
and 11): metrics on the service's /metrics, events out through the outbox and catalogue
events in from Kafka, and the internal gRPC API. ``depot serve`` configures them
(``Integrations`` on the app's tasks); each is off unless configured, metrics excepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from prometheus_client import CollectorRegistry

from ...storage.outbox import EventSinks
from ..catalog import Catalog
from .events import Announcer, CatalogConsumer, TaskEvents, UpdateNotices
from .metrics import TaskMetrics

if TYPE_CHECKING:
    import grpc

    from .api import Tasks


@dataclass(frozen=True)
class IntegrationSettings:
    events: EventSinks | None = None  # where task events go; its Kafka servers are read for catalogue events
    grpc_host: str = "127.0.0.1"
    grpc_port: int | None = None  # download.v1's port (0: any free one); None: no gRPC


class Integrations:
    """Plugs metrics and events into the tasks' listeners and binds the gRPC port at once
    (so that a port in use is an error before the service starts); ``start`` and ``stop``
    run and end the threads and servers."""

    def __init__(self, tasks: Tasks, catalog: Catalog, registry: CollectorRegistry, settings: IntegrationSettings,
                 refresh: Callable[[], None]):
        self.metrics = TaskMetrics(registry, tasks.repository)
        tasks.listeners.add(self.metrics)
        sinks = settings.events
        self.announcer = Announcer(sinks) if sinks is not None else None
        if self.announcer is not None:
            tasks.listeners.add(TaskEvents(self.announcer))
        self.notices = UpdateNotices(catalog, tasks.repository, self.announcer, tasks.settings.channel, refresh)
        self.consumer = CatalogConsumer(sinks.kafka, self.notices.version_published) \
            if sinks is not None and sinks.kafka else None
        self.grpc: grpc.Server | None = None
        self.grpc_port: int | None = None
        if settings.grpc_port is not None:
            from . import grpc_api  # grpcio loads only when the port is asked for

            servicer = grpc_api.DownloadInternal(catalog, tasks.queue, tasks.settings.channel, self.notices)
            self.grpc, self.grpc_port = grpc_api.server(servicer, settings.grpc_host, settings.grpc_port)

    def start(self) -> None:
        for part in (self.announcer, self.consumer, self.grpc):
            if part is not None:
                part.start()

    def stop(self) -> None:
        if self.grpc is not None:
            self.grpc.stop(grace=2).wait()
        if self.consumer is not None:
            self.consumer.stop()
        if self.announcer is not None:
            self.announcer.stop()  # after the others: what they announced is delivered once more
