"""The ``depot`` command: parses arguments, calls pipeline stages, prints results.

Every error the pipeline raises is a DepotError carrying its exit code (docs/cli.md);
``main`` is the one handler that turns it into a message and that code.
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from pathlib import Path

import click

import dask_cluster
from pipeline import errors
from pipeline.storage import Locations, open_origin, open_store

EXIT_INTERRUPTED = 130


class Settings:
    """The global options, filled in once the group's options are parsed."""

    def __init__(self):
        self.repo = "./depot-repo"
        self.as_json = False
        self.scheduler: str | None = None
        self.workers: int | None = None
        self.locations = Locations()

    @property
    def store(self):
        return open_store(self.locations.resolve(self.repo))

    def executor(self, total_bytes: int | None = None):
        return dask_cluster.executor_for(total_bytes, self.scheduler, self.workers)

    def emit(self, result: dict, human: str) -> None:
        if self.as_json:
            click.echo(json.dumps(result, sort_keys=True))
        else:
            click.echo(human)


def _bar(desc: str, total: int | None):
    """A byte progress bar on stderr, shown only when stderr is a terminal."""
    from tqdm import tqdm

    return tqdm(total=total or None, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                disable=None, leave=False)


@contextlib.contextmanager
def progress_bar(desc: str, total: int = 0):
    with _bar(desc, total) as bar:
        yield bar.update


@contextlib.contextmanager
def install_progress(desc: str):
    """A bar whose total is known only once install has looked at the disk."""
    with _bar(desc, None) as bar:
        def on_total(n):
            bar.total = n
            bar.refresh()

        yield bar.update, on_total


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}


class ByteSize(click.ParamType):
    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = value.strip().lower()
        digits = text.rstrip("abcdefghijklmnopqrstuvwxyz").strip()
        unit = text[len(digits):].strip()
        if not digits.isdigit() or unit not in _UNITS:
            self.fail(f"{value!r} is not a size (e.g. 262144, 256KiB, 1MiB)", param, ctx)
        return int(digits) * _UNITS[unit]


def _set_json(ctx, param, value):
    if value:
        ctx.find_object(Settings).as_json = True


# Accepted before and after the command name; eager, so that usage errors in the other
# options are reported in JSON too.
json_option = click.option("--json", "as_json", is_flag=True, expose_value=False, is_eager=True, callback=_set_json,
                           help="Print a JSON result (or error) on stdout.")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--repo", envvar="DEPOT_REPO", default="./depot-repo", show_default=True,
              help="Repository: a path, file://, s3://bucket/prefix, memory://, or a location's name (env DEPOT_REPO).")
@json_option
@click.option("--scheduler", envvar="DEPOT_SCHEDULER", default=None,
              help="Address of a Dask scheduler (env DEPOT_SCHEDULER); default: a local cluster.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Local cluster worker processes [default: CPU count].")
@click.option("--locations", "locations_file", envvar="DEPOT_LOCATIONS", default=None,
              type=click.Path(dir_okay=False),
              help="TOML file naming locations with their endpoint, region, profile and timeout (env DEPOT_LOCATIONS).")
@click.option("--s3-endpoint", envvar="DEPOT_S3_ENDPOINT", default=None,
              help="S3 endpoint for s3:// locations the locations file does not cover (env DEPOT_S3_ENDPOINT).")
@click.version_option(package_name="depot")
@click.pass_obj
def cli(s: Settings, repo, scheduler, workers, locations_file, s3_endpoint):
    """depot: turn game builds into chunks, manifests and patches for delivery."""
    s.repo, s.scheduler, s.workers = repo, scheduler, workers
    s.locations = Locations.load(locations_file, s3_endpoint)


product_option = click.option("--product", "-p", required=True, help="Product name (lowercase, digits, . _ -).")
version_option = click.option("--version", "-v", "version", required=True, help="Version name.")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


# -- build: ingest, chunk, run, configure, ls, cat ------------------------------------------


def _ingest(s: Settings, source: str, product: str, version: str) -> dict:
    from pipeline.build.ingest import ingest

    with s.executor() as ex, progress_bar(f"ingest {product} {version}") as advance:
        return ingest(s.store, source, product, version, ex, advance, s.locations).to_dict()


