"""Delta engines: make a patch from old bytes to new bytes (core.patching applies it).

Each engine is measured on every file it is tried on, and the smallest patch that
re-applies exactly wins (see diff.py for which engines are tried when). Patches are
self-contained bytes; the engine name travels in the update plan.

- ``zstd-prefix``: zstd with the old bytes as a raw prefix and long-distance matching
  (pyzstd). Fast at low levels (0.3 s for a 60 MB library at level 3; level 19 took 34 s
  there for a patch still twice HDiffPatch's) and at its best on inserted and shifted data.
- ``hdiffpatch``: HDiffPatch (suffix-array matching, LZMA-compressed output). Most of its
  time builds the suffix array of the old bytes (diff.py cuts large files into pieces to
  spread it over cores); its match cache over the old bytes saves a tenth of it, for the
  same output. The smallest on executables, where code moves and addresses change, and on
  every changed file of the release pairs in docs/benchmarks.md: 0.74x bsdiff's patch.

Patches made by ``bsdiff4`` earlier still apply (core.patching); none are made any more:
HDiffPatch's were smaller on every file measured, in a third of bsdiff's time.
"""

from __future__ import annotations

from typing import Callable

import hdiffpatch
import pyzstd
from pyzstd import CParameter, ZstdDict

from ..core.patching import apply, window_log

__all__ = ["MAKE", "apply"]

ZSTD_LEVEL = 3  # the cheap first try; see diff.py for when more is spent
# HDiffPatch's output compressed with LZMA: 12% smaller than zstd 17 on native libraries
# (zstd 19: 5% smaller, in as much time), 10% of the diff's time, and it decodes at
# hundreds of MB/s.
HDIFF_COMPRESSION = hdiffpatch.LzmaConfig(level=9, window=23)


def _zstd_make(old: bytes, new: bytes, level: int = ZSTD_LEVEL) -> bytes:
    options: dict[int, int] = {
        CParameter.compressionLevel: level,
        CParameter.windowLog: window_log(old, len(new)),
        CParameter.enableLongDistanceMatching: 1,
        CParameter.contentSizeFlag: 1,
    }
    return pyzstd.compress(new, level_or_option=options, zstd_dict=ZstdDict(old, is_raw=True).as_prefix)


def _hdiff_make(old: bytes, new: bytes) -> bytes:
    return hdiffpatch.diff(old, new, HDIFF_COMPRESSION, validate=False, big_cache_match=True)


MAKE: dict[str, Callable[..., bytes]] = {  # (old, new); zstd-prefix also takes a level
    "zstd-prefix": _zstd_make,
    "hdiffpatch": _hdiff_make,
}
