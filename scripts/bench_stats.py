#!/usr/bin/env python3
"""The stats: the export of a whole repository, the export of one new version (which must
not grow with the catalogue), the report's queries and the whole report.

A repository of ``--products`` x ``--versions`` small synthetic builds is made in process
(content from ``bench_corpus.py``'s generators; each version planned from the one before
it and, unless ``--no-back``, from five back). One new version's export is timed at half
and at the full catalogue. Timings are medians of ``--repeat`` runs, wall time in this
process. The method in full is in docs/benchmarks.md.

Exit status 1 when a check fails: every version in the stats, and each single version's
export reading exactly its manifest, the previous version's and its plans.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time

import bench_corpus
from pipeline.layout import CHUNK_PREFIX
from benchlib import MiB, log, machine_info, machine_line, print_table, remove_workdir

KiB = 1 << 10
BACK = 5


# synthetic builds


class Product:
    """One product's build directory, mutated in place from version to version."""

    def __init__(self, name: str, root: str, files: int, seed: int):
        self.name, self.root, self.seed = name, root, seed
        self.rnd = random.Random(bench_corpus.derive_seed(seed, name, "versions"))
        self.versions: list[str] = []
        self.serial = 0
        for i in range(files):
            self._write(f"{self._dir()}/f{i:04d}.{self.rnd.choice(('pak', 'bin', 'cfg', 'dat'))}",
                        self._size(), self._kind())

    def _dir(self) -> str:
        return self.rnd.choice(("bin", "data", "data/levels", "data/audio", "config", "shaders"))

    def _size(self, lo: int = 8 * KiB, hi: int = 512 * KiB) -> int:
        return int(math.exp(self.rnd.uniform(math.log(lo), math.log(hi))))

    def _kind(self) -> str:
        return self.rnd.choices(("random", "binary", "text"), (0.45, 0.4, 0.15))[0]

    def _data(self, kind: str, n: int) -> bytes:
        self.serial += 1
        src = bench_corpus.Source(bench_corpus.derive_seed(self.seed, self.name, self.serial))
        return {"random": bench_corpus.gen_random, "binary": bench_corpus.gen_binary,
                "text": bench_corpus.gen_text}[kind](src, n)

    def _write(self, rel: str, n: int, kind: str) -> None:
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(self._data(kind, n))

    def files(self) -> list[str]:
        out = []
        for d, _, names in os.walk(self.root):
            out += [os.path.relpath(os.path.join(d, n), self.root) for n in names]
        return sorted(out)

    def mutate(self) -> None:
        """The next version: the edits real patches make."""
        rnd, files = self.rnd, self.files()
        for rel in rnd.sample(files, min(len(files), rnd.randint(1, 3))):  # scattered edits
            path = os.path.join(self.root, rel)
            data = bytearray(open(path, "rb").read())
            for _ in range(rnd.randint(1, 4)):
                n = rnd.randint(16, 2048)
                at = rnd.randrange(max(1, len(data) - n))
                data[at:at + n] = self._data("random", n)
            if rnd.random() < 0.3:  # an insertion that shifts what follows
                at = rnd.randrange(len(data) + 1)
                data[at:at] = self._data("binary", rnd.randint(1 * KiB, 32 * KiB))
            open(path, "wb").write(bytes(data))
        if rnd.random() < 0.3:
            self._write(f"{self._dir()}/n{self.serial:05d}.dat", self._size(4 * KiB, 128 * KiB), self._kind())
        if rnd.random() < 0.2 and len(files) > 10:
            os.remove(os.path.join(self.root, rnd.choice(files)))
        elif rnd.random() < 0.15:
            rel = rnd.choice(files)
            target = os.path.join(self.root, self._dir(), f"moved{self.serial:05d}-{os.path.basename(rel)}")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(os.path.join(self.root, rel), target)
        if len(self.versions) % 10 == 9:  # a large asset replaced
            files = self.files()
            big = max(files, key=lambda r: os.path.getsize(os.path.join(self.root, r)))
            self._write(big, os.path.getsize(os.path.join(self.root, big)), "random")


