"""Commands of the build side: ingest, chunk, run (what an upload hook calls), configure,
ls, cat, and diff (the update plans CI builds)."""

from __future__ import annotations

import sys
import time

import click

from .shared import (ByteSize, Settings, install_progress, json_option, mib, product_option, progress_bar,
                     version_option)



def _ingest(s: Settings, source: str, product: str, version: str) -> dict:
    from pipeline.build.ingest import ingest

    with s.executor() as ex, progress_bar(f"ingest {product} {version}") as advance:
        return ingest(s.store, source, product, version, ex, advance, s.locations).to_dict()


def _chunk(s: Settings, product: str, version: str, sealing) -> dict:
    from pipeline.build.chunk import chunk
    from pipeline.formats import inventory

    total = inventory.load(s.store, product, version).file_bytes
    with s.executor() as ex, progress_bar(f"chunk {product} {version}", total) as advance:
        return chunk(s.store, product, version, ex, advance, s.locations, sealing).to_dict()


embargo_option = click.option("--embargo", is_flag=True, help="Build the version embargoed: its new content sealed "
                              "with a content key kept in --keys DIR until `depot release` (also: configure --embargo).")


def _sealing(s: Settings, product: str, version: str, embargo: bool):
    """What the build seals: with the version's content key (made now in --keys DIR, or
    the one made before) when it is embargoed, by ``--embargo`` or the product's setting."""
    from pipeline.build.embargo import sealing_for
    from pipeline.build.products import settings

    if not (embargo or settings(s.store, product).embargo):
        return sealing_for(s.store, product, None)
    from pipeline import layout
    from pipeline.errors import SigningKeyMissing, VersionConflict
    from pipeline.formats import sealed
    from pipeline.trust import content_keys

    name = layout.manifest_key(product, version)
    if s.store.has(name) and not sealed.is_sealed(s.store.get(name)):
        raise VersionConflict(f"{product} {version} was chunked public already: it cannot be embargoed now "
                              "(build the embargoed content as a new version)")
    if not s.keys:
        raise SigningKeyMissing(f"{product} {version} is to be embargoed: its content key is made and kept in the "
                                "release side's keys directory, give it with --keys DIR")
    return sealing_for(s.store, product, content_keys.load_or_create(s.keys, product, version))


def _embargo_of(sealing) -> dict | None:
    return {"key_id": sealing.key_id} if sealing is not None and sealing.key_id else None


def _describe_ingest(r: dict) -> str:
    state = "ingested" if r["created"] else "already ingested (same content)"
    return (f"{r['product']} {r['version']}: {state}: {r['files']} files, {r['dirs']} empty dirs, "
            f"{r['symlinks']} links, {mib(r['bytes'])} from {r['source']} ({r['kind']})")


def _describe_chunk(r: dict) -> str:
    state = ("chunked" if r["created"] else "already chunked") + (
        f" embargoed (content key {r['embargo']['key_id']})" if r.get("embargo") else "")
    return (f"{r['product']} {r['version']}: {state}: {r['files']} files, {mib(r['bytes'])}, "
            f"{r['chunks']} chunks ({r['chunks_new']} new, {r['chunks_reused']} reused), "
            f"{mib(r['stored_bytes_new'])} newly stored, dedup {r['dedup_ratio']}x, {r['elapsed_s']} s")


@click.command()
@click.argument("source")
@product_option
@version_option
@json_option
@click.pass_obj
def ingest(s: Settings, source, product, version):
    """Record the inventory of a build (directory, .zip, .tar, .tar.gz, .tar.zst; local or s3://)."""
    r = _ingest(s, source, product, version)
    s.emit(r, _describe_ingest(r))


@click.command()
@product_option
@version_option
@embargo_option
@json_option
@click.pass_obj
def chunk(s: Settings, product, version, embargo):
    """Cut an ingested build into chunks and write its manifest (signed, in a signed repository)."""
    sign = s.signer(product)
    sealing = _sealing(s, product, version, embargo)
    r = _chunk(s, product, version, sealing)
    r["embargo"] = _embargo_of(sealing)
    r["signed"] = sign()
    s.emit(r, _describe_chunk(r))


