"""Commands of the release side: channels (promote, rollback, channels), releases of
embargoed versions (release), and the key life of a signed repository (keys generate,
trust init / add-key / revoke-key / rotate-key / sign / refresh / status / root). See
docs/trust.md."""

from __future__ import annotations

import math
import re
from pathlib import Path

import click

from pipeline import layout
from pipeline.errors import InvalidArgument, NotFound, StoreUnavailable

from .shared import ByteSize, Settings, json_option, mib, product_option, upload_progress, version_option

channel_option = click.option("--channel", "-c", required=True, help="Channel name, e.g. stable or beta.")
publish_origin_option = click.option("--origin", "origins", multiple=True,
                                     help="Also push to this CDN origin (a path, s3://, or a location's name). Repeatable.")


def _positive_rate(ctx, param, value):
    if value is not None and value <= 0:
        raise click.BadParameter(f"{value} is not a rate: give a positive size, e.g. 50MiB (leave it out for no cap)",
                                 ctx, param)
    return value


def transfer_options(f):
    """How a publish transfers: uploads in flight, retries, bandwidth, read-back."""
    f = click.option("--verify", is_flag=True, help="Read back every object pushed and check it.")(f)
    f = click.option("--max-rate", type=ByteSize(), default=None, callback=_positive_rate,
                     help="Upload at most this many bytes a second, all origins together (e.g. 50MiB).")(f)
    f = click.option("--retries", type=click.IntRange(min=0), default=5, show_default=True,
                     help="Retries per object on a transient failure (5xx, timeout, reset), with backoff.")(f)
    f = click.option("--jobs", "-j", type=click.IntRange(1, 256), default=16, show_default=True,
                     help="Uploads in flight per origin.")(f)
    return f


def push(s: Settings, product: str, versions: list[str], origins, channels=(), jobs: int = 16, retries: int = 5,
         max_rate: int | None = None, verify: bool = False) -> dict | None:
    """Publish to ``origins`` (nothing without any); the JSON report."""
    if not origins:
        return None
    from pipeline.core.rate import RateLimiter
    from pipeline.publish.publish import publish
    from pipeline.storage import open_store

    stores = [open_store(s.locations.resolve(o)) for o in origins]
    with upload_progress(f"publish {product}") as advance:
        r = publish(s.store, stores, product, versions, list(channels), jobs, retries,
                    RateLimiter(max_rate) if max_rate else None, advance, verify, keys=content_keys(s))
    s.committed(f"{product} {', '.join(versions)} is live on {', '.join(map(str, origins))}")
    return r.to_dict()


def content_keys(s: Settings):
    """The release side's content keys (in --keys DIR), by id: what opens an embargoed
    version's sealed documents before release."""
    if not s.keys:
        return None
    from pipeline.trust.content_keys import ContentKeys

    return ContentKeys(s.keys).find


def describe_push(r: dict | None) -> list[str]:
    if not r:
        return []
    return [f"{o['origin']}: {o['uploaded']} objects uploaded ({mib(o['uploaded_bytes'])}), {o['skipped']} already "
            f"there ({mib(o['skipped_bytes'])}), {o['retries']} retries, {o['elapsed_s']} s"
            + (f", {o['verified']} verified" if o["verified"] else "") for o in r["origins"]]


def _describe_pointer(p) -> str:
    return f"{p.product} {p.channel} -> {p.version} (serial {p.serial})"


@click.command()
@product_option
@version_option
@channel_option
@publish_origin_option
@transfer_options
@json_option
@click.pass_obj
def promote(s: Settings, product, version, channel, origins, **transfer):
    """Point a channel of a product at a chunked version (a signed pointer in a signed
    repository); with --origin, make it live there too, the version pushed first."""
    from pipeline.publish.channels import promote as promote_version

    sign = s.signer(product)
    pointer = promote_version(s.store, product, version, channel)
    signed = sign()
    pushed = push(s, product, [version], origins, [channel], **transfer)
    events = s.announce(product, version, "promote", origins, channel)
    s.emit({**pointer.to_dict(), "signed": signed, "published": pushed, "events": events},
           "\n".join([_describe_pointer(pointer)] + describe_push(pushed)))


