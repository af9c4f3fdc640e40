#!/usr/bin/env python3
"""Compare depot's ingest with ``casync make`` (and a zstd reference) on one corpus.

Usage::

    python scripts/bench_ingest.py [--corpus DIR] [--size-gb 1.0]
                                   [--single-file-gb 0] [--workers N] [--keep]
                                   [--json] [--check]

Steps:

1. Make sure ``casync`` and ``zstd`` are installed (``apt-get install -y``,
   with ``apt-get update`` and a retry if the first install fails).
2. Make or take the corpus (see ``bench_corpus.py``).  Without ``--corpus`` a
   generated corpus is cached under ``$TMPDIR/depot-bench-corpus/`` and reused
   by later runs; with ``--corpus DIR`` an existing non-empty directory is used
   as is, a missing or empty one is filled with a generated corpus.
3. Before each tool the whole corpus is read once (``cat`` to /dev/null), so
   every tool reads from a warm page cache; ``sync`` runs before each tool so
   that writeback of the previous tool's output does not leak into the next.
4. ``casync make --store=STORE INDEX.caidx CORPUS`` with depot's chunk sizes
   (min 256 KiB, avg 1 MiB, max 4 MiB) and zstd chunk compression.
5. ``depot --repo REPO --json run CORPUS --product bench --version 1``; with
   ``--workers N`` the option goes after ``run`` if ``depot run --help`` lists
   it, otherwise before ``run`` as a global option.  ``depot`` is taken from
   PATH, else ``python -m cli`` runs from the repository root
   (``--depot-cmd`` overrides both).
6. ``tar cf - -C CORPUS . | zstd -3 -T2 -c`` as a reference throughput.

For every tool: wall time, throughput (corpus bytes / wall time), stored bytes
(casync: the chunk store; depot: REPO/chunks; zstd: the compressed stream) and
peak memory.  Memory is sampled every 0.1 s over the whole process tree
(psutil): "peak RSS" is the peak of the summed RSS of all processes of the
tree, so multi-process tools such as depot's Dask workers are fully counted
(pages shared between processes are counted once per process); it is never
below "max proc RSS", the exact peak of the largest single process, which
comes from running the tool under ``/usr/bin/time -f %M`` (Debian package
``time``, installed like casync; sampled instead if unavailable).  The peak
summed PSS, which splits shared pages between the processes, is shown too.

Goals checked: depot throughput >= 4x casync, depot peak RSS < 1024 MiB.
``--check`` makes the exit status 1 when a goal is missed.  If depot fails,
its stderr is printed and the exit status is 2.

Units are binary: MiB = 2**20 bytes, GiB = 2**30 bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_corpus  # noqa: E402
from benchlib import MiB, fmt, log, remove_workdir, verdict  # noqa: E402

CHUNK_MIN = 256 * 1024
CHUNK_AVG = 1024 * 1024
CHUNK_MAX = 4 * 1024 * 1024

GOAL_THROUGHPUT_RATIO = 4.0
GOAL_PEAK_RSS_MIB = 1024

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------
# tools


def apt_install(*packages: str) -> str | None:
    """apt-get install -y the packages, after an apt-get update if the first
    try fails.  None on success, else apt-get's stderr."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL,
                      stderr=subprocess.PIPE).returncode == 0:
        return None
    log(f"apt-get install {' '.join(packages)} failed; running apt-get update and retrying")
    subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    res = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return None if res.returncode == 0 else res.stderr.decode(errors="replace").strip()


def ensure_tool(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path:
        return path
    if shutil.which("apt-get") is None:
        raise SystemExit(f"{binary} not found and apt-get is not available; "
                         f"install the '{package}' package")
    log(f"{binary} not found: installing Debian package '{package}'")
    err = apt_install(package)
    if err is not None:
        log(err)
    if err is not None or not (path := shutil.which(binary)):
        raise SystemExit(f"could not install '{package}' (needs root and apt)")
    return path


def ensure_time_binary() -> None:
    """Install GNU time if missing; without it the peak RSS of the largest
    process is sampled only."""
    if time_binary() is None:
        try:
            ensure_tool("/usr/bin/time", "time")
        except SystemExit as e:
            log(f"{e}; the largest single-process RSS will be sampled only")


def tool_version(cmd: list[str]) -> str:
    try:
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=30)
        lines = res.stdout.decode(errors="replace").strip().splitlines()
        return lines[0].strip() if lines else ""
    except Exception:
        return ""


