#!/usr/bin/env python3
"""Reassembly: ``casync extract`` against ``depot install`` from a local origin, and from
two HTTP origins on loopback (the project's Python test origin, and Debian's nginx with
one worker, as a CDN edge serves files).

Both stores are made from the corpus first (untimed; their times are printed). Each tool
writes into a fresh directory, between two syncs. Each destination is then compared file
by file with the corpus (sizes and SHA-256; depot's own ``.depot/`` left out), and on
tmpfs removed, so that memory holds one destination at a time.
Goals, in throughput: depot local at least 2x casync extract, from nginx at least 0.8 of
local. On ``--small-files N`` (issue 19) also: the requests nginx logged at most 2x the
corpus bytes over the average chunk size, each install's peak RSS under 100 MiB, and at
most 60 bytes of documents (manifest and the rest but chunks) per file from nginx.

Beside the installs, the chunk objects are read alone, from the local origin and from
nginx, by depot's own stores with the install's number of downloads in flight: what the
transport costs by itself. From it comes the ceiling this machine puts on nginx / local:
the local install's wall time over the fewest seconds its cores need for the local
install's CPU with the local reads replaced by nginx's (the client's and nginx's CPU).
The method in full is in docs/benchmarks.md.

Exit status: 1 when a destination differs from the corpus, casync extract failed, the
HTTP origin did not start, or (with ``--check``) a goal is missed; 2 when depot failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from apilib import print_profile
from benchlib import (CHUNK_AVG, CPU, REPO_ROOT, add_corpus_options, add_run_options, col,
                      compare_trees, corpus_line, depot_base_command, depot_install_command, depot_stored_bytes,
                      disk_usage, ensure_time_binary, ensure_tools, failure, finish, fmt,
                      hash_tree, judge, log, machine_info, machine_line, mib, noisy_notes, on_tmpfs,
                      parse_json_output, prepare_corpus, print_figures,
                      print_mismatches, print_table, profile_run, remove_workdir, run_casync, run_depot,
                      scan_tree, summarize, throughput_ratio, timed_row, timed_run,
                      tool_version, tree_bytes)

# goals: {figure: (operator, threshold)}; the small-files corpus has more (issue 19)
GOALS = {"depot_local_over_casync": (">=", 2.0), "depot_nginx_over_depot_local": (">=", 0.8)}
SMALL_FILES_GOALS = {**GOALS, "requests_over_bytes_per_chunk": ("<=", 2.0), "install_peak_rss_mib": ("<", 100.0),
                     "wire_document_bytes_per_file": ("<=", 60.0)}
FIGURES = {"depot_local_over_casync": "depot install (local) / casync extract (throughput)",
           "depot_http_over_depot_local": "depot install, Python HTTP origin / local (throughput)",
           "depot_nginx_over_depot_local": "depot install, nginx / local (throughput)",
           "requests_over_bytes_per_chunk": "requests to nginx / (corpus bytes / average chunk size)",
           "install_peak_rss_mib": "depot install peak RSS (largest of the installs), MiB",
           "wire_document_bytes_per_file": "documents from nginx (manifest and the rest but chunks), bytes per file",
           "fetch_nginx_over_local": "the chunk objects read alone, nginx / local (throughput)",
           "nginx_over_local_ceiling": "nginx / local at best on these cores (the local install's work, its reads "
                                       "as nginx's)"}
NGINX_PREFIX = "/origin"

DEPOT_STATE_DIR = ".depot"  # depot install's lock, installed manifest and file list


def verified(report: dict, row: dict) -> str:
    v = report["verification"].get(row["key"])
    return "n/a" if v is None else ("OK" if v["ok"] else "MISMATCH")


COLUMNS = [col("tool", 22, "tool", "s"), col("seconds", 9, "seconds", ".2f"),
           col("MiB/s", 9, "mib_per_s", ".1f"), col("peak RSS MiB", 13, "peak_rss_mib", ".1f"),
           col("max proc RSS", 13, "max_process_rss_mib", ".1f"), col("procs", 6, "max_processes", "d"),
           col("sync after s", 13, "sync_after_s", ".2f")]


class OriginProcess:
    """The project's test origin serving a directory, in a process of its own.

    It shares neither the GIL nor a process with the measurement, and it stops when its
    stdin closes, that is when this script ends, however it ends."""

    def __init__(self, directory: str):
        # cwd: the repository root, where depot_testing (not installed) is importable
        self.proc = subprocess.Popen([sys.executable, "-m", "depot_testing.http_origins", directory],
                                     cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.url = self.proc.stdout.readline().decode().strip()
        if not self.url.startswith("http://"):
            self.close()
            raise RuntimeError(f"HTTP origin did not start (exit {self.proc.returncode})")

    def cpu_seconds(self) -> float | None:
        return process_tree_cpu(self.proc.pid)

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()

    def __enter__(self) -> "OriginProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def process_tree_cpu(pid: int | str) -> float | None:
    """CPU seconds of a process and its children (nginx's workers); pid may name a pid file."""
    try:
        if isinstance(pid, str):
            with open(pid) as f:
                pid = int(f.read())
        root = psutil.Process(pid)
        return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])
    except (OSError, ValueError, psutil.Error):
        return None


