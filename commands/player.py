"""Commands of the player's side, the reference client: install, update, verify, repair.

They check everything an origin serves against the repository's signed metadata, from a
root trusted once (``--trust ROOT.json``, then remembered for the origin); only
``--allow-unsigned`` (development) reads an unsigned repository."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import click

from pipeline import errors
from pipeline.storage import open_origin

from .shared import ByteSize, Settings, install_progress, json_option, mib, product_option


origin_option = click.option("--origin", "origins", multiple=True,
                             help="Where to download from: a path, s3://, http(s)://, or a location's name. "
                                  "Repeat for failover, in order.")
dest_option = click.option("--dest", required=True, type=click.Path(file_okay=False, path_type=Path),
                           help="The game directory.")
seed_option = click.option("--seed", "seeds", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
                           help="A directory whose files may hold needed chunks (copied, not downloaded). Repeatable.")
jobs_option = click.option("--jobs", "-j", type=click.IntRange(1, 512), default=8, show_default=True,
                           help="Downloads in flight.")


def trust_options(f):
    f = click.option("--trust", "trust_file", envvar="DEPOT_TRUST", default=None,
                     type=click.Path(dir_okay=False, exists=True, path_type=Path),
                     help="The repository's root metadata (root.json), trusted from now on for these origins "
                          "(env DEPOT_TRUST).")(f)
    f = click.option("--allow-unsigned", is_flag=True, envvar="DEPOT_ALLOW_UNSIGNED",
                     help="Read an unsigned repository, checking nothing but content hashes: development only.")(f)
    return f


def _finite(ctx, param, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value}: expected a finite number of seconds", ctx, param)
    return value


def _positive(ctx, param, value: int | None) -> int | None:
    if value is not None and value <= 0:
        raise click.BadParameter(f"{value} is not a rate: give a positive size, e.g. 10MiB (leave it out for no cap)",
                                 ctx, param)
    return value


def network_options(f):
    f = click.option("--timeout", type=click.FloatRange(min=0.1), default=None, callback=_finite,
                     help="Seconds without data before a request is retried [default: the location's, else 10].")(f)
    f = click.option("--retries", type=click.IntRange(min=0), default=3, show_default=True,
                     help="Retries per origin before moving to the next one.")(f)
    f = click.option("--max-rate", type=ByteSize(), default=None, callback=_positive,
                     help="Download at most this many bytes a second (e.g. 10MiB).")(f)
    return f


service_option = click.option("--service", default=None, metavar="URL",
                              help="A lookup service: download through the signed CDN links it gives "
                                   "(with or instead of --origin).")


token_option = click.option("--token", envvar="DEPOT_TOKEN", default=None, metavar="JWT",
                            help="With --service: run as the user's download task there, which the service's API "
                                 "or another terminal can watch, pause, resume or cancel. A bearer token (JWT) "
                                 "naming the user (env DEPOT_TOKEN).")


def download_options(f):
    """What every command that downloads takes: origins, seeds, jobs, network, trust."""
    for option in (trust_options, network_options, jobs_option, seed_option, service_option, origin_option):
        f = option(f)
    return f


def _service(s: Settings, service: str):
    """The location of ``--service``: an http(s) URL, or a location's name for one."""
    loc = s.locations.resolve(service)
    if not loc.is_http:
        raise errors.InvalidLocation(f"--service {service}: the service is an http:// or https:// URL "
                                     "(e.g. http://127.0.0.1:8080)")
    return loc


def _task_api(s: Settings, service: str | None, token: str | None, timeout: float | None = None):
    """The service's tasks API as the user of ``token``; None without a token, or without
    a service when the token comes from $DEPOT_TOKEN (it is for the commands that have one)."""
    if token is None:
        return None
    if not service:
        if click.get_current_context().get_parameter_source("token") is click.core.ParameterSource.ENVIRONMENT:
            return None
        raise click.UsageError("--token runs the download as a task of a service: give --service URL too")
    from pipeline.client.task_session import TaskApi

    return TaskApi(_service(s, service).url, token, timeout or 10.0)


def _notice(message: str) -> None:
    click.echo(f"depot: {message}", err=True)


def _as_task(session, desc: str, work, dest: Path):
    """``work(progress, on_total)`` with a progress bar, run as ``session``'s task when
    there is one."""
    with install_progress(desc) as (advance, on_total):
        if session is None:
            return work(advance, on_total)
        return session.run(lambda: work(session.progress(advance), session.on_total(on_total)), dest)


