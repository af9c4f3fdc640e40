"""The file rules of private keys on the release side (docs/trust.md, "Keys at rest").

Signing keys and content keys both follow them. They are apart from the signing keys'
code, so that reading a content key does not import python-tuf or securesystemslib.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from ..errors import SigningKeyRefused


def create(path: Path, data: bytes, mode: int, written: list[Path]) -> None:
    """Write ``data`` to a new file at ``path`` (never an existing one), ``mode`` whatever
    the umask; ``written`` learns the path before anything is written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    written.append(path)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)  # whatever the umask
        f.write(data)


def remove_made(written: list[Path], new_dirs: list[Path]) -> None:
    """Undo a write that failed: remove the files it wrote, then the directories it made
    (``new_dirs``, innermost first; one that is not empty stays)."""
    for path in written:
        path.unlink(missing_ok=True)
    for d in new_dirs:
        with contextlib.suppress(OSError):
            d.rmdir()


def check_private(path: Path) -> None:
    """Refuse a private key file that others than its owner may read."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SigningKeyRefused(f"{path}: a private key readable by others (mode {mode:04o}) is not used: "
                                f"run `chmod 600 {path}`")
