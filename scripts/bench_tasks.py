#!/usr/bin/env python3
"""Download tasks under load, on loopback: wrk against task creation and progress reports,
``depot serve`` on SQLite and on PostgreSQL; then 1,000 WebSocket clients connected, each a
user with a task, and the delay from a progress report to its message on the socket.

Goals on 2 cores (shared with the load generators): 1,000 task creations/s and 5,000
progress reports/s with p99 under 50 ms on PostgreSQL; WebSocket delivery p99 under 100 ms.
The method is in docs/benchmarks.md, "Download tasks". Besides each run's rate and latency:
the CPU time per request of the service and of PostgreSQL (counted in /proc, so that the
load of other processes changes it little), and PostgreSQL's statements per request
(pg_stat_statements, transaction control left out). Exit status: 1 when a goal is missed
with ``--check``; 2 when a server did not start.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as cf
import contextlib
import json
import os
import sys
import time
from pathlib import Path

from apilib import Server, lua_string, measure, process_tree_cpu, run_in_workdir, run_wrk
from bench_api import ORIGIN_NAME, PRODUCT, build_repository, publish_origin, write_locations
from benchlib import (add_run_options, col, depot_base_command, ensure_tools, log, machine_info, machine_line, print_table,
                      show, verdict)

API = "/api/v1/download"
VERSION = "1.2.0"
GOALS = {"create": 1000.0, "report": 5000.0}  # requests/s on PostgreSQL, p99 below P99_MS
P99_MS, WS_P99_MS = 50.0, 100.0


# the service and its users


def serve(args, workdir: Path, database: str, label: str, pem: Path) -> Server:
    """``depot serve`` with download tasks on ``database``, its links to an origin nobody
    fetches from (the benchmark loads the service, not a CDN)."""
    from depot_testing.servers import free_port

    base, cwd, env = depot_base_command(args.depot_cmd)
    origin = workdir / "origin"
    locations = workdir / "locations.toml"
    write_locations(locations, origin, "http://127.0.0.1:9/depot")
    port = free_port()
    cmd = base + ["--locations", str(locations), "serve", "--origin", ORIGIN_NAME, "--port", str(port),
                  "--trust", str(origin / "metadata" / "1.root.json"), "--tasks-db", database,
                  "--jwt-key", str(pem), "--max-active-tasks", "100000", "--link-rate", "1e9"]
    server = Server(f"serve-{label}", cmd, port, workdir, cwd=cwd, env=dict(env or os.environ,
                                                                            DEPOT_LINK_SECRET="bench"))
    server.wait()
    return server


def call(url: str, token: str, method: str, path: str, kind: str | None = None, attributes: dict | None = None):
    import urllib.request

    body = json.dumps({"data": {"type": kind, "attributes": attributes}}).encode() if kind else None
    req = urllib.request.Request(url + API + path, body, {"Authorization": f"Bearer {token}",
                                                          "Content-Type": "application/json"}, method=method)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["data"]


def started_tasks(url: str, tokens: list[str]) -> list[dict]:
    """A downloading task for each user: its id, the user's token, an item of at least 1000 bytes
    (named in the report that started the task)."""
    def one(n: int) -> dict:
        token = tokens[n]
        task = call(url, token, "POST", "/tasks", "downloadTaskRequest",
                    {"productId": PRODUCT, "versionId": VERSION, "targetPath": f"/games/{n}"})
        items = call(url, token, "GET", f"/tasks/{task['id']}")["attributes"]["items"]
        item = next(i["itemId"] for i in items if i["totalFileSizeBytes"] >= 1000)
        assert call(url, token, "POST", f"/tasks/{task['id']}/progress", "downloadProgressReport",
                    {"downloadedBytes": 0, "items": [{"itemId": item, "downloadedBytes": 0}]}
                    )["attributes"]["status"] == "downloading"  # started, as a client's first report starts it
        return {"id": task["id"], "token": token, "item": item}
    with cf.ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(len(tokens))))


def report_body(item: str, n: int) -> str:
    return json.dumps({"data": {"type": "downloadProgressReport", "attributes": {
        "downloadedBytes": n, "items": [{"itemId": item, "downloadedBytes": n}]}}})


# wrk's scripts: each request its own user, path or task


def lua_creations(path: Path, tokens: list[str]) -> str:
    body = json.dumps({"data": {"type": "downloadTaskRequest", "attributes": {
        "productId": PRODUCT, "versionId": VERSION, "targetPath": "@"}}})
    head, tail = (lua_string(part) for part in body.split("@"))
    path.write_text("local tokens = {" + ",".join(lua_string(t) for t in tokens) + "}\n"
                    "local n, id = 0, 0\n"
                    "function setup(thread) thread:set('tid', id); id = id + 1 end\n"
                    "function request()\n"
                    "  n = n + 1\n"
                    "  local headers = {['Content-Type'] = 'application/json',\n"
                    "                   ['Authorization'] = 'Bearer ' .. tokens[(n * 31 + tid) % #tokens + 1]}\n"
                    f"  return wrk.format('POST', '{API}/tasks', headers, {head} .. '/bench/' .. tid .. '-' .. n .. {tail})\n"
                    "end\n")
    return str(path)


def lua_reports(path: Path, tasks: list[dict]) -> str:
    """Reports round the tasks, as ``report_body`` makes them."""
    rows = ",".join("{" + ",".join(lua_string(t[k]) for k in ("id", "token", "item")) + "}" for t in tasks)
    path.write_text(f"local tasks = {{{rows}}}\n"
                    "local n, id = 0, 0\n"
                    "function setup(thread) thread:set('tid', id); id = id + 1 end\n"
                    "function request()\n"
                    "  n = n + 1\n"
                    "  local t, bytes = tasks[(n * 7 + tid) % #tasks + 1], tostring(n % 1000)\n"
                    "  local headers = {['Content-Type'] = 'application/json', ['Authorization'] = 'Bearer ' .. t[2]}\n"
                    "  local body = '{\"data\":{\"type\":\"downloadProgressReport\",\"attributes\":{\"downloadedBytes\":' ..\n"
                    "    bytes .. ',\"items\":[{\"itemId\":\"' .. t[3] .. '\",\"downloadedBytes\":' .. bytes .. '}]}}}'\n"
                    f"  return wrk.format('POST', '{API}/tasks/' .. t[1] .. '/progress', headers, body)\n"
                    "end\n")
    return str(path)


# the WebSocket clients


async def ws_delays(url: str, tasks: list[dict], rate: float, seconds: float, in_flight: int = 64) -> dict:
    """Every task's user connected; reports at ``rate`` a second round the tasks, each with
    bytes of its own; the delay from sending one to its downloadTaskStatusUpdate."""
    import aiohttp
    import websockets

    sent: dict[tuple[str, int], float] = {}
    delays: list[float] = []
    connected = asyncio.Event()
    count = [0]

    async def listen(task: dict) -> None:
        ws_url = url.replace("http://", "ws://") + f"/ws/download/progress?token={task['token']}"
        async with websockets.connect(ws_url, max_queue=None, open_timeout=60) as ws:
            count[0] += 1
            if count[0] == len(tasks):
                connected.set()
            async for raw in ws:
                m = json.loads(raw)
                if m["type"] == "downloadTaskStatusUpdate":
                    t0 = sent.pop((m["payload"]["taskId"], m["payload"]["downloadedBytes"]), None)
                    if t0 is not None:
                        delays.append(time.perf_counter() - t0)

    listeners = [asyncio.create_task(listen(t)) for t in tasks]
    await asyncio.wait_for(connected.wait(), 120)
    errors = 0
    slots = asyncio.Semaphore(in_flight)
    async with aiohttp.ClientSession() as session:
        async def report(n: int) -> None:
            nonlocal errors
            t = tasks[n % len(tasks)]
            bytes_ = 1000 + n // len(tasks)  # past what the setup reported, one more each round
            sent[(t["id"], bytes_)] = time.perf_counter()
            async with session.post(f"{url}{API}/tasks/{t['id']}/progress", data=report_body(t["item"], bytes_),
                                    headers={"Authorization": f"Bearer {t['token']}",
                                             "Content-Type": "application/json"}) as r:
                errors += r.status != 200
                await r.read()
            slots.release()

        start, pending = time.perf_counter(), []
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            await slots.acquire()
            if time.perf_counter() - start > seconds:  # a server behind the rate: the run still ends in time
                break
            pending.append(asyncio.create_task(report(n)))
        await asyncio.gather(*pending)
        total, elapsed = len(pending), time.perf_counter() - start
    for _ in range(100):  # the last messages, on their way
        if not sent:
            break
        await asyncio.sleep(0.05)
    for listener in listeners:
        listener.cancel()
    delays.sort()
    pct = lambda q: round(delays[min(len(delays) - 1, int(q * len(delays)))] * 1000, 2) if delays else None  # noqa: E731
    return {"clients": len(tasks), "reports": total, "offered_per_s": rate, "reports_per_s": round(total / elapsed, 1),
            "report_errors": errors, "messages_matched": len(delays), "lost": len(sent),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1.0)}


# the run


@contextlib.contextmanager
def databases(args, workdir: Path):
    """(name, URL) of each database the service runs on."""
    with contextlib.ExitStack() as stack:
        found = [("SQLite", f"sqlite:///{workdir / 'tasks.db'}")]
        if not args.no_postgres:
            from depot_testing.databases import postgres

            url = stack.enter_context(postgres("bench", ("shared_preload_libraries=pg_stat_statements",)))
            _sql(url, "CREATE EXTENSION pg_stat_statements")
            found.append(("PostgreSQL", url))
        yield found


def _sql(url: str, statement: str):
    """A statement's first row (None: it has none)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchone() if cursor.description else None