class Catalogue:
    """The repository and its products; adds versions round-robin, with their plans."""

    def __init__(self, workdir: str, products: int, files: int, seed: int, back: bool):
        from pipeline.build import products as product_settings
        from pipeline.core.chunk_params import ChunkParams
        from pipeline.storage import open_store

        self.store = open_store(os.path.join(workdir, "repo"))
        self.products = [Product(f"game-{chr(97 + i)}", os.path.join(workdir, "builds", f"game-{chr(97 + i)}"),
                                 files, seed) for i in range(products)]
        for p in self.products:
            product_settings.configure(self.store, p.name, ChunkParams(16 * KiB, 64 * KiB, 256 * KiB))
        self.back = back
        self.turn = 0
        self.pool = cf.ThreadPoolExecutor(2)
        self.build_s = self.plan_s = 0.0
        self.plans = 0

    def add_version(self) -> tuple[str, str]:
        """The next version of the next product: ingested, chunked, planned."""
        from pipeline.build.chunk import chunk
        from pipeline.build.ingest import ingest
        from pipeline.delta.diff import diff

        p = self.products[self.turn % len(self.products)]
        self.turn += 1
        if p.versions:
            p.mutate()
        version = f"1.{len(p.versions)}"
        t = time.perf_counter()
        ingest(self.store, p.root, p.name, version, self.pool)
        chunk(self.store, p.name, version, self.pool)
        self.build_s += time.perf_counter() - t
        p.versions.append(version)
        t = time.perf_counter()
        sources = [p.versions[-2]] if len(p.versions) > 1 else []
        if self.back and len(p.versions) > BACK:
            sources.append(p.versions[-1 - BACK])
        for source in sources:
            diff(self.store, p.name, source, version, self.pool)
            self.plans += 1
        self.plan_s += time.perf_counter() - t
        return p.name, version

    @property
    def versions(self) -> int:
        return sum(len(p.versions) for p in self.products)


# measurements


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def export_one_each(cat: Catalogue, repeat: int) -> dict:
    """An export with nothing new (its cost: listing the repository and the stats), then
    ``repeat`` versions added one at a time, timing the export of each."""
    from pipeline.stats.export import export

    noop = [timed(export, cat.store) for _ in range(repeat)]
    runs = []
    for _ in range(repeat):
        product, version = cat.add_version()
        seconds, r = timed(export, cat.store)
        runs.append({"product": product, "version": version, "seconds": round(seconds, 4),
                     "read_documents": r.read_documents, "versions": r.versions, "plans": r.plans,
                     "rows": r.rows})
    return {"catalogue_versions": cat.versions - repeat, "catalogue_plans": cat.plans,
            "median_s": round(statistics.median(r["seconds"] for r in runs), 4), "runs": runs,
            "nothing_new_s": round(statistics.median(s for s, _ in noop), 4),
            "nothing_new_read_documents": noop[-1][1].read_documents}


def stats_files(store) -> int:
    from pipeline.stats.export import STATS_PREFIX

    return sum(1 for _ in store.list(STATS_PREFIX))


def measure_queries(store, repeat: int) -> dict:
    from pipeline.stats.query import connect
    from pipeline.stats.report import collect

    views = ("versions", "files", "chunks", "updates", "chunk_uses")
    out: dict = {"connect": [], "collect": [], **{v: [] for v in views}}
    rows = {}
    for _ in range(repeat):
        out["connect"].append(timed(connect, store)[0])
        out["collect"].append(timed(collect, store)[0])
        con = connect(store)
        for v in views:
            seconds, n = timed(lambda: con.execute(f"SELECT count(*) FROM {v}").fetchone()[0])
            out[v].append(seconds)
            rows[v] = n
        con.close()
    return {"median_s": {k: round(statistics.median(v), 4) for k, v in out.items()}, "rows": rows}


