"""What a new user gets wrong on the way to download tasks, each answered with one error
naming what was given, with its documented code and exit code, never a traceback: a
service that does not run tasks, a service URL that is not one, a web server that is not
the service, a token that has expired; on the service's side a private key given for the
tokens' key, a --tasks-db in a directory that does not exist, a --redis where nothing
answers. And a pause that lands while the download waits its share of a low --max-rate
stops it at once."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from depot_testing.fixtures import PRODUCT
from depot_testing.http_origins import StaticOrigin
from depot_testing.servers import free_port, uvicorn_server
from depot_testing.tasks import API, SECRET, Client
from helpers import DEPOT, ROOT
from pipeline.client.task_session import TaskApi, TaskSession
from pipeline.core.rate import RateLimiter, pause
from pipeline.errors import DownloadPaused, NotFound, StoreUnavailable, Unauthorized
from pipeline.service.app import ServiceConfig, create_app
from pipeline.service.catalog import Origin
from pipeline.storage import Location, open_origin

NO_TASKS = ("{url} does not run download tasks (no route POST /api/v1/download/{route}): start it with --jwt-key "
            "or --jwks (docs/cli.md: depot serve), or download without a token (leave out --token, unset DEPOT_TOKEN)")


def depot(*args: str, data=None) -> tuple[int, dict, str]:
    """`depot --json ARGS`: exit code, the JSON it printed, its stderr (never a trace)."""
    p = subprocess.run(DEPOT + ["--json", *args], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env=None if data is None else {**os.environ, "DEPOT_DATA_DIR": str(data)})
    assert "Traceback" not in p.stderr and "Warning" not in p.stderr, p.stderr
    return p.returncode, json.loads(p.stdout) if p.stdout else {}, p.stderr


def test_a_service_without_download_tasks_says_so(published, signer, tasks_url, tmp_path):
    token = signer.token("new-user", [PRODUCT])
    root = tmp_path / "root.json"
    root.write_bytes(published["root"])
    cdn = StaticOrigin(published["origin"])
    where = Location(str(published["origin"]), public_url=cdn.url)
    without = ServiceConfig([Origin("msk", open_origin(where), where)], link_secret=SECRET, trust=published["root"])
    with cdn, uvicorn_server(create_app(without)) as url:
        code, out, _ = depot("install", "--service", url, "--token", token, "--trust", str(root), "-p", PRODUCT,
                             "-v", "1.2.0", "--dest", str(tmp_path / "game"), data=tmp_path / "data")
        assert (code, out) == (3, {"error": "NOT_FOUND", "message": NO_TASKS.format(url=url, route="tasks")})
        assert not (tmp_path / "game").exists()
        api = TaskApi(url, token)
        with pytest.raises(NotFound) as update:
            api.update(PRODUCT, "1.1.0", "1.2.0", tmp_path / "game")
        assert str(update.value) == NO_TASKS.format(url=url, route="updates/initiate")
        with pytest.raises(NotFound) as verification:
            api.verification(PRODUCT, "1.2.0", tmp_path / "game")
        assert str(verification.value) == NO_TASKS.format(url=url, route="integrity/verify")
    with pytest.raises(NotFound) as unpublished:  # with tasks, NOT_FOUND is the service's own
        TaskApi(tasks_url, token).download(PRODUCT, "9.9.9", tmp_path / "game")
    assert str(unpublished.value) == f"{tasks_url}: {PRODUCT} has no published version '9.9.9'"


@pytest.mark.parametrize("command", [["install", "-p", PRODUCT, "-v", "1.2.0"], ["verify"]])
def test_a_service_url_that_is_not_http_is_refused_naming_it(tmp_path, command):
    code, out, _ = depot(*command, "--service", "127.0.0.1:8080", "--token", "t", "--dest", str(tmp_path / "game"))
    assert (code, out) == (2, {"error": "INVALID_LOCATION", "message": "--service 127.0.0.1:8080: the service is an "
                                                                        "http:// or https:// URL (e.g. http://127.0.0.1:8080)"})


def test_a_web_server_that_is_not_the_service_is_said_not_to_be_it(tmp_path):
    with StaticOrigin(tmp_path) as web:
        with pytest.raises(StoreUnavailable) as refused:
            TaskApi(web.url, "t").verification(PRODUCT, "1.2.0", tmp_path)
    assert str(refused.value) == (f"{web.url}: answered POST {API}/integrity/verify with HTTP 501 and no depot "
                                  "error: is this the depot service's URL?")


def test_install_through_a_web_server_that_is_not_the_service_does_not_quote_its_page(tmp_path):
    """The README's CDN listens on 8081, the service on 8080: one digit off, and the links
    are asked of a plain web server, whose 404 is an HTML page."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    web = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    threading.Thread(target=web.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{web.server_address[1]}"
    try:
        code, out, _ = depot("install", "--service", url, "--allow-unsigned", "-p", PRODUCT, "-v", "1.2.0", "--dest",
                             str(tmp_path / "game"), data=tmp_path / "data")
    finally:
        web.shutdown()
        web.server_close()
    assert (code, out["error"]) == (10, "CDN_UNREACHABLE")
    assert out["message"].endswith(f"({url}: the lookup service answered HTTP 404: no depot error: is this the depot "
                                   "service's URL?)"), out
    assert not (tmp_path / "game").exists()


def test_an_expired_token_is_named_as_the_token_given(signer, tasks_url, tmp_path):
    with pytest.raises(Unauthorized) as refused:
        TaskApi(tasks_url, signer.token("late", [PRODUCT], ttl=-60)).download(PRODUCT, "1.2.0", tmp_path / "game")
    assert str(refused.value) == f"{tasks_url} refused the bearer token (--token, env DEPOT_TOKEN): the token has expired"


