"""The ``depot`` command: parses arguments, calls pipeline stages, prints results.

Every error the pipeline raises is a DepotError carrying its exit code (docs/cli.md);
this module has the one handler that turns it into a message and that code.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import os
import re
import sys
import traceback
from pathlib import Path

import click

import dask_cluster
from pipeline import errors, inventory, layout, manifest, products
from pipeline.chunk import chunk as chunk_stage
from pipeline.chunker import ChunkParams
from pipeline.ingest import ingest as ingest_stage
from pipeline.promote import promote as promote_stage
from pipeline.reassemble import reassemble
from pipeline.store import open_store

EXIT_INTERRUPTED = 130
SMALL_JOB_BYTES = 32 << 20


class Settings:
    def __init__(self, repo: str, as_json: bool, scheduler: str | None, workers: int | None):
        self.repo = repo
        self.as_json = as_json
        self.scheduler = scheduler
        self.workers = workers

    @property
    def store(self):
        return open_store(self.repo)

    def executor(self, total_bytes: int | None = None):
        """Dask for real work. Without a scheduler, small jobs and hashing run on threads
        here: a local cluster costs seconds to start, more than a small build takes."""
        if self.scheduler is None and self.workers is None and (total_bytes is None or total_bytes < SMALL_JOB_BYTES):
            return cf.ThreadPoolExecutor(os.cpu_count() or 1)
        return dask_cluster.executor(self.scheduler, self.workers)

    def emit(self, result: dict, human: str) -> None:
        if self.as_json:
            click.echo(json.dumps(result, sort_keys=True))
        else:
            click.echo(human)


@contextlib.contextmanager
def progress_bar(desc: str, total: int):
    """A byte progress bar on stderr, shown only when stderr is a terminal."""
    from tqdm import tqdm

    with tqdm(total=total or None, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, disable=None, leave=False) as bar:
        yield bar.update


_SIZE = re.compile(r"(?i)^\s*(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$")
_UNITS = {None: 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}


class ByteSize(click.ParamType):
    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        m = _SIZE.match(value)
        if not m:
            self.fail(f"{value!r} is not a size (e.g. 262144, 256KiB, 1MiB)", param, ctx)
        return int(m.group(1)) * _UNITS[m.group(2) and m.group(2).lower()]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--repo", envvar="DEPOT_REPO", default="./depot-repo", show_default=True,
              help="Repository URL: a path, file://, s3://bucket/prefix or memory:// (env DEPOT_REPO).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON result on stdout.")
@click.option("--scheduler", envvar="DEPOT_SCHEDULER", default=None,
              help="Address of a Dask scheduler (env DEPOT_SCHEDULER); default: a local cluster.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Local cluster worker processes [default: CPU count].")
@click.option("--s3-endpoint", envvar="DEPOT_S3_ENDPOINT", default=None,
              help="S3 endpoint URL for s3:// locations (env DEPOT_S3_ENDPOINT, or AWS_ENDPOINT_URL).")
@click.version_option(package_name="depot")
@click.pass_context
def cli(ctx, repo, as_json, scheduler, workers, s3_endpoint):
    """depot: turn game builds into chunks, manifests and patches for delivery."""
    if s3_endpoint:
        os.environ["DEPOT_S3_ENDPOINT"] = s3_endpoint  # read by every process, workers included
    ctx.obj = Settings(repo, as_json, scheduler, workers)


product_option = click.option("--product", "-p", required=True, help="Product name (lowercase, digits, . _ -).")
version_option = click.option("--version", "-v", "version", required=True, help="Version name.")


def _ingest(s: Settings, ex, source: str, product: str, version: str) -> dict:
    with progress_bar(f"ingest {product} {version}", 0) as advance:
        return ingest_stage(s.store, source, product, version, ex, advance).to_dict()


def _chunk(s: Settings, product: str, version: str) -> dict:
    total = sum(f.size for f in inventory.load(s.store, product, version).files)
    with s.executor(total) as ex, progress_bar(f"chunk {product} {version}", total) as advance:
        return chunk_stage(s.store, product, version, ex, advance).to_dict()


def _describe_ingest(r: dict) -> str:
    state = "ingested" if r["created"] else "already ingested (same content)"
    return (f"{r['product']} {r['version']}: {state}: {r['files']} files, {r['dirs']} empty dirs, "
            f"{r['symlinks']} links, {_mib(r['bytes'])} from {r['source']} ({r['kind']})")


def _describe_chunk(r: dict) -> str:
    state = "chunked" if r["created"] else "already chunked"
    return (f"{r['product']} {r['version']}: {state}: {r['files']} files, {_mib(r['bytes'])}, "
            f"{r['chunks']} chunks ({r['chunks_new']} new, {r['chunks_reused']} reused), "
            f"{_mib(r['stored_bytes_new'])} newly stored, dedup {r['dedup_ratio']}x, {r['elapsed_s']} s")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


@cli.command()
@click.argument("source")
@product_option
@version_option
@click.pass_obj
def ingest(s: Settings, source, product, version):
    """Record the inventory of a build (directory, .zip, .tar, .tar.gz, .tar.zst; local or s3://)."""
    with s.executor() as ex:
        r = _ingest(s, ex, source, product, version)
    s.emit(r, _describe_ingest(r))


@cli.command()
@product_option
@version_option
@click.pass_obj
def chunk(s: Settings, product, version):
    """Cut an ingested build into chunks and write its manifest."""
    r = _chunk(s, product, version)
    s.emit(r, _describe_chunk(r))


@cli.command()
@click.argument("source")
@product_option
@version_option
@click.option("--diff-last", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also build update plans from the N chunked versions before this one.")
@click.pass_obj
def run(s: Settings, source, product, version, diff_last):
    """The whole pipeline for one uploaded build: ingest, chunk, and optionally diff."""
    with s.executor() as ex:
        i = _ingest(s, ex, source, product, version)
    c = _chunk(s, product, version)
    plans = []
    if diff_last:
        earlier = [v for v in _chunked_versions(s.store, product) if _version_key(v) < _version_key(version)]
        plans = _diff_pairs(s, product, [(a, version) for a in earlier[-diff_last:]])
    s.emit({"ingest": i, "chunk": c, "plans": plans,
            **{k: c[k] for k in ("bytes", "stored_bytes", "stored_bytes_new", "chunks_new", "chunks_reused", "dedup_ratio")},
            "elapsed_s": round(i["elapsed_s"] + c["elapsed_s"] + sum(p["elapsed_s"] for p in plans), 3)},
           "\n".join([_describe_ingest(i), _describe_chunk(c)] + [_describe_plan(p) for p in plans]))


@cli.command()
@product_option
@click.option("--chunk-min", type=ByteSize(), default="256KiB", show_default=True)
@click.option("--chunk-avg", type=ByteSize(), default="1MiB", show_default=True)
@click.option("--chunk-max", type=ByteSize(), default="4MiB", show_default=True)
@click.option("--segment-size", type=ByteSize(), default="0", help="Split files larger than this over several "
              "tasks [default: max(64MiB, 16 x max)]. Tuning only: it never changes the chunks.")
@click.pass_obj
def configure(s: Settings, product, chunk_min, chunk_avg, chunk_max, segment_size):
    """Set a product's chunk sizes (for versions chunked from now on)."""
    layout.check_product(product)
    params = products.configure(s.store, product, ChunkParams(chunk_min, chunk_avg, chunk_max, segment_size))
    s.emit({"product": product, "chunking": params.to_dict()},
           f"{product}: chunks of {params.min_size} / {params.avg_size} / {params.max_size} bytes (min / avg / max)")


@cli.command()
@product_option
@version_option
@click.argument("path")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="Write here instead of stdout.")
@click.pass_obj
def cat(s: Settings, product, version, path, output):
    """Rebuild one file of a version from the store, checking every chunk and the file's SHA-256."""
    entry = manifest.load(s.store, product, version).entry(path)
    if output is None:
        reassemble(s.store, entry, sys.stdout.buffer)
        return
    tmp = f"{output}.depot-partial"
    try:
        with open(tmp, "wb") as out:
            reassemble(s.store, entry, out)
        os.replace(tmp, output)  # never leave a file that claims to be complete but is not
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@cli.command(name="ls")
@click.option("--product", "-p", default=None, help="List this product's versions.")
@click.pass_obj
def ls(s: Settings, product):
    """List products, or a product's versions with their state."""
    store = s.store
    if product is None:
        names = sorted({k.split("/")[1] for k in store.list(layout.PRODUCT_PREFIX)})
        s.emit({"products": names}, "\n".join(names))
        return
    rows = {}
    for key in store.list(layout.versions_prefix(product)):
        version, name = key.split("/")[3:5]
        rows.setdefault(version, set()).add(name)
    out = [{"version": v, "state": "chunked" if "manifest.json" in names else "ingested"} for v, names in sorted(rows.items())]
    s.emit({"product": product, "versions": out}, "\n".join(f"{r['version']}\t{r['state']}" for r in out))


@cli.command()
@product_option
@version_option
@click.option("--channel", "-c", required=True, help="Channel name, e.g. stable or beta.")
@click.pass_obj
def promote(s: Settings, product, version, channel):
    """Point a channel of a product at a chunked version."""
    doc = promote_stage(s.store, product, version, channel)
    s.emit(doc, f"{product} {channel} -> {version}")


origin_option = click.option("--origin", "origins", multiple=True, required=True,
                             help="Where to download from: a path, s3://, http(s)://. Repeat for failover, in order.")
dest_option = click.option("--dest", required=True, type=click.Path(file_okay=False, path_type=Path),
                           help="The game directory.")
seed_option = click.option("--seed", "seeds", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
                           help="A directory whose files may hold needed chunks (copied, not downloaded). Repeatable.")
jobs_option = click.option("--jobs", "-j", type=click.IntRange(1, 512), default=8, show_default=True,
                           help="Downloads in flight.")


def _fetcher(origins, timeout: float, retries: int, max_rate: int | None, jobs: int):
    from pipeline.fetch import Fetcher, RateLimiter, open_origin

    return Fetcher([open_origin(o, connections=jobs, timeout=timeout) for o in origins], retries=retries,
                   rate=RateLimiter(max_rate) if max_rate else None)


def network_options(f):
    f = click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
                     help="Seconds without data before a request is retried.")(f)
    f = click.option("--retries", type=click.IntRange(min=0), default=3, show_default=True,
                     help="Retries per origin before moving to the next one.")(f)
    f = click.option("--max-rate", type=ByteSize(), default=None, help="Download at most this many bytes a second (e.g. 10MiB).")(f)
    return f


