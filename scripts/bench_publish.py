#!/usr/bin/env python3
"""Publishing to origins: ``rclone copy`` against ``depot publish`` of the same objects, to
a directory and to an S3 bucket (moto's server in this process, on loopback).

The repository is made from the corpus with ``depot run`` first (untimed). One publish
into a scratch directory lists what depot publishes; rclone gets every other file of the
repository in an exclude file, so both copy the same objects. Each tool writes into an
empty origin of its own, between two syncs; then both run again (everything is there),
and ``depot gc --origin`` runs as a dry run. Every origin is checked object by object
(files by SHA-256, buckets by ETag). The S3 server counts the requests each run sends
it; ``--s3-origins N`` has depot publish to N buckets at once. Goals, in wall time: depot
at most rclone's, the second publish under 0.1 of the first. The method in full is in docs/benchmarks.md.

Exit status: 1 when an origin differs from the repository, rclone failed, or (with
``--check``) a goal is missed; 2 when depot failed.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import (MiB, add_corpus_options, add_run_options, col, compare_trees, corpus_line,
                      depot_base_command, ensure_time_binary, ensure_tools, failure, finish, fmt,
                      hash_tree, log, log_failure, machine_info, machine_line, mismatch, noisy_notes,
                      parse_json_output, prepare_corpus, print_mismatches, print_table,
                      regular_files, remove_workdir, run_depot, run_measured, scan_tree,
                      timed_row, timed_run, tool_version, verdict)

GOAL_DEPOT_OVER_RCLONE = 1.0  # wall time, at most
GOAL_SECOND_OVER_FIRST = 0.1  # wall time, below

PRODUCT = "bench"
VERSION = "1"

# moto accepts any credentials; these are what both tools are given
S3_KEY_ID = "bench"
S3_SECRET = "bench"
S3_REGION = "us-east-1"
DEPOT_BUCKET = "depot-origin"
RCLONE_BUCKET = "rclone-origin"
RCLONE_REMOTE = "bench-s3"

ORIGIN_LABELS = {"dir": "directory", "s3": "S3"}


# environments and commands


def s3_env(base: dict | None) -> dict:
    """depot's environment: the credentials moto takes, nothing that could point
    botocore elsewhere (a profile, a session token)."""
    env = dict(os.environ if base is None else base)
    for k in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
              "AWS_ENDPOINT_URL_S3"):
        env.pop(k, None)
    env.update(AWS_ACCESS_KEY_ID=S3_KEY_ID, AWS_SECRET_ACCESS_KEY=S3_SECRET,
               AWS_DEFAULT_REGION=S3_REGION, AWS_REGION=S3_REGION)
    return env


def rclone_env() -> dict:
    env = dict(os.environ)
    # rclone's S3 SDK fails with "LoadCustomCABundleError ... unsupported transport" when
    # AWS_CA_BUNDLE is set, whatever the endpoint; the endpoint here is plain HTTP
    env.pop("AWS_CA_BUNDLE", None)
    return env


def write_rclone_conf(path: str, endpoint: str) -> None:
    with open(path, "w") as f:
        f.write(f"[{RCLONE_REMOTE}]\ntype = s3\nprovider = Other\nendpoint = {endpoint}\n"
                f"access_key_id = {S3_KEY_ID}\nsecret_access_key = {S3_SECRET}\n"
                f"region = {S3_REGION}\n")


def rclone_copy_cmd(repo: str, dest: str, conf: str, exclude_file: str, transfers: int,
                    checkers: int, extra: list[str] = ()) -> list[str]:
    return ["rclone", "copy", repo, dest, "--config", conf, "--transfers", str(transfers),
            "--checkers", str(checkers), "--exclude-from", exclude_file,
            # the final stats as a JSON log line (transfers, checks, bytes); nothing per file
            "--use-json-log", "--stats", "1h", "--stats-log-level", "NOTICE", *extra]


def rclone_stats(stderr: str) -> dict | None:
    """The last stats rclone logged (``--use-json-log``)."""
    for line in reversed(stderr.strip().splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("stats"), dict):
            return obj["stats"]
    return None


# S3 on loopback


class RequestCounter:
    """A WSGI layer in front of moto's app: the requests it was sent, by kind. Exact and
    independent of the machine's load, unlike times."""

    def __init__(self, app):
        self.app = app
        self.counts: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        method, query = environ["REQUEST_METHOD"], environ.get("QUERY_STRING", "")
        kind = "LIST" if method == "GET" and ("list-type" in query or environ.get("PATH_INFO", "/").count("/") < 2) \
            else method
        with self.lock:
            self.counts[kind] += 1
        return self.app(environ, start_response)

    def snapshot(self) -> collections.Counter[str]:
        with self.lock:
            return collections.Counter(self.counts)


