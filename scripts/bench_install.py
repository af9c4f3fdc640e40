#!/usr/bin/env python3
"""Compare ``depot install`` with ``casync extract`` on one corpus.

Usage::

    python scripts/bench_install.py [--corpus DIR] [--size-gb 1.0] [--workers N]
                                    [--jobs N] [--keep] [--json] [--workdir DIR]

Steps:

1. Make sure ``casync`` and ``/usr/bin/time`` are installed (as in
   ``bench_ingest.py``: ``apt-get install -y``, with a retry after
   ``apt-get update``).
2. Make or take the corpus, exactly as ``bench_ingest.py`` does: without
   ``--corpus`` a generated corpus is cached under ``$TMPDIR/depot-bench-corpus/``
   and reused by later runs; with ``--corpus DIR`` an existing non-empty
   directory is used as is, a missing or empty one is filled.
3. Prepare both stores from the corpus (not part of the comparison, but their
   times are printed):
   ``casync make --store=S --chunk-size=262144:1048576:4194304 --compression=zstd
   INDEX.caidx CORPUS`` and ``depot --repo REPO --json run CORPUS --product bench
   --version 1`` (``--workers N`` is passed to ``depot run`` as in
   ``bench_ingest.py``).
4. Time reassembly, each into a fresh empty directory:

   * ``casync extract --store=S INDEX.caidx DEST`` (as root nothing else is
     needed; as another user ``--without=privileged`` is added, since restoring
     ownership would fail; if the plain command fails it is retried once with
     ``--without=privileged`` into a new directory and the note says so);
   * ``depot --json install --origin REPO --product bench --version 1 --dest DEST``
     (a local origin);
   * the same from an HTTP origin on loopback: the repository is served by
     the project's test origin (``pipeline.testing.http_origins.StaticOrigin``:
     HTTP/1.1 keep-alive, single byte ranges) in a subprocess of its own, so
     that it shares neither the GIL nor a process with the measurement, and
     ``--origin http://127.0.0.1:PORT`` is used;
   * the same from Debian's nginx (installed with ``apt-get`` when missing; skipped
     with ``--no-nginx``), one worker, serving the repository as a CDN edge does: the
     Python origin above spends a good part of the two cores itself, so the HTTP goal
     is judged from nginx where it ran.

   ``--jobs N`` is passed to both ``depot install`` runs.  ``--workers N`` is
   passed to ``depot install`` too (after ``install`` if its ``--help`` lists
   the option, otherwise as the global option).  Nothing is dropped from the
   page cache (the stores were just written and are cached); ``sync`` runs
   before each timed run so that writeback of the previous step does not land
   in the next measurement.  The time of the ``sync`` right after each run
   (the writeback the run left behind) is reported separately, not included.
5. Check every destination against the corpus: the same relative set of files
   (and symlinks), the same sizes and the same SHA-256 of every file (hashed
   with threads).  depot's own state in ``DEST/.depot/`` (lock, installed
   manifest, file list) is left out of the comparison, and a note says so.
   Mismatches are listed and make the exit status 1.
6. Print a table (tool, seconds, MiB/s = corpus bytes / wall time, peak RSS;
   memory is measured as in ``bench_ingest.py``: the summed RSS of the process
   tree sampled every 0.1 s, and the exact peak of the largest process from
   ``/usr/bin/time``) and the ratios depot local / casync extract (goal >= 2x)
   and depot HTTP / depot local (goal >= 0.8), both in throughput.  The HTTP
   server's memory is not counted in depot's figures (it stands for the CDN);
   its CPU time is shown in a note.  The CPU time the machine spent outside
   the measured processes during each run is recorded (``other_cpu_s``), and
   a note warns when other load made a figure noisy.  ``--json`` prints the
   same as JSON.

Exit status: 0 when everything ran and verified, 1 when a destination does not
match the corpus, casync extract failed or the HTTP origin did not work (and
with ``--check`` when a goal is missed), 2 when a depot command failed (its
stderr is printed).

Units are binary: MiB = 2**20 bytes, GiB = 2**30 bytes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from benchlib import (REPO_ROOT, add_corpus_options, add_run_options, compare_trees,
                      corpus_line, depot_base_command, depot_stored_bytes,
                      ensure_time_binary, ensure_tools, fmt, hash_tree, log,
                      log_depot_failure, machine_info, machine_line, option_listed,
                      parse_json_output, prepare_corpus, print_header, remove_workdir,
                      noisy_notes, run_casync, run_depot, scan_tree, summarize, timed_run,
                      throughput_ratio, tool_version, tree_bytes, verdict)

GOAL_LOCAL_OVER_CASYNC = 2.0
GOAL_HTTP_OVER_LOCAL = 0.8

# depot install keeps its state (lock, installed manifest, file list) here
DEPOT_STATE_DIR = ".depot"

PRODUCT = "bench"
VERSION = "1"


# --------------------------------------------------------------------------
# HTTP origin

# The project's test origin, run in a process of its own so that it shares neither
# the GIL nor a process with the measurement; it stops when its stdin closes, that
# is when this script ends, however it ends.
class OriginProcess:
    """``StaticOrigin`` serving a directory, in a child process."""

    def __init__(self, directory: str):
        # cwd: the repository root, where `pipeline` is importable without installing it
        self.proc = subprocess.Popen([sys.executable, "-m", "pipeline.testing.http_origins", directory],
                                     cwd=REPO_ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        self.url = self.proc.stdout.readline().decode().strip()
        if not self.url.startswith("http://"):
            self.close()
            raise RuntimeError(f"HTTP origin did not start (exit {self.proc.returncode})")

    def cpu_seconds(self) -> float | None:
        try:
            t = psutil.Process(self.proc.pid).cpu_times()
            return t.user + t.system
        except psutil.Error:
            return None

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


def process_tree_cpu(pid_file: str) -> float | None:
    """CPU seconds of the process named in ``pid_file`` and its children (nginx's workers)."""
    try:
        with open(pid_file) as f:
            root = psutil.Process(int(f.read()))
        return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])
    except (OSError, ValueError, psutil.Error):
        return None


