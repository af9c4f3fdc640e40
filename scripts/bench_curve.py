#!/usr/bin/env python3
"""Time and peak memory per file as the number of files grows: ``depot run`` and ``depot
install`` (local origin) of small-files corpora of 10,000, 100,000 and 1,000,000 files.

The files are tiny (100 B to 2 KiB by default, ``--max-file-size``) so that a million fit
in a few hundred MB: what is measured is the cost that grows with the number of files,
not with the bytes. Each corpus is made by bench_corpus.py (``--small-files N``) and kept
for the next run. Goal (issue 19): time and memory per file flat from 10,000 to 1,000,000
files, and a 1,000,000-file install under 500 MiB.

    python scripts/bench_curve.py [--files 10000,100000,1000000] [--workdir /dev/shm]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from benchlib import (add_run_options, bench_corpus, depot_base_command, depot_documents, depot_install_command,
                      failure, finish, judge, log, machine_info, machine_line, prepare_corpus, print_figures,
                      print_table, col, remove_workdir, run_depot, timed_run)

GOALS = {"install_peak_rss_mib_at_most_files": ("<", 500.0)}
FIGURES = {"run_time_per_file_last_over_first": "depot run, time per file: most files / fewest",
           "install_time_per_file_last_over_first": "depot install, time per file: most files / fewest",
           "run_peak_rss_mib_at_most_files": "depot run peak RSS at the most files, MiB",
           "install_peak_rss_mib_at_most_files": "depot install peak RSS at the most files, MiB"}
COLUMNS = [col("files", 9, "files", ",d"), col("MiB", 7, "mib", ".1f"), col("run s", 8, "run_s", ".2f"),
           col("run µs/file", 12, "run_us_per_file", ".1f"), col("run peak MiB", 13, "run_peak_mib", ".1f"),
           col("install s", 10, "install_s", ".2f"), col("inst. µs/file", 14, "install_us_per_file", ".1f"),
           col("install peak MiB", 17, "install_peak_mib", ".1f"), col("docs B/file", 12, "document_bytes_per_file", ".1f")]
# from the row before: what each added file cost (start-up and other fixed costs left out)
COLUMNS += [col(f"{step} {unit}/added file", 22, f"{step}_added_{key}", ".1f")
            for step in ("run", "install") for unit, key in (("µs", "us"), ("B RSS", "bytes"))]


def point(args, n: int, workdir: str) -> dict:
    """depot run and depot install of the corpus of n files: a row of the curve."""
    corpus, info = prepare_corpus(argparse.Namespace(**{**vars(args), "small_files": n, "corpus": None}))
    row = {"files": n, "mib": info["bytes"] / 2**20, "corpus": corpus}
    res, cmd, _, repo = run_depot(corpus, workdir, args.sample_interval, None, args.depot_cmd)
    if res["returncode"] != 0:
        return {**row, "error": failure(f"depot run ({n} files)", cmd, res)}
    docs = depot_documents(repo)
    row.update(run_s=res["seconds"], run_us_per_file=res["seconds"] / n * 1e6,
               run_peak_mib=res["peak_rss_bytes"] / 2**20, documents=docs,
               document_bytes_per_file=sum(docs.values()) / n)
    dest = os.path.join(workdir, "dest")
    cmd = depot_install_command(args.depot_cmd, repo, dest)
    _, cwd, env = depot_base_command(args.depot_cmd)
    res = timed_run(f"install-{n}", cmd, workdir, args.sample_interval, cwd=cwd, env=env)
    if res["returncode"] != 0:
        return {**row, "error": failure(f"depot install ({n} files)", cmd, res)}
    row.update(install_s=res["seconds"], install_us_per_file=res["seconds"] / n * 1e6,
               install_peak_mib=res["peak_rss_bytes"] / 2**20)
    return row


def print_report(report: dict) -> None:
    print(machine_line(report["machine"]))
    print(f"corpora: bench_corpus.py --small-files N --max-file-size {report['max_file_size']} "
          f"(--seed {report['seed']}), under {report['corpus_parent']}; repositories and installs in {report['workdir']}")
    print()
    print_table(COLUMNS, report["results"])
    print()
    print_figures(FIGURES, report["ratios"], report["goal_thresholds"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", default="10000,100000,1000000", help="the corpora's numbers of files")
    bench_corpus.add_options(ap)
    ap.set_defaults(max_file_size=2048)
    add_run_options(ap, workdir_help="where the repositories and installs go (default: $TMPDIR)",
                    keep_help="keep the repositories and installs")
    args = ap.parse_args(argv)
    args.game = None
    report = {"machine": machine_info(), "max_file_size": args.max_file_size, "seed": args.seed,
              "corpus_parent": os.path.join(tempfile.gettempdir(), "depot-bench-corpus"),
              "workdir": args.workdir or tempfile.gettempdir(),
              "goal_thresholds": GOALS, "results": []}
    for n in (int(v) for v in args.files.split(",")):
        workdir = tempfile.mkdtemp(prefix=f"depot-bench-curve-{n}-", dir=args.workdir)
        try:
            row = point(args, n, workdir)
        finally:
            remove_workdir(workdir, args.keep)
        if "error" in row:
            report["depot_error"] = row["error"]
            break
        log(f"{n} files: run {row['run_s']:.2f}s, install {row['install_s']:.2f}s")
        if report["results"]:
            prev, added = report["results"][-1], n - report["results"][-1]["files"]
            for step in ("run", "install"):
                row[f"{step}_added_us"] = (row[f"{step}_s"] - prev[f"{step}_s"]) / added * 1e6
                row[f"{step}_added_bytes"] = (row[f"{step}_peak_mib"] - prev[f"{step}_peak_mib"]) * 2**20 / added
        report["results"].append(row)
    rows, r = report["results"], {}
    if len(rows) > 1:
        for step in ("run", "install"):
            r[f"{step}_time_per_file_last_over_first"] = round(rows[-1][f"{step}_us_per_file"]
                                                               / rows[0][f"{step}_us_per_file"], 3)
    if rows:
        r["run_peak_rss_mib_at_most_files"] = round(rows[-1]["run_peak_mib"], 1)
        r["install_peak_rss_mib_at_most_files"] = round(rows[-1]["install_peak_mib"], 1)
    report["ratios"], report["goals"] = r, judge(GOALS, r)
    report["notes"] = []
    return finish(report, args, print_report)


if __name__ == "__main__":
    sys.exit(main())
