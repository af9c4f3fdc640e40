"""What tests share besides fixtures: the fixture builds, the depot command as a process,
killing it mid-run, snapshots of a tree, and JSON over HTTP."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from depot_testing.fixtures import VERSIONS

ROOT = Path(__file__).resolve().parent.parent
PAIRS = [(a, b) for i, b in enumerate(VERSIONS) for a in VERSIONS[:i]]  # every (older, newer)


def unavailable(reason: str):
    """Stop a test whose real part (a broker, a file system feature) is not here. Under CI
    (``CI=true``, as CI services set it) the test fails: the set-up installs that part, so a
    skip would hide a broken set-up. Elsewhere it skips."""
    import pytest

    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{reason} (CI is set: the test set-up must provide it)")
    pytest.skip(reason)


# the depot command, run as a real process (from the source tree, installed or not)
DEPOT = [sys.executable, "-c", "import sys; from depot_app import cli; sys.exit(cli.main())"]


def kill_while_running(args: list[str], delays, after_each) -> int:
    """``kill_when`` with each kill ``delay`` seconds after the start, for work that has no
    point to watch from outside."""
    def after(delay: float):
        started: list[float] = []

        def ready() -> bool:
            started[:] = started or [time.monotonic()]  # the first look comes right after the start
            return time.monotonic() - started[0] >= delay
        return ready

    return kill_when(args, [after(d) for d in delays], after_each)


def kill_when(args: list[str], conditions, after_each) -> int:
    """Start ``args`` (a real process group) once per condition. SIGKILL it as soon as
    ``condition()`` holds while it runs: a point in its work, not a time. Then call
    ``after_each()`` to inspect what it left; stop early if that returns True. Returns how
    many runs were killed."""
    killed = 0
    for ready in conditions:
        proc = subprocess.Popen(args, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        while proc.poll() is None and not ready():
            time.sleep(0.005)  # how often to look, not when to kill
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            killed += 1
        proc.wait()
        if after_each():
            break
    return killed


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and mtime: to prove that nothing was written."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def everything(root: Path) -> dict:
    """Every entry under ``root``, depot's state included: a directory as ("dir",), a link
    with its target, a file with its mtime and SHA-256. To prove that nothing changed."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def get(url: str, path: str) -> tuple[int, dict]:
    """GET ``url + path`` from a JSON API: the status and the decoded body, errors included."""
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url + path, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def fetcher(*urls, locations=None, timeout: float = 10.0, **kw):
    """A client's fetcher over origins given as paths or URLs, with quick retries."""
    from pipeline.client.fetch import Fetcher
    from pipeline.storage import Locations, open_origin

    locations = locations or Locations()
    kw.setdefault("backoff", 0.01)
    return Fetcher([open_origin(dataclasses.replace(locations.resolve(str(u)), timeout=timeout)) for u in urls], **kw)