@click.command()
@product_option
@channel_option
@click.option("--to", "to_version", default=None, help="Version to go back to [default: the one before the current].")
@publish_origin_option
@transfer_options
@json_option
@click.pass_obj
def rollback(s: Settings, product, channel, to_version, origins, **transfer):
    """Point a channel back at an earlier version, as a new pointer with a higher serial."""
    from pipeline.publish.channels import rollback as rollback_channel

    sign = s.signer(product)
    pointer = rollback_channel(s.store, product, channel, to_version)
    signed = sign()
    pushed = push(s, product, [pointer.version], origins, [channel], **transfer)
    events = s.announce(product, pointer.version, "rollback", origins, channel)
    s.emit({**pointer.to_dict(), "signed": signed, "published": pushed, "events": events},
           "\n".join([_describe_pointer(pointer)] + describe_push(pushed)))


@click.command(name="publish")
@product_option
@click.option("--version", "-v", "versions", multiple=True, required=True, help="Version to publish. Repeatable.")
@click.option("--origin", "origins", multiple=True, required=True,
              help="A CDN origin: a path, s3://, or a location's name. Repeatable: all are published at once.")
@click.option("--channel", "-c", default=None, help="Then point this channel at the (last) version, there and here.")
@transfer_options
@json_option
@click.pass_obj
def publish_cmd(s: Settings, product, versions, origins, channel, **transfer):
    """Push versions to CDN origins: data, documents, signed metadata, then the timestamp."""
    versions = list(versions)
    signed = None
    if channel:
        from pipeline.publish.channels import promote as promote_version

        sign = s.signer(product)
        promote_version(s.store, product, versions[-1], channel)
        signed = sign()
    r = push(s, product, versions, origins, [channel] if channel else [], **transfer)
    events = None
    for v in versions:
        events = s.announce(product, v, "promote" if channel and v == versions[-1] else "publish", origins,
                            channel if v == versions[-1] else None)
    s.emit({**r, "signed": signed, "events": events}, "\n".join(describe_push(r)))


@click.command(name="channels")
@product_option
@json_option
@click.pass_obj
def channels_cmd(s: Settings, product):
    """List a product's channels, their versions and their latest moves."""
    from pipeline.publish.channels import channels

    found = channels(s.store, product)
    lines = []
    for c in found:
        lines.append(_describe_pointer(c))
        lines += [f"  {m.at}  serial {m.serial}  {m.action} {m.version}" for m in c.history]
    s.emit({"product": product, "channels": [c.to_dict() for c in found]}, "\n".join(lines) or "no channels")


def _when(ctx, param, value):
    """--at: an ISO 8601 time with its offset (or Z), as an aware datetime."""
    if value is None:
        return None
    import datetime

    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a time: give ISO 8601 with its offset, e.g. "
                                 "2026-12-24T18:00:00Z or 2026-12-24T21:00:00+03:00", ctx, param) from None
    if when.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no offset: say which time zone, e.g. {value}Z for UTC", ctx, param)
    return when


@click.command(name="release")
@click.option("--product", "-p", default=None, help="Product name (with --version).")
@click.option("--version", "-v", "version", default=None, help="The embargoed version to release.")
@click.option("--at", callback=_when, default=None, metavar="TIME",
              help="Release at this time (ISO 8601 with offset, e.g. 2026-12-24T18:00:00Z) [default: now]. Until "
                   "then only the release's time is published; `depot release --due` releases it once it is due.")
@click.option("--due", is_flag=True, help="Release every scheduled release whose time has come (run it from cron).")
@click.option("--channel", "-c", "channels", multiple=True,
              help="Also point this channel at the version (as a pre-load until it is released). Repeatable.")
@publish_origin_option
@transfer_options
@json_option
@click.pass_obj
def release_cmd(s: Settings, product, version, at, due, channels, origins, **transfer):
    """Release an embargoed version: publish its content key (a signed document) and move
    the channels that pre-load it; with --at, schedule it."""
    import datetime

    from pipeline.publish.release import due as due_releases

    now = datetime.datetime.now(datetime.timezone.utc)
    if due == bool(product or version or at):
        raise click.UsageError("give --product and --version (and --at to schedule), or --due alone")
    if not due and not (product and version):
        raise click.UsageError("give both --product and --version")
    todo = [(r.product, r.version) for r in due_releases(s.store, now)] if due else [(product, version)]
    results, lines = [], []
    for p, v in todo:
        result, line = _release_one(s, p, layout.check_version(v), now, at, list(channels), origins, transfer)
        results.append(result)
        lines.append(line)
    if due:
        s.emit({"released": results}, "\n".join(lines) or "no release is due")
    else:
        s.emit(results[0], lines[0])