@contextlib.contextmanager
def install_progress(desc: str):
    """A bar whose total is known only once install has looked at the disk."""
    from tqdm import tqdm

    with tqdm(desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, disable=None, leave=False) as bar:
        def on_total(n):
            bar.total = n
            bar.refresh()

        yield bar.update, on_total


def _describe_install(r: dict) -> str:
    return (f"{r['product']} {r['version']} in {r['dest']}: {r['files']} files, {_mib(r['bytes'])}; "
            f"wrote {r['files_written']} files: {_mib(r['bytes_downloaded'])} downloaded "
            f"({r['chunks_fetched']} chunks, {r['retries']} retries), {_mib(r['bytes_reused'])} reused, {r['elapsed_s']} s")


@cli.command()
@origin_option
@product_option
@click.option("--version", "-v", "version", default=None, help="Version to install.")
@click.option("--channel", "-c", default=None, help="Install the version this channel points at.")
@dest_option
@seed_option
@jobs_option
@network_options
@click.pass_obj
def install(s: Settings, origins, product, version, channel, dest, seeds, jobs, timeout, retries, max_rate):
    """Install a version into a directory: resumable, reusing what is on disk."""
    from pipeline.install import install as install_stage, resolve_version

    if (version is None) == (channel is None):
        raise click.UsageError("give exactly one of --version and --channel")
    fetcher = _fetcher(origins, timeout, retries, max_rate, jobs)
    version = version or resolve_version(fetcher, product, channel)
    with install_progress(f"install {product} {version}") as (advance, on_total):
        r = install_stage(fetcher, product, version, dest, seeds=seeds, jobs=jobs, progress=advance, on_total=on_total)
    s.emit(r.to_dict(), _describe_install(r.to_dict()))