def _fetcher(s: Settings, origins, timeout: float | None, retries: int, max_rate: int | None, jobs: int,
             trust_file: Path | None, allow_unsigned: bool, seeds=(), service: str | None = None,
             dest: Path | None = None):
    """The fetcher the download options describe (``seeds`` are the command's business)."""
    from pipeline.client.fetch import Fetcher
    from pipeline.core.rate import RateLimiter

    if not origins and not service:
        raise click.UsageError("give --origin (repeatable) or --service")
    locations = [s.locations.resolve(o) for o in origins] + ([_service(s, service)] if service else [])
    for ref, loc in zip(origins, locations):
        if loc.is_local and not os.path.isdir(loc.local_path):  # a name mistyped, or used without its file
            raise errors.StoreUnavailable(f"{ref}: no such directory, and no origin of that name in the locations file "
                                   "(--locations FILE, env DEPOT_LOCATIONS)")
    if timeout is not None:
        locations = [dataclasses.replace(loc, timeout=timeout) for loc in locations]
    stores = [open_origin(loc, connections=jobs) for loc in locations[: len(origins)]]
    if service:
        from pipeline.storage.service_store import ServiceStore

        stores.append(ServiceStore(locations[-1], connections=jobs))
    fetcher = Fetcher(stores, retries=retries, rate=RateLimiter(max_rate) if max_rate else None)
    if allow_unsigned:
        return fetcher
    from pipeline.trust.anchors import Anchors
    from pipeline.trust.checking import read_root

    urls = [loc.url for loc in locations]
    anchors = Anchors()
    if trust_file:
        anchor = anchors.trust(read_root(trust_file), urls)
    else:
        from pipeline.client.game_dir import GameDir

        record = GameDir(Path(dest)).record() if dest else None
        anchor = anchors.find(urls, record.trust if record else "")
    fetcher.check_with(anchor)
    return fetcher


def _describe_install(r: dict) -> str:
    return (f"{r['product']} {r['version']} in {r['dest']}: {r['files']} files, {mib(r['bytes'])}; "
            f"wrote {r['files_written']} files: {mib(r['bytes_downloaded'])} downloaded "
            f"({r['chunks_fetched']} chunks, {r['retries']} retries), {mib(r['bytes_reused'])} reused, {r['elapsed_s']} s")


@click.command()
@product_option
@click.option("--version", "-v", "version", default=None, help="Version to install.")
@click.option("--channel", "-c", default=None, help="Install the version this channel points at.")
@dest_option
@download_options
@token_option
@json_option
@click.pass_obj
def install(s: Settings, product, version, channel, dest, token, **download):
    """Install a version into a directory: resumable, reusing what is on disk."""
    from pipeline.client.install import install as install_version, resolve_version

    if (version is None) == (channel is None):
        raise click.UsageError("give exactly one of --version and --channel")
    api = _task_api(s, download["service"], token, download["timeout"])
    fetcher = _fetcher(s, **download)
    version = version or resolve_version(fetcher, product, channel)
    session = None
    if api is not None:
        from pipeline.client.task_session import download_task

        session = download_task(api, product, version, dest, _notice)
        fetcher.rate = session.guard(fetcher.rate)
    r = _as_task(session, f"install {product} {version}", lambda progress, on_total: install_version(
        fetcher, product, version, dest, seeds=download["seeds"], jobs=download["jobs"], progress=progress,
        on_total=on_total), dest).to_dict()
    if session is not None:
        r["taskId"] = session.id
    s.emit(r, _describe_install(r))


@click.command()
@dest_option
@click.option("--to", "to_version", default=None, help="Version to update to.")
@click.option("--channel", "-c", default=None, help="Update to the version this channel points at.")
@download_options
@token_option
@json_option
@click.pass_obj
def update(s: Settings, dest, to_version, channel, token, **download):
    """Update an installed directory: patches, a chain of plans or chunks, whichever downloads least."""
    from pipeline.client.update import update as update_dir

    if (to_version is None) == (channel is None):
        raise click.UsageError("give exactly one of --to and --channel")
    api = _task_api(s, download["service"], token, download["timeout"])
    fetcher = _fetcher(s, **download, dest=dest)
    session = None
    if api is not None:
        from pipeline.client.game_dir import GameDir
        from pipeline.client.install import resolve_version
        from pipeline.client.task_session import update_task

        installed = GameDir(dest).manifest()
        to_version, channel = to_version or resolve_version(fetcher, installed.product, channel), None
        if to_version != installed.version:  # else nothing to download: no task
            session = update_task(api, dest, to_version, _notice)
            fetcher.rate = session.guard(fetcher.rate)
    r = _as_task(session, f"update {dest}", lambda progress, on_total: update_dir(
        fetcher, dest, to_version, channel, seeds=download["seeds"], jobs=download["jobs"], progress=progress,
        on_total=on_total), dest)
    for f in r.fallbacks:
        click.echo(f"depot: warning: {f['path']}: {f['error']}: {f['message']} (fetched by chunks instead)", err=True)
    d = r.to_dict() | ({"taskId": session.id} if session is not None else {})
    s.emit(d, f"{r.product}: {r.from_version} -> {r.to_version} by {r.method} via {' -> '.join(r.route)}: "
                        f"{mib(r.bytes_downloaded)} downloaded, {r.files_written} files written, "
                        f"{r.patches_applied} patches applied, {len(r.fallbacks)} fell back to chunks")