def _release_one(s: Settings, product: str, version: str, now, at, channels: list[str], origins,
                 transfer: dict) -> tuple[dict, str]:
    from pipeline.formats.release import sealed_key_id
    from pipeline.publish.release import release
    from pipeline.trust import content_keys as keys_on_disk

    if sealed_key_id(s.store, product, version) is None:
        raise InvalidArgument(f"{product} {version} is not embargoed: its content is public already, there is no key "
                              "to release")
    key = keys_on_disk.load(s.keys, product, version)
    sign = s.signer(product)  # the signing keys checked before anything is written
    step = release(s.store, product, version, key, now, at, channels)
    signed = sign()
    pushed = push(s, product, [version], origins, [c.channel for c in step.channels], **transfer)
    events = None
    if step.released:
        events = s.announce_release(product, version, step.key_id, step.at, origins,
                                    [c.channel for c in step.channels])
    what = (f"{product} {version} released (key {step.key_id})" if step.released else
            f"{product} {version} scheduled for release at {step.at} (key {step.key_id} stays on the release side "
            "until `depot release --due` runs then)")
    lines = [what] + [_describe_pointer(c) + (" (pre-load)" if c.preload else "") for c in step.channels]
    return {**step.to_dict(), "signed": signed, "published": pushed, "events": events}, \
        "\n".join(lines + describe_push(pushed))


# -- keys and trust --------------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _lifetimes(expires: tuple[str, ...]) -> dict[str, int]:
    """``ROLE=DURATION`` pairs (``timestamp=12h``, ``root=730d``) as seconds by role."""
    from pipeline.formats.trust_settings import LONGEST

    out = {}
    for item in expires:
        role, _, duration = item.partition("=")
        m = _DURATION.match(duration.strip())
        if not m:
            raise InvalidArgument(f"--expires {item!r}: expected ROLE=DURATION, e.g. timestamp=12h or root=365d")
        seconds = int(m.group(1)) * _SECONDS[m.group(2)]
        if not 1 <= seconds <= LONGEST:
            raise InvalidArgument(f"--expires {item!r}: a lifetime must be at least 1s and at most "
                                  f"{LONGEST // 86400}d")
        out[role.strip()] = seconds
    return out


expires_option = click.option("--expires", multiple=True, metavar="ROLE=DURATION",
                              help="A role's signature lifetime (root, targets, product, snapshot, timestamp; "
                                   "s, m, h or d), e.g. timestamp=12h. Repeatable.")


@click.group()
def keys():
    """Signing keys."""


@keys.command(name="generate")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the key files (made with mode 0700).")
@click.option("--passphrase-env", metavar="VAR", default=None,
              help="Encrypt the private keys with the passphrase in this environment variable.")
@click.option("--passphrase", "ask", is_flag=True, help="Encrypt the private keys with a passphrase asked for on "
              "the terminal.")
@click.argument("names", nargs=-1, required=True)
@json_option
@click.pass_obj
def keys_generate(s: Settings, out, passphrase_env, ask, names):
    """New Ed25519 keys: OUT/NAME.key (private, mode 0600) and OUT/NAME.pub for each NAME."""
    import os
    import sys

    from pipeline.trust.keys import generate

    secret = None
    if passphrase_env and ask:
        raise click.UsageError("give --passphrase-env VAR or --passphrase, not both")
    if passphrase_env:
        if not os.environ.get(passphrase_env):
            raise InvalidArgument(f"--passphrase-env {passphrase_env}: that environment variable is not set or empty")
        secret = os.environ[passphrase_env].encode()
    elif ask:
        if not sys.stdin.isatty():
            raise InvalidArgument("--passphrase asks on a terminal, and stdin is not one: use --passphrase-env VAR")
        secret = click.prompt("Passphrase for the new keys", hide_input=True, confirmation_prompt=True,
                              err=True).encode()
    made = generate(out, list(names), secret)
    s.emit({"keys": [{"name": k.name, "private": str(k.private), "public": str(k.public), "keyid": k.keyid,
                      "encrypted": k.encrypted} for k in made]},
           "\n".join(f"{k.name}: {k.private} (private{', encrypted' if k.encrypted else ''}), {k.public}, "
                     f"key id {k.keyid}" for k in made))


