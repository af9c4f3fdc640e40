"""The ``depot`` command: parses arguments, calls pipeline stages, prints results.

This module holds the group, its global options, what commands share, and ``main``: the
one handler that turns every DepotError into its message and exit code (docs/cli.md).
The commands are in ``commands/``, by side: build, release, player, stats, service.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import traceback
from pathlib import Path

import click

import dask_cluster
from pipeline import errors
from pipeline.storage import Locations, open_store

EXIT_INTERRUPTED = 130


class Settings:
    """The global options, filled in once the group's options are parsed."""

    def __init__(self):
        self.repo = "./depot-repo"
        self.as_json = False
        self.scheduler: str | None = None
        self.workers: int | None = None
        self.locations = Locations()
        self.keys: str | None = None
        self._keyring = None
        self.delivery = None  # what this command's events did, once it announced any
        self.commit: str | None = None  # what the command has made final, once it has

    @property
    def store(self):
        return open_store(self.locations.resolve(self.repo))

    def keyring(self):
        """The private keys of --keys DIR, for commands that sign: never the repository's
        offline root keys (left out, with a warning naming their files). A root key that an
        online role also uses is kept, or nothing could be signed."""
        if self._keyring is None:
            from pipeline.trust import repository
            from pipeline.trust.keys import Keyring

            self._keyring = Keyring(self.keys, repository.offline_keyids(self.store), self.passphrase)
            for path in self._keyring.skipped:
                click.echo(f"depot: warning: {path} is a root key of the repository: not used from --keys "
                           "(keep root keys offline; give them with --root-key where needed)", err=True)
        return self._keyring

    def passphrase(self, path: Path) -> bytes | None:
        """The passphrase of an encrypted key: $DEPOT_KEY_PASSPHRASE, else asked for on a terminal."""
        from pipeline.trust.keys import passphrase_from_env

        found = passphrase_from_env(path)
        if found is None and sys.stdin.isatty():
            found = click.prompt(f"Passphrase for {path}", hide_input=True, default="", show_default=False,
                                 err=True).encode() or None
        return found

    def signer(self, product: str):
        """Checked before any work: in a signed repository, the keys to sign ``product``'s
        documents must be at hand. Returns the step that signs them once they are written
        (a no-op in an unsigned repository)."""
        from pipeline.trust import is_signed

        store = self.store
        if not is_signed(store):
            return lambda: None
        from pipeline.trust import repository

        ring = self.keyring()
        repository.check_can_sign(store, ring, product)
        return lambda: (lambda c: c and c.to_dict())(repository.sign_documents(store, ring, product))

    def announce(self, product: str, version: str, action: str, origins=(), channel: str | None = None):
        """Emit a manifest.updated event per origin (the repository when none) to the sinks
        of the locations file's [events] table; the delivery report of every event this
        command announced so far, or None without sinks. An unreachable sink never fails the
        command: its events wait in the outbox, and one warning line per such sink goes to
        stderr as the command ends."""
        if not self.locations.events:
            return None
        from pipeline import layout
        from pipeline.publish import events

        sinks = self.events_sinks()
        key = layout.manifest_key(product, version)
        places = [self.locations.resolve(o) for o in origins] or [self.store.location]
        announced = []
        for loc in places:
            url = f"{loc.public_url.rstrip('/')}/{key}" if loc.public_url else loc.child(key).url
            name = next((n for n, named in self.locations.named if named.url == loc.url), loc.url)
            announced.append(events.manifest_updated(product, version, url, action=action, channel=channel,
                                                     origin=name))
        delivery = events.emit(sinks, *announced)
        if self.delivery is None:
            click.get_current_context().call_on_close(self._warn_pending)
            self.delivery = delivery
        else:
            self.delivery = self.delivery.then(delivery)
        return self.delivery.to_dict()

    def _warn_pending(self) -> None:
        for name, r in self.delivery.pending:
            click.echo(f"depot: warning: events: {name}: {r.pending} pending ({r.error}); they wait in the outbox "
                       f"for `depot events flush`", err=True)

    def events_sinks(self):
        from pipeline.publish.events import EventSinks
        from pipeline.trust.anchors import default_data_dir

        table = dict(self.locations.events)
        base = Path(self.locations.path).parent if self.locations.path else Path(".")
        for key in ("jsonl", "outbox"):  # relative to the locations file, like its other paths
            if isinstance(table.get(key), str) and not Path(table[key]).is_absolute():
                table[key] = str(base / table[key])
        return EventSinks.from_table(table, default_data_dir() / "outbox")

    def executor(self):
        # A memory:// repository lives in this process: its jobs cannot go to workers.
        in_process = self.store.location.scheme == "memory"
        return dask_cluster.executor_for(self.scheduler, self.workers, in_process)

    def committed(self, what: str) -> None:
        """Say that the command's commit is done: an interrupt from now until the result is
        printed says so, not just "interrupted"."""
        self.commit = what

    def emit(self, result: dict, human: str) -> None:
        # The work is done: Ctrl-C from here on is too late to stop anything, and must not
        # turn the result into an interrupt (the command ends with its own exit code).
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, _too_late)
        if self.as_json:
            click.echo(json.dumps(result, sort_keys=True))
        else:
            click.echo(human)


def _too_late(signum, frame) -> None:
    """Ctrl-C once the result is out: nothing left to stop."""


class _NoBar(contextlib.nullcontext):
    """What a bar is off a terminal: nothing, and no tqdm to import (10 ms of every command)."""

    total = None

    def __enter__(self):
        return self

    def update(self, n: int = 1) -> None:
        pass

    def refresh(self) -> None:
        pass


