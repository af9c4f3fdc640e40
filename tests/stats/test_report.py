"""stats report: the HTML file rendered in a real headless Chromium (Debian's, driven by
Playwright): every chart drawn, titled, the exact figures in the tables, version order natural,
every string escaped, no console error, nothing fetched, and a screenshot that shows it.

The repository: the fixture builds (four versions, every pair planned, the last one
published), a product with one version and no plan, and one whose versions sort only naturally (1.9 before 1.10) with a
file whose name is HTML."""

from __future__ import annotations

import concurrent.futures as cf
import os
import re
from pathlib import Path

import pytest

from helpers import PAIRS, Chromium, ensure_chromium, png_pixels
from depot_testing.fixtures import PRODUCT, chunk_fixture_versions, fixture_params
from pipeline.build import products
from pipeline.build.chunk import chunk
from pipeline.build.ingest import ingest
from pipeline.delta.diff import diff
from pipeline.publish.publish import publish
from pipeline.stats.export import export
from pipeline.stats.query import query
from pipeline.stats import charts as charts_module
from pipeline.stats.report import collect, render, report
from pipeline.storage import open_store

MiB = 1 << 20
HOSTILE = '<img src=x onerror=alert(1)> & "q".dat'
# the charts of a product with plans, and of one without (the others say why they are empty)
CHARTS = ["Build size and full download per version", "Update download by path", "New unique bytes per version",
          "Store size, cumulative: what {p}'s versions stored", "Dedup ratio over versions",
          "Files new, changed, moved and removed per version", "Patch engines' share of patches",
          "Bytes saved by patches per update", "Disk space needed per update"]
UNPLANNED = {"Update download by path", "Patch engines' share of patches", "Bytes saved by patches per update",
             "Disk space needed per update"}