def _chunk(s: Settings, product: str, version: str) -> dict:
    from pipeline.build.chunk import chunk
    from pipeline.formats import inventory

    total = sum(f.size for f in inventory.load(s.store, product, version).files)
    with s.executor(total) as ex, progress_bar(f"chunk {product} {version}", total) as advance:
        return chunk(s.store, product, version, ex, advance, s.locations).to_dict()


def _describe_ingest(r: dict) -> str:
    state = "ingested" if r["created"] else "already ingested (same content)"
    return (f"{r['product']} {r['version']}: {state}: {r['files']} files, {r['dirs']} empty dirs, "
            f"{r['symlinks']} links, {_mib(r['bytes'])} from {r['source']} ({r['kind']})")


def _describe_chunk(r: dict) -> str:
    state = "chunked" if r["created"] else "already chunked"
    return (f"{r['product']} {r['version']}: {state}: {r['files']} files, {_mib(r['bytes'])}, "
            f"{r['chunks']} chunks ({r['chunks_new']} new, {r['chunks_reused']} reused), "
            f"{_mib(r['stored_bytes_new'])} newly stored, dedup {r['dedup_ratio']}x, {r['elapsed_s']} s")


@cli.command()
@click.argument("source")
@product_option
@version_option
@json_option
@click.pass_obj
def ingest(s: Settings, source, product, version):
    """Record the inventory of a build (directory, .zip, .tar, .tar.gz, .tar.zst; local or s3://)."""
    r = _ingest(s, source, product, version)
    s.emit(r, _describe_ingest(r))


@cli.command()
@product_option
@version_option
@json_option
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
@json_option
@click.pass_obj
def run(s: Settings, source, product, version, diff_last):
    """The whole pipeline for one uploaded build: ingest, chunk, and optionally diff."""
    from pipeline.build.catalog import chunked_versions
    from pipeline.core.versions import earlier

    i = _ingest(s, source, product, version)
    c = _chunk(s, product, version)
    plans = []
    if diff_last:
        before = earlier(chunked_versions(s.store, product), version)
        plans = _diff_pairs(s, product, [(a, version) for a in before[-diff_last:]])
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
@json_option
@click.pass_obj
def configure(s: Settings, product, chunk_min, chunk_avg, chunk_max, segment_size):
    """Set a product's chunk sizes (for versions chunked from now on)."""
    from pipeline.build.products import configure as configure_product
    from pipeline.core.cdc import ChunkParams

    params = configure_product(s.store, product, ChunkParams(chunk_min, chunk_avg, chunk_max, segment_size))
    s.emit({"product": product, "chunking": params.to_dict()},
           f"{product}: chunks of {params.min_size} / {params.avg_size} / {params.max_size} bytes (min / avg / max)")


@cli.command()
@product_option
@version_option
@click.argument("path")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="Write here instead of stdout.")
@json_option
@click.pass_obj
def cat(s: Settings, product, version, path, output):
    """Rebuild one file of a version from the store, checking every chunk and the file's SHA-256."""
    from pipeline.client.cat import cat as cat_file, cat_to_file

    if output is None:
        cat_file(s.store, product, version, path, sys.stdout.buffer)
        return
    written = cat_to_file(s.store, product, version, path, output)
    s.emit({"product": product, "version": version, "path": path, "output": output, "bytes": written},
           f"{product} {version} {path}: {written} bytes written to {output}")


@cli.command(name="ls")
@click.option("--product", "-p", default=None, help="List this product's versions.")
@json_option
@click.pass_obj
def ls(s: Settings, product):
    """List products, or a product's versions with their state."""
    from pipeline.build import catalog

    if product is None:
        names = catalog.products(s.store)
        s.emit({"products": names}, "\n".join(names))
        return
    rows = catalog.versions(s.store, product)
    s.emit({"product": product, "versions": [r.to_dict() for r in rows]},
           "\n".join(f"{r.version}\t{r.state}" for r in rows))


# -- delta: diff ------------------------------------------------------------------------------


