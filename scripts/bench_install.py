#!/usr/bin/env python3
"""Reassembly: ``casync extract`` against ``depot install`` from a local origin, and from
two HTTP origins on loopback (the project's Python test origin, and Debian's nginx with
one worker, as a CDN edge serves files).

Both stores are made from the corpus first (untimed; their times are printed). Each tool
writes into a fresh directory, between two syncs. Every destination is then compared
file by file with the corpus (sizes and SHA-256; depot's own ``.depot/`` left out).
Goals, in throughput: depot local at least 2x casync extract, HTTP at least 0.8 of
local (judged from nginx where it ran). The method in full is in docs/benchmarks.md.

Exit status: 1 when a destination differs from the corpus, casync extract failed, the
HTTP origin did not start, or (with ``--check``) a goal is missed; 2 when depot failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from benchlib import (CPU, REPO_ROOT, add_corpus_options, add_run_options, col, compare_trees,
                      corpus_line, depot_base_command, depot_stored_bytes, ensure_time_binary,
                      ensure_tools, failure, finish, fmt, hash_tree, log, machine_info,
                      machine_line, noisy_notes, option_listed, parse_json_output,
                      prepare_corpus, print_mismatches, print_table, remove_workdir,
                      run_casync, run_depot, scan_tree, summarize, throughput_ratio,
                      timed_row, timed_run, tool_version, tree_bytes, verdict)

GOAL_LOCAL_OVER_CASYNC = 2.0
GOAL_HTTP_OVER_LOCAL = 0.8

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


def ratios_and_goals(rows: dict[str, dict]) -> tuple[dict, dict]:
    ratios: dict[str, float | None] = {}
    c, dl, dh, dn = (rows.get(k) for k in ("casync", "depot-local", "depot-http", "depot-nginx"))
    if dl and c:
        ratios["depot_local_over_casync"] = throughput_ratio(dl, c)
    if dh and dl:
        ratios["depot_http_over_depot_local"] = throughput_ratio(dh, dl)
    if dn and dl:
        ratios["depot_nginx_over_depot_local"] = throughput_ratio(dn, dl)
    # the HTTP goal is the client's: judged from nginx (a CDN edge) where it ran, as the
    # Python origin takes a good part of the two cores from the client it serves
    http = ratios.get("depot_nginx_over_depot_local", ratios.get("depot_http_over_depot_local"))
    local = ratios.get("depot_local_over_casync")
    goals = {"depot_local_over_casync": None if local is None else local >= GOAL_LOCAL_OVER_CASYNC,
             "depot_http_over_depot_local": None if http is None else http >= GOAL_HTTP_OVER_LOCAL}
    return ratios, goals


def print_report(report: dict) -> None:
    print(corpus_line(report["corpus"]))
    print(f"{machine_line(report['machine'])}; depot workers: {report['workers'] or 'default'}, "
          f"install jobs: {report['jobs'] or 'default'}")
    print("page cache: nothing dropped (the stores were just written and are cached); "
          "sync ran before each timed run so that writeback of the previous step does "
          "not land in the next measurement")
    for p in report["preparation"]:
        print(f"prepare: {p['tool']}: {fmt(p['seconds'], '.2f')}s "
              f"({fmt(p['mib_per_s'], '.1f')} MiB/s), peak RSS "
              f"{fmt(p['peak_rss_mib'], '.1f')} MiB, stored {fmt(p['stored_mib'], '.1f')} MiB"
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
    r, g = report["ratios"], report["goals"]
    lc = r.get("depot_local_over_casync")
    print(f"depot local / casync extract (throughput): {fmt(lc, '.2f')}"
          f"{'x' if lc is not None else ''} -- goal >= {GOAL_LOCAL_OVER_CASYNC:g}x: "
          f"{verdict(g.get('depot_local_over_casync'))}")
    print(f"depot HTTP (Python origin) / depot local (throughput): "
          f"{fmt(r.get('depot_http_over_depot_local'), '.2f')}")
    print(f"depot HTTP (nginx) / depot local (throughput): {fmt(r.get('depot_nginx_over_depot_local'), '.2f')}")
    print(f"HTTP goal (nginx where it ran) >= {GOAL_HTTP_OVER_LOCAL:g}: "
          f"{verdict(g.get('depot_http_over_depot_local'))}")
    print_mismatches(report["verification"])
    for note in report["notes"]:
        print(f"note: {note}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Compare depot install (local and HTTP origin) with casync extract.")
    add_corpus_options(ap)
    ap.add_argument("--workers", type=int, default=None, help="depot --workers N (depot run, and depot install)")
    ap.add_argument("--jobs", type=int, default=None, help="depot install --jobs N")
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
              "goal_thresholds": {"depot_local_over_casync": GOAL_LOCAL_OVER_CASYNC,
                                  "depot_http_over_depot_local": GOAL_HTTP_OVER_LOCAL},
              "kept_workdir": workdir if args.keep else None}
    commands, notes, prep = report["commands"], report["notes"], report["preparation"]
    rows: dict[str, dict] = {}
    dests: dict[str, str] = {}
    try:
        log("preparing: casync make ...")
        res, cmd, store, index = run_casync(corpus, workdir, interval)
        stored, nchunks = tree_bytes(store)
        commands["prepare casync"] = shlex.join(cmd)
        prep.append(summarize("casync make", res, size, stored, chunks=nchunks))

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
            prep.append(summarize("depot run", res, size, stored, chunk_files=nchunks))

        res, cmd, dest = run_casync_extract(store, index, workdir, interval, notes)
        commands["casync extract"] = shlex.join(cmd)
        if res["returncode"] != 0:
            report["casync_error"] = failure("casync extract", cmd, res)
        else:
            rows["casync"] = timed_row("casync extract", res, size, key="casync",
                                       version=tool_version(["casync", "--version"]))
            dests["casync"] = dest

        def install(key: str, label: str, origin: str, cpu_seconds=None, server: str = "") -> None:
            """One timed depot install; an HTTP origin's own CPU is kept apart."""
            if report.get("depot_error"):
                return
            dest = os.path.join(workdir, f"dest-{key}")
            os.makedirs(dest)
            glob, sub = ["--json"], ["install", *(["--allow-unsigned"] if unsigned else []), "--origin", origin,
                                     "--product", "bench", "--version", "1", "--dest", dest]
            if args.jobs:
                sub += ["--jobs", str(args.jobs)]
            if args.workers:
                (sub if workers_after else glob).extend(["--workers", str(args.workers)])
            cmd = base + glob + sub
            commands[label] = shlex.join(cmd)
            cpu0 = cpu_seconds() if cpu_seconds else None
            res = timed_run(key, cmd, workdir, interval, cwd=dcwd, env=denv)
            if res["returncode"] != 0:
                report["depot_error"] = failure(label, cmd, res)
                return
            row = rows[key] = timed_row(label, res, size, key=key,
                                        reported=parse_json_output(res.get("stdout", "")))
            dests[key] = dest
            cpu1 = cpu_seconds() if cpu_seconds else None
            if cpu0 is not None and cpu1 is not None:
                row["origin_cpu_s"] = round(cpu1 - cpu0, 3)
                if row.get("other_cpu_s") is not None:
                    row["other_cpu_s"] = round(max(0.0, row["other_cpu_s"] - (cpu1 - cpu0)), 3)
                notes.append(f"{server} (not counted in depot's memory) used {cpu1 - cpu0:.2f}s CPU during {label}")

        workers_after = bool(args.workers) and option_listed(base, "install", "--workers", dcwd, denv)
        # the benchmark repository is not signed (depot install needs to be told so)
        unsigned = option_listed(base, "install", "--allow-unsigned", dcwd, denv)
        install("depot-local", "depot install (local)", repo)
        if "depot-local" in rows:
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
                with nginx(Path(repo), None, Path(state), prefix="/origin") as url:
                    log(f"nginx {url} serves {repo}")
                    install("depot-nginx", "depot install (nginx)", url,
                            lambda: process_tree_cpu(os.path.join(state, "nginx.pid")), "nginx")
            except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
                notes.append(f"nginx did not run ({e}): no nginx row")

        if dests:
            log("verifying destinations against the corpus (sizes and SHA-256) ...")
            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(max(2, min(8, (os.cpu_count() or 1) * 2))) as pool:
                ref = scan_tree(corpus)
                ref_hashes = hash_tree(corpus, ref, pool)
                for key, dest in dests.items():
                    ignore = (DEPOT_STATE_DIR,) if key.startswith("depot") else ()
                    v = report["verification"][key] = compare_trees(ref, ref_hashes, dest, pool, ignore)
                    if v["ignored_count"]:
                        notes.append(f"{key}: {v['ignored_count']} entries of depot's own state under "
                                     f"DEST/{DEPOT_STATE_DIR}/ ({', '.join(v['ignored'])}) not compared")
            log(f"verified in {time.perf_counter() - t0:.1f}s")
    finally:
        remove_workdir(workdir, args.keep)

    report["results"] = [rows[k] for k in ("casync", "depot-local", "depot-http", "depot-nginx") if k in rows]
    report["ratios"], report["goals"] = ratios_and_goals(rows)
    notes.extend(noisy_notes(report["results"]))
    if "casync" in rows:
        notes.append("casync extract is single-threaded")
    return finish(report, args, print_report, ("casync_error", "origin_error"))


if __name__ == "__main__":
    sys.exit(main())