FETCH_ALONE = """
import concurrent.futures as cf, json, os, resource, sys, time
from pipeline.storage import Location, open_origin
origin, jobs, repo = sys.argv[1], int(sys.argv[2]), sys.argv[3]
store = open_origin(Location(origin), connections=jobs)
keys = sorted(os.path.relpath(os.path.join(d, n), repo) for d, _, names in os.walk(os.path.join(repo, "chunks"))
              for n in names)
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
with cf.ThreadPoolExecutor(jobs) as pool:
    got = sum(map(len, pool.map(store.get, keys)))
r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
print(json.dumps({"seconds": round(t1 - t0, 3), "bytes": got,
                  "cpu_s": round(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, 3)}))
"""


def fetch_alone(origin: str, repo: str, jobs: int, server_cpu=None) -> dict:
    """Every chunk object of ``repo`` read from ``origin`` by depot's store for it, ``jobs``
    at a time, nothing else done: seconds, CPU seconds (and the server's, given how to
    read them)."""
    env = {**os.environ, "PYTHONPATH": REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cpu0 = server_cpu() if server_cpu else None
    p = subprocess.run([sys.executable, "-c", FETCH_ALONE, origin, str(jobs), repo], cwd=REPO_ROOT, env=env,
                       capture_output=True, text=True, check=True)
    out = json.loads(p.stdout)
    cpu1 = server_cpu() if server_cpu else None
    if cpu0 is not None and cpu1 is not None:
        out["server_cpu_s"] = round(cpu1 - cpu0, 3)
    return out


def run_casync_extract(store: str, index: str, workdir: str, interval: float,
                       notes: list[str]) -> tuple[dict, list[str], str]:
    """casync extract; as another user than root it cannot restore ownership, so it runs
    ``--without=privileged``, and as root it is retried so when the plain command fails."""
    unprivileged = os.geteuid() != 0
    for attempt, dest in (("casync-extract", "dest-casync"),
                          ("casync-extract-unprivileged", "dest-casync-unprivileged")):
        dest = os.path.join(workdir, dest)
        os.makedirs(dest)
        cmd = ["casync", "extract", f"--store={store}",
               *(["--without=privileged"] if unprivileged else []), index, dest]
        res = timed_run(attempt, cmd, workdir, interval)
        if res["returncode"] == 0 or unprivileged:
            break
        notes.append(f"casync extract failed (exit {res['returncode']}: "
                     f"{res['stderr'].strip()}); retried with --without=privileged")
        unprivileged = True
    return res, cmd, dest


def read_access_log(path: str) -> dict:
    """What nginx served (its combined log format): requests, chunks, and the bytes of each
    other object (the documents)."""
    out = {"requests": 0, "chunk_requests": 0, "chunk_bytes": 0, "not_200": 0, "documents": {}}
    with open(path) as f:
        for line in f:
            quoted = line.split('"')
            url, (status, sent) = quoted[1].split()[1], quoted[2].split()
            key = url.split("?")[0].removeprefix(NGINX_PREFIX + "/")
            out["requests"] += 1
            out["not_200"] += status != "200"
            if key.startswith("chunks/"):
                out["chunk_requests"] += 1
                out["chunk_bytes"] += int(sent)
            else:
                out["documents"][key] = out["documents"].get(key, 0) + int(sent)
    return out


def figures(rows: dict[str, dict], served: dict | None, corpus: dict, alone: dict | None = None) -> dict:
    out: dict[str, float | None] = {}
    c, dl, dh, dn = (rows.get(k) for k in ("casync", "depot-local", "depot-http", "depot-nginx"))
    if dl and c:
        out["depot_local_over_casync"] = throughput_ratio(dl, c)
    if dh and dl:
        out["depot_http_over_depot_local"] = throughput_ratio(dh, dl)
    if dn and dl:
        out["depot_nginx_over_depot_local"] = throughput_ratio(dn, dl)
    if served:
        out["requests_over_bytes_per_chunk"] = round(served["requests"] / (corpus["bytes"] / CHUNK_AVG), 3)
        out["wire_document_bytes_per_file"] = round(sum(served["documents"].values()) / corpus["files"], 1)
    if alone and dl:
        local, http = alone["local"], alone["nginx"]
        out["fetch_nginx_over_local"] = round(local["seconds"] / http["seconds"], 3)
        need = dl["cpu_user_s"] + dl["cpu_sys_s"] - local["cpu_s"] + http["cpu_s"] + http.get("server_cpu_s", 0.0)
        out["nginx_over_local_ceiling"] = round(dl["seconds"] / (need / cores()), 3)
    installs = [row["peak_rss_mib"] for key, row in rows.items() if key.startswith("depot")]
    out["install_peak_rss_mib"] = max(installs) if installs else None
    return out


def cores() -> int:
    return len(os.sched_getaffinity(0))


def print_report(report: dict) -> None:
    print(corpus_line(report["corpus"]))
    print(f"{machine_line(report['machine'])}; depot workers: {report['workers'] or 'default'}, "
          f"install jobs: {report['jobs'] or 'default'}")
    print("page cache: nothing dropped (the stores were just written and are cached); "
          "sync ran before each timed run so that writeback of the previous step does "
          "not land in the next measurement")
    for p in report["preparation"]:
        print(f"prepare: {p['tool']}: {fmt(p['seconds'], '.2f')}s "
              f"({fmt(p['mib_per_s'], '.1f')} MiB/s), peak RSS {fmt(p['peak_rss_mib'], '.1f')} MiB, "
              f"stored {fmt(p['stored_mib'], '.1f')} MiB in {fmt(p.get('objects'), 'd')} objects, "
              f"{mib(p.get('disk_bytes'))} MiB on disk (du)"
              + ("" if p.get("ok", True) else " -- FAILED"))
    for name, cmd in report["commands"].items():
        print(f"{name}: {cmd}")
    print()
    print_table(COLUMNS + [("verified", 9, lambda row: verified(report, row)), CPU,
                           col("free MiB", 9, "free_mib_before", "d")], report["results"])
    if report.get("origin_error"):
        print(f"{'depot install (HTTP)':<22} NOT RUN: {report['origin_error']}")
    for e in (report.get("depot_error"), report.get("casync_error")):
        if e:
            print(f"{e['step']:<22} FAILED (exit {e['returncode']}); its stderr follows the report")
    print()
    served = report.get("nginx_served")
    if served:
        print(f"nginx served {served['requests']} requests ({served['not_200']} not 200): "
              f"{served['chunk_requests']} chunks, {served['chunk_bytes']} bytes; documents: "
              + ", ".join(f"{k} {v} B" for k, v in served["documents"].items()))
    alone = report.get("fetch_alone")
    if alone:
        print("chunk objects read alone (no decoding, no writing): " + "; ".join(
            f"{k} {v['seconds']:.2f}s, {v['cpu_s']:.2f} CPU-s"
            + (f" + nginx {v['server_cpu_s']:.2f}" if "server_cpu_s" in v else "") for k, v in alone.items()))
    print_figures(FIGURES, report["ratios"], report["goal_thresholds"])
    print_mismatches(report["verification"])
    for note in report["notes"]:
        print(f"note: {note}")
    for label, p in report["profiles"].items():
        print_profile(label, p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Compare depot install (local and HTTP origin) with casync extract.")
    add_corpus_options(ap)
    ap.add_argument("--workers", type=int, default=None, help="depot --workers N (depot run, and depot install)")
    ap.add_argument("--jobs", type=int, default=None, help="depot install --jobs N")
    ap.add_argument("--profile", action="store_true",
                    help="then run each depot install once more under py-spy: where its time goes")
    ap.add_argument("--no-python-origin", action="store_true", help="skip the install from the Python test origin")
    ap.add_argument("--no-nginx", action="store_true",
                    help="skip the install from nginx (Debian's, installed with apt-get when missing)")
    add_run_options(ap, workdir_help="where the stores, repos and destinations go (default: $TMPDIR)",
                    keep_help="keep the stores, the repo and the destinations")
    args = ap.parse_args(argv)

    ensure_tools({"casync": "casync"})
    ensure_time_binary()
    corpus, corpus_info = prepare_corpus(args)
    size, interval = corpus_info["bytes"], args.sample_interval
    workdir = tempfile.mkdtemp(prefix="depot-bench-install-", dir=args.workdir)
    report = {"corpus": corpus_info, "machine": machine_info(), "workers": args.workers, "jobs": args.jobs,
              "page_cache": "nothing dropped; sync before each timed run", "preparation": [],
              "commands": {}, "results": [], "verification": {}, "notes": [],
              "goal_thresholds": SMALL_FILES_GOALS if args.small_files else GOALS,
              "kept_workdir": workdir if args.keep else None, "profiles": {}}
    commands, notes, prep = report["commands"], report["notes"], report["preparation"]
    rows: dict[str, dict] = {}
    pool = concurrent.futures.ThreadPoolExecutor(max(2, min(8, (os.cpu_count() or 1) * 2)))
    log("hashing the corpus, to compare each destination with ...")
    ref = scan_tree(corpus)
    ref_hashes = hash_tree(corpus, ref, pool)
    tmpfs = on_tmpfs(workdir)

    def check(key: str, dest: str) -> None:
        """dest against the corpus, right after its run; on tmpfs (memory) then removed."""
        t0 = time.perf_counter()
        ignore = (DEPOT_STATE_DIR,) if key.startswith("depot") else ()
        v = report["verification"][key] = compare_trees(ref, ref_hashes, dest, pool, ignore)
        if v["ignored_count"]:
            notes.append(f"{key}: {v['ignored_count']} entries of depot's own state under "
                         f"DEST/{DEPOT_STATE_DIR}/ ({', '.join(v['ignored'])}) not compared")
        log(f"{key} verified in {time.perf_counter() - t0:.1f}s")
        if tmpfs and not args.keep:
            shutil.rmtree(dest)

    try:
        log("preparing: casync make ...")
        res, cmd, store, index = run_casync(corpus, workdir, interval)
        stored, nchunks = tree_bytes(store)
        commands["prepare casync"] = shlex.join(cmd)
        prep.append(summarize("casync make", res, size, stored, objects=nchunks, disk_bytes=disk_usage(store, index)))

        log("preparing: depot run ...")
        base, dcwd, denv = depot_base_command(args.depot_cmd)
        res, cmd, _, repo = run_depot(corpus, workdir, interval, args.workers, args.depot_cmd)
        commands["prepare depot"] = shlex.join(cmd)
        if res["returncode"] != 0:
            report["depot_error"] = failure("depot run", cmd, res)
            prep.append({"tool": "depot run", "ok": False, "seconds": res.get("seconds"),
                         "mib_per_s": None, "peak_rss_mib": None, "stored_mib": None})
        else:
            stored, nchunks, _ = depot_stored_bytes(repo)
            prep.append(summarize("depot run", res, size, stored, objects=nchunks, disk_bytes=disk_usage(repo)))

        res, cmd, dest = run_casync_extract(store, index, workdir, interval, notes)
        commands["casync extract"] = shlex.join(cmd)
        if res["returncode"] != 0:
            report["casync_error"] = failure("casync extract", cmd, res)
        else:
            rows["casync"] = timed_row("casync extract", res, size, key="casync",
                                       version=tool_version(["casync", "--version"]))
            check("casync", dest)

        def install(key: str, label: str, origin: str, cpu_seconds=None, server: str = "") -> None:
            """One timed depot install; an HTTP origin's own CPU is kept apart."""
            if report.get("depot_error"):
                return
            dest = os.path.join(workdir, f"dest-{key}")
            os.makedirs(dest)
            cmd = depot_install_command(args.depot_cmd, origin, dest, args.jobs, args.workers)
            commands[label] = shlex.join(cmd)
            cpu0 = cpu_seconds() if cpu_seconds else None
            res = timed_run(key, cmd, workdir, interval, cwd=dcwd, env=denv)
            if res["returncode"] != 0:
                report["depot_error"] = failure(label, cmd, res)
                return
            row = rows[key] = timed_row(label, res, size, key=key,
                                        reported=parse_json_output(res.get("stdout", "")))
            check(key, dest)
            cpu1 = cpu_seconds() if cpu_seconds else None
            if cpu0 is not None and cpu1 is not None:
                row["origin_cpu_s"] = round(cpu1 - cpu0, 3)
                if row.get("other_cpu_s") is not None:
                    row["other_cpu_s"] = round(max(0.0, row["other_cpu_s"] - (cpu1 - cpu0)), 3)
                notes.append(f"{server} (not counted in depot's memory) used {cpu1 - cpu0:.2f}s CPU during {label}")

        def profile(key: str, label: str, origin: str) -> None:
            if args.profile and key in rows:
                cmd = depot_install_command(args.depot_cmd, origin, os.path.join(workdir, f"profile-{key}"),
                                            args.jobs, args.workers)
                report["profiles"][label] = profile_run(label, cmd, workdir, dcwd, denv)

        install("depot-local", "depot install (local)", repo)
        profile("depot-local", "depot install (local)", repo)
        if "depot-local" in rows and not args.no_python_origin:
            try:
                with OriginProcess(repo) as server:
                    log(f"HTTP origin {server.url} (pid {server.proc.pid}) serves {repo}")
                    install("depot-http", "depot install (HTTP)", server.url, server.cpu_seconds,
                            "the Python HTTP origin")
            except (OSError, RuntimeError) as e:
                report["origin_error"] = f"HTTP origin: {e}"
        if not report.get("depot_error") and not args.no_nginx:
            from depot_testing.servers import nginx

            state = os.path.join(workdir, "nginx")
            try:
                with nginx(Path(repo), None, Path(state), prefix=NGINX_PREFIX, access_log=True) as url:
                    log(f"nginx {url} serves {repo}")
                    install("depot-nginx", "depot install (nginx)", url,
                            lambda: process_tree_cpu(os.path.join(state, "nginx.pid")), "nginx")
                    if "depot-nginx" in rows:  # before the profile's requests
                        report["nginx_served"] = read_access_log(os.path.join(state, "access.log"))
                        jobs = args.jobs or 8  # depot install's default
                        report["fetch_alone"] = {
                            "local": fetch_alone(repo, repo, min(jobs, cores())),  # as the install reads a local origin
                            "nginx": fetch_alone(url, repo, jobs,
                                                 lambda: process_tree_cpu(os.path.join(state, "nginx.pid")))}
                    profile("depot-nginx", "depot install (nginx)", url)
            except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
                notes.append(f"nginx did not run ({e}): no nginx row")

    finally:
        pool.shutdown()
        remove_workdir(workdir, args.keep)

    report["results"] = [rows[k] for k in ("casync", "depot-local", "depot-http", "depot-nginx") if k in rows]
    report["ratios"] = figures(rows, report.get("nginx_served"), corpus_info, report.get("fetch_alone"))
    report["goals"] = judge(report["goal_thresholds"], report["ratios"])
    notes.extend(noisy_notes(report["results"]))
    if "casync" in rows:
        notes.append("casync extract is single-threaded")
    return finish(report, args, print_report, ("casync_error", "origin_error"))


if __name__ == "__main__":
    sys.exit(main())
