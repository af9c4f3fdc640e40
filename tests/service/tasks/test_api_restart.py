"""State that survives: the service stopped mid-task and started again on the same database
(SQLite file or PostgreSQL) has every task, item and byte reported, and the client carries on."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from depot_testing.fixtures import PRODUCT
from depot_testing.tasks import SECRET, Client, service
from pipeline.service.links import verify_nginx


def kept(task: dict) -> dict:
    """A task as a restart keeps it: its links lead to the same documents, and are good
    links, signed anew (a link's expiry counts from when it is asked for, so is not kept)."""
    links = {}
    for name, value in task["links"].items():
        urls = value if isinstance(value, list) else [value]
        for url in urls:
            if "?" in url:
                parts = urlsplit(url)
                query = dict(parse_qsl(parts.query))
                verify_nginx(parts.path, query["md5"], query["expires"], SECRET)  # raises unless good now
        links[name] = [u.split("?")[0] for u in urls] if isinstance(value, list) else value.split("?")[0]
    return {**task, "links": links}


def test_a_restart_mid_task_loses_no_task(published, signer, database):
    token = signer.token("restarter", [PRODUCT])
    with service(published, signer, database) as url:
        player = Client(url, token)
        running = player.create("/games/running")[1]["data"]["id"]
        waiting = player.create("/games/waiting", priority=0)[1]["data"]["id"]
        items = player.call("GET", f"/tasks/{running}")[1]["data"]["attributes"]["items"]
        player.report(running, items=[{"itemId": items[0]["itemId"], "downloadedBytes": items[0]["totalFileSizeBytes"],
                                       "status": "completed"}])
        before = {t: kept(player.call("GET", f"/tasks/{t}")[1]["data"]) for t in (running, waiting)}
    with service(published, signer, database) as url:  # a new server on the same database: migrated already
        player = Client(url, token)
        after = {t: kept(player.call("GET", f"/tasks/{t}")[1]["data"]) for t in (running, waiting)}
        assert after == before
        assert after[running]["links"]["manifest"].endswith(".manifest.json")
        assert after[running]["attributes"]["status"] == "downloading"
        assert after[running]["attributes"]["downloadedBytes"] == items[0]["totalFileSizeBytes"]
        assert [t["id"] for t in player.call("GET", "/tasks/queue")[1]["data"]] == [running, waiting]
        a = player.report(running, status="completed")[1]["data"]["attributes"]
        assert (a["status"], a["downloadedBytes"]) == ("completed", a["totalSizeBytes"])
        assert player.report(waiting)[1]["data"]["attributes"]["status"] == "downloading"
