"""HTTP load on loopback with wrk: the servers under load as processes of their own, wrk's
Lua scripts (a POST body, a cycle of paths, a paced delay), its runs and their parsed
figures, and the CPU time a server's processes spent meanwhile. Used by ``bench_api.py``."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from benchlib import busy_cpu_seconds, fmt, log


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


WRK_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def wrk_duration_ms(text: str) -> float | None:
    """A duration as wrk prints it (``812.00us``, ``1.23ms``, ``2.01s``, ``1.00m``) in
    milliseconds; None if it is not one."""
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text.strip())
    return float(m.group(1)) * WRK_UNITS_MS[m.group(2)] if m else None


def parse_wrk(text: str) -> dict:
    """What ``wrk --latency`` printed: requests, seconds, requests/s, the latency
    percentiles it lists (ms), responses that were not 2xx or 3xx (wrk counts a status
    >= 400 there), socket errors, bytes read."""
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
    """Run wrk and parse what it printed (parse_wrk), with its command, its own CPU
    time (``wrk_cpu_s``, from wait4: the load generator's share of the machine) and its
    output."""
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
    """User + system CPU seconds of a process and of each of its live descendants, by pid
    (psutil)."""
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


# -- measured runs -------------------------------------------------------------


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
