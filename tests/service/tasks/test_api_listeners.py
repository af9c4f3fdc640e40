"""The seam the service's other parts plug into: a TaskListener on ``app.state.tasks`` hears
each committed change once, in order (creation, status changes, one call per progress
report, the queue after changes to it), and a listener that raises breaks nothing."""

from __future__ import annotations

from depot_testing.fixtures import PRODUCT
from depot_testing.servers import uvicorn_server
from depot_testing.tasks import Client, config, database_in
from pipeline.service.app import create_app
from pipeline.service.tasks.listener import TaskListener
from pipeline.service.tasks.settings import TaskSettings


class Recorder(TaskListener):
    def __init__(self):
        self.heard: list[tuple] = []

    def task_changed(self, change):
        self.heard.append(("status", change.task.target_path, change.old_status, change.new_status))

    def items_progressed(self, task, items):
        self.heard.append(("progress", task.target_path, task.downloaded_bytes,
                           [(i.relative_path, i.downloaded_bytes, i.status) for i in items]))

    def queue_changed(self, user_id, queue):
        self.heard.append(("queue", user_id, [(t.target_path, t.status, t.queue_position) for t in queue]))


class Broken(TaskListener):
    def task_changed(self, change):
        raise RuntimeError("a listener that fails")


def test_listeners_hear_each_committed_change(published, signer, tmp_path):
    app = create_app(config(published, TaskSettings(database_in(tmp_path), jwt_keys=(signer.pem,))))
    recorder = Recorder()
    app.state.tasks.listeners.add(Broken())
    app.state.tasks.listeners.add(recorder)
    with uvicorn_server(app) as url:
        player = Client(url, signer.token("heard", [PRODUCT]))
        a = player.create("/a")[1]["data"]
        b = player.create("/b", priority=1)[1]["data"]["id"]
        player.create("/a")  # joined: nothing changes
        first = player.call("GET", f"/tasks/{a['id']}")[1]["data"]["attributes"]["items"][0]
        player.report(a["id"], items=[{"itemId": first["itemId"], "downloadedBytes": 3}])  # a holds no slot: b does
        player.report(b)
        player.call("POST", f"/tasks/{b}/pause")
        player.report(a["id"], items=[{"itemId": first["itemId"], "downloadedBytes": 3}])
        status, _, _ = player.call("DELETE", f"/tasks/{b}")
        assert status == 204
    path = first["relativePath"]
    assert recorder.heard == [
        ("status", "/a", None, "queued"), ("queue", "heard", [("/a", "queued", 0)]),
        ("status", "/b", None, "queued"), ("queue", "heard", [("/b", "queued", 0), ("/a", "queued", 1)]),
        ("status", "/b", "queued", "downloading"), ("progress", "/b", 0, []),
        ("queue", "heard", [("/b", "downloading", 0), ("/a", "queued", 1)]),
        ("status", "/b", "downloading", "paused"),
        ("queue", "heard", [("/b", "paused", 0), ("/a", "queued", 1)]),
        ("status", "/a", "queued", "downloading"),
        ("progress", "/a", 3, [(path, 3, "downloading")]),
        ("queue", "heard", [("/b", "paused", 0), ("/a", "downloading", 1)]),
        ("status", "/b", "paused", "cancelled"), ("queue", "heard", [("/a", "downloading", 0)]),
    ]
