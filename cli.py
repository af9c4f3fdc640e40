"""The ``depot`` command: parses arguments, calls pipeline stages, prints results.

This module holds the group and its global options. Its commands are in ``commands/``,
one module per side: build, release, player, stats, service; a command's module is
imported only when the command runs (or a help page lists it). It also holds ``main``,
the one handler that turns every DepotError into its message and exit code
(docs/cli.md). What the commands share is in ``commands/shared.py``.

Installed, this module is ``depot_app.cli``; in the repository it is also ``cli.py`` at
the top, which ``python -m cli`` runs.
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
import threading

import click

from depot_app.commands.shared import Settings, json_option
from pipeline import errors
from pipeline.storage import Locations

EXIT_INTERRUPTED = 130

# The commands of each module of commands/ (each module lists them in COMMANDS too; a
# test checks that the two agree).
COMMANDS = {
    "build": ("ingest", "chunk", "run", "configure", "cat", "ls", "diff"),
    "player": ("install", "update", "verify", "repair", "preload"),
    "release": ("promote", "rollback", "publish", "channels", "release", "keys", "trust", "rm", "gc", "events"),
    "service": ("serve",),
    "stats": ("stats",),
}
_MODULE_OF = {name: module for module, names in COMMANDS.items() for name in names}


class _Interrupted(BaseException):
    """Ctrl-C on its way to ``main``, past click's own handler (which adds a blank line)."""


class _Group(click.Group):
    """The group: it loads a command's module when the command is asked for."""

    def list_commands(self, ctx):
        return sorted(_MODULE_OF)

    def get_command(self, ctx, name):
        if name not in _MODULE_OF:
            return None
        module = importlib.import_module(f"depot_app.commands.{_MODULE_OF[name]}")
        return next(command for command in module.COMMANDS if command.name == name)

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
        import traceback

        traceback.print_exc()
        if settings.as_json:
            click.echo(json.dumps({"error": errors.DepotError.code,
                                   "message": f"internal error: {type(exc).__name__}: {exc}"}, sort_keys=True))
        click.echo("depot: internal error (this is a bug; the trace above says where)", err=True)
        return errors.DepotError.exit_code


if __name__ == "__main__":
    sys.exit(main())
