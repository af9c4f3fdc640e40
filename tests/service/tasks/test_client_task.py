"""The reference client as a task participant: `depot install --service URL --token T` as a
real process, against the service with tasks on (a real uvicorn, SQLite) and a CDN origin
that holds chunk requests past a point until the test lets them go, so that a pause, a
cancel or a service restart lands mid-download by construction, not by timing."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from depot_testing.fixtures import PRODUCT
from depot_testing.http_origins import StaticOrigin, _request_path
from depot_testing.servers import free_port, uvicorn_server
from depot_testing.tasks import SECRET, Client
from helpers import DEPOT, ROOT, assert_installed
from pipeline import layout
from pipeline.formats import manifest as manifest_doc
from pipeline.service.app import ServiceConfig, create_app
from pipeline.service.catalog import Origin
from pipeline.service.tasks.settings import TaskSettings
from pipeline.storage import Location, open_origin

VERSION = "1.2.0"
HOLD_AFTER = 6  # chunks served before the origin holds the rest


class GatedOrigin(StaticOrigin):
    """An origin that serves ``after`` chunk requests, then holds every other one until
    ``released`` is set (``reached`` says one is held): a point in a download to act at.
    ``broken``: every chunk served with its first byte flipped."""

    def __init__(self, root: Path, after: int):
        self.after, self.served, self.broken = after, 0, False
        self.reached, self.released = threading.Event(), threading.Event()
        super().__init__(root)

    def _dispatch(self, handler, head: bool) -> None:
        if _request_path(handler.path).startswith("/" + layout.CHUNK_PREFIX):
            with self._lock:
                self.served += 1
                held = self.served > self.after
            if held:
                self.reached.set()
                assert self.released.wait(120), "never released"
        super()._dispatch(handler, head)

    def _build(self, path: str, range_header: str | None):
        answer = super()._build(path, range_header)
        if self.broken and path.startswith("/" + layout.CHUNK_PREFIX) and answer.status == 200:
            answer.body = bytes([answer.body[0] ^ 0xFF]) + answer.body[1:]  # not the bytes the chunk id names
        return answer

    def chunk_requests(self) -> dict[str, int]:
        with self._lock:
            return {p: n for p, n in self.requests_by_path.items() if p.startswith("/" + layout.CHUNK_PREFIX)}


class Service:
    """The service with tasks on, over the gated origin; stopped and started again on the
    same port and database, as a restart."""

    def __init__(self, published: dict, signer, cdn: GatedOrigin, database: Path):
        where = Location(str(published["origin"]), region="ru-msk", public_url=cdn.url)
        self.config = lambda: ServiceConfig([Origin("msk", open_origin(where), where)], link_secret=SECRET,
                                            refresh_s=60, trust=published["root"],
                                            tasks=TaskSettings(f"sqlite:///{database}", jwt_keys=(signer.pem,)))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._running: contextlib.ExitStack | None = None

    def start(self) -> None:
        self._running = contextlib.ExitStack()
        self._running.enter_context(uvicorn_server(create_app(self.config()), self.port))

    def stop(self) -> None:
        if self._running is not None:
            self._running.close()
            self._running = None


class Player:
    """A depot command as a real process, its stderr read line by line."""

    def __init__(self, args: list[str], data: Path):
        self.proc = subprocess.Popen(DEPOT + ["--json"] + args, cwd=ROOT, env={**os.environ, "DEPOT_DATA_DIR": str(data)},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()
        with self._seen:
            self.lines.append("")  # the end
            self._seen.notify_all()

    def says(self, text: str) -> None:
        """Wait until the player has printed ``text`` (a point in its work, not a time)."""
        with self._seen:
            self._seen.wait_for(lambda: any(text in line for line in self.lines) or "" in self.lines, 120)
            assert any(text in line for line in self.lines), "".join(self.lines)

    def result(self) -> tuple[int, dict]:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        code = self.proc.wait(120)
        self._reader.join(10)
        return code, json.loads(out)


@pytest.fixture
def world(published, signer, tmp_path):
    cdn = GatedOrigin(published["origin"], HOLD_AFTER)
    service = Service(published, signer, cdn, tmp_path / "tasks.db")
    service.start()
    user = f"player-{tmp_path.name}"
    yield {"cdn": cdn, "service": service, "token": signer.token(user, [PRODUCT]), "dest": tmp_path / "game",
           "data": tmp_path / "data", "published": published}
    cdn.released.set()
    service.stop()
    cdn.stop()


def play(world, command: str = "install", *args: str, token: bool = True) -> Player:
    """`depot COMMAND --service URL --token T` (by default, installing VERSION into the world's DIR)."""
    root = world["published"]["base"] / "repo" / layout.metadata_key("root", 1)
    args = args or (("-p", PRODUCT, "-v", VERSION) if command == "install" else ())
    return Player([command, "--service", world["service"].url, *(["--token", world["token"]] if token else []),
                   "--dest", str(world["dest"]), *args]
                  + ([] if command == "verify" else ["--trust", str(root), "-j", "2", "--timeout", "60"]),
                  world["data"])


def api(world) -> Client:
    return Client(world["service"].url, world["token"])


def only_task(world) -> dict:
    status, body, _ = api(world).call("GET", "/tasks")
    assert status == 200 and len(body["data"]) == 1, body
    status, body, _ = api(world).call("GET", f"/tasks/{body['data'][0]['id']}")
    return body["data"]


def reported(world) -> dict:
    """The task once the service has heard of bytes downloaded (looked at until then)."""
    deadline = time.monotonic() + 120
    while (task := only_task(world))["attributes"]["downloadedBytes"] == 0:
        assert time.monotonic() < deadline, task
        time.sleep(0.02)  # how often to look, not how long to wait
    return task


def distinct_chunks(world) -> int:
    return len(manifest_doc.load(world["published"]["repo"], PRODUCT, VERSION).unique_chunks())


def test_paused_through_the_api_the_player_stops_and_a_resume_downloads_only_what_is_missing(world, build_dirs):
    cdn = world["cdn"]
    player = play(world)
    assert cdn.reached.wait(120)  # mid-download: chunks held at the origin
    task = reported(world)
    status, body, _ = api(world).call("POST", f"/tasks/{task['id']}/pause")
    assert (status, body["data"]["attributes"]["status"]) == (200, "paused")
    player.says(f"task {task['id']} was paused at the service")
    cdn.released.set()
    code, out = player.result()
    assert (code, out["error"]) == (18, "DOWNLOAD_PAUSED"), player.lines
    assert f"resume the task (POST {world['service'].url}/api/v1/download/tasks/{task['id']}/resume)" in out["message"]
    first = cdn.chunk_requests()
    assert set(first.values()) == {1} and HOLD_AFTER < len(first) < distinct_chunks(world)
    paused = only_task(world)["attributes"]
    assert paused["status"] == "paused" and 0 < paused["downloadedBytes"] < paused["totalSizeBytes"]

    # another run while the task is paused stops at once, downloading nothing
    code, out = play(world).result()
    assert (code, out["error"]) == (18, "DOWNLOAD_PAUSED")
    assert cdn.chunk_requests() == first

    status, body, _ = api(world).call("POST", f"/tasks/{task['id']}/resume")
    assert status == 200
    code, out = play(world).result()
    assert code == 0, out
    assert out["taskId"] == task["id"] and out["chunks_fetched"] == distinct_chunks(world) - len(first)
    every = cdn.chunk_requests()
    assert set(every.values()) == {1} and len(every) == distinct_chunks(world)  # each chunk downloaded once
    assert_installed(world["dest"], build_dirs[VERSION])
    done = only_task(world)["attributes"]
    assert (done["status"], done["downloadedBytes"]) == ("completed", done["totalSizeBytes"])
    assert {i["status"] for i in done["items"]} == {"completed"}


def test_cancelled_from_another_process_the_player_stops_and_removes_what_it_downloaded(world):
    cdn = world["cdn"]
    player = play(world)
    assert cdn.reached.wait(120)
    task = only_task(world)
    cancel = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE",
                             "-H", f"Authorization: Bearer {world['token']}",
                             f"{world['service'].url}/api/v1/download/tasks/{task['id']}"],
                            capture_output=True, text=True)
    assert cancel.stdout == "204", cancel.stderr
    player.says(f"task {task['id']} was cancelled at the service")
    cdn.released.set()
    code, out = player.result()
    assert (code, out["error"]) == (19, "DOWNLOAD_CANCELLED"), player.lines
    assert sorted(p.relative_to(world["dest"]).as_posix() for p in world["dest"].rglob("*")) == [".depot", ".depot/lock"]
    assert only_task(world)["attributes"]["status"] == "cancelled"