def machine_info() -> dict:
    """The machine a report was made on."""
    return {"cpus": os.cpu_count(), "mem_total_mib": psutil.virtual_memory().total / MiB,
            "python": platform.python_version()}


# --------------------------------------------------------------------------
# measurement


def tree_bytes(path: str) -> tuple[int, int]:
    """(sum of file sizes, number of files) below path."""
    total = count = 0
    for dirpath, _, files in os.walk(path):
        for fn in files:
            try:
                total += os.lstat(os.path.join(dirpath, fn)).st_size
                count += 1
            except FileNotFoundError:
                pass
    return total, count


def warm_cache(root: str) -> dict:
    """Read every file of the corpus once so the next run reads from cache."""
    t0 = time.perf_counter()
    total = 0
    buf = bytearray(4 * MiB)
    view = memoryview(buf)
    for dirpath, _, files in os.walk(root):
        for fn in files:
            try:
                with open(os.path.join(dirpath, fn), "rb", buffering=0) as f:
                    while n := f.readinto(view):
                        total += n
            except OSError:
                pass
    dt = time.perf_counter() - t0
    return {"bytes": total, "seconds": round(dt, 3)}


class TreeSampler(threading.Thread):
    """Samples the summed RSS/PSS of a process and all its descendants.

    With ``skip_root`` the root process itself (a ``/usr/bin/time`` wrapper)
    is not counted, only its descendants."""

    def __init__(self, pid: int, interval: float, skip_root: bool = False):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.skip_root = skip_root
        self.stop_event = threading.Event()
        self.peak_rss = 0
        self.peak_pss = 0
        self.max_single_rss = 0
        self.max_procs = 0
        self.samples = 0
        self.pss_ok = True
        self._procs: dict[int, psutil.Process] = {}

    def _tree(self) -> list[psutil.Process]:
        try:
            root = self._procs.get(self.pid) or psutil.Process(self.pid)
            self._procs[self.pid] = root
            kids = root.children(recursive=True)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return []
        procs = [] if self.skip_root else [root]
        for k in kids:  # reuse Process objects: cheaper, and pid-reuse safe
            procs.append(self._procs.setdefault(k.pid, k))
        return procs

    def sample(self) -> None:
        rss = pss = 0
        procs = self._tree()
        for p in procs:
            try:
                if self.pss_ok:
                    try:
                        mi = p.memory_full_info()
                        one, one_pss = mi.rss, getattr(mi, "pss", mi.rss)
                    except psutil.AccessDenied:
                        self.pss_ok = False
                        one = one_pss = p.memory_info().rss
                else:
                    one = one_pss = p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
            rss += one
            pss += one_pss
            self.max_single_rss = max(self.max_single_rss, one)
        self.samples += 1
        self.max_procs = max(self.max_procs, len(procs))
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval)


def time_binary() -> str | None:
    """GNU time, used for the exact peak RSS of the largest single process.

    (``ru_maxrss`` from our own wait4 is useless here: a child forked from this
    Python process starts with the parent's resident set, and the kernel keeps
    that high-water mark across exec.  /usr/bin/time is a small C program, so
    the rusage it reports for its own child is accurate.)"""
    path = "/usr/bin/time"
    return path if os.access(path, os.X_OK) else None


