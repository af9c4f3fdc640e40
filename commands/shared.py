"""What every command shares: the global settings, the common options, progress bars.

cli.py and each command module import this module; it imports neither of them. It loads
only click and the storage locations: each command imports the rest when it runs.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from pathlib import Path

import click

from pipeline.storage import Locations, open_store


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
        """The private keys of --keys DIR, for commands that sign. The repository's offline
        root keys are left out, with a warning naming their files."""
        if self._keyring is None:
            from pipeline.trust.signing import online_keyring

            self._keyring = online_keyring(self.store, self.keys, self.passphrase)
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
        """The step that signs ``product``'s documents once they are written; the keys are
        checked now, before any work. The step returns the commit's JSON, or None."""
        from pipeline.trust.signing import signer

        sign = signer(self.store, self.keyring, product)
        return lambda: (lambda c: c and c.to_dict())(sign())

    def announce(self, product: str, version: str, action: str, origins=(), channel: str | None = None):
        """Announce a manifest.updated event per origin (see ``events.announce``). Returns
        the delivery report of every event this command announced so far, or None without
        sinks. A sink that is down never fails the command: one warning line per such sink
        goes to stderr as the command ends."""
        if not self.locations.events:  # no sinks: no event code to load
            return None
        from pipeline.publish import events

        return self._delivered(events.announce(self.locations, self.store.location, product, version, action,
                                               origins, channel))

    def announce_release(self, product: str, version: str, key_id: str, released_at: str, origins=(),
                         channels=()):
        """Announce a version.released event per origin, as ``announce`` does."""
        if not self.locations.events:
            return None
        from pipeline.publish import events

        return self._delivered(events.announce_release(self.locations, self.store.location, product, version, key_id,
                                                       released_at, origins, channels))

    def _delivered(self, delivery):
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

    def executor(self):
        from depot_app import dask_cluster

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


# -- progress bars -----------------------------------------------------------------------------


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


# -- options -----------------------------------------------------------------------------------

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

product_option = click.option("--product", "-p", required=True, help="Product name (lowercase, digits, . _ -).")
version_option = click.option("--version", "-v", "version", required=True, help="Version name.")


def mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"