# --------------------------------------------------------------------------
# the runs


def casync_extract_cmd(store: str, index: str, dest: str, unprivileged: bool) -> list[str]:
    cmd = ["casync", "extract", f"--store={store}"]
    if unprivileged:
        cmd.append("--without=privileged")
    return cmd + [index, dest]


def run_casync_extract(store: str, index: str, workdir: str, interval: float,
                       notes: list[str]) -> tuple[dict, list[str], str]:
    unprivileged = os.geteuid() != 0
    dest = os.path.join(workdir, "dest-casync")
    os.makedirs(dest)
    cmd = casync_extract_cmd(store, index, dest, unprivileged)
    res = timed_run("casync-extract", cmd, workdir, interval)
    if res["returncode"] != 0 and not unprivileged:
        notes.append(f"casync extract failed (exit {res['returncode']}: "
                     f"{res['stderr'].strip()}); retried with --without=privileged")
        dest = os.path.join(workdir, "dest-casync-unprivileged")
        os.makedirs(dest)
        cmd = casync_extract_cmd(store, index, dest, True)
        res = timed_run("casync-extract-unprivileged", cmd, workdir, interval)
    return res, cmd, dest


def depot_install_cmd(base: list[str], origin: str, dest: str, jobs: int | None,
                      workers: int | None, workers_after: bool, unsigned: bool = False) -> list[str]:
    glob = ["--json"]
    # the benchmark repository is not signed (depot install needs to be told so)
    sub = ["install", *(["--allow-unsigned"] if unsigned else []), "--origin", origin, "--product", PRODUCT,
           "--version", VERSION, "--dest", dest]
    if jobs:
        sub += ["--jobs", str(jobs)]
    if workers:
        (sub if workers_after else glob).extend(["--workers", str(workers)])
    return base + glob + sub


def timed_row(name: str, res: dict, corpus_bytes: int, **extra) -> dict:
    """A report row of a timed_run() result: no stored bytes, but the sync after it
    and the other load during it."""
    row = summarize(name, res, corpus_bytes, None, **extra)
    for k in ("stored_bytes", "stored_mib"):
        row.pop(k, None)
    row["sync_after_s"] = res.get("sync_after_s")
    row["other_cpu_s"] = res.get("other_cpu_s")
    return row


def depot_error(res: dict, cmd: list[str], step: str) -> dict:
    return {"step": step, "command": shlex.join(cmd), "returncode": res.get("returncode"),
            "error": res.get("error"), "stdout": res.get("stdout", ""),
            "stderr": res.get("stderr", "")}