def measure_report(store, workdir: str, repeat: int) -> dict:
    from pipeline.stats.report import report

    path = os.path.join(workdir, "report.html")
    first, r = timed(report, store, path)
    again = [timed(report, store, path)[0] for _ in range(repeat)]
    return {"first_s": round(first, 3), "median_s": round(statistics.median(again), 3), "bytes": r.bytes,
            "charts": r.charts, "products": len(r.products), "path": path}


# the run


def run(args) -> dict:
    from pipeline.stats.export import export
    from pipeline.storage import open_store

    workdir = tempfile.mkdtemp(prefix="depot-bench-stats-", dir=args.workdir)
    try:
        started = time.perf_counter()
        cat = Catalogue(workdir, args.products, args.files, args.seed, not args.no_back)
        total = args.products * args.versions
        half = total // 2
        log(f"building {half} versions over {args.products} products ...")
        while cat.versions < half:
            cat.add_version()
        log(f"  built in {cat.build_s:.1f} s, {cat.plans} plans in {cat.plan_s:.1f} s")
        catch_up_half, r = timed(export, cat.store)
        log(f"export at half ({r.versions} versions, {r.plans} plans): {catch_up_half:.2f} s; "
            f"then {args.repeat} single versions")
        at_half = export_one_each(cat, args.repeat)
        at_half["stats_files"] = stats_files(cat.store)
        log(f"building up to {total} versions ...")
        while cat.versions < total - args.repeat:
            cat.add_version()
        log(f"  built in {cat.build_s:.1f} s, {cat.plans} plans in {cat.plan_s:.1f} s")
        catch_up, r = timed(export, cat.store)
        log(f"export of what was new ({r.versions} versions, {r.plans} plans): {catch_up:.2f} s")
        at_full = export_one_each(cat, args.repeat)
        at_full["stats_files"] = stats_files(cat.store)
        whole_runs = []
        for i in range(args.repeat):  # the whole repository into an empty location, each time
            out = open_store(os.path.join(workdir, f"stats-whole-{i}"))
            seconds, whole = timed(export, cat.store, out)
            whole_runs.append(seconds)
        log("queries and report ...")
        queries = measure_queries(cat.store, args.repeat)
        rep = measure_report(cat.store, workdir, args.repeat)
        repo_chunks = sum(o.size for o in cat.store.scan(CHUNK_PREFIX))
        from pipeline.stats.query import query

        exported = query(cat.store, "SELECT count(*) FROM versions").rows[0][0]
        problems = [f"{exported} versions in the stats, {cat.versions} in the repository"] \
            if exported != cat.versions else []
        problems += [f"the export of {r['product']} {r['version']} read {r['read_documents']} documents, not "
                     f"{2 + r['plans']} (its manifest, the previous one's, its plans)"
                     for e in (at_half, at_full) for r in e["runs"] if r["read_documents"] != 2 + r["plans"]]
        if whole.versions != cat.versions or whole.plans != cat.plans:
            problems.append(f"the whole export wrote {whole.versions} versions and {whole.plans} plans")
        result = {
            "machine": machine_info(),
            "catalogue": {"products": args.products, "versions": cat.versions, "plans": cat.plans,
                          "files_per_build": args.files, "five_back_plans": not args.no_back,
                          "chunk_store_mib": round(repo_chunks / MiB, 1),
                          "build_s": round(cat.build_s, 1), "plan_s": round(cat.plan_s, 1)},
            "export_whole": {"median_s": round(statistics.median(whole_runs), 3),
                             "read_documents": whole.read_documents, "versions": whole.versions,
                             "plans": whole.plans, "rows": whole.rows},
            "export_one_at_half": at_half,
            "export_one_at_full": at_full,
            "queries": queries,
            "report": rep,
            "problems": problems,
            "total_s": round(time.perf_counter() - started, 1),
        }
        if args.keep:
            result["workdir"] = workdir
        return result
    finally:
        remove_workdir(workdir, args.keep)


