#!/usr/bin/env python3
"""Delta updates: what a player with the old version downloads with depot's plan, with
chunk reuse alone, and with the best of bsdiff, xdelta3 and zstd per changed file.

The pairs are real releases and the fixture builds (``release_pairs.py`` pins,
downloads and caches them). A file only in the new version counts as ``zstd -19`` of it.
depot diff's and bsdiff's time and peak memory are measured over the same files. Goals,
per pair: depot's plan at most 1.05 of the best per-file tool, depot diff's time at most
0.2 of bsdiff's. The method in full is in docs/benchmarks.md.

Exit status: 1 when a goal is missed with ``--check``, 2 when depot failed.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import release_pairs
from benchlib import (TIME_BINARY, MiB, add_run_options, depot_base_command, ensure_tools,
                      fmt, log, machine_info, machine_line, mib, option_listed, parse_json_output,
                      print_table, regular_files, remove_workdir, run_measured, scan_tree, show,
                      time_binary, tool_version, verdict)
from pipeline.core.hashing import sha256_file

PRODUCT = "p"
CHUNK_ARGS = ["--chunk-min", "256KiB", "--chunk-avg", "1MiB", "--chunk-max", "4MiB"]

GOAL_SIZE_RATIO = 1.05
GOAL_TIME_RATIO = 0.2

# binary -> Debian package
TOOLS = {"bsdiff": "bsdiff", "bspatch": "bsdiff", "xdelta3": "xdelta3",
         "zstd": "zstd", TIME_BINARY: "time"}

DIFF_TOOLS = ("bsdiff", "xdelta3", "zstd")
XDELTA_DEFAULT_WINDOW = 64 * MiB


# tools


def tool_versions() -> dict:
    zs = re.search(r"v(\d+(?:\.\d+)+)", tool_version(["zstd", "--version"]))
    xd = re.search(r"version (\d+(?:\.\d+)+)", tool_version(["xdelta3", "-V"]))
    bs = tool_version(["dpkg-query", "-W", "-f", "${Version}", "bsdiff"])  # bsdiff prints none
    return {"zstd": f"zstd {zs.group(1)}" if zs else "zstd",
            "xdelta3": f"xdelta3 {xd.group(1)}" if xd else "xdelta3",
            "bsdiff": f"bsdiff {bs}" if bs else ""}


def patch_command(tool: str, old: str, new: str, patch: str) -> list[str]:
    # xdelta3's source window (default 64 MiB) must cover the whole old file;
    # zstd's --long=31 allows a window that spans it, and --patch-from raises its memory limit
    size = os.path.getsize(old) if old else 0
    window = ["-B", str(-(-size // MiB) * MiB)] if size > XDELTA_DEFAULT_WINDOW else []
    return {"bsdiff": ["bsdiff", old, new, patch],
            "xdelta3": ["xdelta3", "-9", "-e", "-f", *window, "-s", old, new, patch],
            "zstd": ["zstd", "-19", "--long=31", "-q", "-f", f"--patch-from={old}", new, "-o", patch],
            "zstd-full": ["zstd", "-19", "-q", "-f", new, "-o", patch]}[tool]


def apply_command(tool: str, old: str, patch: str, out: str) -> list[str]:
    return {"bsdiff": ["bspatch", old, out, patch],
            "xdelta3": ["xdelta3", "-d", "-f", "-s", old, patch, out],
            "zstd": ["zstd", "-d", "--long=31", "-q", "-f", f"--patch-from={old}", patch, "-o", out],
            "zstd-full": ["zstd", "-d", "-q", "-f", patch, "-o", out]}[tool]


# comparing the two trees


def classify_files(old_dir: str, new_dir: str) -> dict:
    """The regular files of NEW as changed, added or unchanged against OLD, the
    removed ones, the added ones that are copies of an OLD file, and the symlinks."""
    old_entries, new_entries = scan_tree(old_dir), scan_tree(new_dir)
    old, new = regular_files(old_entries), regular_files(new_entries)
    changed, added, unchanged = [], [], []
    for rel in sorted(new):
        if rel in old:
            same = old[rel] == new[rel] and filecmp.cmp(
                os.path.join(old_dir, rel), os.path.join(new_dir, rel), shallow=False)
            (unchanged if same else changed).append(rel)
        else:
            added.append(rel)
    removed = sorted(set(old) - set(new))
    # files only in NEW whose content is some OLD file's (renames, moves, copies)
    renamed = []
    if added:
        by_size: dict[int, list[str]] = {}
        for rel, size in old.items():
            by_size.setdefault(size, []).append(rel)
        hashes: dict[str, str] = {}
        for rel in added:
            cands = by_size.get(new[rel])
            if not cands:
                continue
            h = sha256_file(os.path.join(new_dir, rel))
            for c in cands:
                if c not in hashes:
                    hashes[c] = sha256_file(os.path.join(old_dir, c))
                if hashes[c] == h:
                    renamed.append((rel, c))
                    break
    return {"old": old, "new": new, "changed": changed, "added": added,
            "unchanged": unchanged, "removed": removed, "renamed": renamed,
            "symlinks_old": sum(e[0] == "symlink" for e in old_entries.values()),
            "symlinks_new": sum(e[0] == "symlink" for e in new_entries.values())}


# per-file tools


def run_tool(tool: str, old: str | None, new: str, patch: str, workdir: str, interval: float) -> dict:
    Path(patch).unlink(missing_ok=True)
    res = run_measured(tool, patch_command(tool, old or "", new, patch), workdir, interval)
    row = {"seconds": round(res.get("seconds", 0.0), 3), "max_rss_bytes": res.get("max_process_rss_bytes"),
           "returncode": res["returncode"], "bytes": None}
    if res["returncode"] == 0 and os.path.isfile(patch):
        row["bytes"] = os.path.getsize(patch)
    else:
        row["error"] = (res.get("error") or res.get("stderr", "")).strip()[-500:]
    return row


def verify_patch(tool: str, old: str | None, new: str, patch: str, workdir: str) -> bool:
    out = os.path.join(workdir, "applied")
    cmd = apply_command(tool, old or "", patch, out)
    res = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ok = res.returncode == 0 and filecmp.cmp(out, new, shallow=False)
    Path(out).unlink(missing_ok=True)
    return ok


def per_file_tools(pair, tree: dict, workdir: str, interval: float, verify: bool) -> dict:
    os.makedirs(workdir, exist_ok=True)
    rows = []
    totals = {t: {"bytes": 0, "seconds": 0.0, "max_rss_bytes": 0, "failures": 0, "files": 0}
              for t in (*DIFF_TOOLS, "zstd-full")}
    wins = {t: 0 for t in (*DIFF_TOOLS, "zstd-full")}
    best_total = 0
    failures = []
    todo = [(rel, True) for rel in tree["changed"]] + [(rel, False) for rel in tree["added"]]
    todo.sort(key=lambda t: t[0])
    big = sum(tree["new"][rel] for rel, _ in todo)
    done = 0
    t_start = time.perf_counter()
    for rel, has_old in todo:
        old = os.path.join(pair.old_dir, rel) if has_old else None
        new = os.path.join(pair.new_dir, rel)
        size = tree["new"][rel]
        tools = DIFF_TOOLS if has_old else ("zstd-full",)
        row = {"path": rel, "old_bytes": tree["old"].get(rel), "new_bytes": size,
               "status": "changed" if has_old else "added"}
        best_tool, best_bytes = None, None
        for tool in tools:
            patch = os.path.join(workdir, f"patch.{tool}")
            r = run_tool(tool, old, new, patch, workdir, interval)
            if r["bytes"] is not None and verify and not verify_patch(tool, old, new, patch, workdir):
                r["error"] = "patch does not re-apply to the new file"
                r["bytes"] = None
            row[tool] = r
            t = totals[tool]
            t["seconds"] += r["seconds"]
            t["max_rss_bytes"] = max(t["max_rss_bytes"], r["max_rss_bytes"] or 0)
            t["files"] += 1
            if r["bytes"] is None:
                t["failures"] += 1
                failures.append(f"{tool} failed on {rel}: {r.get('error', '')}")
                continue
            t["bytes"] += r["bytes"]
            if best_bytes is None or r["bytes"] < best_bytes:
                best_tool, best_bytes = tool, r["bytes"]
        if best_bytes is None:
            # every tool failed: count the whole file compressed, as for a new file
            patch = os.path.join(workdir, "patch.zstd-full")
            r = run_tool("zstd-full", None, new, patch, workdir, interval)
            row["zstd-full"] = r
            best_tool, best_bytes = "zstd-full", r["bytes"] if r["bytes"] is not None else size
        row["best_tool"], row["best_bytes"] = best_tool, best_bytes
        wins[best_tool] += 1
        best_total += best_bytes
        rows.append(row)
        done += size
        if size >= 8 * MiB:
            log(f"  {pair.name}: {rel}: best {best_tool} {best_bytes / MiB:.2f} MiB "
                f"({done / MiB:.0f}/{big / MiB:.0f} MiB of changed files, "
                f"{time.perf_counter() - t_start:.0f}s)")
    for t in totals.values():
        t["seconds"] = round(t["seconds"], 3)
    return {"best_bytes": best_total, "wins": {k: v for k, v in wins.items() if v},
            "totals": totals, "failures": failures, "files": rows}


# depot


def depot_cmd(base: list[str], repo: str, *args: str, json_out: bool = False) -> list[str]:
    return base + (["--json"] if json_out else []) + ["--repo", repo, *args]


def find_key(obj, key: str):
    """The value of key in a JSON document: top level first, then nested."""
    if isinstance(obj, dict) and key in obj:
        return obj[key]
    for v in obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list) else ():
        found = find_key(v, key)
        if found is not None:
            return found
    return None


def depot_chunk_reuse(pair, base, cwd, env, repo: str, workdir: str, interval: float) -> dict:
    out: dict = {"repo": repo}
    res = subprocess.run(depot_cmd(base, repo, "configure", "--product", PRODUCT, *CHUNK_ARGS),
                         cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if res.returncode != 0:
        raise DepotFailed("depot configure", res.returncode, res.stderr.decode(errors="replace"))
    for label, src in (("old", pair.old_dir), ("new", pair.new_dir)):
        cmd = depot_cmd(base, repo, "run", src, "--product", PRODUCT, "--version", label,
                        json_out=True)
        log(f"  {pair.name}: depot run {label} ...")
        r = run_measured(f"depot-run-{label}", cmd, workdir, interval, cwd=cwd, env=env)
        if r["returncode"] != 0:
            raise DepotFailed(f"depot run ({label})", r["returncode"],
                              r.get("stderr", "") or r.get("error", ""))
        summary = parse_json_output(r["stdout"]) or {}
        chunk = summary.get("chunk") if isinstance(summary.get("chunk"), dict) else summary
        out[label] = {"seconds": round(r["seconds"], 3), "peak_rss_bytes": r["peak_rss_bytes"],
                      **{k: chunk.get(k, summary.get(k)) for k in ("bytes", "stored_bytes", "stored_bytes_new")},
                      **{k: chunk.get(k) for k in ("chunks", "chunks_new", "chunks_reused")}}
    out["full_download_bytes"] = out["new"]["stored_bytes"]
    out["chunk_reuse_bytes"] = out["new"]["stored_bytes_new"]
    return out


class DepotFailed(Exception):
    def __init__(self, what: str, code: int, stderr: str):
        super().__init__(f"{what} failed (exit {code})")
        self.what, self.code, self.stderr = what, code, stderr


def diff_available(base, cwd, env) -> tuple[bool, str]:
    """(usable, message): depot diff exists and takes --product/--from/--to."""
    if all(option_listed(base, "diff", o, cwd, env) for o in ("--product", "--from", "--to")):
        return True, ""
    return False, "depot diff with --product, --from and --to is not available"


def depot_diff(pair, base, cwd, env, repo: str, workdir: str, interval: float) -> dict:
    cmd = depot_cmd(base, repo, "diff", "--product", PRODUCT, "--from", "old", "--to", "new",
                    json_out=True)
    log(f"  {pair.name}: depot diff ...")
    r = run_measured("depot-diff", cmd, workdir, interval, cwd=cwd, env=env)
    out = {"command": " ".join(cmd), "returncode": r["returncode"], "wall_s": round(r.get("seconds", 0.0), 3),
           **{k: r.get(k) for k in ("peak_rss_bytes", "peak_pss_bytes", "max_process_rss_bytes",
                                    "max_processes", "cpu_user_s", "cpu_sys_s")}}
    summary = parse_json_output(r["stdout"]) if r["returncode"] == 0 else None
    if summary is None:
        out["error"] = (f"depot diff failed (exit {r['returncode']}) or printed no JSON: "
                        + (r.get("stderr") or r.get("error") or r["stdout"]).strip()[-2000:])
        return out
    out["reported"] = summary
    for k in ("delta_download_bytes", "elapsed_s", "chunk_download_bytes", "full_download_bytes",
              "files_patched", "files_copied", "files_fetched", "files_kept", "created"):
        if find_key(summary, k) is not None:
            out[k] = find_key(summary, k)
    if not isinstance(out.get("delta_download_bytes"), int):
        out["error"] = "depot diff JSON has no integer 'delta_download_bytes'; its keys: " + ", ".join(sorted(summary))
    return out


# one pair


def bench_pair(pair, args, base, cwd, env, diff_ok: bool, diff_msg: str,
               workdir: str) -> dict:
    os.makedirs(workdir, exist_ok=True)
    notes: list[str] = []
    log(f"{pair.name}: comparing {pair.old_dir} and {pair.new_dir}")
    tree = classify_files(pair.old_dir, pair.new_dir)
    diffs = tree["changed"] + tree["added"]
    largest = max(diffs, key=lambda r: tree["new"][r], default=None)
    row: dict = {
        **pair.as_dict(), "old_bytes": sum(tree["old"].values()), "new_bytes": sum(tree["new"].values()),
        "files": {"new": len(tree["new"]), "renamed_identical": len(tree["renamed"]),
                  "symlinks_new": tree["symlinks_new"],
                  **{k: len(tree[k]) for k in ("changed", "added", "removed", "unchanged")}},
        "changed_new_bytes": sum(tree["new"][r] for r in diffs),
        "largest_changed": {"path": largest, "bytes": tree["new"][largest]} if largest else None,
    }
    if tree["renamed"]:
        notes.append("files only in the new version with the content of an old file "
                      "(counted as zstd -19 of the whole file in 'best per-file tool'): "
                      + ", ".join(f"{a} (= old {b})" for a, b in tree["renamed"]))
    if tree["symlinks_new"]:
        notes.append(f"{tree['symlinks_new']} symbolic link(s) in the new version are not "
                     "counted by the per-file tools")

    # 1. per-file tools
    if not args.skip_tools:
        log(f"{pair.name}: per-file tools on {len(diffs)} files "
            f"({row['changed_new_bytes'] / MiB:.1f} MiB)")
        t0 = time.perf_counter()
        tools = per_file_tools(pair, tree, os.path.join(workdir, "tools"),
                               args.sample_interval, args.verify)
        log(f"{pair.name}: per-file tools done in {time.perf_counter() - t0:.0f}s")
        row["best_per_file"] = tools
        row["best_per_file_bytes"] = tools["best_bytes"]
        b = tools["totals"]["bsdiff"]
        row["bsdiff"] = {"seconds": b["seconds"], "max_rss_bytes": b["max_rss_bytes"],
                         "files": b["files"], "failures": b["failures"]}
        notes.extend(tools["failures"][:10])
    else:
        row["best_per_file_bytes"] = None
        row["bsdiff"] = None

    # 2. chunk reuse, 3. depot diff
    row["depot_error"] = None
    if not args.skip_depot:
        repo = os.path.join(workdir, "repo")
        try:
            row["chunk"] = depot_chunk_reuse(pair, base, cwd, env, repo, workdir,
                                             args.sample_interval)
        except DepotFailed as e:
            row["chunk"] = None
            row["depot_error"] = f"{e}: {e.stderr.strip()[-2000:]}"
            log(f"{pair.name}: {row['depot_error']}")
        if row["chunk"] is not None and diff_ok:
            row["depot_diff"] = depot_diff(pair, base, cwd, env, repo, workdir,
                                           args.sample_interval)
            if row["depot_diff"].get("error"):
                log(f"{pair.name}: {row['depot_diff']['error']}")
            if row["depot_diff"].get("created") is False:
                notes.append("depot diff reported created=false: the plan already existed")
            cdb = row["depot_diff"].get("chunk_download_bytes")
            if isinstance(cdb, int) and cdb != row["chunk"]["chunk_reuse_bytes"]:
                notes.append(f"depot diff reports chunk_download_bytes={cdb}, depot run "
                             f"stored_bytes_new={row['chunk']['chunk_reuse_bytes']}")
        else:
            row["depot_diff"] = {"error": diff_msg if not diff_ok else
                                 "skipped: depot run failed"}
        if args.keep:
            row["repo"] = repo
    else:
        row["chunk"] = None
        row["depot_diff"] = {"error": "skipped (--skip-depot)"}

    row["ratios"], row["goals"] = ratios_and_goals(row)
    bs_s = (row.get("bsdiff") or {}).get("seconds")
    if "time" in row["goals"] and bs_s is not None and bs_s < 10:
        notes.append(f"bsdiff takes {bs_s:.2f}s here: depot diff's time is mostly process "
                     "start-up, so the time ratio says little for this pair")
    row["notes"] = notes
    return row


def ratios_and_goals(row: dict) -> tuple[dict, dict]:
    r: dict = {}
    g: dict = {}
    best = row.get("best_per_file_bytes")
    dd = row.get("depot_diff") or {}
    depot = dd.get("delta_download_bytes")
    chunk = row.get("chunk") or {}
    bs = row.get("bsdiff") or {}
    if isinstance(depot, int) and best:
        r["depot_over_best"] = round(depot / best, 4)
        g["size"] = r["depot_over_best"] <= GOAL_SIZE_RATIO
    if isinstance(chunk.get("chunk_reuse_bytes"), int) and best:
        r["chunk_reuse_over_best"] = round(chunk["chunk_reuse_bytes"] / best, 4)
    if isinstance(depot, int) and chunk.get("chunk_reuse_bytes"):
        r["depot_over_chunk_reuse"] = round(depot / chunk["chunk_reuse_bytes"], 4)
    if isinstance(depot, int) and chunk.get("full_download_bytes"):
        r["depot_over_full"] = round(depot / chunk["full_download_bytes"], 4)
    if bs.get("seconds") and dd.get("wall_s") is not None and isinstance(depot, int):
        r["diff_time_over_bsdiff"] = round(dd["wall_s"] / bs["seconds"], 4)
        g["time"] = r["diff_time_over_bsdiff"] <= GOAL_TIME_RATIO
        if isinstance(dd.get("elapsed_s"), (int, float)):
            r["diff_elapsed_over_bsdiff"] = round(dd["elapsed_s"] / bs["seconds"], 4)
    if bs.get("max_rss_bytes") and dd.get("peak_rss_bytes") and isinstance(depot, int):
        r["diff_peak_rss_over_bsdiff"] = round(dd["peak_rss_bytes"] / bs["max_rss_bytes"], 3)
    return r, g


# report


def print_report(report: dict) -> None:
    print(f"{machine_line(report['machine'])}; "
          f"tools: {', '.join(v for v in report['tool_versions'].values() if v)}")
    print(f"pairs: {report['pairs_dir']}")
    for p in report["pairs"]:
        f = p["files"]
        print()
        print(f"== {p['name']} ({p['kind']}): {p['old_version']} -> {p['new_version']}")
        print(f"  files: {f['new']} in new; {f['changed']} changed, {f['added']} added, "
              f"{f['removed']} removed, {f['unchanged']} unchanged"
              + (f"; {f['renamed_identical']} added are renamed copies" if f['renamed_identical'] else ""))
        lc = p.get("largest_changed")
        print(f"  new version: {mib(p['new_bytes'])} MiB; changed/added files "
              f"{mib(p['changed_new_bytes'])} MiB"
              + (f"; largest {lc['path']} {mib(lc['bytes'])} MiB" if lc else ""))
        bp, r, g = p.get("best_per_file"), p["ratios"], p["goals"]
        if bp:
            tot = bp["totals"]
            print("  per tool alone (changed files; MiB / s / max RSS MiB): " + "; ".join(
                f"{t} {mib(tot[t]['bytes'])} / {tot[t]['seconds']:.1f} / {mib(tot[t]['max_rss_bytes'])}"
                for t in (*DIFF_TOOLS, "zstd-full") if tot[t]["files"]))
            print(f"  smallest per file: {', '.join(f'{k} {v}' for k, v in bp['wins'].items())}")
        for k, name, key, goal in (("size", "depot / best per-file tool", "depot_over_best", GOAL_SIZE_RATIO),
                                   ("time", "depot diff / bsdiff time", "diff_time_over_bsdiff", GOAL_TIME_RATIO)):
            print(f"  {name}: {fmt(r.get(key), '.3f')} (goal <= {goal}) {verdict(g.get(k))}")
        print(f"  chunk reuse / best: {fmt(r.get('chunk_reuse_over_best'), '.2f')}; "
              f"depot / chunk reuse: {fmt(r.get('depot_over_chunk_reuse'), '.3f')}; "
              f"depot / full: {fmt(r.get('depot_over_full'), '.3f')}; "
              f"by elapsed_s: {fmt(r.get('diff_elapsed_over_bsdiff'), '.3f')}")
        dd = p.get("depot_diff") or {}
        if dd.get("error"):
            print(f"  depot diff: {dd['error']}")
        if p.get("depot_error"):
            print(f"  depot: {p['depot_error']}")
        for n in p["notes"]:
            print(f"  note: {n}")

    print()
    def part(name: str, key: str, show=mib):
        return lambda p: show((p.get(name) or {}).get(key))

    print_table([("pair", 24, lambda p: p["name"]),
                 ("chg", 4, lambda p: str(p["files"]["changed"] + p["files"]["added"])),
                 ("new MiB", 8, lambda p: mib(p["new_bytes"])), ("full", 8, part("chunk", "full_download_bytes")),
                 ("reuse", 8, part("chunk", "chunk_reuse_bytes")), ("best", 8, lambda p: mib(p.get("best_per_file_bytes"))),
                 ("depot", 8, part("depot_diff", "delta_download_bytes")),
                 ("d/best", 7, part("ratios", "depot_over_best", lambda v: fmt(v, ".3f"))),
                 ("diff s", 7, part("depot_diff", "wall_s", lambda v: fmt(v, ".1f"))),
                 ("bsdiff s", 8, part("bsdiff", "seconds", lambda v: fmt(v, ".1f"))),
                 ("t ratio", 7, part("ratios", "diff_time_over_bsdiff", lambda v: fmt(v, ".3f"))),
                 ("diff RSS", 8, part("depot_diff", "peak_rss_bytes")), ("bsd RSS", 8, part("bsdiff", "max_rss_bytes"))],
                report["pairs"])
    print("(sizes in MiB; chg = changed + added files; RSS in MiB: depot diff's process tree, "
          "bsdiff's largest run)")
    for n in report["notes"]:
        print(f"note: {n}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="depot's update plan against chunk reuse and the best per-file "
        "delta tool, on real release pairs.")
    ap.add_argument("--pairs-dir", default=None,
                    help=f"where the pairs are cached (default {release_pairs.default_out_dir()})")
    release_pairs.add_only_option(ap)
    add_run_options(ap, workdir_help="parent of the temporary directory",
                    keep_help="keep the temporary directory (patches, depot repositories)")
    ap.add_argument("--verify", action="store_true",
                    help="apply every tool's patch and compare with the new file")
    ap.add_argument("--skip-tools", action="store_true", help="no bsdiff/xdelta3/zstd runs")
    ap.add_argument("--skip-depot", action="store_true", help="no depot runs")
    args = ap.parse_args(argv)

    ensure_tools(TOOLS)
    pairs = release_pairs.prepare(args.pairs_dir, args.only)
    base, cwd, env = depot_base_command(args.depot_cmd)
    diff_ok, diff_msg = (False, "skipped (--skip-depot)")
    if not args.skip_depot:
        diff_ok, diff_msg = diff_available(base, cwd, env)
        if not diff_ok:
            log(diff_msg)
            log("continuing without the depot plan column")

    workdir = tempfile.mkdtemp(prefix="depot-bench-delta-", dir=args.workdir)
    rows = []
    try:
        for pair in pairs:
            rows.append(bench_pair(pair, args, base, cwd, env, diff_ok, diff_msg,
                                   os.path.join(workdir, pair.name)))
    finally:
        remove_workdir(workdir, args.keep)

    notes = []
    if not diff_ok:
        notes.append(diff_msg.splitlines()[0])
    report = {
        "machine": machine_info(),
        "pairs_dir": os.path.abspath(args.pairs_dir or release_pairs.default_out_dir()),
        "tool_versions": tool_versions(),
        "commands": {
            "bsdiff": "bsdiff OLD NEW PATCH", "xdelta3": "xdelta3 -9 -e -f -s OLD NEW PATCH",
            "zstd": "zstd -19 --long=31 -f --patch-from=OLD NEW -o PATCH",
            "zstd-full": "zstd -19 -f NEW -o PATCH (files only in the new version)",
            "depot": ("depot --repo R configure --product p " + " ".join(CHUNK_ARGS)
                      + "; depot --json --repo R run DIR --product p --version old|new"
                      + "; depot --json --repo R diff --product p --from old --to new"),
            "max_rss": "/usr/bin/time -f %M" if time_binary() else "psutil sampling"},
        "goal_thresholds": {"depot_over_best": GOAL_SIZE_RATIO,
                            "diff_time_over_bsdiff": GOAL_TIME_RATIO},
        "pairs": rows,
        "notes": notes,
        "kept_workdir": workdir if args.keep else None,
    }
    show(report, args, print_report)
    if any(r.get("depot_error") for r in rows):
        return 2
    if args.check and any(v is False for r in rows for v in r["goals"].values()):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
