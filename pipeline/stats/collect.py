"""The report's figures: DuckDB queries over the views of ``stats.query``, per product in
natural version order, with running sums (docs/stats.md: The report)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..core.versions import sort_versions
from ..storage import WriteStore
from .query import connect

LARGEST = 12  # rows of the largest-changes table
CHANGES = ("new", "changed", "moved", "removed")


@dataclass
class ProductStats:
    """What the report shows of one product, versions in natural order."""

    product: str
    versions: list[dict]  # rows of ``versions``, plus removed/new/changed/moved counts and running sums
    updates: list[dict]  # rows of ``updates``, oldest target first
    largest: list[dict] = field(default_factory=list)  # the largest new or changed files
    last_publish: str | None = None  # when it was last published (UTC, ISO 8601), if ever

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
                   new_stored_bytes_vs_previous, dedup_ratio, embargoed, key_id, sealed_bytes, preload_bytes,
                   release_at, released
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
        published = dict(con.execute(
            "SELECT product::VARCHAR, max(published_at) FROM publishes GROUP BY ALL").fetchall())
        row = con.execute("SELECT coalesce(sum(stored_size), 0) FROM chunks").fetchone()
        assert row is not None  # an aggregate without GROUP BY always gives one row
        total = row[0]
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
        products.append(ProductStats(name, ordered, plans, big, published.get(name)))
    return ReportData(store.url, products, int(total), round(time.monotonic() - started, 3))


def _dicts(con, sql: str) -> list[dict]:
    rel = con.sql(sql)
    return [dict(zip(rel.columns, row)) for row in rel.fetchall()]
