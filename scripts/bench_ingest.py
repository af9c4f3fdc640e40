#!/usr/bin/env python3
"""Chunking a corpus into a store: ``casync make`` against ``depot run``, and
``tar | zstd -3 -T2`` as a reference.

casync gets depot's chunk sizes (256 KiB / 1 MiB / 4 MiB) and zstd chunks. Before each
tool the corpus is read once, so each reads it from the page cache; ``sync`` runs between
tools. A row gives wall time, MiB/s (corpus bytes over wall time), stored bytes, disk
usage (du) and the process tree's memory. Goals: depot at least 4x casync's throughput,
depot's peak RSS under 1 GiB; on ``--small-files N`` (issue 19) at least 2x casync, stored
bytes and disk usage no more than casync's, peak RSS under 100 MiB, and a manifest of at
most 60 bytes per file. The method in full is in docs/benchmarks.md.

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

from apilib import print_profile
from benchlib import (CHUNK_AVG, CHUNK_MAX, CHUNK_MIN, CPU, MiB, add_corpus_options,
                      add_run_options, col, corpus_line, depot_base_command, depot_documents, depot_stored_bytes,
                      disk_usage, ensure_time_binary, ensure_tools, failure, finish, judge, log,
                      machine_info, machine_line, prepare_corpus, print_figures, print_table, profile_run,
                      remove_workdir, run_casync, run_depot, run_measured, summarize,
                      throughput_ratio, tool_version, tree_bytes)

# goals: {figure: (operator, threshold)}; the small-files corpus has goals of its own (issue 19)
GOALS = {"throughput_depot_over_casync": (">=", 4.0), "depot_peak_rss_mib": ("<", 1024.0)}
SMALL_FILES_GOALS = {"throughput_depot_over_casync": (">=", 2.0), "stored_depot_over_casync": ("<=", 1.0),
                     "disk_depot_over_casync": ("<=", 1.0), "depot_peak_rss_mib": ("<", 100.0),
                     "manifest_bytes_per_file": ("<=", 60.0)}
FIGURES = {"throughput_depot_over_casync": "depot run / casync make (throughput)",
           "throughput_depot_over_zstd": "depot run / tar | zstd (throughput)",
           "stored_depot_over_casync": "depot / casync stored bytes (chunks)",
           "disk_depot_over_casync": "depot / casync disk usage (du: repository / store and index)",
           "disk_chunks_depot_over_casync": "depot / casync disk usage of the chunks alone (du)",
           "depot_peak_rss_mib": "depot peak RSS, MiB",
           "manifest_bytes_per_file": "depot's manifest, bytes per file (what a player downloads)",
           "other_document_bytes_per_file": "depot's other documents (inventory, settings), bytes per file"}

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


def figures(rows: dict[str, dict], files: int) -> dict:
    d, c, z = rows.get("depot"), rows.get("casync"), rows.get("zstd")
    out: dict[str, float | None] = {}
    if d:
        out["depot_peak_rss_mib"] = d["peak_rss_mib"]
        manifest = sum(v for k, v in d["documents"].items() if k.endswith("manifest.json"))
        out["manifest_bytes_per_file"] = round(manifest / files, 1)
        out["other_document_bytes_per_file"] = round((sum(d["documents"].values()) - manifest) / files, 1)
    if d and c:
        out["throughput_depot_over_casync"] = throughput_ratio(d, c)
        out["stored_depot_over_casync"] = round(d["stored_bytes"] / c["stored_bytes"], 4)
        out["disk_depot_over_casync"] = round(d["disk_bytes"] / c["disk_bytes"], 4)
        out["disk_chunks_depot_over_casync"] = round(d["chunks_disk_bytes"] / c["chunks_disk_bytes"], 4)
    if d and z:
        out["throughput_depot_over_zstd"] = throughput_ratio(d, z)
    return out


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
    rows = {row["tool"]: row for row in report["results"]}
    for row in rows.values():
        if row.get("disk_bytes") is not None:
            print(f"{row['tool']}: {row['objects']} objects, {row['stored_bytes']} bytes stored, "
                  f"{row['disk_bytes']} on disk (du)")
    if "depot" in rows:
        print("depot documents: " + ", ".join(f"{k} {v} B" for k, v in rows["depot"]["documents"].items()))
    print_figures(FIGURES, report["ratios"], report["goal_thresholds"])
    for note in report["notes"]:
        print(f"note: {note}")
    if report["profile"]:
        print_profile("depot run", report["profile"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Compare depot ingest with casync make and a zstd reference.")
    add_corpus_options(ap, "generate a single-file corpus of this many GiB instead (bounded-memory check)")
    ap.add_argument("--workers", type=int, default=None, help="depot --workers N")
    add_run_options(ap, workdir_help="where the temporary stores/repos go (default: $TMPDIR)",
                    keep_help="keep the casync store and depot repo")
    for tool in ("casync", "depot", "zstd"):
        ap.add_argument(f"--skip-{tool}", action="store_true")
    ap.add_argument("--profile", action="store_true", help="then run depot once more under py-spy: where its time goes")
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
    depot_failed = profile = None
    try:
        if not args.skip_casync:
            warm_cache(corpus)
            res, cmd, store, index = run_casync(corpus, workdir, interval)
            stored, nchunks = tree_bytes(store)
            commands["casync"] = shlex.join(cmd)
            rows["casync"] = summarize("casync make", res, size, stored, objects=nchunks,
                                       index_bytes=os.path.getsize(index), disk_bytes=disk_usage(store, index), chunks_disk_bytes=disk_usage(store),
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
                if args.profile:
                    profile = profile_run("depot run", [c.replace(repo, repo + "-profile") for c in cmd], workdir,
                                          *depot_base_command(args.depot_cmd)[1:])
                rows["depot"] = summarize("depot", res, size, stored, stored_source=source,
                                          objects=nchunks, repo_bytes=tree_bytes(repo)[0],
                                          disk_bytes=disk_usage(repo), documents=depot_documents(repo),
                                          chunks_disk_bytes=disk_usage(os.path.join(repo, "chunks")),
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

    ratios = figures(rows, corpus_info["files"])
    thresholds = SMALL_FILES_GOALS if args.small_files else GOALS
    if "casync" in rows:
        notes.append("casync make is single-threaded")
    report = {
        "corpus": corpus_info, "machine": machine_info(), "workers": args.workers,
        "page_cache": "warm (corpus read once before each tool)",
        "page_cache_fits": size < 0.8 * psutil.virtual_memory().total,
        "chunk_sizes": {"min": CHUNK_MIN, "avg": CHUNK_AVG, "max": CHUNK_MAX},
        "commands": commands, "results": list(rows.values()), "ratios": ratios,
        "goals": judge(thresholds, ratios), "goal_thresholds": thresholds,
        "notes": notes, "kept_workdir": workdir if args.keep else None, "depot_error": depot_failed,
        "profile": profile,
    }
    return finish(report, args, print_report)


if __name__ == "__main__":
    sys.exit(main())
