"""download.v1 over gRPC (spec section 3.2): how other services of the platform reach the
download tasks, on a port of its own.

- ``AuthorizeDownload``: the Library Service, having checked the user's entitlement,
  authorizes a download: the task is queued for the user (or the unfinished one already
  there is answered), and the answer carries its id, the signed manifest and the origins.
  A refusal (no such product or version, a bad name, a full queue) is an answer with
  ``authorized`` false and the documents' code; a service that cannot answer now (its
  metadata refused, its database down) is the gRPC status UNAVAILABLE.
- ``NotifyNewVersionAvailable``: the Catalog Service says a version was published: as the
  Kafka event does, the catalogue is read again and users with older installs are told
  (events.UpdateNotices). The manifest it carries is not used: the service reads the
  signed one from the origins.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
from google.protobuf import empty_pb2

from ... import layout
from ...errors import DepotError, InvalidArgument
from ..catalog import Catalog, Origin
from .events import UpdateNotices
from .proto import download_pb2 as pb
from .proto import download_pb2_grpc
from .queue import Queue
from .work import download_work, latest

REFUSALS = frozenset({"NOT_FOUND", "INVALID_NAME", "INVALID_ARGUMENT", "DOWNLOAD_QUEUE_FULL", "FORBIDDEN"})
MAX_MESSAGE = 256 << 20  # a manifest of a few hundred thousand files fits
TEXT_MAX = 255  # the tables' user, product and version columns


class DownloadInternal(download_pb2_grpc.DownloadInternalServiceServicer):
    def __init__(self, catalog: Catalog, queue: Queue, channel: str, notices: UpdateNotices):
        self.catalog, self.queue, self.channel, self.notices = catalog, queue, channel, notices

    def AuthorizeDownload(self, request: pb.AuthorizeDownloadRequest, context) -> pb.AuthorizeDownloadResponse:
        try:
            _check_user(request.user_id)
            layout.check_names(request.product_id, request.version_id)
            product = request.product_id
            version = request.version_id or latest(self.catalog, product, self.channel)
            work = download_work(self.catalog, product, version)
            # no target path: the Library Service does not know where the player installs; the
            # client joins this task by its id
            task, _ = self.queue.create(request.user_id, "download", product, version, "", 0, work.items)
            return pb.AuthorizeDownloadResponse(
                authorized=True, download_session_id=task.id, manifest=file_manifest(self.catalog, product, version),
                sources=[cdn_source(o) for o in self.catalog.ordered()])
        except DepotError as exc:
            if exc.code in REFUSALS:
                return pb.AuthorizeDownloadResponse(authorized=False, error_code=exc.code, error_message=str(exc))
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{exc.code}: {exc}")
            raise  # abort raises; never reached

    def NotifyNewVersionAvailable(self, request: pb.NotifyNewVersionRequest, context) -> empty_pb2.Empty:
        try:
            layout.check_names(request.product_id, request.version_id)
            if not request.version_id:
                raise InvalidArgument("version_id is empty")
        except DepotError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{exc.code}: {exc}")
        self.notices.version_published(request.product_id, request.version_id)
        return empty_pb2.Empty()


def file_manifest(catalog: Catalog, product: str, version: str) -> pb.FileManifest:
    """The signed manifest as the documents' FileManifest."""
    manifest = catalog.manifest(product, version)
    return pb.FileManifest(product_id=product, version_id=version, file_entries=[
        pb.FileEntry(path=e.path, type=e.type, size=e.size, hash_sha256=e.hash_sha256, executable=e.executable,
                     target=e.target, chunks=[pb.FileChunk(offset=c.offset, size=c.size, id=c.id,
                                                           stored_size=c.stored_size, chunk_offset=c.chunk_offset,
                                                           chunk_size=c.chunk_size) for c in e.chunks])
        for e in manifest.entries])


def cdn_source(origin: Origin) -> pb.CDNSource:
    return pb.CDNSource(name=origin.name, region=origin.region, priority=origin.priority, url=origin.public_url,
                        healthy=origin.healthy)


def _check_user(user_id: str) -> None:
    if not user_id or len(user_id) > TEXT_MAX or "\x00" in user_id:
        raise InvalidArgument(f"user_id {user_id!r}: 1 to {TEXT_MAX} characters, no NUL")


def server(servicer: DownloadInternal, host: str, port: int, workers: int = 8) -> tuple[grpc.Server, int]:
    """The gRPC server, bound (not started); and the port it got (``port`` 0: a free one).
    An address that cannot be listened on is INVALID_ARGUMENT, naming it."""
    srv = grpc.server(ThreadPoolExecutor(max_workers=workers, thread_name_prefix="depot-grpc"), options=[
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.so_reuseport", 0),  # a port in use is an error, not shared with whoever holds it
    ])
    download_pb2_grpc.add_DownloadInternalServiceServicer_to_server(servicer, srv)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = srv.add_insecure_port(address)
    except RuntimeError as exc:
        bound, reason = 0, str(exc)
    else:
        reason = "address in use or not this machine's"
    if not bound:
        srv.stop(None)
        raise InvalidArgument(f"--grpc-port: cannot listen on {address} ({reason})")
    return srv, bound
