"""Where a server's CPU goes under load: py-spy samples of its process while wrk loads
it, summarized as the functions with the most inclusive and own samples and the own
samples by layer (the leaf frame's package). Used by ``bench_api.py``."""

from __future__ import annotations

import collections
import concurrent.futures as cf
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchlib import REPO_ROOT, fmt, print_header
from loadgen import run_wrk


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
    for marker in ("site-packages/", REPO_ROOT + "/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
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


def print_profile(name: str, p: dict) -> None:
    """A ``profile`` result as tables."""
    if p.get("skipped"):
        print(f"profile of {name}: skipped: {p['skipped']}")
        return
    print(f"profile of {name} (py-spy --nonblocking, {p['samples']} samples of busy "
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