def test_the_same_install_in_a_second_terminal_is_busy_and_leaves_the_task_to_the_first(world, build_dirs):
    cdn = world["cdn"]
    first = play(world)
    assert cdn.reached.wait(120)  # mid-download, the game directory locked
    task = only_task(world)
    code, out = play(world).result()  # joins the task, finds the directory busy...
    assert (code, out["error"]) == (12, "INSTALL_BUSY"), out
    assert only_task(world)["attributes"]["status"] == "downloading"  # ...and does not end the task
    cdn.released.set()
    code, out = first.result()
    assert (code, out["taskId"]) == (0, task["id"]), first.lines
    assert_installed(world["dest"], build_dirs[VERSION])
    done = only_task(world)["attributes"]
    assert (done["status"], done["downloadedBytes"], done["errorDetails"]) == ("completed", done["totalSizeBytes"], None)


def test_a_service_restart_mid_task_loses_nothing_and_the_player_goes_on(world, build_dirs):
    cdn, service = world["cdn"], world["service"]
    player = play(world)
    assert cdn.reached.wait(120)
    task = only_task(world)
    service.stop()
    player.says("progress not reported")
    service.start()
    player.says("the service answers again")
    cdn.released.set()
    code, out = player.result()
    assert code == 0, player.lines
    assert out["taskId"] == task["id"] and out["chunks_fetched"] == distinct_chunks(world)
    assert set(cdn.chunk_requests().values()) == {1}
    assert_installed(world["dest"], build_dirs[VERSION])
    done = only_task(world)["attributes"]
    assert (done["status"], done["downloadedBytes"]) == ("completed", done["totalSizeBytes"])