def ratios_and_goals(rows: dict[str, dict]) -> tuple[dict, dict]:
    """The throughput ratios depot local / casync and HTTP / local, and their goals."""
    ratios: dict[str, float | None] = {}
    goals: dict[str, bool | None] = {}
    c, dl, dh, dn = (rows.get(k) for k in ("casync", "depot-local", "depot-http", "depot-nginx"))
    if dl and c:
        ratios["depot_local_over_casync"] = throughput_ratio(dl, c)
        goals["depot_local_over_casync"] = (ratios["depot_local_over_casync"]
                                            >= GOAL_LOCAL_OVER_CASYNC)
    if dh and dl:
        ratios["depot_http_over_depot_local"] = throughput_ratio(dh, dl)
    if dn and dl:
        ratios["depot_nginx_over_depot_local"] = throughput_ratio(dn, dl)
    # The HTTP goal is the client's: judged from nginx (a CDN edge) where it ran, as the
    # Python origin takes a good part of the two cores from the client it serves.
    http = ratios.get("depot_nginx_over_depot_local", ratios.get("depot_http_over_depot_local"))
    if http is not None:
        goals["depot_http_over_depot_local"] = http >= GOAL_HTTP_OVER_LOCAL
    goals.setdefault("depot_local_over_casync", None)
    goals.setdefault("depot_http_over_depot_local", None)
    return ratios, goals