def run_measured(name: str, cmd: list[str], workdir: str, interval: float,
                 cwd: str | None = None, env: dict | None = None) -> dict:
    """Run cmd, return wall time, exit code, memory peaks, stdout and stderr."""
    out_path = os.path.join(workdir, f"{name}.stdout")
    err_path = os.path.join(workdir, f"{name}.stderr")
    time_path = os.path.join(workdir, f"{name}.maxrss")
    timebin = time_binary()
    full = ([timebin, "-f", "%M", "-o", time_path, "-q", "--"] + cmd) if timebin else cmd
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(full, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    cwd=cwd, env=env)
        except OSError as e:
            return {"returncode": 127, "error": f"cannot start {cmd[0]}: {e}",
                    "stdout": "", "stderr": str(e)}
        sampler = TreeSampler(proc.pid, interval, skip_root=bool(timebin))
        sampler.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop_event.set()
        sampler.join()
    with open(out_path, "rb") as f:
        stdout = f.read().decode(errors="replace")
    with open(err_path, "rb") as f:
        stderr = f.read().decode(errors="replace")
    max_single = sampler.max_single_rss
    exact = False
    if timebin:
        try:
            with open(time_path) as f:
                max_single = int(f.read().split()[-1]) * 1024  # KiB
            exact = True
        except (OSError, ValueError, IndexError):
            pass
    return {
        "returncode": proc.returncode,
        "seconds": wall,
        # the tree's peak is at least the peak of its largest single process
        "peak_rss_bytes": max(sampler.peak_rss, max_single),
        "peak_rss_sampled_bytes": sampler.peak_rss,
        "peak_pss_bytes": sampler.peak_pss if sampler.pss_ok else None,
        "max_process_rss_bytes": max_single,
        "max_process_rss_exact": exact,
        "max_processes": sampler.max_procs,
        "samples": sampler.samples,
        "cpu_user_s": round(usage.ru_utime, 3),
        "cpu_sys_s": round(usage.ru_stime, 3),
        "stdout": stdout,
        "stderr": stderr,
    }


def parse_json_output(text: str) -> dict | None:
    """The JSON summary printed by depot: the whole stdout, or its last object."""
    text = text.strip()
    if not text:
        return None
    try:
        obj = json.loads(text)
        return obj if isinstance(obj, dict) else None
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
                if isinstance(obj, dict):
                    return obj
            except ValueError:
                continue
    start = text.rfind("\n{")
    while start != -1:
        try:
            obj = json.loads(text[start + 1:])
            if isinstance(obj, dict):
                return obj
        except ValueError:
            pass
        start = text.rfind("\n{", 0, start)
    return None


# --------------------------------------------------------------------------
# the three runs


def summarize(name: str, res: dict, corpus_bytes: int, stored: int | None, **extra) -> dict:
    sec = res["seconds"]
    row = {
        "tool": name,
        "seconds": round(sec, 3),
        "mib_per_s": round(corpus_bytes / MiB / sec, 2) if sec > 0 else None,
        "stored_bytes": stored,
        "stored_mib": round(stored / MiB, 2) if stored is not None else None,
        "peak_rss_mib": round(res["peak_rss_bytes"] / MiB, 1),
        "peak_pss_mib": (round(res["peak_pss_bytes"] / MiB, 1)
                         if res.get("peak_pss_bytes") is not None else None),
        "max_process_rss_mib": round(res["max_process_rss_bytes"] / MiB, 1),
        "max_processes": res["max_processes"],
        "cpu_user_s": res["cpu_user_s"],
        "cpu_sys_s": res["cpu_sys_s"],
    }
    row.update(extra)
    return row


def throughput_ratio(a: dict, b: dict) -> float:
    """Throughput of row a over that of row b (rows from summarize)."""
    return round(a["mib_per_s"] / b["mib_per_s"], 3)


def run_casync(corpus: str, workdir: str,
               interval: float) -> tuple[dict, list[str], str, str]:
    """casync make into workdir: (result, command, store, index)."""
    store = os.path.join(workdir, "casync-store")
    index = os.path.join(workdir, "casync.caidx")
    cmd = ["casync", "make", f"--store={store}",
           f"--chunk-size={CHUNK_MIN}:{CHUNK_AVG}:{CHUNK_MAX}",
           "--compression=zstd", index, corpus]
    res = run_measured("casync", cmd, workdir, interval)
    if res["returncode"] != 0:
        raise SystemExit(f"casync failed (exit {res['returncode']}):\n{res['stderr']}")
    return res, cmd, store, index


def depot_base_command(override: str | None) -> tuple[list[str], str | None, dict | None]:
    if override:
        return shlex.split(override), None, None
    path = shutil.which("depot")
    if path:
        return [path], None, None
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    return [sys.executable, "-m", "cli"], REPO_ROOT, env


