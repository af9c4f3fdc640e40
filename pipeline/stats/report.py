"""stats report: one self-contained HTML file from the exported stats (docs/stats.md).

First a summary table, a row per product, and the contents by product. Then per product:
build size against full download per version; what an update downloads from the previous
version, from five versions back and as a fresh install; what each version added to the
store, the store's cumulative size and dedup; files new, changed, moved and removed per
version, with the largest changes; the patch engines' share and the bytes patches save; the
disk space each update needs. Charts are page wide: Vega-Lite specs (built with Altair),
rendered to SVG by vl-convert and inlined. So the file needs no network, no script and no
font from elsewhere, and a Content-Security-Policy in it says so to the browser. Tables
carry the exact figures. Every string that goes into the HTML is escaped.

``collect(store)`` runs the queries (``stats.collect``); ``render(data)`` makes the HTML
(``stats.render``, its charts in ``stats.charts``); ``report(store, out_path)`` does both
and writes the file, whole or not at all.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import asdict, dataclass

from ..errors import StoreUnavailable
from ..storage import WriteStore
from .collect import ReportData, collect
from .render import render

__all__ = ["ReportData", "ReportResult", "collect", "render", "report"]


@dataclass(frozen=True)
class ReportResult:
    path: str
    bytes: int
    charts: int
    products: tuple[str, ...]
    elapsed_s: float

    def to_dict(self) -> dict:
        d = asdict(self)
        d["products"] = list(self.products)
        return d


def report(store: WriteStore, out_path: str | os.PathLike) -> ReportResult:
    """Write the HTML report of ``store``'s exported stats to ``out_path``."""
    started = time.monotonic()
    data = collect(store)
    page, charts = render(data)
    body = page.encode("utf-8")
    out_path = os.fspath(out_path)
    _write(out_path, body)
    return ReportResult(out_path, len(body), charts, tuple(p.product for p in data.products),
                        round(time.monotonic() - started, 3))


def _write(out_path: str, body: bytes) -> None:
    """The file whole or not at all: a temporary file beside it, renamed into place."""
    tmp = None
    try:
        folder = os.path.dirname(os.path.abspath(out_path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=folder)
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, (FileExistsError, NotADirectoryError)):  # a file where a directory should be
            raise StoreUnavailable(f"{out_path}: cannot write the report ({_file_in(folder)} is not a directory)") from None
        if isinstance(exc, OSError):
            raise StoreUnavailable(f"{out_path}: cannot write the report ({exc.strerror or exc})") from None
        raise


def _file_in(folder: str) -> str:
    """The closest existing ancestor of ``folder``: what stands in the way of making it."""
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    return folder