def test_an_update_runs_as_an_update_task_and_a_verify_as_an_integrity_task(world, build_dirs):
    world["cdn"].released.set()
    code, out = play(world, "install", "-p", PRODUCT, "-v", "1.1.0", token=False).result()
    assert code == 0 and "taskId" not in out
    code, out = play(world, "update", "--to", VERSION).result()
    assert code == 0, out
    assert_installed(world["dest"], build_dirs[VERSION])
    status, body, _ = api(world).call("GET", f"/tasks/{out['taskId']}")
    a = body["data"]["attributes"]
    assert (a["taskType"], a["fromVersionId"], a["versionId"], a["status"], a["downloadedBytes"]) == \
        ("update", "1.1.0", VERSION, "completed", a["totalSizeBytes"])

    code, out = play(world, "verify").result()
    assert (code, out.get("intact")) == (0, True), out
    status, body, _ = api(world).call("GET", f"/integrity/verify/{out['taskId']}")
    a = body["data"]["attributes"]
    files = manifest_doc.load(world["published"]["repo"], PRODUCT, VERSION).files
    assert (a["status"], a["totalFiles"], a["checkedFiles"], a["corruptedFiles"]) == \
        ("completed", len(files), len(files), [])

    damaged = world["dest"] / files[-1].path
    damaged.write_bytes(b"not the file" + damaged.read_bytes())
    code, out = play(world, "verify").result()
    assert (code, [d["path"] for d in out["damaged"]]) == (7, [files[-1].path])
    status, body, _ = api(world).call("GET", f"/integrity/verify/{out['taskId']}")
    a = body["data"]["attributes"]
    assert (a["status"], a["checkedFiles"], a["corruptedFiles"], a["errorDetails"]["errorCode"]) == \
        ("failed", len(files), [{"relativePath": files[-1].path, "errorCode": "FILE_HASH_MISMATCH"}],
         "FILE_HASH_MISMATCH")


def test_a_refusal_of_the_service_is_its_code_and_nothing_is_written(world, signer):
    for token, error in [(signer.token("late", [PRODUCT], ttl=-60), "UNAUTHORIZED"),
                         (signer.token("no-game", []), "FORBIDDEN")]:
        world["token"] = token
        code, out = play(world).result()
        assert (code, out["error"]) == (20, error) and world["service"].url in out["message"], out
        assert not world["dest"].exists()
    code, out = Player(["install", "--token", token, "-p", PRODUCT, "-v", VERSION, "--dest", str(world["dest"])],
                       world["data"]).result()
    assert (code, out["error"]) == (2, "USAGE") and "give --service URL too" in out["message"]
    assert world["cdn"].chunk_requests() == {}


def progress_reports(world) -> int:
    """How many progress reports the service has answered (its request metrics)."""
    import urllib.request

    with urllib.request.urlopen(world["service"].url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("depot_requests_total{") and '/tasks/{taskId}/progress"' in line)


def test_a_task_queued_behind_another_waits_for_its_turn_then_downloads(world, build_dirs):
    world["cdn"].released.set()
    status, body, _ = api(world).create("/games/first", VERSION)
    first = body["data"]["id"]
    status, body, _ = api(world).report(first)  # its client started it: it holds the user's one download slot
    assert (status, body["data"]["attributes"]["status"]) == (200, "downloading")
    player = play(world)
    player.says("is queued behind 1 of the user's tasks: waiting for its turn")
    seen, asked = progress_reports(world), world["cdn"].requests  # the trusted metadata, read already
    deadline = time.monotonic() + 120
    while progress_reports(world) < seen + 2 and player.proc.poll() is None:  # two more reports while queued...
        assert time.monotonic() < deadline
        time.sleep(0.05)  # how often to look, not how long to wait
    assert world["cdn"].requests == asked  # ...and nothing asked of the CDN meanwhile, not even the manifest
    status, _, _ = api(world).call("DELETE", f"/tasks/{first}")
    assert status == 204
    code, out = player.result()
    assert code == 0, player.lines
    assert out["chunks_fetched"] == distinct_chunks(world)
    assert_installed(world["dest"], build_dirs[VERSION])


def test_a_download_that_fails_ends_its_task_in_error_with_the_code(world):
    world["cdn"].released.set()
    world["cdn"].broken = True
    code, out = play(world).result()
    assert (code, out["error"]) == (7, "FILE_HASH_MISMATCH"), out
    a = only_task(world)["attributes"]
    assert (a["status"], a["errorDetails"]["errorCode"], a["errorDetails"]["errorMessage"]) == \
        ("error", "FILE_HASH_MISMATCH", out["message"])