def database_counters(url: str) -> tuple[float, int] | None:
    """PostgreSQL's CPU seconds (the server and its backends) and the statements run on the
    database so far, transaction control left out; None for SQLite (in the service's process)."""
    if not url.startswith("postgresql"):
        return None
    import psutil

    port = url.rsplit(":", 1)[1].split("/")[0]
    server = next(p for p in psutil.process_iter(["name", "cmdline"])
                  if p.info["name"] == "postgres" and port in (p.info["cmdline"] or []))
    statements = _sql(url, "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = "
                           "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                           "AND query NOT IN ('BEGIN', 'COMMIT', 'ROLLBACK')")[0]
    # the backends that ended are counted in the server's children's times
    ended = server.cpu_times().children_user + server.cpu_times().children_system
    return sum(process_tree_cpu(server.pid).values()) + ended, int(statements)


def measured(label: str, name: str, endpoint: str, url: str, args, script: str, server: Server, database: str) -> dict:
    """``measure`` after its warm-up, with PostgreSQL's CPU and statements per request."""
    run_wrk(url, args.warmup, args.connections, args.threads, script)
    before = database_counters(database)
    row = measure(label, name, endpoint, url, args, script, server.proc.pid, warmup=False)
    after = database_counters(database)
    if before is not None and after is not None and row.get("requests"):
        # one statement of the counters' own each time
        row["db_cpu_us_per_request"] = round((after[0] - before[0]) / row["requests"] * 1e6, 1)
        row["statements_per_request"] = round((after[1] - before[1] - 1) / row["requests"], 3)
    return row


def run(args, workdir: Path) -> dict:
    from depot_testing.tasks import Signer

    repo = build_repository(workdir / "base")
    publish_origin(repo, workdir / "origin")
    signer = Signer()
    pem = workdir / "jwt.pub"
    pem.write_bytes(signer.pem)
    creators = [signer.token(f"creator-{n}", [PRODUCT], ttl=3600) for n in range(args.users)]
    report: dict = {"machine": machine_info(), "args": vars(args), "wrk": [], "ws": []}
    with databases(args, workdir) as found:
        for name, database in found:
            server = serve(args, workdir, database, name, pem)
            try:
                report["wrk"].append(measured("create", name, "POST /tasks", server.url + API + "/tasks", args,
                                              lua_creations(workdir / "create.lua", creators), server, database))
                tasks = started_tasks(server.url, [signer.token(f"{name}-{n}", [PRODUCT], ttl=3600)
                                                   for n in range(args.clients)])
                report["wrk"].append(measured("report", name, "POST /tasks/{id}/progress", server.url + API,
                                              args, lua_reports(workdir / "report.lua", tasks), server, database))
                before, db_before = sum(process_tree_cpu(server.proc.pid).values()), database_counters(database)
                ws = asyncio.run(ws_delays(server.url, tasks, args.ws_rate, args.seconds))
                db_after = database_counters(database)
                ws.update(database=name, server_cpu_s=round(sum(process_tree_cpu(server.proc.pid).values()) - before, 2),
                          db_cpu_s=round(db_after[0] - db_before[0], 2) if db_after and db_before else None)
                report["ws"].append(ws)
                log(f"{name}: WebSocket {ws}")
            finally:
                server.stop()
    report["goals"] = goals(report)
    return report


def goals(report: dict) -> dict:
    out: dict = {}
    for row in report["wrk"]:
        if row["server"] == "PostgreSQL" and row.get("requests_per_s") is not None:
            out[row["label"]] = (row["requests_per_s"] >= GOALS[row["label"]] and row["p99_ms"] < P99_MS
                                 and not row["non_2xx_3xx"])
    for ws in report["ws"]:
        out[f"ws {ws['database']}"] = ws["p99_ms"] is not None and ws["p99_ms"] < WS_P99_MS and not ws["lost"]
    return out


def print_report(r: dict) -> None:
    a = r["args"]
    print(machine_line(r["machine"]))
    print(f"wrk: {a['seconds']:g} s a run after {a['warmup']:g} s, {a['connections']} connections, "
          f"{a['threads']} threads; creations by {a['users']} users, reports round {a['clients']} downloading tasks")
    print_table([col("database", 11, "server"), col("request", 26, "endpoint"), col("req/s", 8, "requests_per_s", ".0f"),
                 col("p50 ms", 7, "p50_ms", ".2f"), col("p99 ms", 7, "p99_ms", ".2f"),
                 col("non-2xx", 8, "non_2xx_3xx"), col("server CPU us/req", 18, "server_cpu_us_per_request", ".0f"),
                 col("PostgreSQL CPU us/req", 22, "db_cpu_us_per_request", ".0f"),
                 col("statements/req", 15, "statements_per_request", ".2f")], r["wrk"])
    print()
    print_table([col("database", 11, "database"), col("clients", 8, "clients"),
                 col("offered/s", 10, "offered_per_s", ".0f"), col("reports/s", 10, "reports_per_s", ".0f"), col("matched", 8, "messages_matched"),
                 col("lost", 5, "lost"), col("p50 ms", 7, "p50_ms", ".2f"), col("p99 ms", 7, "p99_ms", ".2f"),
                 col("max ms", 8, "max_ms", ".2f"), col("server CPU s", 13, "server_cpu_s", ".1f"),
                 col("PostgreSQL CPU s", 17, "db_cpu_s", ".1f")], r["ws"])
    print()
    for goal, met in r["goals"].items():
        print(f"goal {goal}: {verdict(met)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10, help="seconds of each run (default 10)")
    ap.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    ap.add_argument("--warmup", type=float, default=2, help="seconds of load before each wrk run (default 2)")
    ap.add_argument("--users", type=int, default=2000, help="users creating tasks (default 2000)")
    ap.add_argument("--clients", type=int, default=1000,
                    help="users with a downloading task and a WebSocket connected (default 1000)")
    ap.add_argument("--ws-rate", type=float, default=2000,
                    help="progress reports a second while the sockets listen (default 2000: 1,000 clients "
                         "reporting every half second, as depot install does)")
    ap.add_argument("--no-postgres", action="store_true", help="SQLite only")
    add_run_options(ap, workdir_help="where the repository, databases and logs go (default: $TMPDIR)",
                    keep_help="keep the working directory", sampling=False)
    args = ap.parse_args(argv)
    ensure_tools({"wrk": "wrk"})
    report = run_in_workdir(args, "depot-bench-tasks-", run)
    if report is None:
        return 2
    show(report, args, print_report)
    return 1 if args.check and not all(report["goals"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
