#!/usr/bin/env python3
"""Pre-load: what an embargo costs, on the speed benchmarks' data (``--game redeclipse-data``).

1. ``depot run`` of the corpus into a new repository, plain, then embargoed (``--embargo``,
   every chunk sealed) into another: the embargoed ingest's time over the plain one's.
2. The embargoed version published to an origin directory (untimed), served by Debian's
   nginx with one worker: ``depot preload`` into a new game directory, timed.
3. Released (untimed), then ``depot install`` on that directory: the unlock, opening,
   checking and writing every pre-loaded object from staging (no chunk downloaded), against
   a plain ``depot install`` of the plain repository from a local origin.

Goals: embargoed ingest at most 1.15x the plain one's time; unlock at most 1.1x the plain
install's (no second pass). Each destination is compared file by file with the corpus.
Exit status: 1 when a destination differs or (with ``--check``) a goal is missed; 2 when
depot failed. The method and figures are in docs/benchmarks.md ("Pre-load").
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shlex
import tempfile
from pathlib import Path

from benchlib import (CPU, add_corpus_options, add_run_options, col, compare_trees, corpus_line, depot_base_command,
                      ensure_time_binary, failure, finish, hash_tree, log, machine_info, machine_line,
                      noisy_notes, parse_json_output, prepare_corpus, print_figures, print_mismatches, print_table,
                      remove_workdir, scan_tree, timed_row, timed_run)

GOALS = {"embargoed_over_plain_ingest": ("<=", 1.15), "unlock_over_plain_install": ("<=", 1.1)}
FIGURES = {"embargoed_over_plain_ingest": "depot run --embargo / depot run (time)",
           "unlock_over_plain_install": "unlock (install from pre-load staging) / plain local install (time)",
           "preload_mib_per_s": "depot preload from nginx, MiB/s of objects"}
COLUMNS = [col("step", 34, "tool", "s"), col("seconds", 9, "seconds", ".2f"), col("MiB/s", 9, "mib_per_s", ".1f"),
           col("peak RSS MiB", 13, "peak_rss_mib", ".1f"), CPU, col("other CPU s", 12, "other_cpu_s", ".1f")]


def print_report(report: dict) -> None:
    print(corpus_line(report["corpus"]))
    print(machine_line(report["machine"]))
    print_table(COLUMNS, report["results"])
    print_figures(FIGURES, report["ratios"], report["goal_thresholds"])
    print_mismatches(report["verification"])
    for note in report["notes"]:
        print(f"note: {note}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Embargoed ingest, pre-load from nginx and unlock against their "
                                             "plain counterparts.")
    add_corpus_options(ap)
    ap.add_argument("--jobs", type=int, default=None, help="depot preload / install --jobs N")
    add_run_options(ap, workdir_help="where the repositories, origin and game directories go (default: $TMPDIR)",
                    keep_help="keep them")
    args = ap.parse_args(argv)

    ensure_time_binary()
    corpus, corpus_info = prepare_corpus(args)
    size, interval = corpus_info["bytes"], args.sample_interval
    workdir = tempfile.mkdtemp(prefix="depot-bench-preload-", dir=args.workdir)
    base, cwd, env = depot_base_command(args.depot_cmd)
    report = {"corpus": corpus_info, "machine": machine_info(), "commands": {}, "results": [], "ratios": {},
              "verification": {}, "notes": [], "goal_thresholds": GOALS,
              "kept_workdir": workdir if args.keep else None}
    rows: dict[str, dict] = {}
    pool = concurrent.futures.ThreadPoolExecutor(4)
    log("hashing the corpus, to compare each destination with ...")
    ref = scan_tree(corpus)
    ref_hashes = hash_tree(corpus, ref, pool)
    paths = {name: os.path.join(workdir, name) for name in ("plain", "embargoed", "keys", "origin", "game",
                                                            "plain-game")}
    jobs = ["--jobs", str(args.jobs)] if args.jobs else []

    def depot(key: str, label: str, *words: str, timed: bool = True, nbytes: int = size) -> dict | None:
        """One depot command; timed into a row, or just run. None when it failed."""
        cmd = base + ["--json", *words]
        report["commands"][label] = shlex.join(cmd)
        res = timed_run(key, cmd, workdir, interval, cwd=cwd, env=env)
        if res["returncode"] != 0:
            report["depot_error"] = failure(label, cmd, res)
            return None
        out = parse_json_output(res.get("stdout", "")) or {}
        if timed:
            rows[key] = timed_row(label, res, nbytes, key=key)
        return out

    def check(key: str, dest: str) -> None:
        report["verification"][key] = compare_trees(ref, ref_hashes, dest, pool, (".depot",))

    try:
        run = ["run", corpus, "--product", "bench", "--version", "1"]
        steps = [
            lambda: depot("run", "depot run (plain)", "--repo", paths["plain"], *run),
            lambda: depot("run-embargo", "depot run --embargo", "--repo", paths["embargoed"], "--keys",
                          paths["keys"], *run, "--embargo"),
            lambda: depot("publish", "publish (untimed)", "--repo", paths["embargoed"], "--keys", paths["keys"],
                          "publish", "--product", "bench", "--version", "1", "--origin", paths["origin"],
                          timed=False),
        ]
        if all(step() is not None for step in steps):
            from depot_testing.servers import nginx

            with nginx(Path(paths["origin"]), None, Path(workdir) / "nginx", prefix="/origin") as url:
                log(f"nginx {url} serves {paths['origin']}")
                done = depot("preload", "depot preload (nginx)", "preload", "--allow-unsigned", "--origin", url,
                             "--product", "bench", "--version", "1", "--dest", paths["game"], *jobs)
            if done is not None:
                rows["preload"].update(mib_per_s=round(done["bytes"] / (1 << 20) / rows["preload"]["seconds"], 2),
                                       objects_mib=round(done["bytes"] / (1 << 20), 1))
                released = depot("release", "release (untimed)", "--repo", paths["embargoed"], "--keys",
                                 paths["keys"], "release", "--product", "bench", "--version", "1", "--origin",
                                 paths["origin"], timed=False)
                install = ["install", "--allow-unsigned", "--product", "bench", "--version", "1", *jobs]
                unlocked = released is not None and depot("unlock", "depot install (unlock from pre-load)", *install,
                                                          "--origin", paths["origin"], "--dest", paths["game"])
                if unlocked:
                    rows["unlock"].update(bytes_downloaded=unlocked["bytes_downloaded"],
                                          chunks_preloaded=unlocked["chunks_preloaded"])
                    check("unlock", paths["game"])
                if depot("install", "depot install (plain, local)", *install, "--origin", paths["plain"],
                         "--dest", paths["plain-game"]):
                    check("install", paths["plain-game"])
    finally:
        report["results"] = list(rows.values())
        report["notes"] += noisy_notes(report["results"])
        r = report["ratios"]
        if "run" in rows and "run-embargo" in rows:
            r["embargoed_over_plain_ingest"] = round(rows["run-embargo"]["seconds"] / rows["run"]["seconds"], 3)
        if "unlock" in rows and "install" in rows:
            r["unlock_over_plain_install"] = round(rows["unlock"]["seconds"] / rows["install"]["seconds"], 3)
        if "preload" in rows:
            r["preload_mib_per_s"] = rows["preload"].get("mib_per_s")
        report["goals"] = {k: (None if r.get(k) is None else r[k] <= t) for k, (_, t) in GOALS.items()}
        remove_workdir(workdir, args.keep)
    return finish(report, args, print_report)


if __name__ == "__main__":
    raise SystemExit(main())
