#!/usr/bin/env python3
"""The lookup service under ``wrk`` on loopback: update checks, signed links, and nginx
serving a static file the size of an update check's answer (the machine's ceiling).

The fixture builds are signed and published to an origin directory; nginx serves it with
``secure_link``. ``depot serve``, then ``uvicorn --workers N``, answer at full load and
paced at ``--paced-rate``. ``apilib.py`` profiles ``depot serve`` and times the service's
own steps. Goal: 3,000 requests/s on update checks and on single links, p99 under 20 ms.
The method is in docs/benchmarks.md, "The lookup service".

Exit status: 1 when ``depot serve`` misses the goal both ways with ``--check``; 2 when a
server did not start or a check before loading failed. ``uvicorn --factory`` imports
``service_app``, configured by the ``DEPOT_BENCH_API_*`` environment variables.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from apilib import (Server, calibrated, lua_cycle, lua_post, measure, nginx_pid, own_code_us, print_costs,
                    print_profile, profile, py_spy, run_in_workdir, synthetic_costs)
from benchlib import (REPO_ROOT, add_run_options, depot_base_command, ensure_tools, fmt, log, machine_info,
                      machine_line, col, print_table, show, tool_version, verdict)

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


# the repository and its origin


def build_repository(base: Path, versions=VERSIONS):
    """``base/repo``: the fixture versions chunked, every pair planned, signed with TUF
    (one root key), stable -> the last version (as the service's tests build it)."""
    from pipeline.storage import open_store
    from depot_testing.fixtures import signed_repository

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


# the application, as depot serve builds it (and as uvicorn --factory imports it)


def service_config(origin_dir: str, public_url: str, secret: str, link_rate: float):
    from pipeline.service.app import ServiceConfig
    from pipeline.service.catalog import Origin
    from pipeline.storage import Location, open_origin

    loc = Location(str(origin_dir), region="local", priority=0, public_url=public_url)
    return ServiceConfig([Origin(ORIGIN_NAME, open_origin(loc), loc)], link_secret=secret, link_rate=link_rate,
                         channel=CHANNEL, trust=(Path(origin_dir) / "metadata" / "1.root.json").read_bytes())


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

    config = service_config(str(origin_dir), public_url, SECRET, NO_LIMIT)
    catalog = Catalog(config.origins, trust=config.trust)
    info = check(catalog, PRODUCT, current, CHANNEL)
    return JSONResponse({"data": [{"type": "updateInfo", "attributes": info}]}).body


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


# the goal


def clean(row: dict) -> bool:
    return not row["non_2xx_3xx"] and not any(row["socket_errors"].values())


def goal_met(row: dict | None) -> bool | None:
    if not row or row.get("requests_per_s") is None or row.get("p99_ms") is None:
        return None
    return row["requests_per_s"] >= GOAL_RPS and row["p99_ms"] < GOAL_P99_MS and clean(row)


def goal_met_at_rate(full: dict | None, paced: dict | None, rate: float) -> bool | None:
    """The goal read as: capacity (requests/s at full load) of at least GOAL_RPS, and p99
    under GOAL_P99_MS when loaded at about that rate (at least 90% of it achieved), no
    errors in either run."""
    if not full or not paced or full.get("requests_per_s") is None or paced.get("p99_ms") is None:
        return None
    return (full["requests_per_s"] >= GOAL_RPS and paced["requests_per_s"] >= 0.9 * min(rate, GOAL_RPS)
            and paced["p99_ms"] < GOAL_P99_MS and clean(full) and clean(paced))


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
    errors = lambda row: fmt(sum(row["socket_errors"].values()) if row.get("socket_errors") else None, "d")
    print_table([col("server", 28, "server"), col("endpoint", 22, "endpoint"), col("load", 12, "load"),
                 col("req/s", 8, "requests_per_s", ".0f"), col("links/s", 8, "links_per_s", ".0f"),
                 col("p50 ms", 7, "p50_ms", ".2f"), col("p99 ms", 7, "p99_ms", ".2f"),
                 col("non-2xx", 8, "non_2xx_3xx", "d"), ("sock err", 8, errors),
                 col("srv CPU s", 9, "server_cpu_s", ".1f"), col("us CPU/req", 10, "server_cpu_us_per_request", ".0f"),
                 col("wrk CPU s", 9, "wrk_cpu_s", ".1f"), col("other CPU s", 11, "other_cpu_s", ".1f"),
                 col("/ nginx", 8, "over_nginx", ".3f")], r["results"])
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
    print_costs(r.get("own_code_us"), r.get("synthetic"))
    for name, p in r.get("profiles", {}).items():
        print()
        print_profile(f"depot serve under {name}", p)


def run(args, workdir: Path) -> dict:
    from depot_testing.servers import free_port, nginx

    report: dict = {"machine": machine_info(), "versions": list(VERSIONS), "seconds": args.seconds,
                    "paced_rate": args.paced_rate, "warmup": args.warmup, "connections": args.connections,
                    "threads": args.threads,
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
    link_paths = [f"{API}/links?key={k}" for k in keys]
    link_lua = lua_cycle(scripts / "links.lua", link_paths)
    batch = [keys[i % len(keys)] for i in range(args.batch_keys)]
    batches = []
    if args.batch_keys:
        for start in range(0, len(keys), max(1, len(keys) // 8)):
            ks = [keys[(start + i) % len(keys)] for i in range(args.batch_keys)]
            batches.append(f"{API}/links?" + "&".join(f"key={k}" for k in ks))
    batch_lua = lua_cycle(scripts / "batch.lua", batches) if batches else None
    pace_ms = args.connections * 1000 / args.paced_rate if args.paced_rate > 0 else None
    report["pace_ms"] = pace_ms
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
                      "--link-rate", f"{NO_LIMIT:g}", "--trust", str(origin_dir / "metadata" / "1.root.json")]
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
    report["own_code_us"] = own_code_us(service_config(str(origin_dir), cdn, SECRET, NO_LIMIT), PRODUCT, CHANNEL,
                                         args.current, keys[0], body)
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
    add_run_options(ap, workdir_help="where the repository, origin and logs go (default: $TMPDIR)",
                    keep_help="keep the working directory", check_help="exit 1 if depot serve misses the goal",
                    sampling=False)
    args = ap.parse_args(argv)
    if args.batch_keys < 0 or args.batch_keys > 1000:
        ap.error("--batch-keys: 0 to 1000 (the service's limit)")

    ensure_tools({"wrk": "wrk"})
    if args.profile_seconds > 0 and py_spy() is None:
        log("py-spy is not installed (pip install py-spy): no profile")
    report = run_in_workdir(args, "depot-bench-api-", run)
    if report is None:
        return 2
    if report.get("problems"):
        for p in report["problems"]:
            log(f"check before loading failed: {p}")
        return 2
    show(report, args, print_report)
    shipped = report["goals"].get("depot serve (1 process)") or {}
    return 1 if args.check and not (shipped.get("saturating") or shipped.get("at_rate")) else 0


if __name__ == "__main__":
    sys.exit(main())