@click.group()
def trust():
    """The repository's signed metadata (TUF): roles, keys, re-signing."""


def _commit_line(what: str, c) -> str:
    if c is None:
        return f"{what}: nothing to sign"
    roles = ", ".join(f"{r} v{v}" for r, v in sorted(c.roles.items()))
    return f"{what}: {roles + ', ' if roles else ''}snapshot v{c.snapshot_version}, timestamp v{c.timestamp_version}"


@trust.command(name="init")
@click.option("--root-key", "root_keys", multiple=True, required=True, type=click.Path(dir_okay=False, exists=True),
              help="A root private key (.key); repeat for several. Root keys are used here and kept offline, "
                   "never in --keys.")
@click.option("--threshold", type=click.IntRange(min=1), default=1, show_default=True,
              help="How many root keys must sign a new root.")
@click.option("--targets-key", required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--snapshot-key", required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--timestamp-key", required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--replace-unfinished", is_flag=True,
              help="Replace the root left by an init that was stopped before it finished. Only when no other "
                   "trust init is running.")
@expires_option
@json_option
@click.pass_obj
def trust_init(s: Settings, root_keys, threshold, targets_key, snapshot_key, timestamp_key, replace_unfinished,
               expires):
    """Create the repository's root of trust and its first metadata."""
    from pipeline.formats.trust_settings import Lifetimes
    from pipeline.trust import repository
    from pipeline.trust.keys import load_signer

    lifetimes = Lifetimes().with_changes(_lifetimes(expires))
    signers = [load_signer(k, s.passphrase) for k in (*root_keys, targets_key, snapshot_key, timestamp_key)]
    root = repository.init(s.store, signers[:len(root_keys)], threshold, *signers[len(root_keys):], lifetimes,
                           replace_unfinished)
    key = layout.metadata_key("root", root.signed.version)
    s.emit({"root": s.store.url_of(key), "version": root.signed.version, "expires": root.signed.expires.isoformat()},
           f"signed: {s.store.url_of(key)} is the root clients trust (give it to them: --trust)")


def _key_arg(f):
    return click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False, exists=True),
                        help="A key file: NAME.pub, or NAME.key.")(f)


@trust.command(name="add-key")
@product_option
@_key_arg
@json_option
@click.pass_obj
def trust_add_key(s: Settings, product, key_file):
    """Give a product a release key (signed with the targets key from --keys)."""
    from pipeline.trust import repository
    from pipeline.trust.keys import load_public

    c = repository.set_keys(s.store, s.keyring(), product, add=[load_public(key_file, s.passphrase)])
    s.emit({"product": product, "commit": c and c.to_dict()}, _commit_line(f"{product}: key added", c))


@trust.command(name="revoke-key")
@product_option
@_key_arg
@json_option
@click.pass_obj
def trust_revoke_key(s: Settings, product, key_file):
    """Take a release key away from a product: what it signs is refused from now on."""
    from pipeline.trust import repository
    from pipeline.trust.keys import load_public

    c = repository.set_keys(s.store, s.keyring(), product, revoke=[load_public(key_file, s.passphrase).keyid])
    s.emit({"product": product, "commit": c and c.to_dict()}, _commit_line(f"{product}: key revoked", c))


@trust.command(name="rotate-key")
@product_option
@click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The new private key (.key): it becomes the product's only release key.")
@json_option
@click.pass_obj
def trust_rotate_key(s: Settings, product, key_file):
    """Replace a product's release keys by a new one, re-signing its metadata with it."""
    from pipeline.trust import repository
    from pipeline.trust.keys import load_signer

    signer = load_signer(key_file, s.passphrase)
    ring = s.keyring()
    ring.add(signer)
    c = repository.set_keys(s.store, ring, product, add=[signer.public_key], only=True)
    s.emit({"product": product, "commit": c and c.to_dict()}, _commit_line(f"{product}: key rotated", c))