def write_build(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def add_version(store, product: str, version: str, build: Path) -> None:
    with cf.ThreadPoolExecutor(2) as ex:
        ingest(store, str(build), product, version, ex)
        chunk(store, product, version, ex)


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    store = chunk_fixture_versions(base / "repo")
    with cf.ThreadPoolExecutor(2) as ex:
        for a, b in PAIRS:
            diff(store, PRODUCT, a, b, ex)
    for product in ("moonlight", "oddnames"):
        products.configure(store, product, fixture_params())
    blob = os.urandom(200_000)
    add_version(store, "moonlight", "0.1", write_build(base / "moon", {"bin/moon": blob, "README": b"moon\n"}))
    # 1.9 then 1.10: a file changed, one removed, one new (with a name that is HTML)
    add_version(store, "oddnames", "1.9", write_build(base / "odd-1.9", {"a.txt": b"a" * 5000, "b.bin": blob}))
    add_version(store, "oddnames", "1.10",
                write_build(base / "odd-1.10", {"b.bin": blob[:100_000] + os.urandom(50_000), HOSTILE: b"x" * 3000}))
    publish(store, [open_store(str(base / "origin"))], PRODUCT, ["1.3.0"])
    export(store)
    out = base / "out" / "report.html"
    result = report(store, out)
    return store, result, out


@pytest.fixture(scope="module")
def chromium_binary():
    try:
        return ensure_chromium()
    except RuntimeError as exc:
        pytest.fail(f"no Chromium to render the report in: {exc}")


READ_PAGE = r"""(() => {
  const text = el => el ? el.textContent.trim() : null;
  const pageBox = el => { const b = el.getBoundingClientRect();
    return {x: b.left + scrollX, y: b.top + scrollY, width: b.width, height: b.height}; };
  const main = document.querySelector('main'), style = getComputedStyle(main);
  const order = [...document.querySelectorAll('table.summary, nav.contents, section.product')];
  const figures = [...document.querySelectorAll('figure.chart')].map(f => {
    const svg = f.querySelector('svg');
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    const inner = f.getBoundingClientRect();
    const marks = svg ? [...svg.querySelectorAll('.role-mark > *')] : [];
    const drawn = marks.filter(m => { const b = m.getBBox(); return b.width > 0 || b.height > 0; });
    return {product: text(f.closest('section.product').querySelector('h2')), title: text(f.querySelector('h3')),
            svgs: f.querySelectorAll('svg').length, width: box.width, height: box.height,
            left: box.left - inner.left, right: inner.right - box.right,
            points: svg ? [...svg.querySelectorAll('.mark-symbol.role-mark path')].map(pageBox) : [],
            marks: marks.length, drawn: drawn.length,
            bars: svg ? svg.querySelectorAll('.mark-rect.role-mark path').length : 0,
            xLabels: svg ? [...svg.querySelectorAll('.role-axis-label text')].map(text) : []};
  });
  const products = {};
  for (const s of document.querySelectorAll('section.product')) {
    const tables = {};
    for (const t of s.querySelectorAll('table')) tables[t.className] = [...t.rows].map(r => [...r.cells].map(text));
    products[text(s.querySelector('h2'))] = {
      tables, empty: [...s.querySelectorAll('.chart-empty h3')].map(text),
      emptyText: [...s.querySelectorAll('.empty')].map(text)};
  }
  return {figures, products, h1: text(document.querySelector('h1')),
          svgs: document.querySelectorAll('svg').length, images: document.images.length,
          scripts: document.scripts.length, iframes: document.querySelectorAll('iframe, object, embed').length,
          summary: [...document.querySelector('table.summary').rows].map(r => [...r.cells].map(text)),
          column: main.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight),
          page: document.documentElement.scrollHeight, viewport: innerHeight,
          order: order.map(el => el.matches('section.product') ? text(el.querySelector('h2')) : el.className),
          top: Object.fromEntries(order.slice(0, 2).map(el => [el.className, pageBox(el)])),
          contents: [...document.querySelectorAll('nav.contents li.product')].map(li =>
            [...li.querySelectorAll('a')].map(a => {
              const target = document.getElementById(decodeURIComponent(a.hash.slice(1)));
              const section = target && target.closest('section.product');
              return {text: text(a), product: section && text(section.querySelector('h2')),
                      heading: target && text(target.querySelector('h2, h3'))};
            }))};
})()"""


@pytest.fixture(scope="module")
def page(reported, chromium_binary, tmp_path_factory):
    _, _, out = reported
    with Chromium(chromium_binary, width=1280, height=900) as browser:
        browser.load(out.as_uri())
        dom = browser.evaluate(READ_PAGE)
        shot = browser.screenshot()
        problems, requests = browser.problems(), browser.requests()
    (tmp_path_factory.mktemp("shot") / "report.png").write_bytes(shot)
    return {"dom": dom, "png": shot, "problems": problems, "requests": requests, "url": out.as_uri()}


def rows(store, sql: str) -> list[dict]:
    return query(store, sql).to_dicts()


def as_int(cell: str) -> int:
    return int(cell.replace(",", ""))


def mib(n: int) -> str:
    return f"{n / MiB:,.3f}"


def table(page, product: str, name: str) -> list[dict]:
    head, *body = page["dom"]["products"][product]["tables"][name]
    return [dict(zip(head, r)) for r in body]


def test_the_report_result_says_what_was_written(reported):
    _, result, out = reported
    assert result.path == str(out) and result.bytes == out.stat().st_size
    assert result.products == ("moonlight", "oddnames", PRODUCT)
    text = out.read_text()
    assert result.charts == text.count("<svg") == len(CHARTS) + 2 * (len(CHARTS) - len(UNPLANNED))
    assert set(result.to_dict()) == {"path", "bytes", "charts", "products", "elapsed_s"}
    assert result.to_dict()["products"] == list(result.products)
    # self-contained: nothing to fetch, no script
    assert "<script" not in text.lower() and not re.search(r'\s(src|href)="(?!#)', text)


def test_every_chart_is_drawn_and_titled(reported, page):
    _, result, _ = reported
    dom = page["dom"]
    assert dom["h1"] == "depot stats report"
    assert dom["svgs"] == len(dom["figures"]) == result.charts
    for f in dom["figures"]:
        assert f["svgs"] == 1 and f["width"] > 200 and f["height"] > 100, f
        assert f["marks"] > 0 and f["drawn"] > 0, f"nothing drawn in {f['product']}: {f['title']}"
    titles = {(f["product"], f["title"]) for f in dom["figures"]}
    for product in (PRODUCT, "moonlight", "oddnames"):
        expected = [t.format(p=product) for t in CHARTS]
        drawn = [t for t in expected if (product, t) in titles]
        assert drawn == (expected if product == PRODUCT else [t for t in expected if t not in UNPLANNED])
        empty = dom["products"][product]["empty"]
        assert empty == ([] if product == PRODUCT else [t for t in expected if t in UNPLANNED])
    # one bar per version where there is one value per version
    bars = {(f["product"], f["title"]): f["bars"] for f in dom["figures"]}
    assert bars[(PRODUCT, "New unique bytes per version")] == 4
    assert bars[(PRODUCT, "Bytes saved by patches per update")] == 3  # 1.1.0, 1.2.0, 1.3.0 from the one before


def test_the_tables_hold_the_exported_figures(reported, page):
    store, _, _ = reported
    for product in (PRODUCT, "moonlight", "oddnames"):
        shown = {r["version"]: r for r in table(page, product, "versions")}
        exported = rows(store, f"SELECT * FROM versions WHERE product = '{product}'")
        assert set(shown) == {r["version"] for r in exported}
        for r in exported:
            s = shown[r["version"]]
            assert (as_int(s["files"]), as_int(s["bytes"])) == (r["files"], r["bytes"])
            assert (s["full download MiB"], s["new unique MiB"]) == \
                (mib(r["stored_bytes"]), mib(r["new_bytes_vs_store"]))
    plans = {(r["from"], r["to"]): r for r in table(page, PRODUCT, "updates")}
    exported = rows(store, "SELECT * FROM updates")
    assert set(plans) == set(PAIRS) == {(r["from_version"], r["to_version"]) for r in exported}
    for r in exported:
        p = plans[(r["from_version"], r["to_version"])]
        assert (p["download MiB"], p["chunk reuse only MiB"], p["disk needed MiB"]) == \
            (mib(r["delta_download_bytes"]), mib(r["chunk_download_bytes"]), mib(r["required_disk_space_bytes"]))
        assert as_int(p["bsdiff4 patches"]) == r["patches_bsdiff4"]
    engines = {r["engine"]: r for r in table(page, PRODUCT, "engines")}
    assert as_int(engines["all"]["patches"]) == sum(r["patches"] for r in exported)
    # 1.2.0 against 1.1.0 (as tests/stats/test_export.py): 2 new, 1 changed, 2 moved, 3 paths gone
    files = {r["version"]: r for r in table(page, PRODUCT, "files")}
    assert [files["1.2.0"][c] for c in ("new", "changed", "moved", "removed")] == ["2", "1", "2", "3"]
    summary = {r[0]: r for r in page["dom"]["summary"][1:]}
    assert summary[PRODUCT][1:4] == ["4", "6", "1.3.0"]


def test_versions_are_in_natural_order_and_strings_are_escaped(page):
    dom = page["dom"]
    assert [r["version"] for r in table(page, "oddnames", "versions")] == ["1.9", "1.10"]
    sizes = next(f for f in dom["figures"] if f["product"] == "oddnames" and f["title"].startswith("Build size"))
    assert sizes["xLabels"][:2] == ["1.9", "1.10"]
    assert {r[0]: r[3] for r in dom["summary"][1:]}["oddnames"] == "1.10"  # the latest version
    files = {r["version"]: r for r in table(page, "oddnames", "files")}
    assert [files["1.10"][c] for c in ("new", "changed", "moved", "removed", "same")] == ["1", "1", "0", "1", "0"]
    largest = table(page, "oddnames", "largest")
    assert HOSTILE in [r["path"] for r in largest]  # shown as text, not parsed as HTML
    assert dom["images"] == dom["scripts"] == dom["iframes"] == 0
    # a product without plans says so instead of drawing empty charts
    assert any("No update plan" in t for t in dom["products"]["moonlight"]["emptyText"])


def test_no_console_error_and_nothing_fetched(page):
    assert page["problems"] == []
    assert page["requests"] == [page["url"]]


@pytest.fixture(scope="module")
def pixels(page):
    return png_pixels(page["png"])


def test_the_screenshot_shows_the_charts(pixels):
    width, height, channels, lines = pixels
    assert width == 1280 and height > 3000
    colours, painted, seen = set(), 0, 0
    for line in lines[::4]:
        for x in range(0, width * channels, channels * 3):
            px = tuple(line[x:x + 3])
            colours.add(px)
            seen += 1
            painted += min(px) < 200  # not the page's or a card's near-white
    assert len(colours) > 50 and painted / seen > 0.02
    # the charts' own colours were painted: the bars' blue, the changed files' orange
    assert (0x4C, 0x78, 0xA8) in colours and (0xF5, 0x85, 0x18) in colours


def test_the_summary_and_the_contents_come_first(reported, page):
    store, _, _ = reported
    dom = page["dom"]
    assert dom["order"] == ["summary", "contents", "moonlight", "oddnames", PRODUCT]
    # both fit the first screen: the reader sees every product before scrolling
    assert dom["top"]["contents"]["y"] + dom["top"]["contents"]["height"] < dom["viewport"]
    head, *body = dom["summary"]
    assert head == ["product", "versions", "update plans", "latest version", "its build MiB",
                    "its full download MiB", "stored by the product MiB", "dedup ×", "last publish"]
    shown = {r[0]: dict(zip(head, r)) for r in body}
    assert list(shown) == ["moonlight", "oddnames", PRODUCT]
    for r in rows(store, """SELECT product, count(*) AS n, sum(bytes) / sum(new_stored_bytes_vs_store) AS dedup,
                                   sum(new_stored_bytes_vs_store) AS stored FROM versions GROUP BY product"""):
        s = shown[r["product"]]
        assert (s["versions"], s["dedup ×"], s["stored by the product MiB"]) == \
            (str(r["n"]), f"{r['dedup']:.2f}", mib(r["stored"]))
    latest = rows(store, f"SELECT bytes, stored_bytes FROM versions WHERE product = '{PRODUCT}' AND version = '1.3.0'")[0]
    assert (shown[PRODUCT]["its build MiB"], shown[PRODUCT]["its full download MiB"]) == \
        (mib(latest["bytes"]), mib(latest["stored_bytes"]))
    (published,) = {r["published_at"] for r in rows(store, "SELECT published_at FROM publishes")}
    assert shown[PRODUCT]["last publish"] == published.replace("T", " ")[:16] + " UTC"
    assert shown["moonlight"]["last publish"] == shown["oddnames"]["last publish"] == "never"


def test_the_contents_link_to_each_product_and_its_parts(page):
    contents = page["dom"]["contents"]
    assert [links[0]["text"] for links in contents] == ["moonlight", "oddnames", PRODUCT]
    for links in contents:
        product = links[0]["text"]
        assert links[0]["product"] == links[0]["heading"] == product  # the product's own section
        assert [link["text"] for link in links[1:]] == ["Sizes", "Updates", "Store and dedup", "Files", "Patches and disk"]
        for link in links[1:]:  # each part's link lands on its first chart, inside the product's section
            assert link["product"] == product and link["heading"] in [t.format(p=product) for t in CHARTS], link


def test_charts_use_the_full_width_of_the_page(page):
    dom = page["dom"]
    for f in dom["figures"]:
        assert f["width"] > 0.9 * dom["column"], f  # the page's column, less the card's padding
        assert f["left"] >= 0 and f["right"] >= 0, f  # inside its card: no sideways scrolling


def test_a_one_version_product_shows_both_of_its_sizes(page, pixels):
    """moonlight's one version is incompressible: its build size and full download are the
    same number, drawn at the same spot. Both series' colours must be painted there."""
    width, _, channels, lines = pixels
    sizes = next(f for f in page["dom"]["figures"] if (f["product"], f["title"]) ==
                 ("moonlight", "Build size and full download per version"))
    assert len(sizes["points"]) == 2
    x0 = int(min(p["x"] for p in sizes["points"])) - 2
    x1 = int(max(p["x"] + p["width"] for p in sizes["points"])) + 2
    y0 = int(min(p["y"] for p in sizes["points"])) - 2
    y1 = int(max(p["y"] + p["height"] for p in sizes["points"])) + 2
    painted = [tuple(lines[y][x * channels:x * channels + 3]) for y in range(y0, y1) for x in range(x0, min(x1, width))]
    for colour in ((0x4C, 0x78, 0xA8), (0xF5, 0x85, 0x18)):  # build size, full download
        near = sum(1 for px in painted if sum(abs(a - b) for a, b in zip(px, colour)) < 60)
        assert near >= 6, f"{colour} is hidden"


def test_an_empty_export_still_renders(tmp_path):
    store = open_store(str(tmp_path / "empty"))
    result = report(store, tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text()
    assert (result.charts, result.products) == (0, ()) and "Nothing exported yet" in text


def test_every_chart_spec_is_valid_vega_lite(reported, monkeypatch):
    store, result, _ = reported
    monkeypatch.setattr(charts_module, "VALIDATE", True)  # Altair checks each spec against the schema
    page, charts = render(collect(store))
    assert charts == result.charts and page.count("<svg") == charts