def option_listed(base: list[str], sub: str, option: str, cwd: str | None,
                  env: dict | None, default: bool = False) -> bool:
    """Whether ``depot SUB --help`` lists option; default if the help cannot run."""
    try:
        res = subprocess.run(base + [sub, "--help"], cwd=cwd, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return default
    return option in res.stdout.decode(errors="replace")


def run_depot(corpus: str, workdir: str, interval: float, workers: int | None,
              depot_cmd: str | None) -> tuple[dict, list[str], dict | None, str]:
    repo = os.path.join(workdir, "depot-repo")
    base, cwd, env = depot_base_command(depot_cmd)
    glob = ["--repo", repo, "--json"]
    run = ["run", corpus, "--product", "bench", "--version", "1"]
    if workers:
        # `--workers` is accepted either by `run` or as a global option
        if option_listed(base, "run", "--workers", cwd, env, default=True):
            run += ["--workers", str(workers)]
        else:
            glob += ["--workers", str(workers)]
    cmd = base + glob + run
    res = run_measured("depot", cmd, workdir, interval, cwd=cwd, env=env)
    return res, cmd, parse_json_output(res.get("stdout", "")), repo


def depot_stored_bytes(repo: str, summary: dict | None = None) -> tuple[int, int | None, str]:
    """(bytes, chunk files, source) that depot stored in repo: REPO/chunks,
    else the stored_bytes of depot's JSON summary (if given), else the whole repo."""
    chunks_dir = os.path.join(repo, "chunks")
    if os.path.isdir(chunks_dir):
        return (*tree_bytes(chunks_dir), "measured REPO/chunks")
    if summary and isinstance(summary.get("stored_bytes"), int):
        return summary["stored_bytes"], None, "depot JSON stored_bytes"
    return (*tree_bytes(repo), "measured whole repo")


def log_depot_failure(step: str, failed: dict, command: str | None) -> None:
    """A failed depot command: exit code, command, error, stderr and stdout."""
    log(f"{step} failed (exit {failed['returncode']}): {command}")
    if failed.get("error"):
        log(failed["error"])
    log("--- depot stderr ---")
    log(failed.get("stderr", "").rstrip())
    out = failed.get("stdout", "").rstrip()
    if out:
        log("--- depot stdout ---")
        log(out)


def run_zstd(corpus: str, workdir: str, interval: float) -> tuple[dict, str, int | None]:
    pipeline = (f"set -o pipefail; tar cf - -C {shlex.quote(corpus)} . "
                f"| zstd -3 -T2 -q -c | wc -c")
    res = run_measured("zstd", ["bash", "-c", pipeline], workdir, interval)
    if res["returncode"] != 0:
        raise SystemExit(f"tar | zstd failed (exit {res['returncode']}):\n{res['stderr']}")
    try:
        size = int(res["stdout"].split()[0])
    except (IndexError, ValueError):
        size = None
    return res, "tar cf - -C CORPUS . | zstd -3 -T2 -c", size


# --------------------------------------------------------------------------
# report


def print_report(report: dict) -> None:
    c = report["corpus"]
    print(f"corpus: {c['path']} ({c['mode']}, {c['files']} files, "
          f"{c['bytes'] / MiB:.1f} MiB)")
    print(f"machine: {report['machine']['cpus']} CPUs, "
          f"{report['machine']['mem_total_mib']:.0f} MiB RAM; depot workers: "
          f"{report['workers'] or 'default'}")
    print("page cache: warm -- the whole corpus was read once (like cat > /dev/null) "
          "right before each tool, so every tool read it from the page cache"
          + ("" if report["page_cache_fits"] else
             " (WARNING: corpus larger than 80% of RAM, it may not stay cached)"))
    for name, cmd in report["commands"].items():
        print(f"{name} command: {cmd}")
    print()
    hdr = (f"{'tool':<18} {'seconds':>9} {'MiB/s':>9} {'stored MiB':>11} "
           f"{'peak RSS MiB':>13} {'peak PSS MiB':>13} {'max proc RSS':>13} {'procs':>6}")
    print(hdr)
    print("-" * len(hdr))
    for row in report["results"]:
        print(f"{row['tool']:<18} {fmt(row['seconds'], '9.2f')} "
              f"{fmt(row['mib_per_s'], '9.1f')} {fmt(row['stored_mib'], '11.1f')} "
              f"{fmt(row['peak_rss_mib'], '13.1f')} {fmt(row['peak_pss_mib'], '13.1f')} "
              f"{fmt(row['max_process_rss_mib'], '13.1f')} {row['max_processes']:>6}")
    print()
    r = report["ratios"]
    print(f"depot/casync throughput: {fmt(r.get('throughput_depot_over_casync'), '.2f')}"
          + ("x" if r.get("throughput_depot_over_casync") is not None else ""))
    print(f"depot/casync stored bytes: {fmt(r.get('stored_depot_over_casync'), '.3f')}")
    if r.get("throughput_depot_over_zstd") is not None:
        print(f"depot/zstd throughput: {r['throughput_depot_over_zstd']:.2f}x")
    g = report["goals"]
    if g:
        print(f"goal depot throughput >= {GOAL_THROUGHPUT_RATIO:g}x casync: "
              f"{verdict(g.get('throughput'))}")
        print(f"goal depot peak RSS < {GOAL_PEAK_RSS_MIB} MiB: "
              f"{verdict(g.get('peak_rss'))}")
    for note in report["notes"]:
        print(f"note: {note}")


# --------------------------------------------------------------------------


def default_corpus_dir(args) -> str:
    base = os.path.join(tempfile.gettempdir(), "depot-bench-corpus")
    if args.single_file_gb and args.single_file_gb > 0:
        return os.path.join(base, f"single-{args.single_file_gb:g}gib-seed{args.seed}")
    return os.path.join(base, f"tree-{args.size_gb:g}gib-seed{args.seed}")


def prepare_corpus(args) -> tuple[str, dict]:
    """The corpus (options of add_corpus_options) and its description; exits
    if it holds no bytes."""
    path = os.path.abspath(args.corpus) if args.corpus else default_corpus_dir(args)
    if args.corpus and os.path.isdir(path) and os.listdir(path):
        size, files = tree_bytes(path)
        log(f"using existing corpus {path}: {files} files, {size / MiB:.1f} MiB")
        corpus_info = {"path": path, "mode": "existing", "files": files, "bytes": size}
    else:
        info = bench_corpus.generate(path, args.size_gb, args.single_file_gb, args.seed,
                                     verbose=True, stream=sys.stderr)
        size, files = tree_bytes(path)
        corpus_info = {"path": path, "mode": info["mode"], "files": files, "bytes": size,
                       "seed": args.seed, "generated": info}
    if size == 0:
        raise SystemExit(f"corpus {path} is empty")
    return path, corpus_info


def add_corpus_options(ap: argparse.ArgumentParser, single_file_help: str) -> None:
    ap.add_argument("--corpus", help="corpus directory (existing and non-empty: used "
                    "as is; otherwise a corpus is generated there)")
    ap.add_argument("--size-gb", type=float, default=1.0,
                    help="size of a generated corpus in GiB (default 1.0)")
    ap.add_argument("--single-file-gb", type=float, default=0.0, help=single_file_help)
    ap.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")


def add_depot_cmd_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--depot-cmd", default=None,
                    help="command that runs depot (default: 'depot' on PATH, else "
                    "'python -m cli' from the repository root)")