@cli.command()
@dest_option
@click.option("--fast", is_flag=True, help="Sizes, modes and mtimes only (no hashing).")
@click.pass_obj
def verify(s: Settings, dest, fast):
    """Check a game directory against its installed version; exit 7 if anything is wrong."""
    from pipeline.verify import verify as verify_stage

    r = verify_stage(dest, fast=fast)
    lines = [f"{r.product} {r.version} in {r.dest}: {r.checked} entries checked, "
             f"{len(r.missing)} missing, {len(r.damaged)} damaged, {len(r.unexpected)} unexpected"]
    lines += [f"missing\t{p}" for p in r.missing]
    lines += [f"damaged\t{d['path']}\t{d['reason']}" for d in r.damaged]
    lines += [f"unexpected\t{p}" for p in r.unexpected]
    s.emit(r.to_dict(), "\n".join(lines))
    if not r.intact:
        click.echo(f"depot: {r.dest}: {len(r.missing)} missing and {len(r.damaged)} damaged entries", err=True)
        click.get_current_context().exit(errors.FileHashMismatch.exit_code)


@cli.command()
@origin_option
@dest_option
@seed_option
@jobs_option
@network_options
@click.pass_obj
def repair(s: Settings, origins, dest, seeds, jobs, timeout, retries, max_rate):
    """Re-fetch only what is missing or damaged in a game directory."""
    from pipeline.repair import repair as repair_stage

    fetcher = _fetcher(origins, timeout, retries, max_rate, jobs)
    with install_progress(f"repair {dest}") as (advance, on_total):
        r = repair_stage(fetcher, dest, seeds=seeds, jobs=jobs, progress=advance, on_total=on_total)
    d = r.to_dict()
    human = f"{r.before.product} {r.before.version} in {dest}: repaired {len(d['repaired'])} entries"
    if r.install:
        human += f", {_mib(r.install.bytes_downloaded)} downloaded, {_mib(r.install.bytes_reused)} reused"
    s.emit(d, human)
    if not r.after.intact:
        click.echo(f"depot: {dest}: still damaged after repair: {sorted(r.after.broken())}", err=True)
        click.get_current_context().exit(errors.FileHashMismatch.exit_code)


