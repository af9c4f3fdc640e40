"""download.v1 over gRPC: a real grpcio client on loopback against the service's own port;
AuthorizeDownload queues the task the REST API then shows, with the signed manifest and
the origins; refusals are answers with the documents' codes; NotifyNewVersionAvailable
tells users with older installs; the checked-in code is what protoc makes of the .proto."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from depot_testing.fixtures import PRODUCT
from depot_testing.integrations import jsonl_events, service, until
from depot_testing.tasks import Client, database_in
from helpers import DEPOT, ROOT, unavailable
from pipeline.errors import InvalidArgument
from pipeline.formats import manifest as manifest_doc
from pipeline.service.tasks import grpc_api
from pipeline.service.tasks.events import UPDATE_AVAILABLE
from pipeline.service.tasks.integrations import IntegrationSettings
from pipeline.service.tasks.proto import download_pb2 as pb
from pipeline.service.tasks.proto import download_pb2_grpc
from pipeline.storage.outbox import EventSinks

PROTO = "pipeline/service/tasks/proto/download.proto"


@pytest.fixture(scope="module")
def world(published, signer, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grpc")
    sinks = EventSinks(tmp / "outbox", jsonl=str(tmp / "events.jsonl"))
    with service(published, signer, database_in(tmp), IntegrationSettings(sinks, grpc_port=0),
                 max_active_tasks=2) as (url, app):
        port = app.state.integrations.grpc_port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield {"url": url, "stub": download_pb2_grpc.DownloadInternalServiceStub(channel), "sinks": sinks,
                   "port": port}


def test_authorize_download_queues_the_task_with_the_signed_manifest_and_the_origins(world, signer, published):
    stub = world["stub"]
    answer = stub.AuthorizeDownload(pb.AuthorizeDownloadRequest(user_id="lib-a", product_id=PRODUCT,
                                                                version_id="1.1.0"), timeout=30)
    assert (answer.authorized, answer.error_code, answer.error_message) == (True, "", "")
    manifest = manifest_doc.load(published["repo"], PRODUCT, "1.1.0")
    assert answer.manifest == pb.FileManifest(product_id=PRODUCT, version_id="1.1.0", file_entries=[
        pb.FileEntry(path=e.path, type=e.type, size=e.size, hash_sha256=e.hash_sha256, executable=e.executable,
                     target=e.target, chunks=[pb.FileChunk(offset=c.offset, size=c.size, id=c.id,
                                                           stored_size=c.stored_size, chunk_offset=c.chunk_offset,
                                                           chunk_size=c.chunk_size) for c in e.chunks])
        for e in manifest.entries])
    assert {e.type for e in answer.manifest.file_entries} == {"file", "dir", "symlink"}
    assert list(answer.sources) == [pb.CDNSource(name="msk", region="ru-msk", priority=0,
                                                 url="http://cdn.example/depot", healthy=True)]
    # the task is the player's, as the REST API shows it: queued, the manifest's files
    player = Client(world["url"], signer.token("lib-a", [PRODUCT]))
    status, body, _ = player.call("GET", f"/tasks/{answer.download_session_id}")
    a = body["data"]["attributes"]
    assert (status, a["status"], a["versionId"], a["targetPath"], a["queuePosition"]) == (200, "queued", "1.1.0", "",
                                                                                          0)
    assert [i["relativePath"] for i in a["items"]] == [f.path for f in manifest.files]
    # asked again, the same task
    again = stub.AuthorizeDownload(pb.AuthorizeDownloadRequest(user_id="lib-a", product_id=PRODUCT,
                                                               version_id="1.1.0"), timeout=30)
    assert (again.authorized, again.download_session_id) == (True, answer.download_session_id)


def test_without_a_version_the_channels_is_authorized(world):
    answer = world["stub"].AuthorizeDownload(pb.AuthorizeDownloadRequest(user_id="lib-b", product_id=PRODUCT),
                                             timeout=30)
    assert (answer.authorized, answer.manifest.version_id) == (True, "1.2.0")


@pytest.mark.parametrize("user, product, version, code", [
    ("lib-c", "no-such-product", "1.0.0", "NOT_FOUND"),
    ("lib-c", PRODUCT, "9.9.9", "NOT_FOUND"),
    ("lib-c", PRODUCT, "../1.0.0", "INVALID_NAME"),
    ("lib-c", "Bad Name", "", "INVALID_NAME"),
    ("", PRODUCT, "1.0.0", "INVALID_ARGUMENT"),
    ("x" * 256, PRODUCT, "1.0.0", "INVALID_ARGUMENT"),
])
def test_a_refusal_is_an_answer_with_the_documents_code(world, user, product, version, code):
    answer = world["stub"].AuthorizeDownload(pb.AuthorizeDownloadRequest(user_id=user, product_id=product,
                                                                         version_id=version), timeout=30)
    assert (answer.authorized, answer.download_session_id, answer.error_code) == (False, "", code)
    assert answer.error_message and not answer.HasField("manifest") and not answer.sources


def test_past_the_users_limit_the_queue_is_full(world):
    stub = world["stub"]
    for version in ("1.0.0", "1.1.0"):
        assert stub.AuthorizeDownload(pb.AuthorizeDownloadRequest(user_id="lib-full", product_id=PRODUCT,
                                                                  version_id=version), timeout=30).authorized
    answer = stub.AuthorizeDownload(pb.AuthorizeDownloadRequest(user_id="lib-full", product_id=PRODUCT,
                                                                version_id="1.2.0"), timeout=30)
    assert (answer.authorized, answer.error_code) == (False, "DOWNLOAD_QUEUE_FULL")
    assert "lib-full" in answer.error_message


def test_notify_new_version_tells_users_whose_install_is_older(world, signer):
    url, stub, sinks = world["url"], world["stub"], world["sinks"]
    for user, version in (("notify-old", "1.0.0"), ("notify-new", "1.2.0")):
        player = Client(url, signer.token(user, [PRODUCT]))
        _, body, _ = player.create(f"/games/{user}", version)
        assert player.report(body["data"]["id"], status="completed")[0] == 200
    stub.NotifyNewVersionAvailable(pb.NotifyNewVersionRequest(product_id=PRODUCT, version_id="1.2.0"), timeout=30)
    # the notices are in the outbox when the call returns: once it is empty, the sink has them all
    until(lambda: not list(sinks.outbox.glob("*.json")), message="the outbox empties")
    told = jsonl_events(Path(sinks.jsonl), UPDATE_AVAILABLE)
    _, check, _ = Client(url, None).call("POST", "/updates/check", {"data": [
        {"type": "installedProduct", "attributes": {"productId": PRODUCT, "currentVersionId": "1.0.0"}}]})
    info = check["data"][0]["attributes"]
    assert [e["data"] for e in told] == [{
        "userId": "notify-old", "productId": PRODUCT, "latestVersionId": "1.2.0", "updateType": info["updateType"],
        "downloadSizeBytes": info["downloadSizeBytes"], "releaseNotesUrl": None}]


@pytest.mark.parametrize("product, version", [("Bad Name", "1.0.0"), (PRODUCT, ""), (PRODUCT, "../x")])
def test_notify_with_a_bad_name_is_invalid_argument(world, product, version):
    with pytest.raises(grpc.RpcError) as raised:
        world["stub"].NotifyNewVersionAvailable(pb.NotifyNewVersionRequest(product_id=product, version_id=version),
                                                timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith(("INVALID_NAME: ", "INVALID_ARGUMENT: "))


def test_a_port_in_use_is_refused_by_name(world):
    with pytest.raises(InvalidArgument, match=rf"cannot listen on 127\.0\.0\.1:{world['port']}"):
        grpc_api.server(grpc_api.DownloadInternal(None, None, "stable", None), "127.0.0.1", world["port"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(InvalidArgument, match="--grpc-port"):
            grpc_api.server(grpc_api.DownloadInternal(None, None, "stable", None), "127.0.0.1", s.getsockname()[1])


def test_the_checked_in_code_is_what_protoc_makes_of_the_proto(tmp_path):
    """download_pb2 embeds the proto's descriptor: the one protoc makes of download.proto
    now must be the same, and the servicer must have each of the service's methods."""
    try:
        import grpc_tools  # noqa: F401
    except ImportError:
        unavailable("grpcio-tools is not installed (it is in depot's test extra)")
    from google.protobuf import descriptor_pb2

    out = tmp_path / "set.pb"
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", ".", f"--descriptor_set_out={out}", PROTO],
                   cwd=ROOT, check=True)
    made = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    for message in made.message_type:
        for field in message.field:
            field.ClearField("json_name")  # a descriptor set names them; generated code leaves them out
    checked_in = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    assert made == checked_in
    assert [m.name for m in made.service[0].method] == ["AuthorizeDownload", "NotifyNewVersionAvailable"]
    servicer = download_pb2_grpc.DownloadInternalServiceServicer
    assert all(callable(getattr(servicer, m.name, None)) for m in made.service[0].method)