@trust.command(name="sign")
@product_option
@json_option
@click.pass_obj
def trust_sign(s: Settings, product):
    """Sign every document of a product not signed yet (manifests, plans, channels)."""
    from pipeline.trust import repository

    c = repository.sign_documents(s.store, s.keyring(), product)
    s.emit({"product": product, "commit": c and c.to_dict()}, _commit_line(product, c))


@trust.command(name="refresh")
@json_option
@click.pass_obj
def trust_refresh(s: Settings):
    """Re-sign snapshot and timestamp, and the roles about to expire (what a cron job runs)."""
    from pipeline.trust import repository

    c = repository.refresh(s.store, s.keyring())
    s.emit({"commit": c.to_dict()}, _commit_line("refreshed", c))


@trust.command(name="status")
@json_option
@click.pass_obj
def trust_status(s: Settings):
    """Every role: version, expiry, keys."""
    from pipeline.trust import repository

    rows = repository.status(s.store)
    s.emit({"roles": [r.to_dict() for r in rows]},
           "\n".join(f"{r.role}\tv{r.version}\texpires {r.expires or '-'}\tsigned by {r.signed} of {len(r.keyids)} "
                     f"keys, {r.threshold} needed" + (": does not verify" if r.version and r.signed < r.threshold
                                                      else "")
                     for r in rows))


@trust.command(name="root")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Where to write it.")
@json_option
@click.pass_obj
def trust_root(s: Settings, output):
    """Write the repository's current root metadata: the file clients are given with --trust."""
    from pipeline.trust import repository

    root = repository.current_root(s.store)
    data = s.store.get(layout.metadata_key("root", root.signed.version))
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        raise StoreUnavailable(f"{output}: cannot write ({exc.strerror})") from None
    s.emit({"output": output, "version": root.signed.version}, f"root v{root.signed.version} written to {output}")


# -- retiring versions and reclaiming space ----------------------------------------------------


@click.command(name="rm")
@product_option
@version_option
@click.option("--origin", "origins", multiple=True,
              help="Also stop offering it on this CDN origin (a path, s3://, or a location's name). Repeatable.")
@json_option
@click.pass_obj
def rm_cmd(s: Settings, product, version, origins):
    """Retire a version (refused while a channel delivers it), or drop an unfinished one;
    with --origin, the origins stop offering it too."""
    from pipeline.delta.diff import write_index
    from pipeline.publish.channels import has_product
    from pipeline.publish.retire import exists, require, retire, withdraw
    from pipeline.storage import open_store

    stores = [open_store(s.locations.resolve(o)) for o in origins]
    try:
        require(s.store, product, version)
        r = None
    except NotFound:
        # Retired here already (an earlier rm stopped before the origins): finish there.
        if not stores or not has_product(s.store, product):
            raise
        if not any(exists(o, product, version) for o in stores):  # a typo, or an earlier rm that finished
            raise NotFound(f"{s.store.url} has no version {version} of {product}, and neither do the origins "
                           "(after an rm that finished, there is nothing left to do)") from None
        r = False
    sign = s.signer(product)
    if r is None:
        r = retire(s.store, product, version)
        if any(layout.plan_pair_of(k) for k in r.removed):
            write_index(s.store, product)  # the index lists only plans that are there
    signed = sign()
    withdrawn = []
    if stores:
        with upload_progress(f"rm {product} {version}") as advance:
            withdrawn = withdraw(s.store, stores, product, version, progress=advance, keys=content_keys(s))
    lines = [f"{product} {version} ({r.state}): {len(r.removed)} documents removed from {s.store.url}" if r else
             f"{product} {version}: retired from {s.store.url} already"]
    lines += [f"{w.origin}: {len(w.removed)} documents removed" for w in withdrawn]
    lines.append("its chunks and patches stay until `depot gc` reclaims them"
                 + ("" if stores else "; the origins offer it until `depot rm --origin` or the next publish there"))
    s.emit({**(r.to_dict() if r else {"product": product, "version": version, "state": "retired", "removed": []}),
            "signed": signed, "origins": [w.to_dict() for w in withdrawn]}, "\n".join(lines))


