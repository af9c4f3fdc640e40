"""stats report: one self-contained HTML file from the exported stats (docs/stats.md).

Per product: build size against full download per version; what an update downloads
from the previous version, from five versions back and as a fresh install; what each
version added to the store, the store's cumulative size and dedup; files new, changed,
moved and removed per version with the largest changes; the patch engines' share and the
bytes patches save; the disk space each update needs. Charts are Vega-Lite specs (built
with Altair) rendered to SVG by vl-convert and inlined, so the file needs no network, no
script and no font from elsewhere (a Content-Security-Policy in it says so to the
browser); tables carry the exact figures. Every string that goes into the HTML is escaped.

``collect(store)`` runs the queries (DuckDB over the views of ``stats.query``);
``render(data)`` makes the HTML; ``report(store, out_path)`` does both and writes the file.
"""

from __future__ import annotations

import contextlib
import html
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field

from ..core.versions import sort_versions
from ..errors import StoreUnavailable
from ..storage import WriteStore
from .export import ENGINES
from .query import connect

MiB = 1 << 20
BACK = 5  # "from five versions back"
LARGEST = 12  # rows of the largest-changes table
CHANGES = ("new", "changed", "moved", "removed")
CHANGE_COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#e45756")
PATHS = ("from the previous version", "from the previous version, chunk reuse only", "from five versions back",
         "fresh install (full download)")
PATH_COLOURS = ("#4c78a8", "#9ecae9", "#f58518", "#54a24b")
# The specs are this module's own, the same for any data: checking them against Vega-Lite's
# schema (a fifth of a report's time) is the tests' job, which turn this on.
VALIDATE = False


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


@dataclass
class ProductStats:
    """What the report shows of one product, versions in natural order."""

    product: str
    versions: list[dict]  # rows of ``versions``, plus removed/new/changed/moved counts and running sums
    updates: list[dict]  # rows of ``updates``, oldest target first
    largest: list[dict] = field(default_factory=list)  # the largest new or changed files

    def update(self, from_version: str | None, to_version: str) -> dict | None:
        return self._pairs.get((from_version, to_version)) if from_version else None

    def __post_init__(self):
        self._pairs = {(u["from_version"], u["to_version"]): u for u in self.updates}


@dataclass
class ReportData:
    source: str
    products: list[ProductStats]
    store_stored_bytes: int  # every distinct chunk of every product, as stored
    queries_s: float