def _version_key(v: str):
    """Natural order: 1.9.0 < 1.10.0; digit runs compare as numbers."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", v)]


def _chunked_versions(store, product: str) -> list[str]:
    found = {k.split("/")[3] for k in store.list(layout.versions_prefix(product)) if k.endswith("/manifest.json")}
    return sorted(found, key=_version_key)


@cli.command(name="diff")
@product_option
@click.option("--from", "from_version", default=None, help="Old version.")
@click.option("--to", "to_version", default=None, help="New version [default: the newest chunked one].")
@click.option("--all-from", is_flag=True, help="Every earlier version to --to.")
@click.option("--last", type=click.IntRange(min=1), default=None, help="The N versions before --to, each to --to.")
@click.option("--all-pairs", is_flag=True, help="Every pair of chunked versions, older to newer.")
@click.pass_obj
def diff_cmd(s: Settings, product, from_version, to_version, all_from, last, all_pairs):
    """Build update plans and patches for version pairs (a no-op for pairs that have one)."""
    store = s.store
    versions = _chunked_versions(store, product)
    if sum(bool(x) for x in (from_version, all_from, last, all_pairs)) != 1:
        raise click.UsageError("give exactly one of --from, --all-from, --last N, --all-pairs")
    if all_pairs:
        pairs = [(a, b) for i, b in enumerate(versions) for a in versions[:i]]
    else:
        to_version = to_version or (versions[-1] if versions else None)
        if to_version is None:
            raise errors.NotFound(f"{product} has no chunked version")
        earlier = [v for v in versions if _version_key(v) < _version_key(to_version)]
        sources = [from_version] if from_version else earlier[-last:] if last else earlier
        pairs = [(a, to_version) for a in sources]
    results = _diff_pairs(s, product, pairs)
    s.emit(results[0] if len(results) == 1 and from_version else {"plans": results},
           "\n".join(_describe_plan(r) for r in results) or "no pairs")


def _diff_pairs(s: Settings, product: str, pairs: list[tuple[str, str]]) -> list[dict]:
    from pipeline.diff import diff as diff_stage

    sizes = {v: manifest.load(s.store, product, v).totals()["bytes"] for v in {b for _, b in pairs}}
    total = sum(sizes[b] for _, b in pairs)
    with s.executor(total) as ex, progress_bar(f"diff {product}", total) as advance:
        return [diff_stage(s.store, product, a, b, ex, advance).to_dict() for a, b in pairs]


def _describe_plan(r: dict) -> str:
    return (f"{r['from_version']} -> {r['to_version']}: {'planned' if r['created'] else 'already planned'}: "
            f"{r['files_patched']} patched, {r['files_copied']} copied, {r['files_fetched']} by chunks, "
            f"{r['files_kept']} kept, {r['entries_removed']} removed; download {_mib(r['delta_download_bytes'])} "
            f"(chunks alone {_mib(r['chunk_download_bytes'])}, full {_mib(r['full_download_bytes'])})")


@cli.command()
@origin_option
@dest_option
@click.option("--to", "to_version", default=None, help="Version to update to.")
@click.option("--channel", "-c", default=None, help="Update to the version this channel points at.")
@seed_option
@jobs_option
@network_options
@click.pass_obj
def update(s: Settings, origins, dest, to_version, channel, seeds, jobs, timeout, retries, max_rate):
    """Update an installed directory: patches, a chain of plans or chunks, whichever downloads least."""
    from pipeline.update import update as update_stage

    if (to_version is None) == (channel is None):
        raise click.UsageError("give exactly one of --to and --channel")
    fetcher = _fetcher(origins, timeout, retries, max_rate, jobs)
    with install_progress(f"update {dest}") as (advance, on_total):
        r = update_stage(fetcher, dest, to_version, channel, seeds=seeds, jobs=jobs, progress=advance, on_total=on_total)
    for f in r.fallbacks:
        click.echo(f"depot: warning: {f['path']}: {f['error']}: {f['message']} (fetched by chunks instead)", err=True)
    s.emit(r.to_dict(), f"{r.product}: {r.from_version} -> {r.to_version} by {r.method} via {' -> '.join(r.route)}: "
                        f"{_mib(r.bytes_downloaded)} downloaded, {r.files_written} files written, "
                        f"{r.patches_applied} patches applied, {len(r.fallbacks)} fell back to chunks")


def main(argv: list[str] | None = None) -> int:
    as_json = "--json" in (argv if argv is not None else sys.argv[1:])
    try:
        code = cli.main(args=argv, prog_name="depot", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except click.exceptions.Abort:
        click.echo("depot: interrupted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except errors.DepotError as exc:
        if as_json:
            click.echo(json.dumps(exc.to_dict(), sort_keys=True))
        click.echo(f"depot: error: {exc} [{exc.code}]", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("depot: interrupted", err=True)
        return EXIT_INTERRUPTED
    except Exception:  # a bug: say so plainly, with the trace for the report
        traceback.print_exc()
        click.echo("depot: internal error (this is a bug; the trace above says where)", err=True)
        return errors.DepotError.exit_code


if __name__ == "__main__":
    sys.exit(main())
