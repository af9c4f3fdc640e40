"""The report page, one HTML document. First a summary table, a row per product, and the
contents: a link to each product's section and its parts. Then per product the charts and
the tables with the exact figures. The style is inline, and a Content-Security-Policy
allows nothing from elsewhere. Every string that goes into it is escaped."""

from __future__ import annotations

import time

from .charts import Charts
from .collect import CHANGES, ProductStats, ReportData
from .export import ENGINES
from .markup import e, fmt_int, fmt_mib, folded, mib, table

BACK = 5  # "from five versions back"
CHANGE_COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#e45756")
PATHS = ("from the previous version", "from the previous version, chunk reuse only", "from five versions back",
         "fresh install (full download)")
PATH_COLOURS = ("#4c78a8", "#9ecae9", "#f58518", "#54a24b")


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;
color:#1d1d1f;background:#fafafa}
main{max-width:1120px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:21px;margin:40px 0 8px;padding-top:16px;border-top:2px solid #ddd}
h3{font-size:16px;margin:0 0 6px}
.meta,.note{color:#555}.note{font-size:13px;margin:4px 0 8px}
nav.contents ol{margin:8px 0 0;padding-left:20px}nav.contents li{margin:2px 0}
nav.contents li a:first-child{font-weight:600}nav.contents .parts a{margin-left:10px;font-size:13px}
.top{font-size:13px}
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
    charts = Charts()
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
        parts.append(_contents(data))
        for p in data.products:
            parts.append(_product(p, charts))
    parts.append("</main></body></html>")
    return "\n".join(parts), charts.count


# A product's section in parts, each a link in the contents: (name, anchor suffix).
PARTS = (("Sizes", "sizes"), ("Pre-load", "preload"), ("Updates", "updates"), ("Store and dedup", "store"),
         ("Files", "files"), ("Patches and disk", "patches"))
PRELOAD = ("fresh install", "from the previous version")


def _parts(p: ProductStats) -> tuple[tuple[str, str], ...]:
    """The parts of a product's section: Pre-load only where a version was embargoed."""
    return tuple(part for part in PARTS if part[1] != "preload" or any(v["embargoed"] for v in p.versions))


def _anchor(product: str, part: str = "") -> str:
    """A product's id, or its part's: the part comes first, so no product name makes another's part."""
    return (f"{part}-" if part else "") + "product-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in product)


def _summary(data: ReportData) -> str:
    """One row per product: the first thing on the page."""
    rows = []
    for p in data.products:
        last = p.versions[-1] if p.versions else {}
        built, stored = sum(v["bytes"] for v in p.versions), last.get("store_stored_bytes")
        rows.append([f'<a href="#{e(_anchor(p.product))}">{e(p.product)}</a>', len(p.versions), len(p.updates),
                     last.get("version", ""), fmt_mib(last.get("bytes")), fmt_mib(last.get("stored_bytes")),
                     fmt_mib(stored), f"{built / stored:.2f}" if stored else "", _when(p.last_publish)])
    return (table(["product", "versions", "update plans", "latest version", "its build MiB", "its full download MiB",
                   "stored by the product MiB", "dedup ×", "last publish"], rows, {1, 2, 4, 5, 6, 7}, "summary",
                  markup={0})
            + '<p class="note">Dedup: the bytes of every version built, per byte the product stored.</p>'
            + f'<p class="note">The store holds {fmt_mib(data.store_stored_bytes)} MiB of chunks, every product '
              "together (a chunk two products share is stored and counted once, for the one that brought it "
              "first).</p>")


def _when(at: str | None) -> str:
    """An ISO 8601 UTC time to the minute: "2025-03-01 14:05 UTC"."""
    return "never" if not at else f"{at.replace('T', ' ')[:16]} UTC"


def _contents(data: ReportData) -> str:
    """By product: a link to its section, then to each of its parts."""
    items = [f'<li class="product"><a href="#{e(_anchor(p.product))}">{e(p.product)}</a><span class="parts">'
             + "".join(f'<a href="#{e(_anchor(p.product, key))}">{e(name)}</a>' for name, key in _parts(p))
             + "</span></li>" for p in data.products]
    return f'<nav class="contents" id="contents"><h2>Contents</h2><ol>{"".join(items)}</ol></nav>'


def _part(p: ProductStats, key: str) -> str:
    return f'<div class="part" id="{e(_anchor(p.product, key))}">'


def _product(p: ProductStats, charts: Charts) -> str:
    order = [v["version"] for v in p.versions]
    out = [f'<section class="product" id="{e(_anchor(p.product))}"><h2>{e(p.product)}</h2>',
           f'<p class="meta">{len(order)} version{"s" if len(order) != 1 else ""}, '
           f"{len(p.updates)} update plan{'s' if len(p.updates) != 1 else ''}. "
           '<a class="top" href="#contents">Contents</a></p>']

    # sizes
    out.append(_part(p, "sizes"))
    rows = [{"version": v["version"], "series": s, "value": mib(v[k])} for v in p.versions
            for s, k in (("build size (files' bytes)", "bytes"), ("full download (stored)", "stored_bytes"))]
    out.append(charts.lines("Build size and full download per version", rows, order, "MiB",
                            note="What a player has on disk, and what a fresh install downloads.",
                            empty="No version chunked yet."))

    out.append("</div>")

    if ("Pre-load", "preload") in _parts(p):
        out.append(_part(p, "preload"))
        out.append(_preload(p, charts, order))
        out.append("</div>")

    # update paths
    out.append(_part(p, "updates"))
    path_rows, by_path = [], []
    for i, v in enumerate(p.versions):
        prev = order[i - 1] if i >= 1 else None
        back = order[i - BACK] if i >= BACK else None
        u, b = p.update(prev, v["version"]), p.update(back, v["version"])
        figures = (u["delta_download_bytes"] if u else None, u["chunk_download_bytes"] if u else None,
                   b["delta_download_bytes"] if b else None, v["stored_bytes"])
        path_rows += [{"version": v["version"], "series": s, "value": mib(n)} for s, n in zip(PATHS, figures)
                      if n is not None]
        by_path.append([v["version"], prev or "", fmt_mib(figures[0]), fmt_mib(figures[1]), back or "",
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
        out.append(folded("Update download by path, MiB", table(
            ["version", "previous", "update MiB", "chunk reuse only MiB", "five back", "update from five back MiB",
             "fresh install MiB", "update % of fresh"], by_path, {2, 3, 5, 6, 7}), len(by_path)))

    out.append("</div>")

    # what each version added; the store; dedup
    out.append(_part(p, "store"))
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
    out.append(folded("Versions", table(
        ["version", "files", "bytes", "build MiB", "full download MiB", "new unique MiB", "added to the store MiB",
         "store so far MiB", "dedup so far ×", "dedup inside ×"],
        [[v["version"], fmt_int(v["files"]), fmt_int(v["bytes"]), fmt_mib(v["bytes"]), fmt_mib(v["stored_bytes"]),
          fmt_mib(v["new_bytes_vs_store"]), fmt_mib(v["new_stored_bytes_vs_store"]), fmt_mib(v["store_stored_bytes"]),
          "" if v["dedup_cumulative"] is None else f"{v['dedup_cumulative']:.2f}", f"{v['dedup_ratio']:.2f}"]
         for v in p.versions], set(range(1, 10)), "versions"), len(p.versions)))

    out.append("</div>")

    # files
    out.append(_part(p, "files"))
    out.append(charts.bars("Files new, changed, moved and removed per version",
                           [{"version": v["version"], "series": c, "value": v[c]} for v in p.versions for c in CHANGES
                            if v[c]], order, "files", stack=True, domain=CHANGES, colours=CHANGE_COLOURS,
                           note="Compared with the previous version. Moved: the same bytes under a new path; removed: "
                                "paths of the previous version this one lacks (a moved file's old path among them).",
                           empty="No file changed between versions."))
    out.append(folded("Files per version", table(
        ["version", "files", "new", "changed", "moved", "removed", "same"],
        [[v["version"], fmt_int(v["files"]), *(fmt_int(v[c]) for c in (*CHANGES, "same"))] for v in p.versions],
        set(range(1, 7)), "files"), len(p.versions)))
    out.append("<h3>Largest changes</h3>")
    if p.largest:
        out.append(table(["version", "path", "change", "size MiB", "bytes", "bytes not in the previous version",
                           "stored MiB"],
                          [[r["version"], r["path"], r["change"], fmt_mib(r["size"]), fmt_int(r["size"]),
                            fmt_int(r["new_bytes"]), fmt_mib(r["stored_size"])] for r in p.largest],
                          {3, 4, 5, 6}, "largest"))
    else:
        out.append('<p class="empty">No new or changed file after the first version.</p>')

    out.append("</div>")

    # patch engines and what patches save
    out.append(_part(p, "patches"))
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
        out.append(folded("Update plans", table(
            ["from", "to", "download MiB", "chunk reuse only MiB", "saved by patches MiB", "full download MiB",
             "% of full", "disk needed MiB", *(f"{n} patches" for n in ENGINES)],
            [[u["from_version"], u["to_version"], fmt_mib(u["delta_download_bytes"]),
              fmt_mib(u["chunk_download_bytes"]), fmt_mib(u["chunk_download_bytes"] - u["delta_download_bytes"]),
              fmt_mib(u["full_download_bytes"]),
              f"{100 * u['delta_download_bytes'] / u['full_download_bytes']:.1f}" if u["full_download_bytes"] else "",
              fmt_mib(u["required_disk_space_bytes"]), *(fmt_int(u[_col("patches", n)]) for n in ENGINES)]
             for u in p.updates], set(range(2, 8 + len(ENGINES))), "updates"), len(p.updates)))
    out.append("</div></section>")
    return "\n".join(out)


def _preload(p: ProductStats, charts: Charts, order: list[str]) -> str:
    """What players download before each embargoed version's release, and where it stands."""
    embargoed = [v for v in p.versions if v["embargoed"]]
    rows = [{"version": v["version"], "series": s, "value": mib(n)} for v in embargoed
            for s, n in zip(PRELOAD, (v["preload_bytes"], v["new_stored_bytes_vs_previous"])) if n is not None]
    out = [charts.bars("Pre-load size per embargoed version", rows, order, "MiB", domain=PRELOAD,
                       colours=(PATH_COLOURS[3], PATH_COLOURS[0]),
                       note="What a player downloads before release, without the key: every object of the version "
                            "for a fresh install, the objects the previous version lacks for an update.",
                       empty="No embargoed version.")]
    if embargoed:
        out.append(table(["version", "content key", "pre-load MiB (fresh)", "pre-load MiB (from the previous)",
                          "sealed MiB", "release"],
                         [[v["version"], v["key_id"] or "", fmt_mib(v["preload_bytes"]),
                           fmt_mib(v["new_stored_bytes_vs_previous"]), fmt_mib(v["sealed_bytes"]), _release(v)]
                          for v in embargoed], {2, 3, 4}, "preload"))
    return "\n".join(out)


def _release(v: dict) -> str:
    if v["released"]:
        return f"released {_when(v['release_at'])}"
    return f"scheduled for {_when(v['release_at'])}" if v["release_at"] else "not scheduled"


def _col(kind: str, engine: str) -> str:
    return f"{kind}_{engine.replace('-', '_')}"


def _engines(p: ProductStats, charts: Charts) -> str:
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
        out.append(table(["engine", "patches", "share %", "patch MiB"],
                          [[n, fmt_int(count[n]), f"{100 * count[n] / total:.1f}", fmt_mib(size[n])] for n in ENGINES]
                          + [["all", fmt_int(total), "100.0", fmt_mib(sum(size.values()))]], {1, 2, 3}, "engines"))
        out.append(f'<p class="note">Bytes saved by patches over every plan (chunk reuse alone minus the plan): '
                   f"{e(fmt_mib(saved))} MiB. A plan picks one engine per file or segment, the smallest patch, "
                   "so the saving is the plans', not one engine's.</p>")
    return "\n".join(out)