class S3:
    """moto's server in this process (as the test suite runs it) and a client of it; every
    request it serves is counted."""

    def __init__(self, stack: contextlib.ExitStack):
        from moto.server import ThreadedMotoServer

        # the server logs every request on stderr; only errors are of interest
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        stack.callback(server.stop)
        assert server._server is not None
        self.counter = RequestCounter(server._server.app)
        server._server.app = self.counter  # the handler looks the app up for every request
        host, port = server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        import boto3

        self.client = boto3.client("s3", endpoint_url=self.endpoint, region_name=S3_REGION,
                                   aws_access_key_id=S3_KEY_ID,
                                   aws_secret_access_key=S3_SECRET)

    def create_bucket(self, name: str) -> None:
        self.client.create_bucket(Bucket=name)

    def objects(self, bucket: str) -> dict[str, tuple[int, str]]:
        """{key: (size, ETag without quotes)}."""
        out = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                out[o["Key"]] = (o["Size"], o["ETag"].strip('"'))
        return out


# preparation


def depot_cmd(base: list[str], repo: str, endpoint: str | None, *sub: str) -> list[str]:
    glob = ["--repo", repo] + (["--s3-endpoint", endpoint] if endpoint else []) + ["--json"]
    return base + glob + list(sub)


def origin_args(origins: list[str]) -> list[str]:
    return [arg for o in origins for arg in ("--origin", o)]


def publish_args(origins: list[str], jobs: int) -> list[str]:
    return ["publish", "--product", PRODUCT, "--version", VERSION, *origin_args(origins), "--jobs", str(jobs)]