@click.command()
@dest_option
@click.option("--fast", is_flag=True, help="Sizes, modes and mtimes only (no hashing).")
@token_option
@click.option("--service", default=None, metavar="URL",
              help="With --token: the service to run the check on, as the user's integrity task there.")
@json_option
@click.pass_obj
def verify(s: Settings, dest, fast, service, token):
    """Check a game directory against its installed version; exit 7 if anything is wrong."""
    from pipeline.client.verify import verify as verify_dir

    api = _task_api(s, service, token)
    task_id = None
    if api is not None:
        from pipeline.client.task_session import verify_task

        r, task_id = verify_task(api, dest, fast=fast)
    else:
        r = verify_dir(dest, fast=fast)
    lines = [f"{r.product} {r.version} in {r.dest}: {r.checked} entries checked, "
             f"{len(r.missing)} missing, {len(r.damaged)} damaged, {len(r.unexpected)} unexpected"]
    lines += [f"missing\t{p}" for p in r.missing]
    lines += [f"damaged\t{d['path']}\t{d['reason']}" for d in r.damaged]
    lines += [f"unexpected\t{p}" for p in r.unexpected]
    s.emit(r.to_dict() | ({"taskId": task_id} if task_id else {}), "\n".join(lines))
    if not r.intact:
        click.echo(f"depot: {r.dest}: {len(r.missing)} missing and {len(r.damaged)} damaged entries", err=True)
        click.get_current_context().exit(errors.FileHashMismatch.exit_code)


@click.command()
@dest_option
@download_options
@json_option
@click.pass_obj
def repair(s: Settings, dest, **download):
    """Re-fetch only what is missing or damaged in a game directory."""
    from pipeline.client.repair import repair as repair_dir

    fetcher = _fetcher(s, **download, dest=dest)
    with install_progress(f"repair {dest}") as (advance, on_total):
        r = repair_dir(fetcher, dest, seeds=download["seeds"], jobs=download["jobs"], progress=advance,
                       on_total=on_total)
    d = r.to_dict()
    human = f"{r.before.product} {r.before.version} in {dest}: repaired {len(d['repaired'])} entries"
    if r.install:
        human += f", {mib(r.install.bytes_downloaded)} downloaded, {mib(r.install.bytes_reused)} reused"
    s.emit(d, human)
    if not r.after.intact:
        click.echo(f"depot: {dest}: still damaged after repair: {sorted(r.after.broken())}", err=True)
        click.get_current_context().exit(errors.FileHashMismatch.exit_code)


@click.command()
@product_option
@click.option("--version", "-v", "version", default=None, help="The embargoed version to pre-load.")
@click.option("--channel", "-c", default=None, help="Pre-load the version this channel points at.")
@dest_option
@download_options
@json_option
@click.pass_obj
def preload(s: Settings, product, version, channel, dest, **download):
    """Download an embargoed version before its release, without its key: resumable;
    `install` or `update` then unlocks it at release without downloading it again."""
    from pipeline.client.install import resolve_version
    from pipeline.client.preload import preload as preload_version

    if (version is None) == (channel is None):
        raise click.UsageError("give exactly one of --version and --channel")
    fetcher = _fetcher(s, **download, dest=dest)
    version = version or resolve_version(fetcher, product, channel)
    with install_progress(f"preload {product} {version}") as (advance, on_total):
        r = preload_version(fetcher, product, version, dest, jobs=download["jobs"], progress=advance,
                            on_total=on_total)
    s.emit(r.to_dict(), f"{r.product} {r.version} pre-loaded in {r.dest}: {r.chunks} objects, {mib(r.bytes)} "
                        f"({mib(r.bytes_downloaded)} downloaded now, {r.chunks_present} staged before, "
                        f"{r.chunks_installed} installed already); it unlocks at release"
                        + (f" ({r.release_at})" if r.release_at else ""))


COMMANDS = (install, update, verify, repair, preload)