# --------------------------------------------------------------------------
# report


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
    hdr = (f"{'tool':<22} {'seconds':>9} {'MiB/s':>9} {'peak RSS MiB':>13} "
           f"{'max proc RSS':>13} {'procs':>6} {'sync after s':>13} {'verified':>9} {'CPU user+sys':>13} "
           f"{'free MiB':>9}")
    print_header(hdr)
    for row in report["results"]:
        v = report["verification"].get(row["key"])
        vs = "n/a" if v is None else ("OK" if v["ok"] else "MISMATCH")
        print(f"{row['tool']:<22} {fmt(row['seconds'], '9.2f')} "
              f"{fmt(row['mib_per_s'], '9.1f')} {fmt(row['peak_rss_mib'], '13.1f')} "
              f"{fmt(row['max_process_rss_mib'], '13.1f')} {row['max_processes']:>6} "
              f"{fmt(row['sync_after_s'], '13.2f')} {vs:>9} "
              f"{row['cpu_user_s']:>6.2f}+{row['cpu_sys_s']:<6.2f} {fmt(row['free_mib_before'], '9d')}")
    if report.get("origin_error"):
        print(f"{'depot install (HTTP)':<22} NOT RUN: {report['origin_error']}")
    for key in ("depot_error", "casync_error"):
        e = report.get(key)
        if e:
            print(f"{e.get('step', 'casync extract'):<22} FAILED (exit {e['returncode']}); "
                  f"its stderr follows the report")
    print()
    r, g = report["ratios"], report["goals"]
    lc = r.get("depot_local_over_casync")
    hl, nl = r.get("depot_http_over_depot_local"), r.get("depot_nginx_over_depot_local")
    print(f"depot local / casync extract (throughput): {fmt(lc, '.2f')}"
          f"{'x' if lc is not None else ''} -- goal >= {GOAL_LOCAL_OVER_CASYNC:g}x: "
          f"{verdict(g.get('depot_local_over_casync'))}")
    print(f"depot HTTP (Python origin) / depot local (throughput): {fmt(hl, '.2f')}")
    print(f"depot HTTP (nginx) / depot local (throughput): {fmt(nl, '.2f')}")
    print(f"HTTP goal (nginx where it ran) >= {GOAL_HTTP_OVER_LOCAL:g}: "
          f"{verdict(g.get('depot_http_over_depot_local'))}")
    for key, v in report["verification"].items():
        if v["ok"]:
            continue
        print(f"MISMATCH {key}: {v['missing']} missing, {v['extra']} extra, "
              f"{v['different']} different")
        for p in v["missing_paths"]:
            print(f"  missing: {p}")
        for p in v["extra_paths"]:
            print(f"  extra: {p}")
        for d in v["different_paths"]:
            print(f"  different: {d['path']} (expected {d['expected']}, got {d['got']})")
    for note in report["notes"]:
        print(f"note: {note}")


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Compare depot install (local and HTTP origin) with casync extract.")
    add_corpus_options(
        ap, "generate a single-file corpus of this many GiB instead")
    ap.add_argument("--workers", type=int, default=None,
                    help="depot --workers N (depot run, and depot install)")
    ap.add_argument("--jobs", type=int, default=None, help="depot install --jobs N")
    ap.add_argument("--no-nginx", action="store_true",
                    help="skip the install from nginx (Debian's, installed with apt-get when missing)")
    add_run_options(ap, workdir_help="where the stores, repos and destinations go "
                    "(default: $TMPDIR)",
                    keep_help="keep the stores, the repo and the destinations")
    args = ap.parse_args(argv)

    ensure_tools({"casync": "casync"})
    ensure_time_binary()

    corpus, corpus_info = prepare_corpus(args)
    corpus_bytes = corpus_info["bytes"]
    interval = args.sample_interval

    workdir = tempfile.mkdtemp(prefix="depot-bench-install-", dir=args.workdir)
    commands: dict[str, str] = {}
    notes: list[str] = []
    prep: list[dict] = []
    results: list[dict] = []
    rows: dict[str, dict] = {}
    dests: dict[str, str] = {}
    verification: dict[str, dict] = {}
    depot_failed: dict | None = None
    casync_failed: dict | None = None
    origin_failed: str | None = None
    try:
        # ---- preparation (not compared)
        log("preparing: casync make ...")
        res, cmd, store, index = run_casync(corpus, workdir, interval)
        stored, nchunks = tree_bytes(store)
        commands["prepare casync"] = shlex.join(cmd)
        prep.append(summarize("casync make", res, corpus_bytes, stored, chunks=nchunks))
        log(f"casync make: {res['seconds']:.2f}s")

        log("preparing: depot run ...")
        base, dcwd, denv = depot_base_command(args.depot_cmd)
        res, cmd, summary, repo = run_depot(corpus, workdir, interval, args.workers,
                                            args.depot_cmd)
        commands["prepare depot"] = shlex.join(cmd)
        if res["returncode"] != 0:
            depot_failed = depot_error(res, cmd, "depot run")
            prep.append({"tool": "depot run", "ok": False, "seconds": res.get("seconds"),
                         "mib_per_s": None, "peak_rss_mib": None, "stored_mib": None})
        else:
            stored, nchunks, _ = depot_stored_bytes(repo)
            prep.append(summarize("depot run", res, corpus_bytes, stored,
                                  chunk_files=nchunks))
            log(f"depot run: {res['seconds']:.2f}s")

        # ---- timed runs
        log("timing casync extract ...")
        res, cmd, dest = run_casync_extract(store, index, workdir, interval, notes)
        commands["casync extract"] = shlex.join(cmd)
        if res["returncode"] != 0:
            casync_failed = {"step": "casync extract", "returncode": res["returncode"],
                             "stderr": res["stderr"]}
        else:
            rows["casync"] = timed_row("casync extract", res, corpus_bytes, key="casync",
                                       version=tool_version(["casync", "--version"]))
            results.append(rows["casync"])
            dests["casync"] = dest
            log(f"casync extract: {res['seconds']:.2f}s")

        if depot_failed is None:
            workers_after = bool(args.workers) and option_listed(
                base, "install", "--workers", dcwd, denv)
            unsigned = option_listed(base, "install", "--allow-unsigned", dcwd, denv)

            def install(key: str, label: str, origin: str) -> bool:
                nonlocal depot_failed
                dest = os.path.join(workdir, f"dest-{key}")
                os.makedirs(dest)
                cmd = depot_install_cmd(base, origin, dest, args.jobs, args.workers,
                                        workers_after, unsigned)
                commands[label] = shlex.join(cmd)
                log(f"timing {label} ...")
                res = timed_run(key, cmd, workdir, interval, cwd=dcwd, env=denv)
                if res["returncode"] != 0:
                    depot_failed = depot_error(res, cmd, label)
                    return False
                reported = parse_json_output(res.get("stdout", ""))
                rows[key] = timed_row(label, res, corpus_bytes, key=key, reported=reported)
                results.append(rows[key])
                dests[key] = dest
                log(f"{label}: {res['seconds']:.2f}s")
                return True

            def from_origin(key: str, label: str, url: str, origin: str, cpu_seconds) -> None:
                """An install from an HTTP origin, the origin's own CPU kept apart."""
                cpu0 = cpu_seconds()
                if install(key, label, url):
                    cpu1 = cpu_seconds()
                    if cpu0 is not None and cpu1 is not None:
                        row = rows[key]
                        row["origin_cpu_s"] = round(cpu1 - cpu0, 3)
                        if row.get("other_cpu_s") is not None:
                            row["other_cpu_s"] = round(max(0.0, row["other_cpu_s"] - (cpu1 - cpu0)), 3)
                        notes.append(f"{origin} (not counted in depot's memory) used {cpu1 - cpu0:.2f}s "
                                     f"CPU during {label}")

            server = None
            if install("depot-local", "depot install (local)", repo):
                try:
                    server = OriginProcess(repo)
                except (OSError, RuntimeError) as e:
                    origin_failed = f"HTTP origin: {e}"
            if server is not None:
                with server:
                    log(f"HTTP origin {server.url} (pid {server.proc.pid}) serves {repo}")
                    from_origin("depot-http", "depot install (HTTP)", server.url, "the Python HTTP origin",
                                server.cpu_seconds)
            if depot_failed is None and not args.no_nginx:
                from pipeline.testing.servers import nginx

                state = os.path.join(workdir, "nginx")
                try:
                    with nginx(Path(repo), None, Path(state), prefix="/origin") as url:
                        log(f"nginx {url} serves {repo}")
                        from_origin("depot-nginx", "depot install (nginx)", url, "nginx",
                                    lambda: process_tree_cpu(os.path.join(state, "nginx.pid")))
                except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
                    notes.append(f"nginx did not run ({e}): no nginx row")

        # ---- verification
        if dests:
            log("verifying destinations against the corpus (sizes and SHA-256) ...")
            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(
                    max_workers=max(2, min(8, (os.cpu_count() or 1) * 2))) as pool:
                ref = scan_tree(corpus)
                ref_hashes = hash_tree(corpus, ref, pool)
                for key, dest in dests.items():
                    ignore = (DEPOT_STATE_DIR,) if key.startswith("depot") else ()
                    verification[key] = compare_trees(ref, ref_hashes, dest, pool, ignore)
                    if verification[key]["ignored_count"]:
                        notes.append(
                            f"{key}: {verification[key]['ignored_count']} entries of "
                            f"depot's own state under DEST/{DEPOT_STATE_DIR}/ "
                            f"({', '.join(verification[key]['ignored'])}) not compared")
            log(f"verified in {time.perf_counter() - t0:.1f}s")
    finally:
        remove_workdir(workdir, args.keep)

    ratios, goals = ratios_and_goals(rows)
    notes.extend(noisy_notes(results))
    if "casync" in rows:
        notes.append("casync extract is single-threaded")
    mismatched = [k for k, v in verification.items() if not v["ok"]]

    report = {
        "corpus": corpus_info,
        "machine": machine_info(),
        "workers": args.workers,
        "jobs": args.jobs,
        "page_cache": "nothing dropped; sync before each timed run",
        "preparation": prep,
        "commands": commands,
        "results": results,
        "verification": verification,
        "ratios": ratios,
        "goals": goals,
        "goal_thresholds": {"depot_local_over_casync": GOAL_LOCAL_OVER_CASYNC,
                            "depot_http_over_depot_local": GOAL_HTTP_OVER_LOCAL},
        "notes": notes,
        "kept_workdir": workdir if args.keep else None,
    }
    if depot_failed is not None:
        report["depot_error"] = depot_failed
    if casync_failed is not None:
        report["casync_error"] = casync_failed
    if origin_failed is not None:
        report["origin_error"] = origin_failed
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)

    if casync_failed is not None:
        log(f"casync extract failed (exit {casync_failed['returncode']}):")
        log(casync_failed["stderr"].rstrip())
    if mismatched:
        log(f"MISMATCH: {', '.join(mismatched)} differ from the corpus")
    if depot_failed is not None:
        log_depot_failure(depot_failed["step"], depot_failed, depot_failed["command"])
        return 2
    if origin_failed is not None:
        log(origin_failed)
    if mismatched or casync_failed is not None or origin_failed is not None:
        return 1
    if args.check and any(v is False for v in goals.values()):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