def tree(root: Path) -> dict:
    """Everything a player's directory holds, as comparable values."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if rel.split("/")[0] == ".depot":
            continue
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir",)
        else:
            out[rel] = ("file", stat.S_IMODE(p.stat().st_mode) & 0o111 != 0, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def assert_installed(dest: Path, build_dir: Path):
    from pipeline.client.verify import verify

    assert tree(dest) == tree(build_dir)
    assert verify(dest).intact


def load_plan(store, product: str, from_version: str, to_version: str) -> dict:
    """An update plan as its JSON document."""
    from pipeline.formats import plan

    return plan.load(store, product, from_version, to_version).to_dict()


def dangling(store) -> list[str]:
    """What an origin names but does not hold: chunks of its manifests, patches of its plans,
    versions its channel pointers deliver, and the metadata its timestamp commits to with
    the documents that metadata names for its channels. Empty for a consistent origin."""
    import json as _json

    from tuf.api.metadata import Metadata

    from pipeline import layout
    from pipeline.formats.channel import Channel
    from pipeline.formats.manifest import Manifest
    from pipeline.formats.plan import Plan

    keys = set(store.list())
    missing = []
    for key in keys:
        plain = layout.plain_key_of(key)
        if layout.version_document_of(plain) and plain.endswith("/manifest.json"):
            m = Manifest.from_bytes(store.get(key), key)
            missing += [f"{key} -> {layout.chunk_key(c)}" for c in m.unique_chunks() if layout.chunk_key(c) not in keys]
        elif layout.plan_pair_of(plain):
            for op in Plan.from_bytes(store.get(key), key).files:
                missing += [f"{key} -> {layout.patch_key(s.id)}" for s in op.segments
                            if layout.patch_key(s.id) not in keys]
        elif layout.channel_of(plain):
            c = Channel.from_bytes(store.get(key), key)
            if layout.manifest_key(c.product, c.version) not in keys:
                missing.append(f"{key} -> {c.product} {c.version}")
    ts_key = layout.metadata_key("timestamp")
    if ts_key in keys:
        ts = Metadata.from_bytes(store.get(ts_key))
        snap_key = layout.metadata_key("snapshot", ts.signed.snapshot_meta.version)
        if snap_key not in keys:
            return missing + [f"{ts_key} -> {snap_key}"]
        snap = Metadata.from_bytes(store.get(snap_key))
        for name, meta in snap.signed.meta.items():
            role_key = layout.metadata_key(name.removesuffix(".json"), meta.version)
            if role_key not in keys:
                missing.append(f"{snap_key} -> {role_key}")
                continue
            for path, info in _json.loads(store.get(role_key))["signed"].get("targets", {}).items():
                hashed = layout.hashed_target_key(path, info["hashes"]["sha256"])
                if layout.channel_of(path) and hashed not in keys:
                    missing.append(f"{role_key} -> {hashed}")
    return sorted(missing)


# a real headless Chromium (Debian's), driven by Playwright (for pages the project writes)


def ensure_chromium() -> str:
    """The chromium binary (Debian's package, installed now if missing)."""
    from depot_testing.debian import ensure_binary

    return ensure_binary("chromium")


class Chromium:
    """Debian's headless Chromium, driven by Playwright (no browser of its own downloaded),
    one page of ``width`` x ``height`` in a fresh profile.

        with Chromium() as browser:
            browser.load("file:///tmp/report.html")
            value = browser.evaluate("document.title")
            png = browser.screenshot()
    """

    def __init__(self, binary: str | None = None, width: int = 1280, height: int = 900, timeout: float = 60.0):
        self.binary = binary or ensure_chromium()
        self.width, self.height, self.timeout = width, height, timeout
        self._problems: list[str] = []
        self._requests: list[str] = []

    def __enter__(self) -> "Chromium":
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(executable_path=self.binary, timeout=self.timeout * 1000,
                                                             args=["--no-sandbox", "--disable-gpu"])
            self.page = self._browser.new_page(viewport={"width": self.width, "height": self.height},
                                               device_scale_factor=1)
        except BaseException:
            self._playwright.stop()
            raise
        self.page.set_default_timeout(self.timeout * 1000)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self._problems.append(f"exception: {error}"))
        self.page.on("request", lambda request: self._requests.append(request.url))
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._browser.close()
        finally:
            self._playwright.stop()

    def _console(self, message) -> None:
        """Console errors and warnings; Chromium logs a blocked load or a CSP violation there too."""
        if message.type in ("error", "assert", "warning"):
            self._problems.append(f"console.{message.type}: {message.text}")

    def load(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self._problems.clear()
        self._requests.clear()
        self.page.goto(url, wait_until="load")

    def evaluate(self, expression: str):
        """A JavaScript expression's value (JSON-able), evaluated in the page."""
        return self.page.evaluate(expression)

    def problems(self) -> list[str]:
        """What the page reported as wrong since the last load: console errors and
        warnings, uncaught exceptions, blocked loads, CSP violations."""
        return list(self._problems)

    def requests(self) -> list[str]:
        """Every URL the page asked for since the last load (the page itself included)."""
        return list(self._requests)

    def screenshot(self, full_page: bool = True) -> bytes:
        return self.page.screenshot(full_page=full_page, type="png")


def png_pixels(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """A PNG decoded with zlib alone (8-bit grey, RGB, grey+alpha or RGBA, not
    interlaced: what Chromium writes): (width, height, channels, rows of raw pixels)."""
    import struct
    import zlib

    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    assert depth == 8 and channels and not interlace, f"unsupported PNG: depth {depth}, colour type {colour}"
    raw = zlib.decompress(b"".join(idat))
    stride, rows, prev = width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, channels, rows


def run_together(fn, argument_tuples) -> None:
    """``fn`` on a thread of its own per argument tuple, all started before any is joined."""
    import threading

    threads = [threading.Thread(target=fn, args=a) for a in argument_tuples]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def signed_player(origin, root: bytes, data: Path, locations=None):
    """A player's fetcher that checks everything against the signed metadata from ``root``,
    as `depot install --trust` does."""
    from pipeline.trust.anchors import Anchors
    from pipeline.trust.checking import TrustedMetadata

    f = fetcher(origin, locations=locations)
    url = f.origins[0].url
    f.trust = TrustedMetadata(f.get, Anchors(data).trust(root, [url]), url)
    return f


def root_of(repo_dir: Path) -> bytes:
    """The first root metadata of the signed repository in ``repo_dir/repo``: what a player
    is given to trust."""
    from pipeline import layout

    return (Path(repo_dir) / "repo" / layout.metadata_key("root", 1)).read_bytes()


def age_tree(root: Path, days: float) -> None:
    """Make every file and directory under ``root`` ``days`` old, as a store is after days."""
    then = time.time() - days * 86400
    for p in root.rglob("*"):
        os.utime(p, (then, then), follow_symlinks=False)


class PauseBefore:
    """A store that stops a writer just before it creates a key ``hold(key)`` accepts, until
    released: a fault point between what a writer found and what it commits."""

    def __init__(self, store, hold):
        import threading

        self._store, self._hold = store, hold
        self.reached, self.released = threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self._store, name)

    def _pause(self, key: str) -> None:
        if self._hold(key):
            self.reached.set()
            assert self.released.wait(120), "never released"

    def put_if_absent(self, key: str, data: bytes) -> bool:
        self._pause(key)
        return self._store.put_if_absent(key, data)

    def put_if_match(self, key: str, data: bytes, tag) -> bool:
        self._pause(key)
        return self._store.put_if_match(key, data, tag)