def add_sample_interval_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--sample-interval", type=float, default=0.1,
                    help="memory sampling interval in seconds (default 0.1)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Compare depot ingest with casync make and a zstd reference.")
    add_corpus_options(ap, "generate a single-file corpus of this many GiB instead "
                       "(bounded-memory check)")
    ap.add_argument("--workers", type=int, default=None, help="depot --workers N")
    add_depot_cmd_option(ap)
    ap.add_argument("--workdir", default=None,
                    help="where the temporary stores/repos go (default: $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the casync store and depot repo")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if a goal is not met")
    ap.add_argument("--skip-casync", action="store_true")
    ap.add_argument("--skip-depot", action="store_true")
    ap.add_argument("--skip-zstd", action="store_true")
    add_sample_interval_option(ap)
    args = ap.parse_args(argv)

    if not args.skip_casync:
        ensure_tool("casync", "casync")
    if not args.skip_zstd:
        ensure_tool("zstd", "zstd")
        ensure_tool("tar", "tar")
    ensure_time_binary()

    corpus, corpus_info = prepare_corpus(args)
    corpus_bytes = corpus_info["bytes"]
    fits = corpus_bytes < 0.8 * psutil.virtual_memory().total

    workdir = tempfile.mkdtemp(prefix="depot-bench-", dir=args.workdir)
    results: list[dict] = []
    commands: dict[str, str] = {}
    notes: list[str] = []
    rows: dict[str, dict] = {}
    depot_failed = None
    try:
        def warm(tool: str) -> None:
            os.sync()
            w = warm_cache(corpus)
            log(f"warm-up read before {tool}: {w['bytes'] / MiB:.1f} MiB in {w['seconds']:.2f}s")

        if not args.skip_casync:
            warm("casync")
            log("running casync make ...")
            res, cmd, store, index = run_casync(corpus, workdir, args.sample_interval)
            stored, nchunks = tree_bytes(store)
            index_size = os.path.getsize(index)
            commands["casync"] = shlex.join(cmd)
            rows["casync"] = summarize("casync make", res, corpus_bytes, stored,
                                       chunks=nchunks, index_bytes=index_size,
                                       version=tool_version(["casync", "--version"]))
            results.append(rows["casync"])
            log(f"casync: {res['seconds']:.2f}s")

        if not args.skip_depot:
            warm("depot")
            log("running depot ...")
            res, cmd, summary, repo = run_depot(corpus, workdir, args.sample_interval,
                                                args.workers, args.depot_cmd)
            commands["depot"] = shlex.join(cmd)
            if res["returncode"] != 0:
                depot_failed = res
            else:
                stored, nchunks, source = depot_stored_bytes(repo, summary)
                repo_total, _ = tree_bytes(repo)
                extra = {"stored_source": source, "chunk_files": nchunks,
                         "repo_bytes": repo_total, "reported": summary}
                if summary is None:
                    notes.append("depot printed no parsable JSON summary; "
                                 "all depot figures are measured by this script")
                else:
                    el = summary.get("elapsed_s")
                    if isinstance(el, (int, float)):
                        notes.append(f"depot reports elapsed_s={el:.2f} (measured wall "
                                     f"time incl. process start-up: {res['seconds']:.2f}s)")
                    rb = summary.get("bytes")
                    if isinstance(rb, int) and rb != corpus_bytes:
                        notes.append(f"depot reports {rb} input bytes, corpus has "
                                     f"{corpus_bytes}")
                rows["depot"] = summarize("depot", res, corpus_bytes, stored, **extra)
                results.append(rows["depot"])
                log(f"depot: {res['seconds']:.2f}s")

        if not args.skip_zstd and depot_failed is None:
            warm("zstd")
            log("running tar | zstd -3 -T2 ...")
            res, cmd, size = run_zstd(corpus, workdir, args.sample_interval)
            commands["zstd"] = cmd
            rows["zstd"] = summarize("zstd -3 -T2 (tar)", res, corpus_bytes, size)
            results.append(rows["zstd"])
            log(f"zstd: {res['seconds']:.2f}s")
    finally:
        remove_workdir(workdir, args.keep)

    ratios: dict[str, float | None] = {}
    goals: dict[str, bool | None] = {}
    d, c, z = rows.get("depot"), rows.get("casync"), rows.get("zstd")
    if d and c:
        ratios["throughput_depot_over_casync"] = throughput_ratio(d, c)
        ratios["stored_depot_over_casync"] = (
            round(d["stored_bytes"] / c["stored_bytes"], 4)
            if d["stored_bytes"] is not None and c["stored_bytes"] else None)
        goals["throughput"] = ratios["throughput_depot_over_casync"] >= GOAL_THROUGHPUT_RATIO
    if d and z:
        ratios["throughput_depot_over_zstd"] = throughput_ratio(d, z)
    if d:
        goals["peak_rss"] = d["peak_rss_mib"] < GOAL_PEAK_RSS_MIB
        goals.setdefault("throughput", None)

    if c:
        notes.append("casync make is single-threaded")
    report = {
        "corpus": corpus_info,
        "machine": machine_info(),
        "workers": args.workers,
        "page_cache": "warm (corpus read once before each tool)",
        "page_cache_fits": fits,
        "chunk_sizes": {"min": CHUNK_MIN, "avg": CHUNK_AVG, "max": CHUNK_MAX},
        "commands": commands,
        "results": results,
        "ratios": ratios,
        "goals": goals,
        "goal_thresholds": {"throughput_ratio": GOAL_THROUGHPUT_RATIO,
                            "peak_rss_mib": GOAL_PEAK_RSS_MIB},
        "notes": notes,
        "kept_workdir": workdir if args.keep else None,
    }
    if depot_failed is not None:
        report["depot_error"] = {k: depot_failed.get(k) for k in
                                 ("returncode", "error", "stdout", "stderr")}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    if depot_failed is not None:
        log_depot_failure("depot", depot_failed, commands.get("depot"))
        return 2
    if args.check and any(v is False for v in goals.values()):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