@click.command()
@click.argument("source")
@product_option
@version_option
@click.option("--diff-last", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also build update plans from the N chunked versions before this one.")
@click.option("--origin", "origins", multiple=True,
              help="Then publish the version to this CDN origin (a path, s3://, or a location's name). Repeatable.")
@embargo_option
@json_option
@click.pass_obj
def run(s: Settings, source, product, version, diff_last, origins, embargo):
    """The whole pipeline for one uploaded build: ingest, chunk, and optionally diff."""
    from pipeline.build.catalog import chunked_versions
    from pipeline.build.run import ingest_and_chunk
    from pipeline.core.versions import earlier

    sign = s.signer(product)
    for o in origins:  # a mistyped origin is refused before the work, not after
        s.locations.resolve(o)
    sealing = _sealing(s, product, version, embargo)
    started = time.monotonic()
    with s.executor() as ex, install_progress(f"run {product} {version}") as (advance, on_total):
        i, c = (r.to_dict() for r in ingest_and_chunk(s.store, source, product, version, ex, advance, s.locations,
                                                      on_total, sealing))
    c["embargo"] = _embargo_of(sealing)
    plans = []
    if diff_last:
        before = earlier(chunked_versions(s.store, product), version)
        plans = _diff_pairs(s, product, [(a, version) for a in before[-diff_last:]])
    signed = sign()
    pushed = events = None
    published: list[str] = []
    if origins:  # the release side's module, loaded only to publish
        from .release import describe_push, push

        pushed = push(s, product, [version], origins)
        events = s.announce(product, version, "publish", origins)
        published = describe_push(pushed)
    s.emit({"ingest": i, "chunk": c, "plans": plans, "signed": signed, "published": pushed, "events": events,
            "embargo": c["embargo"],
            **{k: c[k] for k in ("bytes", "stored_bytes", "stored_bytes_new", "chunks_new", "chunks_reused", "dedup_ratio")},
            "elapsed_s": round(time.monotonic() - started, 3)},
           "\n".join([_describe_ingest(i), _describe_chunk(c)] + [_describe_plan(p) for p in plans] + published))


@click.command()
@product_option
@click.option("--chunk-min", type=ByteSize(), default=None, help="[default: as configured, else 256KiB]")
@click.option("--chunk-avg", type=ByteSize(), default=None, help="[default: as configured, else 1MiB]")
@click.option("--chunk-max", type=ByteSize(), default=None, help="[default: as configured, else 4MiB]")
@click.option("--segment-size", type=ByteSize(), default=None, help="Split files larger than this over several "
              "tasks [default: as configured, else max(64MiB, 16 x max)]. Tuning only: it never changes the chunks.")
@click.option("--pack-below", type=ByteSize(), default=None, help="Pack files smaller than this into shared chunks; "
              "0: none [default: as configured, else the minimum chunk size].")
@click.option("--embargo/--no-embargo", default=None, help="Build new versions embargoed, as `run --embargo` does "
              "[default: as configured, else not].")
@json_option
@click.pass_obj
def configure(s: Settings, product, chunk_min, chunk_avg, chunk_max, segment_size, pack_below, embargo):
    """Set a product's chunk sizes (for versions chunked from now on); sizes not given stay as they are."""
    import dataclasses

    from pipeline.build.products import configure as configure_product, settings

    given = {"min_size": chunk_min, "avg_size": chunk_avg, "max_size": chunk_max, "segment_size": segment_size}
    before = settings(s.store, product)
    params = dataclasses.replace(before.params, **{k: v for k, v in given.items() if v is not None})
    embargo = before.embargo if embargo is None else embargo
    configure_product(s.store, product, params, before.pack_below if pack_below is None else pack_below, embargo)
    s.emit({"product": product, "chunking": params.to_dict(), "embargo": embargo},
           f"{product}: chunks of {params.min_size} / {params.avg_size} / {params.max_size} bytes (min / avg / max)"
           + ("; new versions embargoed" if embargo else ""))


@click.command()
@product_option
@version_option
@click.argument("path")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="Write here instead of stdout.")
@json_option
@click.pass_obj
def cat(s: Settings, product, version, path, output):
    """Rebuild one file of a version from the store, checking every chunk and the file's SHA-256."""
    from pipeline.client.cat import cat as cat_file, cat_to_file

    from .release import content_keys

    if output is None:
        cat_file(s.store, product, version, path, sys.stdout.buffer, content_keys(s))
        return
    written = cat_to_file(s.store, product, version, path, output, content_keys(s))
    s.emit({"product": product, "version": version, "path": path, "output": output, "bytes": written},
           f"{product} {version} {path}: {written} bytes written to {output}")


@click.command(name="ls")
@click.option("--product", "-p", default=None, help="List this product's versions.")
@json_option
@click.pass_obj
def ls(s: Settings, product):
    """List products, or a product's versions with their state."""
    from pipeline.build import catalog

    if product is None:
        names = catalog.products(s.store)
        s.emit({"products": names}, "\n".join(names) or f"no products in {s.store.location.url}")
        return
    rows = catalog.versions(s.store, product)
    s.emit({"product": product, "versions": [r.to_dict() for r in rows]},
           "\n".join(f"{r.version}\t{r.state}" + (f"\t{r.embargo}" if r.embargo else "") for r in rows))


# -- delta: diff ------------------------------------------------------------------------------


@click.command(name="diff")
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
    sign = s.signer(product)
    results = _diff_pairs(s, product, pairs)
    signed = sign()
    s.emit({**results[0], "signed": signed} if len(results) == 1 and from_version else {"plans": results, "signed": signed},
           "\n".join(_describe_plan(r) for r in results) or "no pairs")


def _diff_pairs(s: Settings, product: str, pairs: list[tuple[str, str]]) -> list[dict]:
    from pipeline.delta.diff import diff
    from pipeline.formats import sealed
    from pipeline.formats.release import key_finder

    from .release import content_keys

    keys = content_keys(s)
    find = key_finder(s.store, product, keys)
    sizes = {v: sealed.load_manifest(s.store, product, v, find).totals()["bytes"] for v in {b for _, b in pairs}}
    total = sum(sizes[b] for _, b in pairs)
    with s.executor() as ex, progress_bar(f"diff {product}", total) as advance:
        return [diff(s.store, product, a, b, ex, advance, keys).to_dict() for a, b in pairs]


def _describe_plan(r: dict) -> str:
    return (f"{r['from_version']} -> {r['to_version']}: {'planned' if r['created'] else 'already planned'}: "
            f"{r['files_patched']} patched, {r['files_copied']} copied, {r['files_fetched']} by chunks, "
            f"{r['files_kept']} kept, {r['entries_removed']} removed; download {mib(r['delta_download_bytes'])} "
            f"(chunks alone {mib(r['chunk_download_bytes'])}, full {mib(r['full_download_bytes'])})")


COMMANDS = (ingest, chunk, run, configure, cat, ls, diff_cmd)
