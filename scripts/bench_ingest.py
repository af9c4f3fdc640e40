#!/usr/bin/env python3
"""Chunking a corpus into a store: ``casync make`` against ``depot run``, and
``tar | zstd -3 -T2`` as a reference.

casync gets depot's chunk sizes (256 KiB / 1 MiB / 4 MiB) and zstd chunks. Before each
tool the corpus is read once, so each reads it from the page cache; ``sync`` runs between
tools. A row gives wall time, MiB/s (corpus bytes over wall time), stored bytes and the
process tree's memory. Goals: depot at least 4x casync's throughput, depot's peak RSS
under 1 GiB. The method in full is in docs/benchmarks.md.

Exit status: 1 when a goal is missed with ``--check``, 2 when depot failed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time

import psutil

from benchlib import (CHUNK_AVG, CHUNK_MAX, CHUNK_MIN, CPU, MiB, add_corpus_options,
                      add_run_options, col, corpus_line, depot_stored_bytes, ensure_time_binary,
                      ensure_tools, failure, finish, fmt, log, machine_info, machine_line,
                      prepare_corpus, print_table, remove_workdir, run_casync, run_depot,
                      run_measured, summarize, throughput_ratio, tool_version, tree_bytes,
                      verdict)

GOAL_THROUGHPUT_RATIO = 4.0
GOAL_PEAK_RSS_MIB = 1024

COLUMNS = [col("tool", 18, "tool", "s"), col("seconds", 9, "seconds", ".2f"),
           col("MiB/s", 9, "mib_per_s", ".1f"), col("stored MiB", 11, "stored_mib", ".1f"),
           col("peak RSS MiB", 13, "peak_rss_mib", ".1f"), col("peak PSS MiB", 13, "peak_pss_mib", ".1f"),
           col("max proc RSS", 13, "max_process_rss_mib", ".1f"), col("procs", 6, "max_processes", "d"),
           CPU, col("free MiB", 9, "free_mib_before", "d")]


def warm_cache(root: str) -> None:
    """Read every file of the corpus once, so that the next tool reads from the page cache."""
    os.sync()
    t0, total = time.perf_counter(), 0
    view = memoryview(bytearray(4 * MiB))
    for dirpath, _, files in os.walk(root):
        for fn in files:
            try:
                with open(os.path.join(dirpath, fn), "rb", buffering=0) as f:
                    while n := f.readinto(view):
                        total += n
            except OSError:
                pass
    log(f"warm-up read: {total / MiB:.1f} MiB in {time.perf_counter() - t0:.2f}s")


def run_zstd(corpus: str, workdir: str, interval: float) -> tuple[dict, int | None]:
    pipeline = f"set -o pipefail; tar cf - -C {shlex.quote(corpus)} . | zstd -3 -T2 -q -c | wc -c"
    res = run_measured("zstd", ["bash", "-c", pipeline], workdir, interval)
    if res["returncode"] != 0:
        raise SystemExit(f"tar | zstd failed (exit {res['returncode']}):\n{res['stderr']}")
    try:
        return res, int(res["stdout"].split()[0])
    except (IndexError, ValueError):
        return res, None


def ratios_and_goals(rows: dict[str, dict]) -> tuple[dict, dict]:
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
    print_table(COLUMNS, report["results"])
    print()
    r, g = report["ratios"], report["goals"]
    tc = r.get("throughput_depot_over_casync")
    print(f"depot/casync throughput: {fmt(tc, '.2f')}" + ("x" if tc is not None else ""))
    print(f"depot/casync stored bytes: {fmt(r.get('stored_depot_over_casync'), '.3f')}")
    if r.get("throughput_depot_over_zstd") is not None:
        print(f"depot/zstd throughput: {r['throughput_depot_over_zstd']:.2f}x")
    if g:
        print(f"goal depot throughput >= {GOAL_THROUGHPUT_RATIO:g}x casync: {verdict(g.get('throughput'))}")
        print(f"goal depot peak RSS < {GOAL_PEAK_RSS_MIB} MiB: {verdict(g.get('peak_rss'))}")
    for note in report["notes"]:
        print(f"note: {note}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Compare depot ingest with casync make and a zstd reference.")
    add_corpus_options(ap, "generate a single-file corpus of this many GiB instead (bounded-memory check)")
    ap.add_argument("--workers", type=int, default=None, help="depot --workers N")
    add_run_options(ap, workdir_help="where the temporary stores/repos go (default: $TMPDIR)",
                    keep_help="keep the casync store and depot repo")
    for tool in ("casync", "depot", "zstd"):
        ap.add_argument(f"--skip-{tool}", action="store_true")
    args = ap.parse_args(argv)

    ensure_tools({**({} if args.skip_casync else {"casync": "casync"}),
                  **({} if args.skip_zstd else {"zstd": "zstd", "tar": "tar"})})
    ensure_time_binary()
    corpus, corpus_info = prepare_corpus(args)
    size, interval = corpus_info["bytes"], args.sample_interval
    workdir = tempfile.mkdtemp(prefix="depot-bench-", dir=args.workdir)
    commands: dict[str, str] = {}
    notes: list[str] = []
    rows: dict[str, dict] = {}
    depot_failed = None
    try:
        if not args.skip_casync:
            warm_cache(corpus)
            res, cmd, store, index = run_casync(corpus, workdir, interval)
            stored, nchunks = tree_bytes(store)
            commands["casync"] = shlex.join(cmd)
            rows["casync"] = summarize("casync make", res, size, stored, chunks=nchunks,
                                       index_bytes=os.path.getsize(index),
                                       version=tool_version(["casync", "--version"]))
        if not args.skip_depot:
            warm_cache(corpus)
            res, cmd, summary, repo = run_depot(corpus, workdir, interval, args.workers, args.depot_cmd)
            commands["depot"] = shlex.join(cmd)
            if res["returncode"] != 0:
                depot_failed = failure("depot", cmd, res)
            else:
                stored, nchunks, source = depot_stored_bytes(repo, summary)
                if summary is None:
                    notes.append("depot printed no parsable JSON summary; "
                                 "all depot figures are measured by this script")
                else:
                    el, rb = summary.get("elapsed_s"), summary.get("bytes")
                    if isinstance(el, (int, float)):
                        notes.append(f"depot reports elapsed_s={el:.2f} (measured wall "
                                     f"time incl. process start-up: {res['seconds']:.2f}s)")
                    if isinstance(rb, int) and rb != size:
                        notes.append(f"depot reports {rb} input bytes, corpus has {size}")
                rows["depot"] = summarize("depot", res, size, stored, stored_source=source,
                                          chunk_files=nchunks, repo_bytes=tree_bytes(repo)[0],
                                          reported=summary)
        if not args.skip_zstd and depot_failed is None:
            warm_cache(corpus)
            res, stored = run_zstd(corpus, workdir, interval)
            commands["zstd"] = "tar cf - -C CORPUS . | zstd -3 -T2 -c"
            rows["zstd"] = summarize("zstd -3 -T2 (tar)", res, size, stored)
        for row in rows.values():
            log(f"{row['tool']}: {row['seconds']:.2f}s")
    finally:
        remove_workdir(workdir, args.keep)

    ratios, goals = ratios_and_goals(rows)
    if "casync" in rows:
        notes.append("casync make is single-threaded")
    report = {
        "corpus": corpus_info, "machine": machine_info(), "workers": args.workers,
        "page_cache": "warm (corpus read once before each tool)",
        "page_cache_fits": size < 0.8 * psutil.virtual_memory().total,
        "chunk_sizes": {"min": CHUNK_MIN, "avg": CHUNK_AVG, "max": CHUNK_MAX},
        "commands": commands, "results": list(rows.values()), "ratios": ratios, "goals": goals,
        "goal_thresholds": {"throughput_ratio": GOAL_THROUGHPUT_RATIO, "peak_rss_mib": GOAL_PEAK_RSS_MIB},
        "notes": notes, "kept_workdir": workdir if args.keep else None, "depot_error": depot_failed,
    }
    return finish(report, args, print_report)


if __name__ == "__main__":
    sys.exit(main())