def collect(store: WriteStore) -> ReportData:
    """Run the report's queries over ``store``'s exported stats."""
    started = time.monotonic()
    con = connect(store)
    try:
        # the versions view computes the store-wide figures from chunk_uses: once
        con.execute("CREATE TEMP TABLE v AS SELECT * FROM versions")
        versions = _dicts(con, """
            SELECT product::VARCHAR AS product, version, previous_version, files, bytes, unique_bytes,
                   stored_bytes, new_bytes_vs_store, new_stored_bytes_vs_store, new_bytes_vs_previous,
                   new_stored_bytes_vs_previous, dedup_ratio
            FROM v""")
        updates = _dicts(con, "SELECT * REPLACE (product::VARCHAR AS product) FROM updates")
        changes = _dicts(con, """
            SELECT product::VARCHAR AS product, version, change, count(*) AS n FROM files GROUP BY ALL""")
        removed = _dicts(con, """
            SELECT v.product::VARCHAR AS product, v.version, count(*) AS n
            FROM v JOIN files p ON p.product = v.product AND p.version = v.previous_version
            ANTI JOIN files c ON c.product = v.product AND c.version = v.version AND c.path = p.path
            GROUP BY ALL""")
        largest = _dicts(con, f"""
            SELECT f.product::VARCHAR AS product, f.version, f.path, f.change, f.size, f.stored_size,
                   f.size - f.shared_bytes AS new_bytes
            FROM files f JOIN v ON v.product = f.product AND v.version = f.version
            WHERE f.change IN ('new', 'changed') AND v.previous_version IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY f.product ORDER BY f.size DESC, f.version, f.path) <= {LARGEST}""")
        total = con.execute("SELECT coalesce(sum(stored_size), 0) FROM chunks").fetchone()[0]
    finally:
        con.close()

    counts: dict[tuple[str, str], dict[str, int]] = {}
    for r in changes + [dict(r, change="removed") for r in removed]:
        counts.setdefault((r["product"], r["version"]), {})[r["change"]] = r["n"]
    names = sorted({r["product"] for r in versions} | {r["product"] for r in updates})
    products = []
    for name in names:
        rows = {r["version"]: r for r in versions if r["product"] == name}
        ordered = [rows[v] for v in sort_versions(rows)]
        built = stored = 0
        for r in ordered:
            r.update({c: counts.get((name, r["version"]), {}).get(c, 0) for c in (*CHANGES, "same")})
            built += r["bytes"]
            stored += r["new_stored_bytes_vs_store"]
            r["store_stored_bytes"] = stored  # the product's share of the store, so far
            r["dedup_cumulative"] = round(built / stored, 3) if stored else None
        plans = [u for u in updates if u["product"] == name]
        order = {v: i for i, v in enumerate(sort_versions({u["to_version"] for u in plans} |
                                                          {u["from_version"] for u in plans}))}
        plans.sort(key=lambda u: (order[u["to_version"]], order[u["from_version"]]))
        big = sorted((r for r in largest if r["product"] == name), key=lambda r: (-r["size"], r["version"], r["path"]))
        products.append(ProductStats(name, ordered, plans, big))
    return ReportData(store.url, products, int(total), round(time.monotonic() - started, 3))


def _dicts(con, sql: str) -> list[dict]:
    rel = con.sql(sql)
    return [dict(zip(rel.columns, row)) for row in rel.fetchall()]


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


# --------------------------------------------------------------------------
# the page


def e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def mib(n, digits: int = 3) -> float | None:
    return None if n is None else round(n / MiB, digits)


def fmt_mib(n) -> str:
    return "" if n is None else f"{n / MiB:,.3f}"