@cli.command(name="diff")
@product_option
@click.option("--from", "from_version", default=None, help="Old version.")
@click.option("--to", "to_version", default=None, help="New version [default: the newest chunked one].")
@click.option("--all-from", is_flag=True, help="Every earlier version to --to.")
@click.option("--last", type=click.IntRange(min=1), default=None, help="The N versions before --to, each to --to.")
@click.option("--all-pairs", is_flag=True, help="Every pair of chunked versions, older to newer.")
@json_option
@click.pass_obj
def diff_cmd(s: Settings, product, from_version, to_version, all_from, last, all_pairs):
    """Build update plans and patches for version pairs (a no-op for pairs that have one)."""
    from pipeline.build.catalog import chunked_versions
    from pipeline.delta.pairs import choose_pairs

    pairs = choose_pairs(product, chunked_versions(s.store, product), from_version, to_version, all_from, last,
                         all_pairs)
    results = _diff_pairs(s, product, pairs)
    s.emit(results[0] if len(results) == 1 and from_version else {"plans": results},
           "\n".join(_describe_plan(r) for r in results) or "no pairs")


def _diff_pairs(s: Settings, product: str, pairs: list[tuple[str, str]]) -> list[dict]:
    from pipeline.delta.diff import diff
    from pipeline.formats import manifest

    sizes = {v: manifest.load(s.store, product, v).totals()["bytes"] for v in {b for _, b in pairs}}
    total = sum(sizes[b] for _, b in pairs)
    with s.executor(total) as ex, progress_bar(f"diff {product}", total) as advance:
        return [diff(s.store, product, a, b, ex, advance).to_dict() for a, b in pairs]


def _describe_plan(r: dict) -> str:
    return (f"{r['from_version']} -> {r['to_version']}: {'planned' if r['created'] else 'already planned'}: "
            f"{r['files_patched']} patched, {r['files_copied']} copied, {r['files_fetched']} by chunks, "
            f"{r['files_kept']} kept, {r['entries_removed']} removed; download {_mib(r['delta_download_bytes'])} "
            f"(chunks alone {_mib(r['chunk_download_bytes'])}, full {_mib(r['full_download_bytes'])})")


# -- publish: promote --------------------------------------------------------------------------


@cli.command()
@product_option
@version_option
@click.option("--channel", "-c", required=True, help="Channel name, e.g. stable or beta.")
@json_option
@click.pass_obj
def promote(s: Settings, product, version, channel):
    """Point a channel of a product at a chunked version."""
    from pipeline.publish.promote import promote as promote_version

    pointer = promote_version(s.store, product, version, channel)
    s.emit(pointer.to_dict(), f"{product} {channel} -> {version}")


# -- client: install, update, verify, repair ------------------------------------------------------

origin_option = click.option("--origin", "origins", multiple=True, required=True,
                             help="Where to download from: a path, s3://, http(s)://, or a location's name. "
                                  "Repeat for failover, in order.")
dest_option = click.option("--dest", required=True, type=click.Path(file_okay=False, path_type=Path),
                           help="The game directory.")
seed_option = click.option("--seed", "seeds", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
                           help="A directory whose files may hold needed chunks (copied, not downloaded). Repeatable.")
jobs_option = click.option("--jobs", "-j", type=click.IntRange(1, 512), default=8, show_default=True,
                           help="Downloads in flight.")


def network_options(f):
    f = click.option("--timeout", type=click.FloatRange(min=0.1), default=None,
                     help="Seconds without data before a request is retried [default: the location's, else 10].")(f)
    f = click.option("--retries", type=click.IntRange(min=0), default=3, show_default=True,
                     help="Retries per origin before moving to the next one.")(f)
    f = click.option("--max-rate", type=ByteSize(), default=None, help="Download at most this many bytes a second (e.g. 10MiB).")(f)
    return f


def _fetcher(s: Settings, origins, timeout: float | None, retries: int, max_rate: int | None, jobs: int):
    import dataclasses

    from pipeline.client.fetch import Fetcher, RateLimiter

    locations = [s.locations.resolve(o) for o in origins]
    if timeout is not None:
        locations = [dataclasses.replace(loc, timeout=timeout) for loc in locations]
    return Fetcher([open_origin(loc, connections=jobs) for loc in locations], retries=retries,
                   rate=RateLimiter(max_rate) if max_rate else None)


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
@json_option
@click.pass_obj
def install(s: Settings, origins, product, version, channel, dest, seeds, jobs, timeout, retries, max_rate):
    """Install a version into a directory: resumable, reusing what is on disk."""
    from pipeline.client.install import install as install_version, resolve_version

    if (version is None) == (channel is None):
        raise click.UsageError("give exactly one of --version and --channel")
    fetcher = _fetcher(s, origins, timeout, retries, max_rate, jobs)
    version = version or resolve_version(fetcher, product, channel)
    with install_progress(f"install {product} {version}") as (advance, on_total):
        r = install_version(fetcher, product, version, dest, seeds=seeds, jobs=jobs, progress=advance,
                            on_total=on_total)
    s.emit(r.to_dict(), _describe_install(r.to_dict()))


