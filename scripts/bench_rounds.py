#!/usr/bin/env python3
"""Run one of the benchmarks several times and print each ratio's median and range.

    python scripts/bench_rounds.py [--rounds 3] [--workdir DIR] [--clean-each-round] [--drop-caches]
                                   SCRIPT [ARGS...]

SCRIPT is a benchmark that takes ``--json`` (bench_ingest.py, bench_install.py). Each
round runs it whole. Then come each ratio's median, lowest, highest and each round's
value, and each tool's median seconds and CPU. One run's ratio says little on this
machine (docs/benchmarks.md); the median of several says more. Exit status: 0, or the
first failing round's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from benchlib import log


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="how many times to run it (default 3)")
    ap.add_argument("--workdir", default=None,
                    help="where the rounds write (default: $TMPDIR); /dev/shm measures without the disk's file system")
    ap.add_argument("--clean-each-round", action="store_true",
                    help="remove each round's files after it (for a small --workdir such as /dev/shm, "
                         "where deleting costs nothing)")
    ap.add_argument("--drop-caches", action="store_true",
                    help="first empty the kernel's page cache (root only), then run one round that is not counted, "
                         "to read the tools back into it: with the memory full of cache, every new page a tool "
                         "writes waits for a reclaim, and all tools run slower")
    ap.add_argument("script", help="a benchmark in scripts/ that takes --json")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    args = ap.parse_args(argv)

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.path.basename(args.script))
    reports = []
    # Every round's files are kept until the last round has run: on a file system without
    # a journal (this machine's), creating files right after deleting thousands is several
    # times slower (ext4 skips inodes freed in the last minute), so a round must not start
    # right after the previous one's clean-up.
    rounds_dir = tempfile.mkdtemp(prefix="depot-bench-rounds-", dir=args.workdir)
    try:
        if args.drop_caches:
            drop_caches()
        first = 0 if args.drop_caches else 1  # round 0 reads the tools back into the cache: not counted
        for n in range(first, args.rounds + 1):
            log(f"round {n} of {args.rounds}: {os.path.basename(path)} {' '.join(args.args)}"
                + (" (not counted)" if n == 0 else ""))
            keep = [] if args.clean_each_round else ["--keep"]
            run = subprocess.run([sys.executable, path, *args.args, "--json", "--workdir", rounds_dir, *keep],
                                 stdout=subprocess.PIPE)
            if run.returncode not in (0, 1):  # 1: a goal missed, still a measurement
                log(f"round {n} failed (exit {run.returncode})")
                return run.returncode
            if n:
                reports.append(json.loads(run.stdout))
    finally:
        shutil.rmtree(rounds_dir, ignore_errors=True)

    print(f"{os.path.basename(path)} {' '.join(args.args)}: {args.rounds} rounds")
    print(f"{'ratio':40s} {'median':>8s} {'lowest':>8s} {'highest':>8s}  rounds")
    for name in reports[0]["ratios"]:
        values = [r["ratios"].get(name) for r in reports]
        known = [v for v in values if v is not None]
        if known:
            print(f"{name:40s} {statistics.median(known):8.2f} {min(known):8.2f} {max(known):8.2f}  "
                  + ", ".join("n/a" if v is None else f"{v:.2f}" for v in values))
    print(f"{'tool':40s} {'median s':>8s} {'user s':>8s} {'sys s':>8s} {'free MiB':>9s}")
    for tool in [row["tool"] for row in reports[0]["results"]]:
        rows = [row for r in reports for row in r["results"] if row["tool"] == tool]

        def median(name: str) -> float:
            return statistics.median(row.get(name) or 0 for row in rows)

        print(f"{tool:40s} {median('seconds'):8.2f} {median('cpu_user_s'):8.2f} {median('cpu_sys_s'):8.2f} "
              f"{median('free_mib_before'):9.0f}")
    return 0


def drop_caches() -> None:
    """The page cache emptied (written back first), or a note that it could not be."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as exc:
        log(f"could not empty the page cache ({exc.strerror}): the round runs with it as it is")


if __name__ == "__main__":
    sys.exit(main())