def _pin(value: str) -> tuple[str, str]:
    product, sep, version = value.partition("=")
    if not sep:
        raise InvalidArgument(f"--pin {value!r}: expected PRODUCT=VERSION")
    return layout.check_product(product), layout.check_version(version)


def _finite(ctx, param, value: float) -> float:
    if not math.isfinite(value):
        raise click.BadParameter(f"{value}: expected a finite number of hours", ctx, param)
    return value


@click.command(name="gc")
@click.option("--origin", "origins", multiple=True,
              help="Collect on this origin instead of the repository (a path, s3://, or a name). Repeatable.")
@click.option("--keep-last", type=click.IntRange(min=0), default=3, show_default=True,
              help="Chunked versions kept per product, newest first.")
@click.option("--keep-history", type=click.IntRange(min=0), default=3, show_default=True,
              help="Latest moves of each channel whose versions are kept.")
@click.option("--pin", "pins", multiple=True, metavar="PRODUCT=VERSION", help="Keep this version too. Repeatable.")
@click.option("--grace", type=click.FloatRange(min=0), default=24.0, show_default=True, callback=_finite,
              help="Hours: nothing younger is deleted, so a publish or build running now is never broken "
                   "(while one runs: more than 1 plus its running time).")
@click.option("--delete", is_flag=True, help="Delete; without it, only report what would go.")
@json_option
@click.pass_obj
def gc_cmd(s: Settings, origins, keep_last, keep_history, pins, grace, delete):
    """Reclaim what no retained version needs (a dry run unless --delete)."""
    from pipeline.publish.gc import Retention, check_pins, gc
    from pipeline.storage import marker, open_store

    retention = Retention(keep_last, keep_history, tuple(_pin(p) for p in pins), grace * 3600)
    stores = [open_store(s.locations.resolve(o)) for o in origins] or [s.store]
    for store in stores:  # every location checked before any is collected
        marker.require(store)
    check_pins(stores, retention.pinned)
    reports = [gc(store, retention, delete, keys=content_keys(s)) for store in stores]
    lines = []
    for r in reports:
        verb = "freed" if delete else "would free"
        lines.append(f"{r.store}: {verb} {r.freed_objects} objects, {mib(r.freed_bytes)}; kept {r.kept_objects} "
                     f"({mib(r.kept_bytes)}), {r.too_young} too young"
                     + (f", {r.foreign} not depot's (left alone)" if r.foreign else "")
                     + f"; listed {r.listed} in {r.list_s} s")
        lines += [f"  {p}: {row['objects']} objects, {mib(row['bytes'])}" for p, row in sorted(r.by_product.items())]
        if r.locked:
            lines.append(f"  no chunk or patch deleted: no key at hand opens {', '.join(r.locked)} (embargoed; "
                         "give the release side's --keys)")
    s.emit({"gc": [r.to_dict() for r in reports]}, "\n".join(lines))


@click.group()
def events():
    """Publish events (the [events] table of the locations file)."""


@events.command(name="flush")
@json_option
@click.pass_obj
def events_flush(s: Settings):
    """Deliver the events waiting in the outbox to every sink that does not have them yet."""
    from pipeline.publish import events as publish_events

    if not s.locations.events:
        raise InvalidArgument("no [events] table in the locations file (--locations FILE): nothing to flush")
    d = publish_events.flush(publish_events.sinks_of(s.locations))
    s.emit(d.to_dict(), "\n".join(f"{name}: {r['delivered']} delivered, {r['pending']} pending"
                                  + (f" ({r['error']})" if r.get("error") else "") for name, r in d.to_dict().items()))
    if d.pending:  # the report is printed; the exit code says that the outbox is not empty
        still = "; ".join(f"{name}: {r.pending} ({r.error})" for name, r in d.pending)
        click.echo(f"depot: error: events still pending after the flush, {still} [{StoreUnavailable.code}]", err=True)
        click.get_current_context().exit(StoreUnavailable.exit_code)


COMMANDS = (promote, rollback, publish_cmd, channels_cmd, release_cmd, keys, trust, rm_cmd, gc_cmd, events)