def ratios(r: dict) -> dict:
    one, half, whole = (r["export_one_at_full"]["median_s"], r["export_one_at_half"]["median_s"],
                        r["export_whole"]["median_s"])
    q = r["queries"]["median_s"]["collect"]
    own_full = one - r["export_one_at_full"]["nothing_new_s"]
    own_half = half - r["export_one_at_half"]["nothing_new_s"]
    return {"one_version_over_whole_export": round(one / whole, 4),
            "one_version_at_full_over_at_half": round(one / half, 3),
            "one_version_less_listing_at_full_over_at_half": round(own_full / own_half, 3),
            "report_queries_over_report": round(q / r["report"]["median_s"], 3)}


def print_report(r: dict) -> None:
    c = r["catalogue"]
    print(machine_line(r["machine"]))
    print(f"catalogue: {c['products']} products, {c['versions']} versions, {c['plans']} plans "
          f"({'consecutive and five back' if c['five_back_plans'] else 'consecutive'}), {c['files_per_build']} "
          f"files a build at first, chunk store {c['chunk_store_mib']} MiB; built in {c['build_s']} s, "
          f"planned in {c['plan_s']} s")
    print()
    w, q, rep = r["export_whole"], r["queries"], r["report"]
    rows = [("export, whole repository (empty output)", f"{w['median_s']:.3f}", w["read_documents"],
             f"{w['versions']} versions, {w['plans']} plans, {sum(w['rows'].values())} rows")]
    for key, label in (("export_one_at_half", "half"), ("export_one_at_full", "full")):
        e, run = r[key], r[key]["runs"][-1]
        rows.append((f"export, one new version at {label} catalogue", f"{e['median_s']:.4f}", run["read_documents"],
                     f"after {e['catalogue_versions']} versions ({e['stats_files']} stats files); {run['versions']} "
                     f"version, {run['plans']} plans, {sum(run['rows'].values())} rows"))
    rows += [(f"export, nothing new at {label} catalogue", f"{r[key]['nothing_new_s']:.4f}",
              r[key]["nothing_new_read_documents"], "listing the repository and the stats")
             for key, label in (("export_one_at_half", "half"), ("export_one_at_full", "full"))]
    labels = {"connect": "connect (views over the parquet)", "collect": "report's queries (collect)"}
    rows += [(labels.get(name, f"SELECT count(*) FROM {name}"), f"{q['median_s'][name]:.4f}", "",
              f"{q['rows'][name]} rows" if name in q["rows"] else "")
             for name in ("connect", "collect", "versions", "files", "chunks", "updates", "chunk_uses")]
    rows += [("report, first (starts vl-convert)", f"{rep['first_s']:.3f}", "", ""),
             ("report, whole", f"{rep['median_s']:.3f}", "",
              f"{rep['charts']} charts, {rep['products']} products, {rep['bytes'] / MiB:.2f} MiB of HTML")]
    print_table([("measurement", 52, lambda t: t[0]), ("seconds", 9, lambda t: t[1]),
                 ("read docs", 9, lambda t: str(t[2])), ("  what", 0, lambda t: "  " + t[3])], rows)
    print()
    for k, v in ratios(r).items():
        print(f"{k}: {v}")
    print("checks: " + ("; ".join(r["problems"]) if r["problems"] else
                        "every version exported; each new version read its manifest, the previous one's and its plans"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--products", type=int, default=4)
    ap.add_argument("--versions", type=int, default=30, help="versions per product (default 30)")
    ap.add_argument("--files", type=int, default=40, help="files of a product's first build (default 40)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each measurement (default 3; median)")
    ap.add_argument("--no-back", action="store_true", help="plan consecutive pairs only")
    ap.add_argument("--workdir", default=None, help="where the temporary repository goes (default: $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the repository and the report")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    if args.products < 1 or args.versions < 2 or args.repeat < 1:
        ap.error("needs at least 1 product, 2 versions and 1 repeat")
    r = run(args)
    r["ratios"] = ratios(r)
    if args.json:
        print(json.dumps(r, indent=2, default=str))
    else:
        print_report(r)
    return 1 if r["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
