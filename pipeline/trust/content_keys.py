"""Content keys on the release side: one per embargoed version.

They live in the signing keys' directory (``--keys DIR``), under
``DIR/content/<product>/<version>.json``. They follow the signing keys' file rules
(docs/trust.md, "Keys at rest"). Directories are 0700. Files are 0600, created
exclusively: a key is never overwritten. A file its group or others may read is refused.

A content key is never written to the repository or an origin before its release.
Release publishes it as a signed document (publish.release). Its file is not named
``NAME.key``: a keyring reads every ``*.key`` of the directory as a signing key.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .. import layout
from ..errors import DepotError, InvalidArgument, SigningKeyMissing, StoreUnavailable, VersionConflict
from ..formats.content_key import ContentKey
from .key_files import check_private as _check_private
from .key_files import create as _create
from .key_files import remove_made

CONTENT_DIR = "content"


def path_of(directory: str | os.PathLike, product: str, version: str) -> Path:
    return Path(directory) / CONTENT_DIR / layout.check_product(product) / f"{layout.check_version(version)}.json"


def create(directory: str | os.PathLike, product: str, version: str) -> ContentKey:
    """A new content key for ``product`` ``version``, written to its file; refused
    (VERSION_CONFLICT) if the version has one already: a key is never replaced, or what it
    sealed could never be opened."""
    path = path_of(directory, product, version)
    key = ContentKey.generate(product, version)
    new_dirs = [d for d in path.parents if not d.exists()]  # innermost first
    written: list[Path] = []
    try:
        for d in reversed(new_dirs):
            d.mkdir(mode=0o700, exist_ok=True)  # made meanwhile by another build: as good
            os.chmod(d, 0o700)  # whatever the umask
        _create(path, key.to_bytes(), 0o600, written)
    except FileExistsError:
        raise VersionConflict(f"{path} exists: {product} {version} has a content key already, and a key is never "
                              "replaced") from None
    except OSError as exc:
        remove_made(written, new_dirs)
        raise StoreUnavailable(f"{path}: cannot write the content key ({exc.strerror})") from None
    return key


def load(directory: str | os.PathLike | None, product: str, version: str) -> ContentKey:
    """The content key of ``product`` ``version``: SIGNING_KEY_MISSING without one,
    SIGNING_KEY_REFUSED for a file others may read."""
    if directory is None:
        raise SigningKeyMissing(f"{product} {version} is embargoed: its content key is in the release side's keys "
                                "directory, give it with --keys DIR")
    path = path_of(directory, product, version)
    try:
        _check_private(path)
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyMissing(f"{path}: cannot read the content key of {product} {version} "
                                f"({exc.strerror})") from None
    key = ContentKey.from_bytes(data, str(path))
    if (key.product, key.version) != (product, version):
        raise InvalidArgument(f"{path} is the content key of {key.product} {key.version}, not {product} {version}")
    return key


def load_or_create(directory: str | os.PathLike, product: str, version: str) -> ContentKey:
    """The version's key, made now if it has none (what an embargoed build asks for:
    building it again uses the same key)."""
    try:
        return load(directory, product, version)
    except SigningKeyMissing:
        if path_of(directory, product, version).exists():
            raise
    try:
        return create(directory, product, version)
    except VersionConflict:  # made meanwhile by another build of the version
        return load(directory, product, version)


class ContentKeys:
    """The content keys of a directory, found by id (what opens a sealed object whose
    version is not known, a manifest's header names only its key)."""

    def __init__(self, directory: str | os.PathLike | None):
        self.directory = Path(directory) if directory else None
        self._by_id: dict[str, ContentKey] | None = None

    def find(self, key_id: str) -> ContentKey | None:
        if self.directory is None:
            return None
        if self._by_id is None:
            self._by_id = {}
            for path in sorted((self.directory / CONTENT_DIR).glob("*/*.json")):
                with contextlib.suppress(DepotError, OSError):  # a file not ours, or not readable: not a key here
                    _check_private(path)
                    key = ContentKey.from_bytes(path.read_bytes(), str(path))
                    self._by_id[key.key_id] = key
        return self._by_id.get(key_id)
