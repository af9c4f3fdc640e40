"""A task's progress as the client reports it: the task's bytes laid over its files in
manifest order, each report carrying only the files whose bytes moved, none left behind."""

from __future__ import annotations

import random

from pipeline.client.task_session import MOST_ITEMS, TaskSession


def session(sizes: list[int]) -> TaskSession:
    items = [{"itemId": str(n), "totalFileSizeBytes": s, "downloadedBytes": 0} for n, s in enumerate(sizes)]
    task = {"id": "t", "type": "downloadTask",
            "attributes": {"status": "downloading", "totalSizeBytes": sum(sizes), "items": items}}
    s = TaskSession(None, task)  # type: ignore[arg-type]  # no report is sent here
    s.on_total(lambda n: None)(sum(sizes))
    return s


def test_each_file_gets_the_tasks_bytes_in_order_and_reports_carry_only_what_moved():
    rng = random.Random(7)
    for _ in range(300):
        sizes = [rng.choice([0, 1, 7, 100, 4096]) for _ in range(rng.randint(1, 60))]
        s, shown, written = session(sizes), {str(n): 0 for n in range(len(sizes))}, 0
        for _ in range(12):
            step = rng.randint(-50, sum(sizes) // 3 + 1)  # a later run may report less than an earlier one
            s.progress(lambda n: None)(step)
            written += step
            report = s._progress()
            moved = {i["itemId"] for i in report["items"]}
            assert all(shown[i["itemId"]] != i["downloadedBytes"] for i in report["items"])
            shown.update({i["itemId"]: i["downloadedBytes"] for i in report["items"]})
            done, before = report["downloadedBytes"], 0
            assert done == max(0, min(sum(sizes), written))
            for n, size in enumerate(sizes):
                assert shown[str(n)] == max(0, min(size, done - before)), (sizes, done)
                before += size
            assert len(moved) == len(report["items"])


def test_a_report_carries_at_most_the_limit_and_the_rest_comes_next():
    s = session([1] * (MOST_ITEMS + 5))
    s.progress(lambda n: None)(MOST_ITEMS + 5)
    first, second, third = s._progress(), s._progress(), s._progress()
    assert [len(r["items"]) for r in (first, second, third)] == [MOST_ITEMS, 5, 0]
    assert {i["itemId"] for i in first["items"] + second["items"]} == {str(n) for n in range(MOST_ITEMS + 5)}
