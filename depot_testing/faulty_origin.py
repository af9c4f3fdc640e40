"""A real HTTP origin on 127.0.0.1 that injects faults: ``FaultyOrigin(root, faults=...,
seed=...)`` is a ``StaticOrigin`` answering some requests with connection resets, 500/503,
truncated, corrupted, stalled or wrong bodies, with seeded probabilities, so that a
client's retries and failover can be exercised against a real socket::

    with FaultyOrigin(repo_dir, {"reset": 0.2, "corrupt": 0.1}, only_prefix="/chunks/") as origin:
        client.fetch(origin.url + "/chunks/ab/abcdef...")
"""

from __future__ import annotations

import os
import random
import socket
import struct
import threading
from pathlib import Path

from .http_origins import StaticOrigin, _Handler, _Response, _text

__all__ = ["FAULT_KINDS", "FaultyOrigin"]

#: Fault kinds understood by ``FaultyOrigin``, in the order a draw walks them when the
#: ``faults`` mapping is given in this order.
FAULT_KINDS = ("reset", "500", "503", "truncate", "corrupt", "stall", "wrong")


class FaultyOrigin(StaticOrigin):
    """A ``StaticOrigin`` that injects faults.

    ``faults`` maps a kind of ``FAULT_KINDS`` to its probability (the sum at most 1). Each
    request whose decoded path starts with ``only_prefix`` (every request when empty) takes one
    draw of a ``random.Random(seed)`` under a lock, so the outcome is reproducible given the
    request order; the kinds are walked in the mapping's order, each taking its slice of [0, 1).

    - ``reset``: the connection is closed with SO_LINGER 0 and no response (the client sees
      ECONNRESET, or ``http.client.RemoteDisconnected``).
    - ``500`` / ``503``: that status with a short text body (the connection is kept).
    - ``truncate``: headers with the full Content-Length, half the body, then the connection
      is closed (``http.client.IncompleteRead``).
    - ``corrupt``: status and length as usual, the middle byte of the body inverted.
    - ``stall``: headers, then ``stall_seconds`` of silence (cut short by ``stop()``), then
      the body.
    - ``wrong``: 200 with the whole content of another file of the same directory that differs
      from the requested one (failing that, of any such file under root), with its own
      Content-Length.

    The body faults (``truncate``, ``corrupt``, ``stall``) apply to GET responses with a
    non-empty 200/206 body, ``wrong`` to GET and HEAD of existing files; otherwise the drawn
    fault is not injected and the normal response is sent. ``fault_counts`` (kind -> count)
    counts only injected faults.

    ``fail_all = True`` (settable at any time) resets every request, whatever its path, without
    a draw (counted as ``reset``): a dead origin that still accepts connections.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        faults: dict[str, float] | None = None,
        seed: int = 0,
        stall_seconds: float = 5.0,
        only_prefix: str = "",
    ) -> None:
        self._fault_lock = threading.Lock()
        self._faults = self._validated(faults)
        self.seed = seed
        self._rng = random.Random(seed)
        self.stall_seconds = stall_seconds
        self.only_prefix = only_prefix
        self.fail_all = False
        self.fault_counts: dict[str, int] = {k: 0 for k in FAULT_KINDS}
        super().__init__(root)

    @property
    def faults(self) -> dict[str, float]:
        with self._fault_lock:
            return dict(self._faults)

    def set_faults(self, faults: dict[str, float] | None) -> None:
        """Replace the fault probabilities (the random sequence goes on, it is not reseeded)."""
        validated = self._validated(faults)
        with self._fault_lock:
            self._faults = validated

    @staticmethod
    def _validated(faults: dict[str, float] | None) -> dict[str, float]:
        out: dict[str, float] = {}
        for kind, p in (faults or {}).items():
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
            p = float(p)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"probability of {kind!r} out of [0, 1]: {p}")
            out[kind] = p
        if sum(out.values()) > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities sum to more than 1: {out}")
        return out

    def _draw(self, path: str) -> str | None:
        if self.only_prefix and not path.startswith(self.only_prefix):
            return None
        with self._fault_lock:
            x = self._rng.random()
            acc = 0.0
            for kind, p in self._faults.items():
                acc += p
                if x < acc:
                    return kind
        return None

    def _injected(self, kind: str) -> None:
        with self._fault_lock:
            self.fault_counts[kind] += 1

    @staticmethod
    def _reset(handler: _Handler) -> None:
        handler.close_connection = True
        sock = handler.connection
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        # The buffered reader holds a reference to the socket: release it so that close()
        # really closes the descriptor (and sends the RST) now. (The writer holds none.)
        try:
            handler.rfile.close()
        except (OSError, ValueError):
            pass
        sock.close()

    def _serve(self, handler: _Handler, path: str, head: bool) -> None:
        if self.fail_all:
            self._injected("reset")
            self._reset(handler)
            return
        kind = self._draw(path)
        if kind is None:
            super()._serve(handler, path, head)
            return
        if kind == "reset":
            self._injected(kind)
            self._reset(handler)
            return
        if kind in ("500", "503"):
            self._injected(kind)
            self._write(handler, _text(int(kind), f"injected fault {kind}"), head)
            return

        resp = self._build(path, handler.headers.get("Range"))
        if resp.status not in (200, 206):
            self._write(handler, resp, head)
            return
        if kind == "wrong":
            other = self._other_content(path)
            if other is not None:
                self._injected(kind)
                resp = self._file_response(other, None)
            self._write(handler, resp, head)
            return
        if head or not resp.body:
            self._write(handler, resp, head)
            return

        self._injected(kind)
        if kind == "truncate":
            self._send_head(handler, resp)
            handler.wfile.write(resp.body[: len(resp.body) // 2])
            handler.close_connection = True
        elif kind == "corrupt":
            body = bytearray(resp.body)
            body[len(body) // 2] ^= 0xFF
            self._write(handler, _Response(resp.status, bytes(body), resp.headers), head)
        elif kind == "stall":
            self._send_head(handler, resp)
            if self._stopping.wait(self.stall_seconds):
                handler.close_connection = True
                return
            handler.wfile.write(resp.body)
        else:  # pragma: no cover - kinds are validated
            raise AssertionError(kind)

    def _other_content(self, path: str) -> bytes | None:
        """The content of another file, differing from the one at ``path``: first in the same
        directory (the next names in sorted order, wrapping round), then anywhere under root."""
        own = self._read(path)
        own_file = self._resolve(path)
        if own is None or own_file is None:
            return None
        parent, _, name = path.rpartition("/")
        parent_dir = self._root.joinpath(*[p for p in parent.split("/") if p])
        try:
            names = sorted(e.name for e in os.scandir(parent_dir))
        except OSError:
            names = []
        i = names.index(name) + 1 if name in names else 0
        for other in names[i:] + names[:i]:
            data = self._read(f"{parent}/{other}")
            if other != name and data is not None and data != own:
                return data
        for dirpath, dirnames, filenames in os.walk(self._root):
            dirnames.sort()
            for fname in sorted(filenames):
                f = Path(dirpath, fname)
                try:
                    resolved = f.resolve(strict=True)
                except (OSError, RuntimeError):
                    continue
                if resolved == own_file or not resolved.is_relative_to(self._root) or not resolved.is_file():
                    continue
                try:
                    data = resolved.read_bytes()
                except OSError:
                    continue
                if data != own:
                    return data
        return None
