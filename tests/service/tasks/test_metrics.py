"""Download tasks' metrics on the service's /metrics, read from a real uvicorn server after
a scripted sequence of API calls: tasks by kind and status from the database, tasks
ended, bytes reported, item errors by code, delta updates applied or failed."""

from __future__ import annotations

import pytest

from depot_testing.fixtures import PRODUCT
from depot_testing.integrations import samples, service
from depot_testing.tasks import Client, database_in
from pipeline.service.tasks.integrations import IntegrationSettings


@pytest.fixture(scope="module")
def scripted(published, signer, tmp_path_factory):
    """The service after the sequence below; yields its metrics and what the API answered."""
    with service(published, signer, database_in(tmp_path_factory.mktemp("metrics")), IntegrationSettings()) as (url, _):
        before = samples(url)

        def player(user: str) -> Client:
            return Client(url, signer.token(user, [PRODUCT]))

        def task(client: Client, target: str, version: str) -> dict:
            _, body, _ = client.create(target, version)
            _, body, _ = client.call("GET", f"/tasks/{body['data']['id']}")
            return body["data"]

        def update(client: Client, target: str) -> dict:
            _, body, _ = client.call("POST", "/updates/initiate", {"data": {"type": "updateInitiateRequest",
                                                                           "attributes": {"productId": PRODUCT,
                                                                                          "targetVersionId": target}}})
            _, body, _ = client.call("GET", f"/tasks/{body['data']['id']}")
            return body["data"]

        def completed(client: Client, t: dict) -> None:
            assert client.report(t["id"], status="completed")[0] == 200

        totals = []
        # a download reported twice, then completed: bytes counted from each report to the next
        a = player("m-a")
        t1 = task(a, "/a", "1.2.0")
        i0, i1 = t1["attributes"]["items"][:2]
        a.report(t1["id"], items=[{"itemId": i0["itemId"], "downloadedBytes": 100},
                                  {"itemId": i1["itemId"], "downloadedBytes": 50}])
        a.report(t1["id"], items=[{"itemId": i0["itemId"], "downloadedBytes": 400}])
        completed(a, t1)
        totals.append(t1["attributes"]["totalSizeBytes"])
        # a download whose item fails at the CDN, then the task
        b = player("m-b")
        t2 = task(b, "/b", "1.1.0")
        j0, j1 = t2["attributes"]["items"][:2]
        b.report(t2["id"], items=[{"itemId": j0["itemId"], "downloadedBytes": 10}])
        b.report(t2["id"], items=[{"itemId": j1["itemId"], "downloadedBytes": 0, "status": "error",
                                   "errorCode": "CDN_UNREACHABLE"}])
        b.report(t2["id"], status="error", error={"errorCode": "CDN_UNREACHABLE", "errorMessage": "no route"})
        totals.append(10)
        # one cancelled; one downloading, one paused, one queued; an integrity check pending
        c = player("m-c")
        c.call("DELETE", f"/tasks/{task(c, '/c', '1.0.0')['id']}")
        d = player("m-d")
        t4, t5 = task(d, "/d4", "1.0.0"), task(d, "/d5", "1.1.0")
        d.report(t4["id"], items=[])
        d.call("POST", f"/tasks/{t5['id']}/pause")
        task(player("m-e"), "/e", "1.0.0")
        d.call("POST", "/integrity/verify", {"data": {"type": "integrityVerificationRequest", "attributes": {
            "productId": PRODUCT, "installedVersionId": "1.0.0", "targetPath": "/d4"}}})
        # two delta updates: one applied, one whose patch does not apply
        updates = []
        for user, target, ends in (("m-u", "1.2.0", "completed"), ("m-v", "1.1.0", "error")):
            u = player(user)
            base = task(u, f"/{user}", "1.0.0")
            completed(u, base)
            totals.append(base["attributes"]["totalSizeBytes"])
            up = update(u, target)
            updates.append(up)
            if ends == "completed":
                completed(u, up)
                totals.append(up["attributes"]["totalSizeBytes"])
            else:
                u.report(up["id"], status="error", error={"errorCode": "DELTA_PATCH_APPLICATION_FAILED"})
        yield {"before": before, "after": samples(url), "bytes": sum(totals), "updates": updates}


def value(metrics: dict, name: str, **labels) -> float:
    return metrics[(name, tuple(sorted(labels.items())))]


def test_tasks_by_kind_and_status_are_read_from_the_database(scripted):
    after = scripted["after"]
    found = {(dict(labels)["kind"], dict(labels)["status"]): v for (name, labels), v in after.items()
             if name == "depot_download_tasks"}
    assert found == {(kind, status): {("download", "downloading"): 1, ("download", "paused"): 1,
                                      ("download", "queued"): 1, ("download", "error"): 1, ("update", "error"): 1,
                                      ("verify", "queued"): 1}.get((kind, status), 0)
                     for kind in ("download", "update", "verify")
                     for status in ("downloading", "paused", "preparing", "queued", "verifying", "error")}
    assert all(v == 0 for (name, _), v in scripted["before"].items() if name == "depot_download_tasks")


def test_tasks_ended_by_kind_and_status(scripted):
    after = scripted["after"]
    ended = {(dict(labels)["kind"], dict(labels)["status"]): v for (name, labels), v in after.items()
             if name == "depot_download_tasks_ended_total"}
    assert ended == {(kind, status): {("download", "completed"): 3, ("download", "error"): 1,
                                      ("download", "cancelled"): 1, ("update", "completed"): 1,
                                      ("update", "error"): 1}.get((kind, status), 0)
                     for kind in ("download", "update", "verify") for status in ("completed", "error", "cancelled")}


def test_bytes_reported_item_errors_and_patches(scripted):
    after, before = scripted["after"], scripted["before"]
    assert value(before, "depot_download_bytes_total") == 0
    assert value(after, "depot_download_bytes_total") == scripted["bytes"]
    assert value(after, "depot_download_item_errors_total", code="CDN_UNREACHABLE") == 1
    assert [n for n, _ in after if n == "depot_download_item_errors_total"] == ["depot_download_item_errors_total"]
    # both updates carry patch operations: one applied, one failed
    assert all(any(i["operation"] == "patch" for i in u["attributes"]["items"]) for u in scripted["updates"])
    assert (value(after, "depot_download_patches_total", result="applied"),
            value(after, "depot_download_patches_total", result="failed")) == (1, 1)
    assert (value(before, "depot_download_patches_total", result="applied"),
            value(before, "depot_download_patches_total", result="failed")) == (0, 0)