def test_depot_serve_answers_grpc_on_a_port_of_its_own(published, signer, tmp_path):
    (tmp_path / "jwt.pem").write_bytes(signer.pem)
    (tmp_path / "root.json").write_bytes(published["root"])
    proc = subprocess.Popen(DEPOT + ["serve", "--origin", str(published["origin"]), "--trust", str(tmp_path / "root.json"),
                                     "--link-secret", "s", "--port", "0", "--tasks-db", str(tmp_path / "tasks.db"),
                                     "--jwt-key", str(tmp_path / "jwt.pem"), "--grpc-port", "0"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stderr.readline(), proc.stderr.readline()]
        assert lines[0].startswith("serving ") and lines[1].startswith("gRPC download.v1 on 127.0.0.1:"), lines
        with grpc.insecure_channel(lines[1].split()[-1]) as channel:
            answer = download_pb2_grpc.DownloadInternalServiceStub(channel).AuthorizeDownload(
                pb.AuthorizeDownloadRequest(user_id="cli-user", product_id=PRODUCT, version_id="1.0.0"), timeout=30)
        assert (answer.authorized, answer.manifest.version_id) == (True, "1.0.0")
    finally:
        proc.terminate()
        proc.wait(30)


def test_depot_serve_refuses_a_grpc_port_without_tasks(published):
    done = subprocess.run(DEPOT + ["serve", "--origin", str(published["origin"]), "--link-secret", "s",
                                   "--grpc-port", "0"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--grpc-port serves download tasks: turn them on with --tasks-db, --jwt-key or --jwks" in done.stderr
    assert "Traceback" not in done.stderr
