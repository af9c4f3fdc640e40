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
import shlex
import sys
import tempfile
import time

import psutil

from benchlib import (CHUNK_AVG, CHUNK_MAX, CHUNK_MIN, MiB, add_corpus_options,
                      add_run_options, corpus_line, depot_stored_bytes, ensure_time_binary,
                      ensure_tools, fmt, log, log_depot_failure, machine_info, machine_line,
                      prepare_corpus, print_header, remove_workdir, run_casync, run_depot,
                      run_measured, summarize, throughput_ratio, tool_version, tree_bytes,
                      verdict)

GOAL_THROUGHPUT_RATIO = 4.0
GOAL_PEAK_RSS_MIB = 1024


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


def ratios_and_goals(rows: dict[str, dict]) -> tuple[dict, dict]:
    """depot's ratios to casync and zstd, and its goals, from the rows that ran."""
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
    return ratios, goals


# --------------------------------------------------------------------------
# report


def print_report(report: dict) -> None:
    print(corpus_line(report["corpus"]))
    print(f"{machine_line(report['machine'])}; depot workers: {report['workers'] or 'default'}")
    print("page cache: warm -- the whole corpus was read once (like cat > /dev/null) "
          "right before each tool, so every tool read it from the page cache"
          + ("" if report["page_cache_fits"] else
             " (WARNING: corpus larger than 80% of RAM, it may not stay cached)"))
    for name, cmd in report["commands"].items():
        print(f"{name} command: {cmd}")
    print()
    hdr = (f"{'tool':<18} {'seconds':>9} {'MiB/s':>9} {'stored MiB':>11} "
           f"{'peak RSS MiB':>13} {'peak PSS MiB':>13} {'max proc RSS':>13} {'procs':>6} {'CPU user+sys':>13} "
           f"{'free MiB':>9}")
    print_header(hdr)
    for row in report["results"]:
        print(f"{row['tool']:<18} {fmt(row['seconds'], '9.2f')} "
              f"{fmt(row['mib_per_s'], '9.1f')} {fmt(row['stored_mib'], '11.1f')} "
              f"{fmt(row['peak_rss_mib'], '13.1f')} {fmt(row['peak_pss_mib'], '13.1f')} "
              f"{fmt(row['max_process_rss_mib'], '13.1f')} {row['max_processes']:>6} "
              f"{row['cpu_user_s']:>6.2f}+{row['cpu_sys_s']:<6.2f} {fmt(row['free_mib_before'], '9d')}")
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Compare depot ingest with casync make and a zstd reference.")
    add_corpus_options(ap, "generate a single-file corpus of this many GiB instead "
                       "(bounded-memory check)")
    ap.add_argument("--workers", type=int, default=None, help="depot --workers N")
    add_run_options(ap, workdir_help="where the temporary stores/repos go (default: $TMPDIR)",
                    keep_help="keep the casync store and depot repo")
    ap.add_argument("--skip-casync", action="store_true")
    ap.add_argument("--skip-depot", action="store_true")
    ap.add_argument("--skip-zstd", action="store_true")
    args = ap.parse_args(argv)

    tools = {}
    if not args.skip_casync:
        tools["casync"] = "casync"
    if not args.skip_zstd:
        tools.update(zstd="zstd", tar="tar")
    ensure_tools(tools)
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

    ratios, goals = ratios_and_goals(rows)
    if "casync" in rows:
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
