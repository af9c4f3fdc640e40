#!/usr/bin/env python3
"""Load the lookup service with ``wrk`` on loopback: update checks, signed links, and nginx
serving a static file of the same size as an update-check answer (the machine's ceiling).

Usage::

    python scripts/bench_api.py [--seconds 30] [--connections 64] [--threads 2] [--warmup 2]
                                [--current 1.1.0] [--batch-keys 100] [--paced-rate 3000]
                                [--uvicorn-workers 2] [--nginx-workers 1]
                                [--profile-seconds 10] [--synthetic-chunks 100000]
                                [--depot-cmd CMD] [--workdir DIR] [--keep] [--json] [--check]

Steps:

1. Make sure ``wrk`` is installed (Debian's package, with benchlib's apt helper); py-spy
   (``pip install py-spy``) is used when found, else the profile is skipped and the report
   says so.
2. Build a small signed repository in process, the way the service's tests do: the
   fixture builds 1.0.0, 1.1.0 and 1.2.0 of ``starfall`` ingested and chunked (the
   fixture's chunk sizes, 16 / 64 / 256 KiB), every pair planned, TUF metadata with one
   root key, ``stable`` -> 1.2.0, every document signed; then ``publish`` it to an origin
   directory (``pipeline.publish.publish.publish``). Two seconds.
3. Start nginx over the origin (``pipeline.testing.servers.nginx``: ``secure_link`` with
   the secret the service signs with, ``--nginx-workers`` worker processes) with a file at
   ``/static`` whose size equals the service's answer to the update check below (computed
   in process with the service's own ``updates.check`` and Starlette's JSON rendering; the
   live answer's length is checked against it).
4. Start the service as its own process: ``depot --locations FILE serve --origin bench
   --port P --link-rate 1000000000`` with ``DEPOT_LINK_SECRET`` in its environment; the
   locations file names the origin directory with ``public_url`` = nginx's base, so the
   links point at nginx. ``--link-rate`` is raised so far that the per-client token bucket
   never refuses (every wrk connection comes from 127.0.0.1: one client to the service):
   this measures throughput, not the limiter (whose bookkeeping still runs on every
   request). Before loading, one request of each kind is checked: the update check
   answers 200 with ``isUpdateAvailable`` and ``updateType``, a link answers 200 and nginx
   serves the chunk's bytes through it, a batch answers as many links as keys.
5. Run wrk (``--latency``, ``--threads`` threads, ``--connections`` connections,
   ``--seconds`` each, after ``--warmup`` seconds of the same load, not counted) at full
   load against:

   * ``POST /api/v1/download/updates/check`` with the service documents' body (one
     installed product, ``starfall`` at ``--current``), through a Lua script written to a
     temporary file;
   * ``GET /api/v1/download/links?key=chunks/xx/<id>``: one signed link a request, the
     chunk keys of the versions' manifests in turn (a Lua script cycles through them);
   * with ``--batch-keys N`` (default 100; 0: skipped), the same with N keys a request,
     which is how clients ask (``ServiceStore`` asks 500 at a time): links per second;
   * nginx's ``/static``.

   Then, with ``--paced-rate R`` (default 3000; 0: skipped), the update checks and single
   links again at about R requests/s: wrk's ``delay()`` makes each connection wait a
   random time between requests, of mean connections / R less the server's latency (two
   calibration runs of max(3, --warmup) seconds measure it first). The latency at the
   goal's rate, rather than at saturation; a server that cannot keep up is loaded fully.
   The CPU seconds of the server's processes (psutil, over its process tree, per
   process), of wrk (wait4) and of everything else on the machine are read around each
   run: CPU per request, and how much of the cores each side took.
6. With ``--uvicorn-workers N`` (default 2; 0: skipped), the same runs against ``python
   -m uvicorn --factory bench_api:service_app --workers N``: the same application, built by
   ``service_app`` below with ``create_app`` and the same configuration (``depot serve``
   runs one worker and has no such option). No code of the service changes.
7. With ``--profile-seconds S`` (default 10; 0: skipped), py-spy samples the ``depot
   serve`` process (``record --nonblocking --format raw``) for S seconds under full load
   of update checks, then of single links (not the measured runs: sampling takes CPU),
   and the report lists the functions with the largest share of the busy samples,
   inclusive and own, and the own samples by layer (the leaf frame's package).
8. Time the service's own steps in process, without HTTP: ``updates.check``, one link
   (``catalog.preferred``, a ``LinkSigner``, ``link``), ``layout.check_key``, the body's
   validation by the ``UpdateCheck`` model, and each answer's JSON rendering, in microseconds per call; and with ``--synthetic-chunks N``
   (default 100000; 0: skipped) what an update check and a chunks page cost per request
   on two synthetic manifests of N 1 MiB chunks (``chunk_cost_from``, ``unique_chunks``
   sorted), with the manifest's size in JSON and parsed.

The report: requests/s, p50 and p99 latency, non-2xx/3xx responses (wrk counts a status
>= 400 there), socket errors, CPU, each endpoint's requests/s over nginx's; the goal, at
least 3,000 requests/s on update checks and on single links with p99 under 20 ms, server
and load generator sharing the machine's cores, MET or NOT MET read two ways (both at full
load; or the rate at full load and the p99 at about that rate) for ``depot serve`` and
under uvicorn. ``--json`` prints the same as JSON. Exit status 0 when everything ran
(with ``--check``: 1 when ``depot serve`` misses the goal both ways), 2 when a server did
not start or a check before loading failed.

``service_app`` is also what ``uvicorn --factory`` imports: it reads its configuration
from ``DEPOT_BENCH_API_ORIGIN``, ``DEPOT_BENCH_API_PUBLIC_URL``, ``DEPOT_BENCH_API_SECRET``
and ``DEPOT_BENCH_API_LINK_RATE``.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.error
import urllib.request
from pathlib import Path

from benchlib import (REPO_ROOT, depot_base_command, ensure_tools, fmt, log, machine_info, machine_line,
                      print_header, process_tree_cpu, remove_workdir, run_wrk, tool_version, verdict)

GOAL_RPS = 3000.0  # requests/s on each endpoint, at least
GOAL_P99_MS = 20.0  # p99 latency, below

PRODUCT = "starfall"
VERSIONS = ("1.0.0", "1.1.0", "1.2.0")
CHANNEL = "stable"
SECRET = "bench-cdn-secret"
ORIGIN_NAME = "bench"
API = "/api/v1/download"
NO_LIMIT = 1e9  # --link-rate: links a second per client, far beyond what wrk asks
ENV = "DEPOT_BENCH_API_"


# --------------------------------------------------------------------------
# the repository and its origin


def build_repository(base: Path, versions=VERSIONS):
    """``base/repo``: the fixture versions chunked, every pair planned, signed with TUF
    (one root key), stable -> the last version (as the service's tests build it)."""
    from pipeline.storage import open_store
    from pipeline.testing.fixtures import signed_repository

    return open_store(str(signed_repository(base, versions) / "repo"))


def publish_origin(repo, origin_dir: Path, versions=VERSIONS) -> dict:
    from pipeline.publish.publish import publish
    from pipeline.storage import open_store

    return publish(repo, [open_store(str(origin_dir))], PRODUCT, list(versions), channels=[CHANNEL]).to_dict()


def chunk_keys(repo, versions=VERSIONS) -> list[str]:
    """The chunk keys of the versions' manifests, sorted."""
    from pipeline import layout
    from pipeline.formats import manifest as manifest_doc

    ids = set()
    for v in versions:
        ids.update(manifest_doc.load(repo, PRODUCT, v).unique_chunks())
    return [layout.chunk_key(i) for i in sorted(ids)]


def check_body(current: str) -> dict:
    """The service documents' update check: one installed product."""
    return {"data": [{"type": "installedProduct",
                      "attributes": {"productId": PRODUCT, "currentVersionId": current}}]}


# --------------------------------------------------------------------------
# the application, as depot serve builds it (and as uvicorn --factory imports it)


def service_config(origin_dir: str, public_url: str, secret: str, link_rate: float):
    from pipeline.service.app import ServiceConfig
    from pipeline.service.catalog import Origin
    from pipeline.storage import Location, open_origin

    loc = Location(str(origin_dir), region="local", priority=0, public_url=public_url)
    return ServiceConfig([Origin(ORIGIN_NAME, open_origin(loc), loc)], link_secret=secret, link_rate=link_rate,
                         channel=CHANNEL)


def service_app():
    """The service over the benchmark's origin, for ``uvicorn --factory bench_api:service_app``."""
    from pipeline.service.app import create_app

    return create_app(service_config(os.environ[ENV + "ORIGIN"], os.environ[ENV + "PUBLIC_URL"],
                                     os.environ[ENV + "SECRET"], float(os.environ.get(ENV + "LINK_RATE", NO_LIMIT))))


def write_locations(path: Path, origin_dir: Path, public_url: str) -> None:
    path.write_text(f'[{ORIGIN_NAME}]\nurl = "{origin_dir}"\nregion = "local"\npriority = 0\n'
                    f'public_url = "{public_url}"\n')


def answer_bytes(origin_dir: Path, public_url: str, current: str) -> bytes:
    """The service's answer to the update check, rendered as Starlette renders it."""
    from starlette.responses import JSONResponse

    from pipeline.service.catalog import Catalog
    from pipeline.service.updates import check

    catalog = Catalog(service_config(str(origin_dir), public_url, SECRET, NO_LIMIT).origins)
    info = check(catalog, PRODUCT, current, CHANNEL)
    return JSONResponse({"data": [{"type": "updateInfo", "attributes": info}]}).body


# --------------------------------------------------------------------------
# servers as processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process (its own process group), its port, its CPU time."""

    def __init__(self, name: str, cmd: list[str], port: int, workdir: Path, cwd=None, env=None):
        self.name, self.cmd, self.port = name, cmd, port
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"

    def wait(self, path: str = "/healthz", timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): {self.log()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} does not answer {path} after {timeout:.0f} s: {self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the group this script started
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def nginx_pid(state: Path) -> int:
    return int((state / "nginx.pid").read_text().split()[0])


# --------------------------------------------------------------------------
# HTTP checks before loading


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"} if body else {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def check_service(url: str, body: bytes, expected_answer: bytes, key: str, origin_dir: Path,
                  batch: list[str]) -> list[str]:
    """One request of each kind, checked; the problems found."""
    problems = []
    status, answer = http("POST", url + API + "/updates/check", body)
    if status != 200:
        problems.append(f"update check: HTTP {status}: {answer[:300]!r}")
    else:
        info = json.loads(answer)["data"][0]["attributes"]
        if not info.get("isUpdateAvailable") or "updateType" not in info:
            problems.append(f"update check: no update priced: {info}")
        if len(answer) != len(expected_answer):
            problems.append(f"update check: answer of {len(answer)} bytes, {len(expected_answer)} computed")
    status, answer = http("GET", f"{url}{API}/links?key={key}")
    if status != 200:
        problems.append(f"links: HTTP {status}: {answer[:300]!r}")
    else:
        href = json.loads(answer)["data"][0]["attributes"]["href"]
        status, data = http("GET", href)
        if status != 200 or data != (origin_dir / key).read_bytes():
            problems.append(f"nginx did not serve {key} through the service's link (HTTP {status})")
    if batch:
        status, answer = http("GET", f"{url}{API}/links?" + "&".join(f"key={k}" for k in batch))
        if status != 200 or len(json.loads(answer)["data"]) != len(batch):
            problems.append(f"links, {len(batch)} keys: HTTP {status}: {answer[:300]!r}")
    return problems


# --------------------------------------------------------------------------
# wrk's Lua scripts


def lua_pace(pace_ms: float | None) -> str:
    """A wrk ``delay()``: each connection waits between 0 and 2 x pace_ms (uniform, mean
    pace_ms, whole milliseconds) before its next request, so C connections send about
    C / (pace_ms + latency) requests a millisecond (a closed loop: a server that falls
    behind gets fewer)."""
    return (f"function delay() return math.floor(math.random() * {2 * pace_ms:.3f} + 0.5) end\n"
            if pace_ms else "")


def lua_post(path: Path, body: bytes, pace_ms: float | None = None) -> str:
    path.write_text('wrk.method = "POST"\n'
                    f"wrk.body = {lua_string(body.decode())}\n"
                    'wrk.headers["Content-Type"] = "application/json"\n' + lua_pace(pace_ms))
    return str(path)


def lua_cycle(path: Path, paths: list[str], pace_ms: float | None = None) -> str:
    """GET each of paths in turn (each wrk thread from its own place)."""
    items = ",\n".join(lua_string(p) for p in paths)
    path.write_text(f"local paths = {{\n{items}\n}}\n"
                    "local i = 0\n"
                    "function setup(thread) thread:set('start', math.random(#paths)) end\n"
                    "function init(args) i = tonumber(start) or 0 end\n"
                    "function request()\n"
                    "  i = i % #paths + 1\n"
                    "  return wrk.format('GET', paths[i])\n"
                    "end\n" + lua_pace(pace_ms))
    return str(path)


def lua_string(s: str) -> str:
    return "[==[" + s + "]==]"


# --------------------------------------------------------------------------
# measuring


def measure(label: str, server_name: str, endpoint: str, url: str, args, script: str | None,
            server_pid: int, links_per_request: int = 0, warmup: bool = True) -> dict:
    """wrk against url (after a warm-up), with the CPU time of the server's processes, of
    wrk, and of everything else on the machine around the measured run."""
    import psutil

    from benchlib import busy_cpu_seconds

    if warmup and args.warmup > 0:
        run_wrk(url, args.warmup, args.connections, args.threads, script)
    log(f"{label}: wrk {args.seconds:g} s, {args.connections} connections, {args.threads} threads -> {url}")
    before, machine0, own0 = process_tree_cpu(server_pid), psutil.cpu_times(), time.process_time()
    t0 = time.perf_counter()
    res = run_wrk(url, args.seconds, args.connections, args.threads, script)
    wall = time.perf_counter() - t0
    after, machine1, own1 = process_tree_cpu(server_pid), psutil.cpu_times(), time.process_time()
    per_process = {pid: round(after[pid] - before.get(pid, 0.0), 2) for pid in after}
    server_cpu = sum(per_process.values())
    busy = busy_cpu_seconds(machine0, machine1)
    other = max(0.0, busy - server_cpu - (res.get("wrk_cpu_s") or 0.0) - (own1 - own0))
    rps = res.get("requests_per_s")
    row = {
        "label": label, "server": server_name, "endpoint": endpoint, "url": url,
        "requests": res.get("requests"), "seconds": res.get("seconds"), "requests_per_s": rps,
        "links_per_s": round(rps * links_per_request, 1) if rps and links_per_request else None,
        "p50_ms": res["latency_ms"].get("p50"), "p99_ms": res["latency_ms"].get("p99"),
        "avg_ms": res.get("latency_avg_ms"), "max_ms": res.get("latency_max_ms"),
        "non_2xx_3xx": res.get("non_2xx_3xx"), "socket_errors": res.get("socket_errors"),
        "server_cpu_s": round(server_cpu, 2), "server_cpu_by_process_s": sorted(per_process.values(), reverse=True),
        "wrk_cpu_s": res.get("wrk_cpu_s"), "machine_busy_cpu_s": busy, "other_cpu_s": round(other, 2),
        "wall_s": round(wall, 2),
        "server_cpu_us_per_request": (round(server_cpu / res["requests"] * 1e6, 1)
                                      if res.get("requests") else None),
        "command": res["command"], "returncode": res["returncode"],
    }
    if res["returncode"] != 0 or rps is None:
        row["error"] = (res["stderr"] or res["stdout"])[-2000:]
    log(f"{label}: {fmt(rps, '.0f')} req/s, p50 {fmt(row['p50_ms'], '.2f')} ms, p99 {fmt(row['p99_ms'], '.2f')} ms, "
        f"non-2xx {row['non_2xx_3xx']}, server CPU {server_cpu:.1f} s {row['server_cpu_by_process_s']}, "
        f"wrk CPU {row['wrk_cpu_s']} s, other {other:.1f} s")
    return row


def calibrated(make_script, url: str, args, pace_ms: float, steps: int = 2) -> tuple[str, float | None]:
    """The paced script for url. A run of max(3, --warmup) seconds with a mean delay d
    gives the server's latency at about that load (the connections' cycle time, connections
    / requests a second, less d); the next d is connections / rate less that latency, so
    that the measured run offers about the rate. Starts from d = connections / rate, two
    steps. (script, the mean delay in ms), or (an unpaced script, None) when the server
    cannot keep up even without a delay."""
    delay = pace_ms
    for _ in range(steps):
        res = run_wrk(url, max(3.0, args.warmup), args.connections, args.threads, make_script(delay))
        achieved = res.get("requests_per_s")
        if not achieved:
            break
        latency_ms = max(0.0, args.connections * 1000 / achieved - delay)
        log(f"pacing {url}: {achieved:.0f} req/s with a mean delay of {delay:.1f} ms: latency about "
            f"{latency_ms:.1f} ms")
        delay = pace_ms - latency_ms
        if delay <= 0.5:
            return make_script(None), None
    return make_script(delay), round(delay, 2)


def goal_met(row: dict | None) -> bool | None:
    if not row or row.get("requests_per_s") is None or row.get("p99_ms") is None:
        return None
    return (row["requests_per_s"] >= GOAL_RPS and row["p99_ms"] < GOAL_P99_MS
            and not row["non_2xx_3xx"] and not any(row["socket_errors"].values()))


def goal_met_at_rate(full: dict | None, paced: dict | None, rate: float) -> bool | None:
    """The goal read as: capacity (requests/s at full load) of at least GOAL_RPS, and p99
    under GOAL_P99_MS when loaded at about that rate (at least 90% of it achieved), no
    errors in either run."""
    if not full or not paced or full.get("requests_per_s") is None or paced.get("p99_ms") is None:
        return None
    clean = lambda r: not r["non_2xx_3xx"] and not any(r["socket_errors"].values())
    return (full["requests_per_s"] >= GOAL_RPS and paced["requests_per_s"] >= 0.9 * min(rate, GOAL_RPS)
            and paced["p99_ms"] < GOAL_P99_MS and clean(full) and clean(paced))


# --------------------------------------------------------------------------
# profile (py-spy) and the service's own code in process


def py_spy() -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else None


def profile(pid: int, url: str, script: str | None, args, out: Path) -> dict:
    """py-spy samples of pid while wrk loads url: the top functions, inclusive and own."""
    spy = py_spy()
    if spy is None:
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    load = cf.ThreadPoolExecutor(1).submit(run_wrk, url, args.profile_seconds + 3, args.connections, args.threads,
                                           script)
    time.sleep(1)
    cmd = [spy, "record", "--pid", str(pid), "--duration", str(max(1, round(args.profile_seconds))),
           "--rate", "250", "--nonblocking", "--format", "raw", "--output", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    wrk = load.result()
    if res.returncode != 0 or not out.exists():
        return {"skipped": f"py-spy failed: {res.stderr.strip()[-500:]}"}
    return summarize_profile(out.read_text(), wrk.get("requests_per_s"))


def frame_name(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)``, paths shortened to the package."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", REPO_ROOT + "/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name


IDLE_LEAVES = ("Condition.wait (threading.py)", "Event.wait (threading.py)", "Queue.get (queue.py)",
               "_wait_for_tstate_lock (threading.py)")
LAYERS = (  # the leaf frame's file -> where the time goes
    ("starlette/middleware/base.py", "BaseHTTPMiddleware (the service's `measure` middleware)"),
    ("fastapi/encoders.py", "fastapi jsonable_encoder"),
    ("fastapi/", "fastapi routing, dependencies, body"),
    ("starlette/", "starlette routing, requests, responses"),
    ("anyio/", "anyio (thread hand-off, task groups)"),
    ("threading.py", "threads (hand-off to the worker pool)"),
    ("queue.py", "threads (hand-off to the worker pool)"),
    ("uvicorn/", "uvicorn (HTTP protocol, socket writes)"),
    ("asyncio/", "asyncio / uvloop (the event loop)"),
    ("pydantic", "pydantic (validation)"),
    ("prometheus_client/", "prometheus_client (metrics)"),
    ("pipeline/", "depot's own code (pipeline/)"),
    ("json/", "json (rendering)"),
)
NOT_INTERESTING = ("click/", "runpy", "uvicorn/main.py", "uvicorn/server.py", "uvicorn/_compat.py",
                   "uvicorn/__main__.py", "asyncio/runners.py", "asyncio/base_events.py", "(depot)", "(cli.py)",
                   "commands/", "(threading.py)", "(queue.py)")


def layer_of(frame: str) -> str:
    for marker, layer in LAYERS:
        if marker in frame:
            return layer
    return "other"


def summarize_profile(raw: str, rps: float | None, top: int = 25) -> dict:
    """Shares of the busy samples (raw collapsed stacks: ``frame;frame;... count``): the
    functions with the most inclusive and own samples, and own samples by layer. Samples
    of threads waiting (the idle worker pool: py-spy --nonblocking does not tell them
    apart) are left out and counted apart."""
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    layers: collections.Counter = collections.Counter()
    total = waiting = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [frame_name(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))] or frames
        if frames[-1] in IDLE_LEAVES:
            waiting += n
            continue
        total += n
        own[frames[-1]] += n
        layers[layer_of(frames[-1])] += n
        for f in set(frames):
            if not any(m in f for m in NOT_INTERESTING):
                inclusive[f] += n
    share = lambda c, k: [{"function": f, "share": round(n / total, 3)} for f, n in c.most_common(k)]
    return {"samples": total, "waiting_samples": waiting, "requests_per_s_while_sampled": rps,
            "inclusive": share(inclusive, top), "own": share(own, top),
            "layers": [{"layer": f, "share": round(n / total, 3)} for f, n in layers.most_common()]}


def own_code_us(origin_dir: Path, public_url: str, current: str, key: str, body: bytes) -> dict:
    """Microseconds per call of the service's own steps, in this process, no HTTP."""
    from starlette.responses import JSONResponse

    from pipeline import layout
    from pipeline.service.app import UpdateCheck
    from pipeline.service.catalog import Catalog
    from pipeline.service.links import LinkSigner
    from pipeline.service.updates import check

    config = service_config(str(origin_dir), public_url, SECRET, NO_LIMIT)
    catalog = Catalog(config.origins)
    check(catalog, PRODUCT, current, CHANNEL)  # documents read and parsed once, as in the service

    def one_link():
        origin = catalog.preferred(None)
        return LinkSigner(origin.public_url, config.link_secret, config.link_keys, config.link_ttl,
                          config.link_style).link(key)

    url, expires = one_link()
    check_answer = {"data": [{"type": "updateInfo", "attributes": check(catalog, PRODUCT, current, CHANNEL)}]}
    link_answer = {"data": [{"type": "link", "id": key, "attributes": {"href": url, "expiresAt": expires}}]}
    steps = {
        "updates.check (the route, chunk costs, plans)": lambda: check(catalog, PRODUCT, current, CHANNEL),
        "UpdateCheck.model_validate_json (the body)": lambda: UpdateCheck.model_validate_json(body),
        "JSONResponse render (update-check answer)": lambda: JSONResponse(check_answer).body,
        "layout.check_key": lambda: layout.check_key(key),
        "a link: catalog.preferred + LinkSigner(...) + link()": one_link,
        "JSONResponse render (one-link answer)": lambda: JSONResponse(link_answer).body,
    }
    out = {}
    for name, fn in steps.items():
        timer = timeit.Timer(fn)
        n, _ = timer.autorange()
        best = min(timer.repeat(3, n)) / n
        out[name] = round(best * 1e6, 2)
    return out


def synthetic_costs(n_chunks: int, changed: float = 0.05) -> dict:
    """What the service's per-request work costs on a large version, in this process: two
    synthetic manifests of ``n_chunks`` 1 MiB chunks in files of 10 chunks each, the newer
    with ``changed`` of its chunks new. Milliseconds (best of 3), and the manifest's size."""
    import hashlib

    from pipeline.core.chunk_params import ChunkParams
    from pipeline.formats.manifest import ChunkRef, FileEntry, Manifest

    def manifest(version: str, new_every: int) -> Manifest:
        entries = []
        for f in range(max(1, n_chunks // 10)):
            chunks = []
            for i in range(10):
                n = f * 10 + i
                tag = f"{version}-{n}" if new_every and n % new_every == 0 else f"base-{n}"
                cid = hashlib.blake2b(tag.encode(), digest_size=32).hexdigest()
                chunks.append(ChunkRef(i << 20, 1 << 20, cid, 700_000))
            entries.append(FileEntry(f"data/d{f // 1000:03d}/f{f:06d}.pak", "file", 10 << 20, False,
                                     hashlib.sha256(f"{version}-{f}".encode()).hexdigest(), chunks=tuple(chunks)))
        return Manifest("big", version, ChunkParams(256 << 10, 1 << 20, 4 << 20), tuple(entries))

    installed, target = manifest("1", 0), manifest("2", round(1 / changed) if changed else 0)
    data = target.to_bytes()
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    parsed = Manifest.from_bytes(data, "big.json")
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del parsed

    def best(fn, repeat=3) -> float:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return round(min(times) * 1000, 2)

    return {
        "chunks": n_chunks, "files": max(1, n_chunks // 10), "changed": changed,
        "manifest_bytes": len(data), "parsed_bytes": held,
        "ms": {
            "Manifest.from_bytes (parse and validate, once per version)": best(
                lambda: Manifest.from_bytes(data, "big.json"), 1),
            "Manifest.unique_chunks": best(target.unique_chunks),
            "chunk_cost_from (every update check, the two manifests)": best(
                lambda: target.chunk_cost_from(installed)),
            "sorted(unique_chunks()) (every chunks page request)": best(
                lambda: sorted(target.unique_chunks().values(), key=lambda c: c.id)),
            "Manifest.totals (an update check from an unknown version)": best(target.totals),
        },
    }


# --------------------------------------------------------------------------
# report


ENDPOINTS = {"check": "POST updates/check", "link": "GET links (1 key)", "batch": "GET links ({n} keys)",
             "static": "nginx /static"}


def print_report(r: dict) -> None:
    print(machine_line(r["machine"]))
    print(f"repository: {PRODUCT} {', '.join(r['versions'])} (fixture builds), signed, {CHANNEL} -> "
          f"{r['versions'][-1]}; published: {r['published_objects']} objects; {len(r['chunk_keys'])} chunk keys")
    print(f"update check body: {r['body']}")
    print(f"update-check answer: {r['answer_bytes']} bytes (the /static file's size)")
    print(f"wrk: {r['wrk_version']}; {r['seconds']:g} s a run after {r['warmup']:g} s of warm-up, "
          f"{r['connections']} connections, {r['threads']} threads, on 127.0.0.1")
    for name, cmd in r["servers"].items():
        print(f"{name}: {cmd}")
    print("depot serve runs one uvicorn worker (httptools, uvloop); --link-rate is raised to "
          f"{NO_LIMIT:g} so that the rate limit never refuses (this measures throughput)")
    print()
    hdr = (f"{'server':<28} {'endpoint':<22} {'load':<12} {'req/s':>8} {'links/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
           f"{'non-2xx':>8} {'sock err':>8} {'srv CPU s':>9} {'us CPU/req':>10} {'wrk CPU s':>9} "
           f"{'other CPU s':>11} {'/ nginx':>8}")
    print_header(hdr)
    for row in r["results"]:
        errs = sum(row["socket_errors"].values()) if row.get("socket_errors") else None
        print(f"{row['server']:<28} {row['endpoint']:<22} {row['load']:<12} {fmt(row['requests_per_s'], '.0f'):>8} "
              f"{fmt(row.get('links_per_s'), '.0f'):>8} {fmt(row['p50_ms'], '.2f'):>7} "
              f"{fmt(row['p99_ms'], '.2f'):>7} {fmt(row['non_2xx_3xx'], 'd'):>8} {fmt(errs, 'd'):>8} "
              f"{fmt(row['server_cpu_s'], '.1f'):>9} {fmt(row['server_cpu_us_per_request'], '.0f'):>10} "
              f"{fmt(row['wrk_cpu_s'], '.1f'):>9} {fmt(row.get('other_cpu_s'), '.1f'):>11} "
              f"{fmt(row.get('over_nginx'), '.3f'):>8}")
        if row.get("error"):
            print(f"  wrk failed: {row['error'].strip()[:300]}")
    print()
    print(f"goal: at least {GOAL_RPS:,.0f} req/s on update checks and on single links with p99 under "
          f"{GOAL_P99_MS:g} ms, server and wrk sharing the {r['machine']['cpus']} cores; read two ways: "
          f"(a) both in the same run at full load ({r['connections']} connections), (b) {GOAL_RPS:,.0f} req/s "
          f"at full load, and p99 when paced at about {r['paced_rate']:g} req/s (each connection waits a "
          f"random delay between requests, of mean {r['pace_ms'] or 0:.1f} ms less the server's latency, "
          f"measured first; at least 90% of the rate reached)")
    for name, g in r["goals"].items():
        print(f"  {name}: (a) {verdict(g['saturating'])}, (b) {verdict(g['at_rate'])}")
    for note in r["notes"]:
        print(f"note: {note}")
    if r.get("own_code_us"):
        print()
        print_header(f"{'the service own steps, in process, no HTTP':<56} {'us/call':>8}")
        for name, us in r["own_code_us"].items():
            print(f"{name:<56} {us:>8.1f}")
    syn = r.get("synthetic")
    if syn:
        print()
        print_header(f"{'per-request work on a large version (synthetic manifests, in process)':<64} {'ms':>8}")
        for name, ms in syn["ms"].items():
            print(f"{name:<64} {ms:>8.1f}")
        print(f"({syn['chunks']} chunks of 1 MiB in {syn['files']} files, {syn['changed'] * 100:g}% new in the "
              f"newer version; its manifest: {syn['manifest_bytes'] / (1 << 20):.1f} MiB of JSON, "
              f"{syn['parsed_bytes'] / (1 << 20):.0f} MiB once parsed)")
    for name, p in r.get("profiles", {}).items():
        print()
        if p.get("skipped"):
            print(f"profile of {name}: skipped: {p['skipped']}")
            continue
        print(f"profile of depot serve under {name} (py-spy --nonblocking, {p['samples']} samples of busy "
              f"threads, {p['waiting_samples']} of waiting ones left out; "
              f"{fmt(p['requests_per_s_while_sampled'], '.0f')} req/s while sampled)")
        print_header(f"{'inclusive':>9}  function")
        for f in p["inclusive"]:
            print(f"{f['share'] * 100:>8.1f}%  {f['function']}")
        print_header(f"{'own':>9}  function")
        for f in p["own"][:15]:
            print(f"{f['share'] * 100:>8.1f}%  {f['function']}")
        print_header(f"{'own':>9}  by layer (the leaf frame's package)")
        for f in p["layers"]:
            print(f"{f['share'] * 100:>8.1f}%  {f['layer']}")


# --------------------------------------------------------------------------


def run(args, workdir: Path) -> dict:
    from pipeline.testing.servers import nginx

    report: dict = {"machine": machine_info(), "versions": list(VERSIONS), "seconds": args.seconds,
                    "paced_rate": args.paced_rate,
                    "warmup": args.warmup, "connections": args.connections, "threads": args.threads,
                    "wrk_version": tool_version(["wrk", "--version"]), "servers": {}, "results": [],
                    "notes": [], "goals": {}, "profiles": {}}
    t0 = time.perf_counter()
    log("building the signed repository from the fixture builds ...")
    repo = build_repository(workdir)
    origin_dir = workdir / "origin"
    published = publish_origin(repo, origin_dir)
    report["published_objects"] = sum(1 for p in origin_dir.rglob("*") if p.is_file())
    keys = chunk_keys(repo)
    report["chunk_keys"] = keys
    log(f"repository built and published in {time.perf_counter() - t0:.1f} s "
        f"({report['published_objects']} objects on the origin; publish {published['elapsed_s']} s)")

    body = json.dumps(check_body(args.current), separators=(",", ":")).encode()
    report["body"] = body.decode()
    answer = answer_bytes(origin_dir, "http://127.0.0.1:1/depot", args.current)
    report["answer_bytes"] = len(answer)
    scripts = workdir / "lua"
    scripts.mkdir()
    post_lua = lua_post(scripts / "check.lua", body)
    link_lua = lua_cycle(scripts / "links.lua", [f"{API}/links?key={k}" for k in keys])
    batch = [keys[i % len(keys)] for i in range(args.batch_keys)]
    batches = []
    if args.batch_keys:
        for start in range(0, len(keys), max(1, len(keys) // 8)):
            ks = [keys[(start + i) % len(keys)] for i in range(args.batch_keys)]
            batches.append(f"{API}/links?" + "&".join(f"key={k}" for k in ks))
    batch_lua = lua_cycle(scripts / "batch.lua", batches) if batches else None
    pace_ms = args.connections * 1000 / args.paced_rate if args.paced_rate > 0 else None
    report["pace_ms"] = pace_ms
    link_paths = [f"{API}/links?key={k}" for k in keys]
    paced = {}  # kind -> a Lua script with a given mean delay
    if pace_ms:
        paced["check"] = lambda ms: lua_post(scripts / f"check-paced-{ms or 0:.2f}.lua", body, ms)
        paced["link"] = lambda ms: lua_cycle(scripts / f"links-paced-{ms or 0:.2f}.lua", link_paths, ms)

    base, dcwd, denv = depot_base_command(args.depot_cmd)
    denv = dict(denv or os.environ)
    with contextlib.ExitStack() as stack:
        cdn = stack.enter_context(nginx(origin_dir, SECRET, workdir / "nginx", workers=args.nginx_workers,
                                        static=b"x" * len(answer)))
        nginx_base = cdn.rsplit("/depot", 1)[0]
        npid = nginx_pid(workdir / "nginx")
        report["servers"]["nginx"] = f"nginx, {args.nginx_workers} worker(s), secure_link over the origin: {cdn}"
        locations = workdir / "locations.toml"
        write_locations(locations, origin_dir, cdn)

        # ---- depot serve, one process
        port = free_port()
        cmd = base + ["--locations", str(locations), "serve", "--origin", ORIGIN_NAME, "--port", str(port),
                      "--link-rate", f"{NO_LIMIT:g}"]
        env = dict(denv, DEPOT_LINK_SECRET=SECRET)
        serve = Server("depot-serve", cmd, port, workdir, cwd=dcwd, env=env)
        stack.callback(serve.stop)
        serve.wait()
        report["servers"]["depot serve"] = "DEPOT_LINK_SECRET=... " + shlex.join(cmd)
        problems = check_service(serve.url, body, answer, keys[0], origin_dir, batch)
        if problems:
            report["problems"] = problems
            return report

        rows = report["results"]

        def load(server: str, base_url: str, pid: int, with_batch: bool = False) -> None:
            """The update checks and single links at full load, the batched links, then
            both again paced at --paced-rate."""
            runs = [("check", "saturating", post_lua, 0), ("link", "saturating", link_lua, 1)]
            if with_batch and batch_lua:
                runs.append(("batch", "saturating", batch_lua, args.batch_keys))
            runs += [(k, f"paced {args.paced_rate:g}/s", None, 1 if k == "link" else 0) for k in paced]
            for kind, mode, script, n in runs:
                url = base_url + API + ("/updates/check" if kind == "check" else "/links")
                endpoint = ENDPOINTS[kind].format(n=args.batch_keys)
                delay, warm = None, script is not None
                if script is None:  # paced: the delay that reaches the rate, given this server's latency
                    script, delay = calibrated(paced[kind], url, args, pace_ms)  # (which warms it up)
                rows.append(measure(f"{server}: {endpoint}, {mode}", server, endpoint, url, args, script, pid, n,
                                    warmup=warm))
                if mode != "saturating" and delay is None:
                    mode = "paced: full"  # the server cannot keep up even without delay
                rows[-1].update(kind=kind, load=mode, mean_delay_ms=delay)

        load("depot serve (1 process)", serve.url, serve.proc.pid, with_batch=True)
        rows.append(measure("nginx: /static", f"nginx ({args.nginx_workers} worker)", ENDPOINTS["static"],
                            nginx_base + "/static", args, None, npid))
        rows[-1].update(kind="static", load="saturating")

        # profiles of depot serve (not the measured runs)
        if args.profile_seconds > 0:
            for name, url, script in (("update checks", serve.url + API + "/updates/check", post_lua),
                                      ("single links", serve.url + API + "/links", link_lua)):
                log(f"profiling depot serve under {name} for {args.profile_seconds} s ...")
                report["profiles"][name] = profile(serve.proc.pid, url, script, args,
                                                   workdir / f"profile-{name.replace(' ', '-')}.txt")
        serve.stop()

        # ---- the same application under uvicorn --workers N
        if args.uvicorn_workers > 0:
            label, workers = f"uvicorn --workers {args.uvicorn_workers}", args.uvicorn_workers
            port = free_port()
            cmd = [sys.executable, "-m", "uvicorn", "--factory", "bench_api:service_app", "--app-dir",
                   os.path.dirname(os.path.abspath(__file__)), "--host", "127.0.0.1", "--port", str(port),
                   "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
            env = dict(denv, **{ENV + "ORIGIN": str(origin_dir), ENV + "PUBLIC_URL": cdn, ENV + "SECRET": SECRET,
                                ENV + "LINK_RATE": str(NO_LIMIT)})
            env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            uv = Server(label.replace(" ", "_").replace(":", "").replace("/", "_"), cmd, port, workdir,
                        cwd=REPO_ROOT, env=env)
            stack.callback(uv.stop)
            uv.wait()
            report["servers"][label] = shlex.join(cmd)
            problems = check_service(uv.url, body, answer, keys[0], origin_dir, [])
            if problems:
                report["notes"].append(f"{label}: {problems}")
            else:
                load(label, uv.url, uv.proc.pid)
            uv.stop()

    log("timing the service's own steps in process ...")
    report["own_code_us"] = own_code_us(origin_dir, cdn, args.current, keys[0], body)
    if args.synthetic_chunks > 0:
        log(f"timing the per-request work on synthetic manifests of {args.synthetic_chunks} chunks ...")
        report["synthetic"] = synthetic_costs(args.synthetic_chunks)

    static = next((r for r in report["results"] if r["kind"] == "static"), None)
    for row in report["results"]:
        if static and static.get("requests_per_s") and row.get("requests_per_s") and row["load"] == "saturating":
            row["over_nginx"] = round(row["requests_per_s"] / static["requests_per_s"], 3)
    for server in dict.fromkeys(r["server"] for r in report["results"] if r["kind"] in ("check", "link")):
        full = {r["kind"]: r for r in report["results"] if r["server"] == server and r["load"] == "saturating"}
        slow = {r["kind"]: r for r in report["results"] if r["server"] == server and r["load"] != "saturating"}
        strict = [goal_met(full.get(k)) for k in ("check", "link")]
        at_rate = [goal_met_at_rate(full.get(k), slow.get(k), args.paced_rate) for k in ("check", "link")]
        report["goals"][server] = {"saturating": None if None in strict else all(strict),
                                   "at_rate": None if None in at_rate else all(at_rate)}
    report["notes"].append(
        f"at full load wrk keeps {args.connections} requests in flight, so the mean latency is about "
        f"{args.connections} / throughput (Little's law): a mean under {GOAL_P99_MS:g} ms alone needs "
        f"{args.connections / GOAL_P99_MS * 1000:,.0f} req/s, and a p99 under it more; reading (b) asks for "
        f"the latency at the goal's rate instead")
    ncpu = os.cpu_count() or 1
    for row in report["results"]:
        if row.get("other_cpu_s") and row.get("wall_s") and row["other_cpu_s"] > 0.1 * ncpu * row["wall_s"]:
            report["notes"].append(f"{row['label']}: other processes took {row['other_cpu_s']:.1f} CPU-s of "
                                   f"{ncpu * row['wall_s']:.0f}: its figures are noisy")
        if row.get("non_2xx_3xx") or (row.get("socket_errors") and any(row["socket_errors"].values())):
            report["notes"].append(f"{row['label']}: {row['non_2xx_3xx']} responses >= 400, socket errors "
                                   f"{row['socket_errors']}")
        if row.get("error"):
            report["notes"].append(f"{row['label']}: wrk failed: {row['error'][:300]}")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30, help="seconds of each wrk run (default 30)")
    ap.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    ap.add_argument("--warmup", type=float, default=2, help="seconds of load before each run, not counted "
                    "(default 2; 0: none)")
    ap.add_argument("--current", default="1.1.0", choices=VERSIONS[:-1],
                    help="the installed version the update check sends (default 1.1.0; stable is 1.2.0)")
    ap.add_argument("--batch-keys", type=int, default=100,
                    help="keys per link request in the batched run (default 100; 0: no batched run)")
    ap.add_argument("--uvicorn-workers", type=int, default=2,
                    help="also run the same application under uvicorn with this many workers (default 2; "
                    "0: not)")
    ap.add_argument("--paced-rate", type=float, default=GOAL_RPS,
                    help="also load each endpoint at about this many requests/s (wrk's delay(): each connection "
                    "waits connections/rate on average between requests) for the latency at the goal's rate "
                    "(default 3000; 0: not)")
    ap.add_argument("--synthetic-chunks", type=int, default=100_000,
                    help="time the update check's and the chunk list's per-request work on two synthetic "
                    "manifests of this many chunks, in process (default 100000; 0: not)")
    ap.add_argument("--nginx-workers", type=int, default=1, help="nginx worker processes (default 1)")
    ap.add_argument("--profile-seconds", type=float, default=10,
                    help="py-spy sampling of depot serve under each load (default 10; 0: none)")
    ap.add_argument("--depot-cmd", default=None,
                    help="command that runs depot (default: 'depot' on PATH, else 'python -m cli' from the "
                    "repository root)")
    ap.add_argument("--workdir", default=None, help="where the repository, origin and logs go (default: $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--check", action="store_true", help="exit 1 if depot serve misses the goal")
    args = ap.parse_args(argv)
    if args.batch_keys < 0 or args.batch_keys > 1000:
        ap.error("--batch-keys: 0 to 1000 (the service's limit)")

    ensure_tools({"wrk": "wrk"})
    if args.profile_seconds > 0 and py_spy() is None:
        log("py-spy is not installed (pip install py-spy): no profile")
    workdir = Path(tempfile.mkdtemp(prefix="depot-bench-api-", dir=args.workdir))
    try:
        report = run(args, workdir)
    except RuntimeError as e:  # a server that did not start
        log(str(e))
        return 2
    finally:
        remove_workdir(str(workdir), args.keep)
    if report.get("problems"):
        for p in report["problems"]:
            log(f"check before loading failed: {p}")
        return 2
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print_report(report)
    shipped = report["goals"].get("depot serve (1 process)") or {}
    return 1 if args.check and not (shipped.get("saturating") or shipped.get("at_rate")) else 0


if __name__ == "__main__":
    sys.exit(main())