class SlowDownload:
    """A task's download at 1 byte a second, in a thread: ``download(gate)`` runs as the
    task, and ``ended`` holds what ended it. A chunk's share of such a rate is days."""

    def __init__(self, signer, tasks_url: str, tmp_path: Path, download):
        self.waiting = threading.Event()

        def wait(seconds: float, cancel) -> bool:
            self.waiting.set()
            return pause(seconds, cancel)

        self.token = signer.token("slow", [PRODUCT])
        api = TaskApi(tasks_url, self.token)
        self.session = TaskSession(api, api.download(PRODUCT, "1.2.0", tmp_path / "game"), interval=0.05)
        gate = self.session.guard(RateLimiter(1, sleep=wait))
        self.ended: list[BaseException] = []

        def run() -> None:
            try:
                self.session.run(lambda: download(gate), tmp_path / "game")
            except BaseException as exc:
                self.ended.append(exc)

        self.runner = threading.Thread(target=run, daemon=True)
        self.runner.start()
        assert self.waiting.wait(60)  # the download waits its share

    def stopped(self) -> list[type]:
        """What ended it, once it has ended (a minute at most)."""
        self.runner.join(60)
        assert not self.runner.is_alive(), "still waiting for the rate limit"
        return [type(e) for e in self.ended]


def test_a_pause_ends_a_wait_for_the_rate_limit_at_once(signer, tasks_url, tmp_path):
    """The pause must end the wait for the rate, not come after it."""
    slow = SlowDownload(signer, tasks_url, tmp_path, lambda gate: gate.acquire(1 << 20))
    status, body, _ = Client(tasks_url, slow.token).call("POST", f"/tasks/{slow.session.id}/pause")
    assert (status, body["data"]["attributes"]["status"]) == (200, "paused")
    assert slow.stopped() == [DownloadPaused]


def test_ctrl_c_ends_a_tasks_wait_for_the_rate_limit_at_once(signer, tasks_url, tmp_path):
    """The fetcher's stop (what Ctrl-C sets) ends the wait too: the download stops, and the
    task is left as it was for the next run."""
    ctrl_c = threading.Event()

    def download(gate) -> None:
        if not gate.acquire(1 << 20, ctrl_c):
            raise KeyboardInterrupt  # as the fetcher does

    slow = SlowDownload(signer, tasks_url, tmp_path, download)
    ctrl_c.set()
    assert slow.stopped() == [KeyboardInterrupt]
    status, body, _ = Client(tasks_url, slow.token).call("GET", f"/tasks/{slow.session.id}")
    assert (status, body["data"]["attributes"]["status"]) == (200, "downloading")


def serve(published, signer, tmp_path, *options: str) -> tuple[int, dict, str]:
    key, root = tmp_path / "jwt.pem", tmp_path / "root.json"
    key.write_bytes(signer.pem)
    root.write_bytes(published["root"])
    return depot("serve", "--origin", str(published["origin"]), "--trust", str(root), "--link-secret", "s",
                 "--port", "0", *options)


def test_depot_serve_names_a_tasks_database_it_cannot_open(published, signer, tmp_path):
    missing = tmp_path / "no" / "such" / "tasks.db"
    code, out, _ = serve(published, signer, tmp_path, "--jwt-key", str(tmp_path / "jwt.pem"), "--tasks-db", str(missing))
    assert (code, out) == (9, {"error": "STORE_UNAVAILABLE",
                               "message": f"--tasks-db {missing}: no directory {missing.parent} to keep the database in"})
    assert not (tmp_path / "no").exists()


def test_depot_serve_names_a_redis_that_does_not_answer_or_is_not_a_url(published, signer, tmp_path):
    nothing = f"redis://:secret@127.0.0.1:{free_port()}/0"  # nothing listens there
    code, out, _ = serve(published, signer, tmp_path, "--jwt-key", str(tmp_path / "jwt.pem"), "--tasks-db",
                         str(tmp_path / "tasks.db"), "--redis", nothing)
    assert (code, out["error"]) == (9, "STORE_UNAVAILABLE")
    assert not (tmp_path / "tasks.db").exists()
    assert out["message"].startswith(f"--redis {nothing.replace('secret', '***')}: Redis does not answer: ")
    code, out, _ = serve(published, signer, tmp_path, "--jwt-key", str(tmp_path / "jwt.pem"), "--tasks-db",
                         str(tmp_path / "tasks.db"), "--redis", "localhost:6379")
    assert (code, out) == (2, {"error": "INVALID_ARGUMENT", "message": "--redis localhost:6379: Redis URL must specify "
                                                                        "one of the following schemes (redis://, "
                                                                        "rediss://, unix://)"})
    code, out, _ = serve(published, signer, tmp_path, "--redis", "redis://127.0.0.1:6379/0")
    assert (code, out) == (2, {"error": "INVALID_ARGUMENT", "message": "--redis holds download tasks' hot state: turn "
                                                                        "tasks on with --tasks-db, --jwt-key or --jwks "
                                                                        "(or unset DEPOT_REDIS_URL)"})


def test_depot_serve_names_a_private_key_given_for_the_token_key(published, signer, tmp_path):
    from cryptography.hazmat.primitives import serialization

    private = tmp_path / "jwt.key"  # the README makes jwt.key and jwt.pub: the first is easy to give
    private.write_bytes(signer.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    code, out, _ = serve(published, signer, tmp_path, "--jwt-key", str(private), "--tasks-db", str(tmp_path / "t.db"))
    assert (code, out) == (2, {"error": "INVALID_ARGUMENT", "message": f"--jwt-key {private}: a private key; give its "
                                                                        f"public key (openssl pkey -in {private} "
                                                                        "-pubout -out KEY.pub)"})
    assert not (tmp_path / "t.db").exists()