def fmt_int(n) -> str:
    return "" if n is None else f"{n:,}"


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;
color:#1d1d1f;background:#fafafa}
main{max-width:1120px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:21px;margin:40px 0 8px;padding-top:16px;border-top:2px solid #ddd}
h3{font-size:16px;margin:0 0 6px}
.meta,.note{color:#555}.note{font-size:13px;margin:4px 0 8px}
nav a{margin-right:14px}
figure.chart{margin:18px 0;padding:14px 16px;background:#fff;border:1px solid #e3e3e3;border-radius:6px;overflow-x:auto}
figure.chart svg{display:block;max-width:100%;height:auto}
.empty{margin:18px 0;padding:14px 16px;background:#fff;border:1px dashed #bbb;border-radius:6px;color:#555}
table{border-collapse:collapse;margin:8px 0 18px;background:#fff;font-size:13px}
th,td{border:1px solid #e0e0e0;padding:3px 8px;text-align:left}th{background:#f0f0f0}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
details{margin:8px 0 18px}summary{cursor:pointer;color:#333}
code{font-size:12px}
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def render(data: ReportData) -> tuple[str, int]:
    """The HTML page and how many charts it has."""
    charts = _Charts()
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{e(CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>depot stats report</title>",
        f"<style>{STYLE}</style></head><body><main>",
        "<h1>depot stats report</h1>",
        f'<p class="meta">Stats at <code>{e(data.source)}</code>, '
        f'{e(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))}. Sizes in MiB (2<sup>20</sup> bytes); '
        "<em>stored</em> bytes are what chunks take in the store, compressed where that shrinks them, "
        "which is also what a download costs.</p>",
    ]
    if not data.products:
        parts.append('<p class="empty">Nothing exported yet: run <code>depot stats export</code>, '
                     "then the report again.</p>")
    else:
        parts.append(_summary(data))
        for p in data.products:
            parts.append(_product(p, charts))
    parts.append("</main></body></html>")
    return "\n".join(parts), charts.count


def _table(head: list[str], rows: list[list], numeric: set[int], cls: str = "") -> str:
    out = [f'<table class="{e(cls)}"><thead><tr>' + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(f'<td class="n">{e(c)}</td>' if i in numeric else f"<td>{e(c)}</td>"
                                    for i, c in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _folded(title: str, table: str, rows: int) -> str:
    """A long table folds away; a short one stays open."""
    return f"<details{' open' if rows <= 30 else ''}><summary>{e(title)} ({rows} rows)</summary>{table}</details>"


def _anchor(product: str) -> str:
    return "product-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in product)


def _summary(data: ReportData) -> str:
    rows = []
    for p in data.products:
        last = p.versions[-1] if p.versions else {}
        rows.append([p.product, len(p.versions), len(p.updates), last.get("version", ""), fmt_mib(last.get("bytes")),
                     fmt_mib(last.get("stored_bytes")), fmt_mib(last.get("store_stored_bytes"))])
    links = " ".join(f'<a href="#{e(_anchor(p.product))}">{e(p.product)}</a>' for p in data.products)
    return (f"<nav>{links}</nav>"
            + _table(["product", "versions", "update plans", "latest version", "its build MiB", "its full download MiB",
                      "stored by the product MiB"], rows, {1, 2, 4, 5, 6}, "summary")
            + f'<p class="note">The store holds {fmt_mib(data.store_stored_bytes)} MiB of chunks, every product '
              "together (a chunk two products share is stored and counted once, for the one that brought it "
              "first).</p>")


def _product(p: ProductStats, charts: "_Charts") -> str:
    order = [v["version"] for v in p.versions]
    out = [f'<section class="product" id="{e(_anchor(p.product))}"><h2>{e(p.product)}</h2>',
           f'<p class="meta">{len(order)} version{"s" if len(order) != 1 else ""}, '
           f"{len(p.updates)} update plan{'s' if len(p.updates) != 1 else ''}.</p>"]

    # sizes
    rows = [{"version": v["version"], "series": s, "value": mib(v[k])} for v in p.versions
            for s, k in (("build size (files' bytes)", "bytes"), ("full download (stored)", "stored_bytes"))]
    out.append(charts.lines("Build size and full download per version", rows, order, "MiB",
                            note="What a player has on disk, and what a fresh install downloads.",
                            empty="No version chunked yet."))

    # update paths
    path_rows, table = [], []
    for i, v in enumerate(p.versions):
        prev = order[i - 1] if i >= 1 else None
        back = order[i - BACK] if i >= BACK else None
        u, b = p.update(prev, v["version"]), p.update(back, v["version"])
        figures = (u and u["delta_download_bytes"], u and u["chunk_download_bytes"], b and b["delta_download_bytes"],
                   v["stored_bytes"])
        path_rows += [{"version": v["version"], "series": s, "value": mib(n)} for s, n in zip(PATHS, figures)
                      if n is not None]
        table.append([v["version"], prev or "", fmt_mib(figures[0]), fmt_mib(figures[1]), back or "",
                      fmt_mib(figures[2]), fmt_mib(figures[3]),
                      f"{100 * figures[0] / figures[3]:.1f}" if figures[0] is not None and figures[3] else ""])
    planned = any(r["series"] != PATHS[3] for r in path_rows)
    out.append(charts.lines("Update download by path", path_rows if planned else [], order, "MiB",
                            domain=PATHS, colours=PATH_COLOURS,
                            note="What a player downloads to reach each version: updating from the version "
                                 "before it, from five versions back, or installing it fresh.",
                            empty="No update plan from the previous version or from five versions back: nothing "
                                  "to compare with a fresh install yet (depot diff makes the plans)."))
    if planned:
        out.append(_folded("Update download by path, MiB", _table(
            ["version", "previous", "update MiB", "chunk reuse only MiB", "five back", "update from five back MiB",
             "fresh install MiB", "update % of fresh"], table, {2, 3, 5, 6, 7}), len(table)))

    # what each version added; the store; dedup
    out.append(charts.bars("New unique bytes per version",
                           [{"version": v["version"], "series": "new unique bytes",
                             "value": mib(v["new_bytes_vs_store"])}
                            for v in p.versions], order, "MiB",
                           note="Bytes of the chunks no version of any product had before it: what it added to the "
                                "store, before compression.", empty="No version chunked yet."))
    out.append(charts.lines(f"Store size, cumulative: what {p.product}'s versions stored",
                            [{"version": v["version"], "series": "store size (stored bytes)",
                              "value": mib(v["store_stored_bytes"])} for v in p.versions], order, "MiB",
                            note="The running sum of what each version added to the store, as stored.",
                            empty="No version chunked yet."))
    out.append(charts.lines("Dedup ratio over versions",
                            [{"version": v["version"], "series": s, "value": r} for v in p.versions
                             for s, r in (("all versions so far: bytes built / bytes stored", v["dedup_cumulative"]),
                                          ("inside the version: bytes / unique bytes", v["dedup_ratio"]))
                             if r is not None], order, "×",
                            note="How many bytes of builds each stored byte serves, over the versions so far; and "
                                 "repetition inside each version.", empty="No version chunked yet."))
    out.append(_folded("Versions", _table(
        ["version", "files", "bytes", "build MiB", "full download MiB", "new unique MiB", "added to the store MiB",
         "store so far MiB", "dedup so far ×", "dedup inside ×"],
        [[v["version"], fmt_int(v["files"]), fmt_int(v["bytes"]), fmt_mib(v["bytes"]), fmt_mib(v["stored_bytes"]),
          fmt_mib(v["new_bytes_vs_store"]), fmt_mib(v["new_stored_bytes_vs_store"]), fmt_mib(v["store_stored_bytes"]),
          "" if v["dedup_cumulative"] is None else f"{v['dedup_cumulative']:.2f}", f"{v['dedup_ratio']:.2f}"]
         for v in p.versions], set(range(1, 10)), "versions"), len(p.versions)))

    # files
    out.append(charts.bars("Files new, changed, moved and removed per version",
                           [{"version": v["version"], "series": c, "value": v[c]} for v in p.versions for c in CHANGES
                            if v[c]], order, "files", stack=True, domain=CHANGES, colours=CHANGE_COLOURS,
                           note="Compared with the previous version. Moved: the same bytes under a new path; removed: "
                                "paths of the previous version this one lacks (a moved file's old path among them).",
                           empty="No file changed between versions."))
    out.append(_folded("Files per version", _table(
        ["version", "files", "new", "changed", "moved", "removed", "same"],
        [[v["version"], fmt_int(v["files"]), *(fmt_int(v[c]) for c in (*CHANGES, "same"))] for v in p.versions],
        set(range(1, 7)), "files"), len(p.versions)))
    out.append("<h3>Largest changes</h3>")
    if p.largest:
        out.append(_table(["version", "path", "change", "size MiB", "bytes", "bytes not in the previous version",
                           "stored MiB"],
                          [[r["version"], r["path"], r["change"], fmt_mib(r["size"]), fmt_int(r["size"]),
                            fmt_int(r["new_bytes"]), fmt_mib(r["stored_size"])] for r in p.largest],
                          {3, 4, 5, 6}, "largest"))
    else:
        out.append('<p class="empty">No new or changed file after the first version.</p>')

    # patch engines and what patches save
    out.append(_engines(p, charts))
    saved, disk = [], []
    for i, v in enumerate(p.versions):
        for label, frm in (("from the previous version", order[i - 1] if i >= 1 else None),
                           ("from five versions back", order[i - BACK] if i >= BACK else None)):
            u = p.update(frm, v["version"])
            if u:
                saved.append({"version": v["version"], "series": label,
                              "value": mib(u["chunk_download_bytes"] - u["delta_download_bytes"])})
                disk.append({"version": v["version"], "series": label, "value": mib(u["required_disk_space_bytes"])})
    domain = ("from the previous version", "from five versions back")
    out.append(charts.bars("Bytes saved by patches per update", saved, order, "MiB", domain=domain,
                           colours=(PATH_COLOURS[0], PATH_COLOURS[2]),
                           note="Chunk reuse alone minus what the plan downloads, with its patches.",
                           empty="No update plan from the previous version or from five versions back."))
    out.append(charts.bars("Disk space needed per update", disk, order, "MiB", domain=domain,
                           colours=(PATH_COLOURS[0], PATH_COLOURS[2]),
                           note="What an update needs free on the player's disk while it runs.",
                           empty="No update plan from the previous version or from five versions back."))
    if p.updates:
        out.append(_folded("Update plans", _table(
            ["from", "to", "download MiB", "chunk reuse only MiB", "saved by patches MiB", "full download MiB",
             "% of full", "disk needed MiB", *(f"{n} patches" for n in ENGINES)],
            [[u["from_version"], u["to_version"], fmt_mib(u["delta_download_bytes"]),
              fmt_mib(u["chunk_download_bytes"]), fmt_mib(u["chunk_download_bytes"] - u["delta_download_bytes"]),
              fmt_mib(u["full_download_bytes"]),
              f"{100 * u['delta_download_bytes'] / u['full_download_bytes']:.1f}" if u["full_download_bytes"] else "",
              fmt_mib(u["required_disk_space_bytes"]), *(fmt_int(u[_col("patches", n)]) for n in ENGINES)]
             for u in p.updates], set(range(2, 8 + len(ENGINES))), "updates"), len(p.updates)))
    out.append("</section>")
    return "\n".join(out)


def _col(kind: str, engine: str) -> str:
    return f"{kind}_{engine.replace('-', '_')}"


def _engines(p: ProductStats, charts: "_Charts") -> str:
    count = {n: sum(u[_col("patches", n)] for u in p.updates) for n in ENGINES}
    size = {n: sum(u[_col("patch_bytes", n)] for u in p.updates) for n in ENGINES}
    total = sum(count.values())
    saved = sum(u["chunk_download_bytes"] - u["delta_download_bytes"] for u in p.updates)
    rows = [{"engine": n, "patches": count[n], "label": f"{count[n]} ({100 * count[n] / total:.0f}%)"}
            for n in ENGINES] if total else []
    out = [charts.engines("Patch engines' share of patches", rows,
                          note=f"Patches per engine over the {len(p.updates)} update plans.",
                          empty="No patch made: no update plan yet, or none needed one.")]
    if total:
        out.append(_table(["engine", "patches", "share %", "patch MiB"],
                          [[n, fmt_int(count[n]), f"{100 * count[n] / total:.1f}", fmt_mib(size[n])] for n in ENGINES]
                          + [["all", fmt_int(total), "100.0", fmt_mib(sum(size.values()))]], {1, 2, 3}, "engines"))
        out.append(f'<p class="note">Bytes saved by patches over every plan (chunk reuse alone minus the plan): '
                   f"{e(fmt_mib(saved))} MiB. A plan picks one engine per file or segment, the smallest patch, "
                   "so the saving is the plans', not one engine's.</p>")
    return "\n".join(out)


class _Charts:
    """Charts as inline SVG; counts them. Altair and vl-convert are loaded on first use."""

    def __init__(self):
        self.count = 0
        self._alt = self._vlc = None

    def _load(self):
        if self._alt is None:
            import altair
            import vl_convert

            self._alt, self._vlc = altair, vl_convert
        return self._alt

    def _axis_x(self, order: list[str]):
        alt = self._load()
        return alt.X("version:N", sort=order, scale=alt.Scale(domain=order),
                     axis=alt.Axis(title="version", labelAngle=-45 if len(order) > 8 else 0, labelOverlap=True,
                                   labelLimit=120))

    def _width(self, n: int) -> int:
        return max(560, min(940, 28 * n))

    def _colour(self, domain, colours, series: list[str]):
        alt = self._load()
        present = set(series)
        if domain:  # the fixed colours of the series present
            pairs = [(d, c) for d, c in zip(domain, colours or [None] * len(domain)) if d in present]
            domain, colours = [d for d, _ in pairs], [c for _, c in pairs] if colours else None
        else:
            domain = sorted(present, key=series.index)
        scale = alt.Scale(domain=domain, range=colours) if colours else alt.Scale(domain=domain)
        return alt.Color("series:N", scale=scale, sort=domain,
                         legend=alt.Legend(title=None, orient="bottom", direction="vertical" if len(domain) > 2
                                           else "horizontal", labelLimit=400))

    def lines(self, title, rows, order, unit, *, note="", empty="", domain=None, colours=None) -> str:
        if not rows:
            return self._empty(title, empty)
        alt = self._load()
        series = [r["series"] for r in rows]
        chart = alt.Chart(alt.Data(values=rows)).mark_line(point=alt.OverlayMarkDef(size=36), strokeWidth=2).encode(
            x=self._axis_x(order), y=alt.Y("value:Q", title=unit, scale=alt.Scale(zero=True)),
            color=self._colour(domain, colours, series))
        return self._figure(title, note, chart.properties(width=self._width(len(order)), height=240))

    def bars(self, title, rows, order, unit, *, note="", empty="", stack=False, domain=None, colours=None) -> str:
        if not rows:
            return self._empty(title, empty)
        alt = self._load()
        series = [r["series"] for r in rows]
        enc = dict(x=self._axis_x(order), y=alt.Y("value:Q", title=unit, stack=True if stack else None),
                   color=self._colour(domain, colours, series))
        if not stack and len(set(series)) > 1:
            present = [d for d in domain if d in set(series)] if domain else sorted(set(series), key=series.index)
            enc["xOffset"] = alt.XOffset("series:N", sort=present, scale=alt.Scale(domain=present))
        chart = alt.Chart(alt.Data(values=rows)).mark_bar().encode(**enc)
        return self._figure(title, note, chart.properties(width=self._width(len(order)), height=240))

    def engines(self, title, rows, *, note="", empty="") -> str:
        if not rows:
            return self._empty(title, empty)
        alt = self._load()
        base = alt.Chart(alt.Data(values=rows)).encode(
            y=alt.Y("engine:N", sort=list(ENGINES), title=None),
            x=alt.X("patches:Q", title="patches", scale=alt.Scale(zero=True)))
        chart = base.mark_bar(color="#4c78a8") + base.mark_text(align="left", dx=4).encode(text="label:N")
        return self._figure(title, note, chart.properties(width=420, height=24 * len(rows)))

    def _empty(self, title: str, text: str) -> str:
        return f'<section class="chart-empty"><h3>{e(title)}</h3><p class="empty">{e(text)}</p></section>'

    def _figure(self, title: str, note: str, chart) -> str:
        spec = chart.configure(aria=False, font="DejaVu Sans, sans-serif").configure_view(stroke=None).to_dict(
            validate=VALIDATE)
        svg = self._vlc.vegalite_to_svg(spec)
        self.count += 1
        return (f'<figure class="chart" role="img" aria-label="{e(title)}"><h3>{e(title)}</h3>'
                + (f'<p class="note">{e(note)}</p>' if note else "") + svg + "</figure>")