@cli.command()
@origin_option
@dest_option
@click.option("--to", "to_version", default=None, help="Version to update to.")
@click.option("--channel", "-c", default=None, help="Update to the version this channel points at.")
@seed_option
@jobs_option
@network_options
@json_option
@click.pass_obj
def update(s: Settings, origins, dest, to_version, channel, seeds, jobs, timeout, retries, max_rate):
    """Update an installed directory: patches, a chain of plans or chunks, whichever downloads least."""
    from pipeline.client.update import update as update_dir

    if (to_version is None) == (channel is None):
        raise click.UsageError("give exactly one of --to and --channel")
    fetcher = _fetcher(s, origins, timeout, retries, max_rate, jobs)
    with install_progress(f"update {dest}") as (advance, on_total):
        r = update_dir(fetcher, dest, to_version, channel, seeds=seeds, jobs=jobs, progress=advance, on_total=on_total)
    for f in r.fallbacks:
        click.echo(f"depot: warning: {f['path']}: {f['error']}: {f['message']} (fetched by chunks instead)", err=True)
    s.emit(r.to_dict(), f"{r.product}: {r.from_version} -> {r.to_version} by {r.method} via {' -> '.join(r.route)}: "
                        f"{_mib(r.bytes_downloaded)} downloaded, {r.files_written} files written, "
                        f"{r.patches_applied} patches applied, {len(r.fallbacks)} fell back to chunks")


@cli.command()
@dest_option
@click.option("--fast", is_flag=True, help="Sizes, modes and mtimes only (no hashing).")
@json_option
@click.pass_obj
def verify(s: Settings, dest, fast):
    """Check a game directory against its installed version; exit 7 if anything is wrong."""
    from pipeline.client.verify import verify as verify_dir

    r = verify_dir(dest, fast=fast)
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
@json_option
@click.pass_obj
def repair(s: Settings, origins, dest, seeds, jobs, timeout, retries, max_rate):
    """Re-fetch only what is missing or damaged in a game directory."""
    from pipeline.client.repair import repair as repair_dir

    fetcher = _fetcher(s, origins, timeout, retries, max_rate, jobs)
    with install_progress(f"repair {dest}") as (advance, on_total):
        r = repair_dir(fetcher, dest, seeds=seeds, jobs=jobs, progress=advance, on_total=on_total)
    d = r.to_dict()
    human = f"{r.before.product} {r.before.version} in {dest}: repaired {len(d['repaired'])} entries"
    if r.install:
        human += f", {_mib(r.install.bytes_downloaded)} downloaded, {_mib(r.install.bytes_reused)} reused"
    s.emit(d, human)
    if not r.after.intact:
        click.echo(f"depot: {dest}: still damaged after repair: {sorted(r.after.broken())}", err=True)
        click.get_current_context().exit(errors.FileHashMismatch.exit_code)


# -- the one error handler --------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    settings = Settings()

    def fail(code: str, message: str, exit_code: int) -> int:
        if settings.as_json:
            click.echo(json.dumps({"error": code, "message": message}, sort_keys=True))
        click.echo(f"depot: error: {message} [{code}]", err=True)
        return exit_code

    try:
        code = cli.main(args=argv, prog_name="depot", standalone_mode=False, obj=settings)
        return code if isinstance(code, int) else 0
    except (click.exceptions.Abort, KeyboardInterrupt):
        return fail("INTERRUPTED", "interrupted", EXIT_INTERRUPTED)
    except click.ClickException as exc:
        if settings.as_json:
            click.echo(json.dumps({"error": "USAGE", "message": exc.format_message()}, sort_keys=True))
        exc.show()
        return exc.exit_code
    except errors.DepotError as exc:
        return fail(exc.code, str(exc), exc.exit_code)
    except Exception:  # a bug: say so plainly, with the trace for the report
        traceback.print_exc()
        click.echo("depot: internal error (this is a bug; the trace above says where)", err=True)
        return errors.DepotError.exit_code


if __name__ == "__main__":
    sys.exit(main())
