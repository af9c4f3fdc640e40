"""Trusted roots, remembered per origin in the user's data folder (not in a game directory:
deleting a game must not reset what the client has already seen).

    <data dir>/trust/origins.json          origin URL -> the root it was first trusted with
    <data dir>/trust/<id>/root.json        that root, as given (``--trust FILE``)
    <data dir>/trust/<id>/metadata/        python-tuf's trusted metadata cache
    <data dir>/trust/<id>/channels.json    the highest serial seen per product channel

``<id>`` is the start of the SHA-256 of the root given: every origin of one repository
(its mirrors, in any order) shares one cache, so no mirror can roll the client back.
The data dir is ``$DEPOT_DATA_DIR``, else ``$XDG_DATA_HOME/depot``, else
``~/.local/share/depot``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import MetadataRollback, StoreUnavailable, TrustMissing


def default_data_dir() -> Path:
    if os.environ.get("DEPOT_DATA_DIR"):
        return Path(os.environ["DEPOT_DATA_DIR"])
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "depot"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Anchor:
    """One trusted root and what the client has learned since, on disk."""

    path: Path

    @property
    def root(self) -> bytes:
        return (self.path / "root.json").read_bytes()

    @property
    def metadata_dir(self) -> Path:
        return self.path / "metadata"

    def check_channel(self, product: str, channel: str, serial: int) -> None:
        """Refuse a channel pointer older than one seen before; remember the newest."""
        path = self.path / "channels.json"
        seen = json.loads(path.read_text()) if path.exists() else {}
        name = f"{product}/{channel}"
        if serial < seen.get(name, 0):
            raise MetadataRollback(f"channel {channel} of {product}: the origin serves pointer serial {serial}, "
                                   f"but serial {seen[name]} was seen before (a replayed, older pointer)")
        if serial > seen.get(name, 0):
            seen[name] = serial
            _write_atomic(path, (json.dumps(seen, sort_keys=True, indent=1) + "\n").encode())


class Anchors:
    def __init__(self, data_dir: Path | None = None):
        self.base = Path(data_dir or default_data_dir()) / "trust"

    def _origins(self) -> dict[str, str]:
        path = self.base / "origins.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def trust(self, root: bytes, origins: list[str]) -> Anchor:
        """Trust ``root`` for ``origins`` from now on."""
        anchor = Anchor(self.base / hashlib.sha256(root).hexdigest()[:16])
        try:
            anchor.metadata_dir.mkdir(parents=True, exist_ok=True)
            if not (anchor.path / "root.json").exists():
                _write_atomic(anchor.path / "root.json", root)
            known = self._origins()
            known.update({o: anchor.path.name for o in origins})
            _write_atomic(self.base / "origins.json", (json.dumps(known, sort_keys=True, indent=1) + "\n").encode())
        except OSError as exc:
            raise StoreUnavailable(f"{self.base}: cannot keep the trusted root ({exc.strerror})") from None
        return anchor

    def find(self, origins: list[str], installed_with: str = "") -> Anchor:
        """The root trusted for the first of ``origins`` that has one; else the root a game
        directory was installed with (``installed_with``), trusted from now on for these
        origins too: a game updated from another mirror of its repository."""
        known = self._origins()
        for o in origins:
            if o in known and (self.base / known[o] / "root.json").exists():
                return Anchor(self.base / known[o])
        if installed_with and (self.base / installed_with / "root.json").exists():
            anchor = Anchor(self.base / installed_with)
            return self.trust(anchor.root, origins)
        raise TrustMissing(f"no trusted root for {', '.join(origins)}: give --trust ROOT.json (the repository's "
                           "root metadata, from its release team) once, or --allow-unsigned for development")
