#!/usr/bin/env python3
"""What progress over WebSocket costs, per unit, for docs/scaling.md: the memory of an idle
``/ws/download/progress`` socket, the service's CPU per message it delivers from Redis
pub/sub, Redis's CPU per progress report (alone and batched, as the publisher batches
what arrives meanwhile) and its memory per task, and the SQL statements a report costs
on PostgreSQL. CPU is counted in /proc (user + system time of the process that did the
work), not timed, so a busy machine changes it little. A real Redis and PostgreSQL
(depot_testing/databases.py) and a real uvicorn in a process of its own; about 30 s.

End-to-end rates and delays (reports/s, WebSocket delivery p99 with 1,000 clients) are
bench_tasks.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import socket
import subprocess
import sys
import time

from benchlib import REPO_ROOT, log

sys.path.insert(0, REPO_ROOT)

SERVER = """\
import sys
from fastapi import FastAPI
import uvicorn
from pipeline.service.tasks.hot import open_hot_state
from pipeline.service.tasks.progress import ProgressHub
hub = ProgressHub(open_hot_state(sys.argv[2]), lambda token: token)  # the token is the user: no JWT cost here
app = FastAPI()
app.include_router(hub.router())
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def report_payload() -> bytes:
    """A report's messages as published: the task's status and two items'."""
    from pipeline.service.tasks.progress import Speed, encode, item_progress, task_status
    from pipeline.service.tasks.task import Item, Task

    now = datetime.datetime.now(datetime.timezone.utc)
    task = Task("5f0c4a52-2b0e-4a7e-9d7e-3c6b1e0f0a11", "user", "download", "starfall", "1.2.0", None,
                "/games/starfall", "downloading", 0, 10 ** 10, 4 * 10 ** 9, None, None, now, now, 0)
    item = Item("7a1d9c1e-5b7f-4e55-8d0b-6f1f5f3c2e90", task.id, "data/level1.pak", "downloading", 52428800,
                104857600, None, 0, 0, None, None, now)
    return encode([task_status(task, Speed(5242880, 1144)), item_progress(task, item), item_progress(task, item)])


def sockets(redis_url: str, users: int, rounds: int) -> dict:
    """Idle sockets' memory, then the server's CPU per message delivered from pub/sub."""
    import redis
    import websockets

    from depot_testing.servers import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), redis_url], cwd=REPO_ROOT)
    payload = report_payload()

    async def run() -> dict:
        deadline = time.monotonic() + 30
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            await asyncio.sleep(0.1)
        url = f"ws://127.0.0.1:{port}/ws/download/progress?token="
        warm = [await websockets.connect(url + f"warm-{i}") for i in range(20)]
        await asyncio.sleep(1)
        before = rss_kib(server.pid)
        socks = [await websockets.connect(url + f"user-{i}") for i in range(users)]
        await asyncio.sleep(1)
        per_socket = (rss_kib(server.pid) - before) / users
        lines = payload.count(b"\n") + 1
        got = 0

        async def read(ws) -> None:
            nonlocal got
            for _ in range(rounds * lines):
                await ws.recv()
                got += 1

        readers = [asyncio.create_task(read(ws)) for ws in socks]
        publisher = redis.Redis.from_url(redis_url)
        start = cpu_seconds(server.pid)
        for _ in range(rounds):
            with publisher.pipeline(transaction=False) as pipe:
                for i in range(users):
                    pipe.publish(f"download_events:user-{i}", payload)
                pipe.execute()
            await asyncio.sleep(0)
        await asyncio.wait_for(asyncio.gather(*readers), 300)
        used = cpu_seconds(server.pid) - start
        for ws in socks + warm:
            await ws.close()
        return {"sockets": users, "kib_per_socket": round(per_socket, 1), "messages": got,
                "message_bytes": round(len(payload) / lines), "us_per_message": round(used / got * 1e6, 1)}

    try:
        return asyncio.run(run())
    finally:
        server.terminate()
        server.wait(timeout=30)


