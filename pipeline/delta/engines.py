"""Delta engines: make a patch from old bytes to new bytes (core.patching applies it).

Each engine is measured on every file it is tried on, and the smallest patch that
re-applies exactly wins (see diff.py for which engines are tried when). Patches are
self-contained bytes; the engine name travels in the update plan.

- ``zstd-prefix``: zstd with the old bytes as a raw prefix and long-distance matching
  (pyzstd). Fast at low levels (0.3 s for a 60 MB library at level 3; level 19 took 34 s
  there for a patch still twice HDiffPatch's) and at its best on inserted and shifted data.
- ``hdiffpatch``: HDiffPatch (suffix-array matching, zstd-compressed output). About 9 s
  for a 60 MB library, nearly all of it matching; the smallest on executables, where code
  moves and addresses change (0.88 x bsdiff's patch, in a fifth of its time).
- ``bsdiff4``: bsdiff; small files only (its memory is about 17 x the old file).
"""

from __future__ import annotations

from typing import Callable

import bsdiff4
import hdiffpatch
import pyzstd
from pyzstd import CParameter, ZstdDict

from ..core.patching import apply, window_log

__all__ = ["MAKE", "apply"]

ZSTD_LEVEL = 3  # the cheap first try; see diff.py for when more is spent
HDIFF_ZSTD_LEVEL = 17  # compression of HDiffPatch's output: 19 costs 15% more time for 5% less


def _zstd_make(old: bytes, new: bytes, level: int = ZSTD_LEVEL) -> bytes:
    options: dict[int, int] = {
        CParameter.compressionLevel: level,
        CParameter.windowLog: window_log(old, len(new)),
        CParameter.enableLongDistanceMatching: 1,
        CParameter.contentSizeFlag: 1,
    }
    return pyzstd.compress(new, level_or_option=options, zstd_dict=ZstdDict(old, is_raw=True).as_prefix)


def _hdiff_make(old: bytes, new: bytes) -> bytes:
    return hdiffpatch.diff(old, new, hdiffpatch.ZStdConfig(level=HDIFF_ZSTD_LEVEL, window=23), validate=False)


def _bsdiff_make(old: bytes, new: bytes) -> bytes:
    return bsdiff4.diff(old, new)


MAKE: dict[str, Callable[..., bytes]] = {  # (old, new); zstd-prefix also takes a level
    "zstd-prefix": _zstd_make,
    "hdiffpatch": _hdiff_make,
    "bsdiff4": _bsdiff_make,
}
