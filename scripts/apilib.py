"""The lookup service benchmark's parts: servers under wrk's load and their CPU time,
py-spy profiles of a server, and the service's own steps timed in process."""

from __future__ import annotations

import collections
import concurrent.futures as cf
import gc
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import timeit
import tracemalloc
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from benchlib import REPO_ROOT, busy_cpu_seconds, fmt, log, print_header, remove_workdir


def run_in_workdir(args, prefix: str, run: Callable[..., dict]) -> dict | None:
    """``run(args, workdir)`` in a new working directory under ``--workdir``, removed after
    (unless ``--keep``); None when a server did not start (said on stderr)."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=args.workdir))
    try:
        return run(args, workdir)
    except RuntimeError as e:  # a server that did not start
        log(str(e))
        return None
    finally:
        remove_workdir(str(workdir), args.keep)


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


def lua_pace(pace_ms: float | None) -> str:
    """A wrk ``delay()`` of 0 to 2 x pace_ms before each request: C connections then send
    about C / (pace_ms + latency) requests a millisecond."""
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


WRK_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def wrk_duration_ms(text: str) -> float | None:
    """A duration as wrk prints it (``812.00us``, ``2.01s``) in milliseconds, or None."""
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text.strip())
    return float(m.group(1)) * WRK_UNITS_MS[m.group(2)] if m else None


def parse_wrk(text: str) -> dict:
    """The figures ``wrk --latency`` printed (latencies in ms)."""
    out: dict = {"latency_ms": {}, "non_2xx_3xx": 0,
                 "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0}}
    in_dist = False
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("Latency Distribution"):
            in_dist = True
            continue
        if in_dist:
            m = re.fullmatch(r"([0-9.]+)%\s+(\S+)", s)
            if m:
                out["latency_ms"][f"p{float(m.group(1)):g}"] = wrk_duration_ms(m.group(2))
                continue
            in_dist = False
        m = re.match(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", s)
        if m:
            out["latency_avg_ms"] = wrk_duration_ms(m.group(1))
            out["latency_max_ms"] = wrk_duration_ms(m.group(3))
        m = re.match(r"(\d+) requests in ([0-9.]+)(us|ms|s|m|h), ([0-9.]+)([KMGT]?B) read", s)
        if m:
            out["requests"] = int(m.group(1))
            out["seconds"] = wrk_duration_ms(m.group(2) + m.group(3)) / 1000.0
            scale = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}[m.group(5)]
            out["bytes_read"] = int(float(m.group(4)) * scale)
        m = re.match(r"Non-2xx or 3xx responses: (\d+)", s)
        if m:
            out["non_2xx_3xx"] = int(m.group(1))
        m = re.match(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", s)
        if m:
            out["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
        m = re.match(r"Requests/sec:\s+([0-9.]+)", s)
        if m:
            out["requests_per_s"] = float(m.group(1))
    return out


def wrk_command(url: str, seconds: float, connections: int, threads: int,
                script: str | None = None) -> list[str]:
    """``wrk --latency`` against url for whole seconds (a Lua script for POST bodies)."""
    cmd = ["wrk", "--latency", "-t", str(threads), "-c", str(connections),
           "-d", f"{max(1, round(seconds))}s"]
    return cmd + (["-s", script] if script else []) + [url]


def run_wrk(url: str, seconds: float, connections: int, threads: int,
            script: str | None = None) -> dict:
    """Run wrk: its figures, its command, output and own CPU time (``wrk_cpu_s``)."""
    cmd = wrk_command(url, seconds, connections, threads, script)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + seconds + 60
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    proc.kill()
                    _, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.05)
        except BaseException:  # interrupted: no wrk left behind
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    res = parse_wrk(stdout)
    res.update(command=shlex.join(cmd), returncode=proc.returncode,
               wrk_cpu_s=round(usage.ru_utime + usage.ru_stime, 3), stdout=stdout, stderr=stderr)
    return res


def process_tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of a process and of each of its live descendants, by pid."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return {}
    out = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return out


# measured runs


def measure(label: str, server_name: str, endpoint: str, url: str, args, script: str | None,
            server_pid: int, links_per_request: int = 0, warmup: bool = True) -> dict:
    """wrk against url (after a warm-up), with the CPU time of the server's processes, of
    wrk, and of everything else on the machine around the measured run."""
    import psutil

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
    """(The paced script for url, its mean delay in ms). A short run with delay d gives
    the server's latency at that load; the next d is connections / rate less it. (An
    unpaced script, None) when the server cannot keep up even without a delay."""
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


# where a server's CPU goes: py-spy samples under load


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
           "--rate", "250", "--nonblocking", "--full-filenames", "--format", "raw", "--output", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    wrk = load.result()
    if res.returncode != 0 or not out.exists():
        return {"skipped": f"py-spy failed: {res.stderr.strip()[-500:]}"}
    return summarize_profile(out.read_text(), wrk.get("requests_per_s"))


def frame_name(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)``, paths shortened to the package."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", REPO_ROOT + "/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    where = re.sub(r"^.*/lib/python3[.\d]*/", "", where)
    return f"{name} ({where})" if where else name


IDLE_LEAVES = ("Condition.wait (threading.py)", "Event.wait (threading.py)", "Queue.get (queue.py)",
               "_wait_for_tstate_lock (threading.py)")
LAYERS = (  # the leaf frame's file -> where the time goes
    ("starlette/middleware/base.py", "starlette BaseHTTPMiddleware"),
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
                   "commands/", "(threading.py)", "(queue.py)", "(concurrent/futures/thread.py)", "<frozen",
                   "bin/depot)")


def layer_of(frame: str) -> str:
    for marker, layer in LAYERS:
        if marker in frame:
            return layer
    return "other"


def summarize_profile(raw: str, rps: float | None, top: int = 25) -> dict:
    """Shares of the busy samples (collapsed stacks) by function, inclusive and own, and by
    layer. Samples of waiting threads are counted apart."""
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


def print_profile(name: str, p: dict) -> None:
    if p.get("skipped"):
        print(f"profile of {name}: skipped: {p['skipped']}")
        return
    rps = p["requests_per_s_while_sampled"]
    print(f"profile of {name} (py-spy, {p['samples']} samples of busy threads, {p['waiting_samples']} "
          f"of waiting ones left out" + (f"; {rps:.0f} req/s while sampled)" if rps is not None else ")"))
    for head, items, what in (("inclusive", p["inclusive"], "function"), ("own", p["own"][:15], "function"),
                              ("own", p["layers"], "by layer (the leaf frame's package)")):
        print_header(f"{head:>9}  {what}")
        for f in items:
            print(f"{f['share'] * 100:>8.1f}%  {f.get('function') or f.get('layer')}")


# the service's own work, in process and without HTTP


def own_code_us(config, product: str, channel: str, current: str, key: str, body: bytes) -> dict:
    """Microseconds per call of the service's own steps, in this process, no HTTP."""
    from starlette.responses import JSONResponse

    from pipeline import layout
    from pipeline.service.app import UpdateCheck
    from pipeline.service.catalog import Catalog
    from pipeline.service.links import LinkSigner
    from pipeline.service.updates import check

    catalog = Catalog(config.origins, trust=config.trust)
    check(catalog, product, current, channel)  # documents read and parsed once, as in the service

    def one_link():
        origin = catalog.preferred(None)
        return LinkSigner(origin.public_url, config.link_secret, config.link_keys, config.link_ttl,
                          config.link_style).link(key)

    url, expires = one_link()
    check_answer = {"data": [{"type": "updateInfo", "attributes": check(catalog, product, current, channel)}]}
    link_answer = {"data": [{"type": "link", "id": key, "attributes": {"href": url, "expiresAt": expires}}]}
    steps = {
        "updates.check (the route, chunk costs, plans)": lambda: check(catalog, product, current, channel),
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
    """Milliseconds (best of 3) of the per-request work on two synthetic manifests of
    ``n_chunks`` 1 MiB chunks, 10 a file, ``changed`` of the newer one's chunks new."""
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


def print_costs(own: dict | None, syn: dict | None) -> None:
    if own:
        print()
        print_header(f"{'the service own steps, in process, no HTTP':<56} {'us/call':>8}")
        for name, us in own.items():
            print(f"{name:<56} {us:>8.1f}")
    if syn:
        print()
        print_header(f"{'per-request work on a large version (synthetic manifests, in process)':<64} {'ms':>8}")
        for name, ms in syn["ms"].items():
            print(f"{name:<64} {ms:>8.1f}")
        print(f"({syn['chunks']} chunks of 1 MiB in {syn['files']} files, {syn['changed'] * 100:g}% new in the "
              f"newer version; its manifest: {syn['manifest_bytes'] / (1 << 20):.1f} MiB of JSON, "
              f"{syn['parsed_bytes'] / (1 << 20):.0f} MiB once parsed)")