def redis_costs(redis_url: str, reports: int) -> dict:
    """Redis's CPU per report: samples recorded and messages published, one report per
    round trip and a hundred."""
    import redis

    from pipeline.service.tasks.hot import open_hot_state

    r = redis.Redis.from_url(redis_url)
    pid = r.info("server")["process_id"]
    hot = open_hot_state(redis_url)
    payload = report_payload()
    out: dict = {}
    for batch in (1, 100):
        redis_start, own_start = cpu_seconds(pid), time.process_time()
        for k in range(0, reports, batch):
            hot.record([(f"task-{(k + j) % 5000}", 1000.0 + k, k) for j in range(batch)])
            hot.publish([(f"user-{(k + j) % 5000}", payload) for j in range(batch)])
        out[f"batch_{batch}"] = {"redis_us_per_report": round((cpu_seconds(pid) - redis_start) / reports * 1e6, 1),
                                 "service_us_per_report": round((time.process_time() - own_start) / reports * 1e6, 1)}
    out["bytes_per_task"] = r.memory_usage("download_task_speed:task-1")
    hot.close()
    return out


def statements(postgres_url: str, reports: int) -> dict:
    """The SQL statements of one progress report of ten items, on PostgreSQL."""
    from collections import Counter

    from sqlalchemy import event

    from pipeline.service.tasks.listener import Listeners
    from pipeline.service.tasks.queue import ItemReport, NewItem, Queue, Report
    from pipeline.service.tasks.repository import Repository

    repository = Repository(postgres_url)
    repository.migrate()
    queue = Queue(repository, Listeners())
    task, _ = queue.create("user", "download", "starfall", "1.2.0", "/games/starfall", 0,
                           [NewItem(f"file-{i}", 10 ** 9) for i in range(1000)])
    queue.report("user", task.id, Report(items=(ItemReport(1, relative_path="file-0"),)))
    seen: Counter = Counter()
    event.listen(repository.engine, "before_cursor_execute",
                 lambda conn, cursor, sql, params, context, many: seen.update([sql.split()[0]]))
    for n in range(reports):
        queue.report("user", task.id, Report(items=tuple(ItemReport(n + 2, relative_path=f"file-{i}")
                                                           for i in range(10))))
    repository.close()
    return {kind: round(count / reports, 2) for kind, count in sorted(seen.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sockets", type=int, default=1000, help="idle WebSockets held (default 1000)")
    ap.add_argument("--rounds", type=int, default=20, help="reports published to each socket (default 20)")
    ap.add_argument("--reports", type=int, default=20000, help="reports recorded in Redis (default 20000)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()

    from depot_testing.databases import postgres, redis_server

    with redis_server() as redis_url, postgres() as postgres_url:
        log("sockets ...")
        figures = {"websocket": sockets(redis_url, args.sockets, args.rounds)}
        log("redis ...")
        figures["redis"] = redis_costs(redis_url, args.reports)
        log("postgresql ...")
        figures["sql_statements_per_report"] = statements(postgres_url, 200)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    ws, rd = figures["websocket"], figures["redis"]
    print(f"idle socket: {ws['kib_per_socket']} KiB of the server's memory ({ws['sockets']} sockets)")
    print(f"a message delivered from pub/sub: {ws['us_per_message']} us of the server's CPU "
          f"({ws['messages']} messages of about {ws['message_bytes']} bytes)")
    for batch in (1, 100):
        b = rd[f"batch_{batch}"]
        print(f"a report, {batch} a round trip: Redis {b['redis_us_per_report']} us, "
              f"the publisher {b['service_us_per_report']} us of CPU")
    print(f"a task's samples in Redis: {rd['bytes_per_task']} bytes")
    print("SQL statements per report: " + ", ".join(f"{k} {v}" for k, v in
                                                    figures["sql_statements_per_report"].items()))


if __name__ == "__main__":
    main()