def _bar(desc: str, total: int | None):
    """A byte progress bar on stderr, shown only when stderr is a terminal."""
    if not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total or None, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                disable=None, leave=False)


@contextlib.contextmanager
def progress_bar(desc: str, total: int = 0):
    with _bar(desc, total) as bar:
        yield bar.update


@contextlib.contextmanager
def upload_progress(desc: str):
    """Bytes pushed, and an ETA once the total is known; the total grows as origins learn
    what they lack, so the bar counts up without one."""
    with _bar(desc, None) as bar:
        yield bar.update


@contextlib.contextmanager
def install_progress(desc: str):
    """A bar whose total is known only once the work has looked at its input (install at
    the disk, run at the build)."""
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


# Accepted before and after the command name; eager, so that usage errors found once the
# options are parsed (a missing argument, a bad value) are reported in JSON too.
json_option = click.option("--json", "as_json", is_flag=True, expose_value=False, is_eager=True, callback=_set_json,
                           help="Print a JSON result (or error) on stdout.")


class _Interrupted(BaseException):
    """Ctrl-C on its way to ``main``, past click's own handler (which adds a blank line)."""


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise _Interrupted from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--repo", envvar="DEPOT_REPO", default="./depot-repo", show_default=True,
              help="Repository: a path, file://, s3://bucket/prefix, memory://, or a location's name (env DEPOT_REPO).")
@json_option
@click.option("--scheduler", envvar="DEPOT_SCHEDULER", default=None,
              help="Run the tasks on the Dask scheduler at this address (env DEPOT_SCHEDULER) [default: threads in "
                   "this process].")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Run the tasks on a local Dask cluster of N worker processes [default: threads in this process].")
@click.option("--locations", "locations_file", envvar="DEPOT_LOCATIONS", default=None,
              type=click.Path(dir_okay=False),
              help="TOML file naming locations with their endpoint, region, profile and timeout (env DEPOT_LOCATIONS).")
@click.option("--s3-endpoint", envvar="DEPOT_S3_ENDPOINT", default=None,
              help="S3 endpoint for s3:// locations the locations file does not cover (env DEPOT_S3_ENDPOINT).")
@click.option("--keys", envvar="DEPOT_KEYS", default=None, type=click.Path(file_okay=False),
              help="Directory of private keys to sign with, in a signed repository (env DEPOT_KEYS).")
@click.version_option(package_name="depot")
@click.pass_obj
def cli(s: Settings, repo, scheduler, workers, locations_file, s3_endpoint, keys):
    """depot: turn game builds into chunks, manifests and patches for delivery."""
    s.repo, s.scheduler, s.workers, s.keys = repo, scheduler, workers, keys
    s.locations = Locations.load(locations_file, s3_endpoint)


product_option = click.option("--product", "-p", required=True, help="Product name (lowercase, digits, . _ -).")
version_option = click.option("--version", "-v", "version", required=True, help="Version name.")


def mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


# -- the one error handler --------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv``; the exit code. Without ``argv``, main is the program
    (its command line is ``sys.argv``) and the process ends once it returns: Ctrl-C is then
    ignored, so that one pressed while the interpreter shuts down (Dask's exit hooks
    included) cannot turn the exit code into a death by signal. Called with ``argv``, it
    leaves Ctrl-C handled as it found it."""
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if on_main_thread else None
    try:
        return _main(argv)
    finally:
        if on_main_thread and argv is None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        elif on_main_thread and previous is not None:
            signal.signal(signal.SIGINT, previous)


def _main(argv: list[str] | None) -> int:
    settings = Settings()

    def fail(code: str, message: str, exit_code: int) -> int:
        if settings.as_json:
            click.echo(json.dumps({"error": code, "message": message}, sort_keys=True))
        click.echo(f"depot: error: {message} [{code}]", err=True)
        return exit_code

    try:
        code = cli.main(args=argv, prog_name="depot", standalone_mode=False, obj=settings)
        return code if isinstance(code, int) else 0
    except (click.exceptions.Abort, KeyboardInterrupt, _Interrupted):
        # One line, whatever else Ctrl-C hits now: the command is over.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        if sys.stderr.isatty():
            click.echo(err=True)  # after the terminal's ^C
        if settings.commit:
            return fail("INTERRUPTED", f"interrupted after the commit: {settings.commit}; "
                                       "run the command again for the rest", EXIT_INTERRUPTED)
        return fail("INTERRUPTED", "interrupted", EXIT_INTERRUPTED)
    except click.ClickException as exc:
        args = sys.argv[1:] if argv is None else argv
        # An option the parser refused can stop it before --json is read: look for it.
        if settings.as_json or "--json" in args[: args.index("--") if "--" in args else len(args)]:
            click.echo(json.dumps({"error": "USAGE", "message": exc.format_message()}, sort_keys=True))
        exc.show()
        return exc.exit_code
    except errors.DepotError as exc:
        return fail(exc.code, str(exc), exc.exit_code)
    except Exception as exc:  # a bug: say so plainly, with the trace for the report
        traceback.print_exc()
        if settings.as_json:
            click.echo(json.dumps({"error": errors.DepotError.code,
                                   "message": f"internal error: {type(exc).__name__}: {exc}"}, sort_keys=True))
        click.echo("depot: internal error (this is a bug; the trace above says where)", err=True)
        return errors.DepotError.exit_code


# The commands register themselves with the group above.
from commands import build, player, release, service, stats  # noqa: E402,F401

if __name__ == "__main__":
    import cli as registered  # the module the commands registered with, not this __main__ copy

    sys.exit(registered.main())