def setup_signing(base: list[str], cwd: str | None, env: dict | None, repo: str,
                  workdir: str) -> str:
    """Keys and the root of trust for a signed repository (docs/trust.md); the keys'
    directory."""
    keys = os.path.join(workdir, "keys")
    steps = [
        ["keys", "generate", "--out", keys, "root", "targets", "snapshot", "timestamp", PRODUCT],
        ["--repo", repo, "trust", "init", "--root-key", f"{keys}/root.key",
         "--targets-key", f"{keys}/targets.key", "--snapshot-key", f"{keys}/snapshot.key",
         "--timestamp-key", f"{keys}/timestamp.key"],
        ["--repo", repo, "--keys", keys, "trust", "add-key", "--product", PRODUCT,
         "--key", f"{keys}/{PRODUCT}.pub"],
    ]
    for step in steps:
        res = subprocess.run(base + step, cwd=cwd, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        if res.returncode != 0:
            raise SystemExit(f"{shlex.join(base + step)} failed (exit {res.returncode}):\n"
                             + res.stderr.decode(errors="replace"))
    return keys


def published_set(base: list[str], cwd: str | None, env: dict | None, repo: str,
                  workdir: str, jobs: int, interval: float) -> tuple[dict, dict[str, tuple]]:
    """Publish once into a scratch directory: (the run, {relative path: ("file", size)} of
    what depot publishes)."""
    scratch = os.path.join(workdir, "origin-scratch")
    cmd = depot_cmd(base, repo, None, *publish_args([scratch], jobs))
    res = run_measured("prepare-publish", cmd, workdir, interval, cwd=cwd, env=env)
    if res["returncode"] != 0:
        log_failure(failure("depot publish (preparation)", cmd, res))
        raise SystemExit(2)
    entries = scan_tree(scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    odd = {rel: e for rel, e in entries.items() if e[0] != "file"}
    if odd:
        raise SystemExit(f"the published origin holds entries that are not files: {odd}")
    return res, entries


def row_of(tool: str, key: str, origin: str, res: dict, uploaded_bytes: int | None, **extra) -> dict:
    """A report row of a timed_run result; MiB/s = bytes uploaded / wall time."""
    row = timed_row(tool, res, uploaded_bytes or 0, key=key, origin=origin, **extra)
    row.update(uploaded_bytes=uploaded_bytes, cpu_s=round(res["cpu_user_s"] + res["cpu_sys_s"], 3),
               own_cpu_s=res.get("own_cpu_s"), s3_requests=res.get("s3_requests"))
    if not uploaded_bytes:
        row["mib_per_s"] = None
    return row


class DepotFailed(Exception):
    pass


# verification


def md5_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def compare_bucket(ref: dict[str, tuple], ref_md5: dict[str, str], got: dict[str, tuple[int, str]]) -> dict:
    """A bucket's listing against the published set: same keys, sizes, and every ETag
    the MD5 of the repository's file (single-part uploads, as both tools make here)."""
    differ = []
    for key in sorted(set(ref) & set(got)):
        size, etag = got[key]
        if size != ref[key][1]:
            differ.append({"path": key, "expected": ref[key][1], "got": size})
        elif etag != ref_md5[key]:
            differ.append({"path": key, "expected": f"etag {ref_md5[key]}", "got": f"etag {etag}"})
    return mismatch(ref, got, differ, len(set(ref) & set(got)))


# ratios and goals


def ratios_and_goals(rows: dict[str, dict], s3_origins: int = 1) -> tuple[dict, dict]:
    ratios: dict[str, float | None] = {}
    goals: dict[str, bool | None] = {}

    def ratio(a: str, b: str, field: str = "seconds") -> float | None:
        ra, rb = rows.get(a), rows.get(b)
        if not ra or not rb or ra.get(field) is None or not rb.get(field):
            return None
        return round(ra[field] / rb[field], 3)

    for o in ("dir", "s3"):
        # against rclone only when both copy to one origin
        r = ratio(f"depot-{o}", f"rclone-{o}") if o == "dir" or s3_origins == 1 else None
        ratios[f"depot_over_rclone_{o}"] = r
        goals[f"depot_over_rclone_{o}"] = None if r is None else r <= GOAL_DEPOT_OVER_RCLONE
        r = ratio(f"depot-{o}-again", f"depot-{o}")
        ratios[f"second_over_first_{o}"] = r
        goals[f"second_over_first_{o}"] = None if r is None else r < GOAL_SECOND_OVER_FIRST
        # informative: without depot's process start; rclone's own no-op
        ratios[f"second_over_first_{o}_depot_elapsed"] = ratio(f"depot-{o}-again", f"depot-{o}",
                                                               "depot_elapsed_s")
        ratios[f"rclone_second_over_first_{o}"] = ratio(f"rclone-{o}-again", f"rclone-{o}")
    ratios = {k: v for k, v in ratios.items() if v is not None}
    return ratios, goals


# report


def print_report(report: dict) -> None:
    print(corpus_line(report["corpus"]))
    p = report["published"]
    print(f"{machine_line(report['machine'])}; jobs: {report['jobs']} (depot --jobs, "
          f"rclone --transfers), rclone --checkers {report['checkers']}"
          + (f" {shlex.join(report['rclone_args'])}" if report.get("rclone_args") else "")
          + f"; repository {'signed' if report['signed'] else 'unsigned'}; S3 origins: {report['s3_origins']}")
    print(f"published set: {p['objects']} objects, {p['bytes'] / MiB:.1f} MiB "
          f"({p['excluded']} other repository files excluded from rclone's copy)")
    print("page cache: nothing dropped (the repository was just written and is cached); "
          "sync before each timed run, the sync after it reported apart")
    for prep in report["preparation"]:
        print(f"prepare: {prep['tool']}: {fmt(prep['seconds'], '.2f')}s")
    for name, cmd in report["commands"].items():
        print(f"{name}: {cmd}")
    print()
    print_table([col("run", 34, "tool", "s"), col("seconds", 8, "seconds", ".2f"),
                 col("MiB/s", 7, "mib_per_s", ".1f"), col("uploaded", 9, "uploaded", "d"),
                 col("skipped", 8, "skipped", "d"), col("listed", 7, "listed", "d"),
                 col("depot s", 8, "depot_elapsed_s", ".2f"), col("peak RSS MiB", 13, "peak_rss_mib", ".1f"),
                 col("CPU s", 7, "cpu_s", ".2f"),
                 ("S3 srv CPU s", 13, lambda row: fmt(row["own_cpu_s"] if row["origin"] == "s3" else None, ".2f")),
                 ("S3 requests", 12, lambda row: fmt(sum(row["s3_requests"].values()) if row.get("s3_requests")
                                                     is not None else None, "d")),
                 col("sync after s", 13, "sync_after_s", ".2f")], report["results"])
    for row in report["results"]:
        if row.get("s3_requests"):
            print(f"S3 requests, {row['tool']}: "
                  + ", ".join(f"{n} {kind}" for kind, n in row["s3_requests"].items()))
    for e in (report.get("depot_error"), report.get("rclone_error")):
        if e:
            print(f"{e['step']:<34} FAILED (exit {e['returncode']}); its stderr follows the report")
    print()
    r, g = report["ratios"], report["goals"]
    lines = (("depot_over_rclone_{}", "depot / rclone, {} origin (wall time)", f"goal <= {GOAL_DEPOT_OVER_RCLONE:g}"),
             ("second_over_first_{}", "second / first publish, {} origin (wall time)",
              f"goal < {GOAL_SECOND_OVER_FIRST:g}"),
             ("second_over_first_{}_depot_elapsed", "second / first publish, {} origin, on depot's own "
              "elapsed time (without the process start)", None),
             ("rclone_second_over_first_{}", "rclone second / first copy, {} origin", None))
    for key, label, goal in lines:
        for o in ("dir", "s3"):
            if key.format(o) in r:
                print(f"{label.format(ORIGIN_LABELS[o])}: {r[key.format(o)]:.3f}"
                      + (f" -- {goal}: {verdict(g.get(key.format(o)))}" if goal else ""))
    for row in report["results"]:
        if row.get("gc"):
            gc = row["gc"]
            print(f"{row['tool']}: listed {gc['listed']} objects in {gc['list_s']} s, kept "
                  f"{gc['kept_objects']}, would free {gc['freed_objects']}, "
                  f"{gc['too_young']} too young")
    print_mismatches(report["verification"], matches=True)
    for note in report["notes"]:
        print(f"note: {note}")


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        description="Compare depot publish with rclone copy, to a directory and to S3 (moto).")
    add_corpus_options(ap, "generate a single-file corpus of this many GiB instead")
    ap.add_argument("--jobs", type=int, default=16,
                    help="depot publish --jobs and rclone --transfers (default 16, depot's)")
    ap.add_argument("--checkers", type=int, default=None,
                    help="rclone --checkers (default: the same as --jobs)")
    ap.add_argument("--rclone-args", default="",
                    help="more options for every rclone copy, e.g. '--s3-no-head --size-only "
                    "--fast-list' (default: none, rclone's defaults)")
    ap.add_argument("--workers", type=int, default=None,
                    help="depot --workers N for the preparing depot run")
    ap.add_argument("--signed", action="store_true",
                    help="sign the repository (keys and root of trust made in the workdir)")
    ap.add_argument("--skip-s3", action="store_true", help="the directory origin only")
    ap.add_argument("--s3-origins", type=int, default=1, metavar="N",
                    help="depot publishes to N buckets at once (default 1); rclone copies to one")
    ap.add_argument("--skip-rclone", action="store_true", help="depot's runs only")
    add_run_options(ap, workdir_help="where the repository, the origins and the keys go "
                    "(default: $TMPDIR)",
                    keep_help="keep the repository and the directory origins")
    args = ap.parse_args(argv)
    jobs = args.jobs
    checkers = args.checkers or jobs
    rclone_extra = shlex.split(args.rclone_args)

    if not args.skip_rclone:
        ensure_tools({"rclone": "rclone"})
    ensure_time_binary()

    corpus, corpus_info = prepare_corpus(args)
    interval = args.sample_interval
    base, dcwd, denv = depot_base_command(args.depot_cmd)
    denv = s3_env(denv)

    workdir = tempfile.mkdtemp(prefix="depot-bench-publish-", dir=args.workdir)
    commands: dict[str, str] = {}
    notes: list[str] = []
    prep: list[dict] = []
    results: list[dict] = []
    rows: dict[str, dict] = {}
    verification: dict[str, dict] = {}
    depot_failed: dict | None = None
    rclone_failed: dict | None = None
    published: dict = {}
    try:
        # ---- preparation (not compared)
        repo = os.path.join(workdir, "depot-repo")
        if args.signed:
            keys = setup_signing(base, dcwd, denv, repo, workdir)
            os.environ["DEPOT_KEYS"] = keys  # what run_depot's depot signs with
            denv["DEPOT_KEYS"] = keys
        log("preparing: depot run ...")
        res, cmd, _, repo = run_depot(corpus, workdir, interval, args.workers, args.depot_cmd)
        commands["prepare"] = shlex.join(cmd)
        if res["returncode"] != 0:
            log_failure(failure("depot run", cmd, res))
            return 2
        prep.append({"tool": "depot run", "seconds": round(res["seconds"], 3)})
        log(f"depot run: {res['seconds']:.2f}s")

        log("preparing: the set depot publishes (a publish into a scratch directory) ...")
        res, ref = published_set(base, dcwd, denv, repo, workdir, jobs, interval)
        prep.append({"tool": "depot publish (scratch, to list what is published)",
                     "seconds": round(res["seconds"], 3)})
        repo_files = regular_files(scan_tree(repo))
        not_in_repo = sorted(set(ref) - set(repo_files))
        if not_in_repo:
            raise SystemExit(f"depot published objects the repository does not hold as "
                             f"files: {not_in_repo[:5]}")
        excluded = sorted(set(repo_files) - set(ref))
        exclude_file = os.path.join(workdir, "rclone-exclude.txt")
        with open(exclude_file, "w") as f:
            f.writelines(f"/{rel}\n" for rel in excluded)
            f.write("/logs/publishes/**\n")  # the records of the publishes still to run
        published = {"objects": len(ref), "bytes": sum(e[1] for e in ref.values()),
                     "excluded": len(excluded), "excluded_sample": excluded[:10]}
        log(f"published set: {len(ref)} objects, {published['bytes'] / MiB:.1f} MiB; "
            f"{len(excluded)} other repository files excluded")

        with contextlib.ExitStack() as stack:
            origins = {"dir": {"depot": [os.path.join(workdir, "origin-depot")],
                               "rclone": os.path.join(workdir, "origin-rclone"),
                               "endpoint": None}}
            conf = os.path.join(workdir, "rclone.conf")
            open(conf, "w").close()
            s3 = None
            if not args.skip_s3:
                s3 = S3(stack)
                depot_buckets = [DEPOT_BUCKET] if args.s3_origins == 1 else \
                    [f"{DEPOT_BUCKET}-{i}" for i in range(1, args.s3_origins + 1)]
                for bucket in depot_buckets:
                    s3.create_bucket(bucket)
                s3.create_bucket(RCLONE_BUCKET)
                write_rclone_conf(conf, s3.endpoint)
                origins["s3"] = {"depot": [f"s3://{b}" for b in depot_buckets],
                                 "rclone": f"{RCLONE_REMOTE}:{RCLONE_BUCKET}",
                                 "endpoint": s3.endpoint}
                log(f"moto S3 server at {s3.endpoint}")

            def counted_run(key: str, o: str, cmd: list[str], **kw) -> dict:
                """timed_run, with the requests the S3 server was sent meanwhile."""
                before = s3.counter.snapshot() if s3 is not None and o == "s3" else None
                res = timed_run(key, cmd, workdir, interval, **kw)
                if before is not None:
                    res["s3_requests"] = dict(sorted((s3.counter.snapshot() - before).items()))
                return res

            def depot_run(key: str, o: str, label: str, sub: list[str]) -> dict:
                cmd = depot_cmd(base, repo, origins[o]["endpoint"], *sub)
                res = counted_run(key, o, cmd, cwd=dcwd, env=denv)
                commands.setdefault(f"depot {sub[0]} ({ORIGIN_LABELS[o]})", shlex.join(cmd))
                if res["returncode"] != 0:
                    nonlocal depot_failed
                    depot_failed = failure(label, cmd, res)
                    raise DepotFailed(label)
                return res

            def publish_row(key: str, o: str, label: str) -> None:
                res = depot_run(key, o, label, publish_args(origins[o]["depot"], jobs))
                summary = parse_json_output(res["stdout"]) or {}
                reps = summary.get("origins") or [{}]

                def total(name: str) -> int | None:  # over every origin of the publish
                    counts = [r.get(name) for r in reps]
                    return None if None in counts else sum(counts)

                row = row_of(label, key, o, res, total("uploaded_bytes"),
                             uploaded=total("uploaded"), skipped=total("skipped"),
                             listed=total("listed"), retries=total("retries"),
                             depot_elapsed_s=summary.get("elapsed_s"), reported=summary)
                rows[key] = row
                results.append(row)
                log(f"{label}: {res['seconds']:.2f}s (depot's own {summary.get('elapsed_s')}s)")

            def rclone_row(key: str, o: str, label: str) -> bool:
                nonlocal rclone_failed
                cmd = rclone_copy_cmd(repo, origins[o]["rclone"], conf, exclude_file, jobs,
                                      checkers, rclone_extra)
                res = counted_run(key, o, cmd, env=rclone_env())
                commands.setdefault(f"rclone copy ({ORIGIN_LABELS[o]})", shlex.join(cmd))
                if res["returncode"] != 0:
                    rclone_failed = failure(label, cmd, res)
                    return False
                st = rclone_stats(res["stderr"]) or {}
                row = row_of(label, key, o, res, st.get("bytes"), uploaded=st.get("transfers"),
                             skipped=st.get("checks"), listed=None,
                             rclone_elapsed_s=st.get("elapsedTime"), reported=st)
                rows[key] = row
                results.append(row)
                log(f"{label}: {res['seconds']:.2f}s")
                return True

            def gc_row(key: str, o: str, label: str) -> None:
                res = depot_run(key, o, label, ["gc", *origin_args(origins[o]["depot"])])
                summary = parse_json_output(res["stdout"]) or {}
                gc = (summary.get("gc") or [{}])[0]
                row = row_of(label, key, o, res, None, listed=gc.get("listed"),
                             depot_elapsed_s=gc.get("elapsed_s"), gc=gc)
                rows[key] = row
                results.append(row)
                log(f"{label}: {res['seconds']:.2f}s, listed {gc.get('listed')}")

            rclone_ok = {o: not args.skip_rclone for o in origins}
            try:
                for o in origins:
                    where = ORIGIN_LABELS[o]
                    if rclone_ok[o]:
                        rclone_ok[o] = rclone_row(f"rclone-{o}", o, f"rclone copy -> {where}")
                    publish_row(f"depot-{o}", o, f"depot publish -> {where}")
                for o in origins:
                    publish_row(f"depot-{o}-again", o,
                                f"depot publish again -> {ORIGIN_LABELS[o]}")
                for o in origins:
                    if rclone_ok[o]:
                        rclone_row(f"rclone-{o}-again", o,
                                   f"rclone copy again -> {ORIGIN_LABELS[o]}")
                for o in origins:
                    gc_row(f"gc-{o}", o, f"depot gc (dry run) {ORIGIN_LABELS[o]}")
            except DepotFailed:
                pass

            # ---- verification
            if depot_failed is None:
                log("verifying the origins against the repository ...")
                t0 = time.perf_counter()
                ref_entries = {rel: ("file", repo_files[rel]) for rel in ref}
                with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as pool:
                    sha = hash_tree(repo, ref_entries, pool)
                    verification["depot directory origin"] = compare_trees(
                        ref_entries, sha, origins["dir"]["depot"][0], pool)
                    if rclone_ok["dir"]:
                        verification["rclone directory origin"] = compare_trees(
                            ref_entries, sha, origins["dir"]["rclone"], pool)
                    if s3 is not None:
                        md5 = hash_tree(repo, ref_entries, pool, md5_file)
                        for bucket in depot_buckets:
                            verification[f"depot S3 origin {bucket}"] = compare_bucket(
                                ref_entries, md5, s3.objects(bucket))
                        if rclone_ok["s3"]:
                            verification["rclone S3 origin"] = compare_bucket(
                                ref_entries, md5, s3.objects(RCLONE_BUCKET))
                log(f"verified in {time.perf_counter() - t0:.1f}s")
    finally:
        remove_workdir(workdir, args.keep)

    ratios, goals = ratios_and_goals(rows, args.s3_origins)
    notes.extend(noisy_notes(results))
    if "s3" in {r["origin"] for r in results}:
        notes.append("S3 requests: what moto's server was sent during the run, counted at the server (exact, "
                     "whatever the load)")
        notes.append("S3 is moto's server in this script's process (Python, one process, "
                     "threads); 'S3 srv CPU s' is that process's CPU time during the run")
    for r in results:
        if r.get("retries"):
            notes.append(f"{r['tool']}: {r['retries']} retries")

    report = {
        "corpus": corpus_info, "machine": machine_info(), "jobs": jobs, "checkers": checkers,
        "rclone_args": rclone_extra, "signed": args.signed, "s3_origins": args.s3_origins, "published": published,
        "page_cache": "nothing dropped; sync before each timed run", "preparation": prep,
        "commands": commands, "results": results, "verification": verification,
        "ratios": ratios, "goals": goals,
        "goal_thresholds": {"depot_over_rclone_time": GOAL_DEPOT_OVER_RCLONE,
                            "second_over_first_publish_time": GOAL_SECOND_OVER_FIRST},
        "versions": {"rclone": tool_version(["rclone", "version"])} if not args.skip_rclone else {},
        "notes": notes, "kept_workdir": workdir if args.keep else None,
    }
    report["depot_error"], report["rclone_error"] = depot_failed, rclone_failed
    return finish(report, args, print_report, ("rclone_error",), against="the repository")


if __name__ == "__main__":
    sys.exit(main())
