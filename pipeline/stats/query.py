"""stats query: DuckDB over the exported parquet, through depot's own locations (DuckDB
reads them through the store's fsspec filesystem: S3 with its endpoint and credentials,
and no DuckDB extension to download).

Views (docs/stats.md): ``versions``, ``files``, ``chunks``, ``updates``, ``publishes``,
``releases``, and ``chunk_uses`` underneath ``chunks``. A column that files exported by an
earlier depot lack reads as NULL.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from ..errors import InvalidArgument, NotFound
from ..storage import WriteStore
from .export import SCHEMAS, STATS_PREFIX, TABLES

_DUCK_TYPES = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN"}

# The store-wide figures depend on every version, so they are computed here, not exported.
DERIVED = {
    "chunks": """
        SELECT chunk_id AS id, any_value(size) AS size, any_value(stored_size) AS stored_size,
               any_value(codec) AS codec,
               arg_min(version, (created, product, version)) AS first_version,
               arg_min(product, (created, product, version)) AS first_product,
               count(DISTINCT (product, version)) AS versions, count(DISTINCT product) AS products
        FROM chunk_uses GROUP BY chunk_id""",
    "versions": """
        SELECT v.product, v.version, make_timestamp((v.created * 1e6)::BIGINT) AS created,  -- UTC
               v.previous_version, v.files, v.bytes,
               v.chunks, v.unique_chunks, v.unique_bytes, v.stored_bytes,
               coalesce(n.new_bytes, 0) AS new_bytes_vs_store,
               coalesce(n.new_stored_bytes, 0) AS new_stored_bytes_vs_store,
               v.new_bytes_vs_previous, v.new_stored_bytes_vs_previous, v.dedup_ratio,
               coalesce(v.embargoed, false) AS embargoed, v.key_id, coalesce(v.sealed_bytes, 0) AS sealed_bytes,
               v.preload_bytes, r.release_at, coalesce(r.released, false) AS released
        FROM raw_versions v LEFT JOIN (
            SELECT first_product, first_version, sum(size) AS new_bytes, sum(stored_size) AS new_stored_bytes
            FROM chunks GROUP BY ALL) n
          ON n.first_product = v.product AND n.first_version = v.version
        LEFT JOIN releases r ON r.product = v.product AND r.version = v.version""",
}


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[tuple]

    def to_dicts(self) -> list[dict]:
        return [dict(zip(self.columns, r)) for r in self.rows]


def connect(store: WriteStore) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the views over ``store``'s exported stats."""
    con = duckdb.connect()
    fs, root = store.location.filesystem()
    if store.location.is_local:
        base = f"{root}/{STATS_PREFIX}"
    else:
        con.register_filesystem(fs)
        base = f"{store.location.scheme}://{root.lstrip('/')}/{STATS_PREFIX}"
    present = {k.split("/")[1] for k in store.list(STATS_PREFIX)}
    for table in TABLES:
        name = "raw_versions" if table == "versions" else table
        if table in present:
            # product names are text even when they look like numbers ("2024")
            pattern = f"{base}{table}/*/*.parquet".replace("'", "''")
            source = (f"read_parquet('{pattern}', hive_partitioning = true, union_by_name = true, "
                      "hive_types = {'product': VARCHAR})")
            have = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
            missing = "".join(f", NULL::{_DUCK_TYPES[f.type]} AS {f.name}" for f in SCHEMAS[table]
                              if f.name not in have)
            con.execute(f"CREATE VIEW {name} AS SELECT *{missing} FROM {source}")
        else:  # nothing exported yet: the same columns, no rows
            cols = ", ".join(f"NULL::{_DUCK_TYPES[f.type]} AS {f.name}" for f in SCHEMAS[table])
            con.execute(f"CREATE VIEW {name} AS SELECT {cols} WHERE false")
    for name, sql in DERIVED.items():
        con.execute(f"CREATE VIEW {name} AS {sql}")
    return con


def query(store: WriteStore, sql: str) -> Result:
    """``sql``'s answer over ``store``'s exported stats. A query that fails is refused as
    such first; a valid one where nothing was exported is refused, since its empty answer
    would say that there is nothing rather than that nothing was exported."""
    con = connect(store)
    try:
        rel = con.sql(sql)
        result = Result([], []) if rel is None else Result(list(rel.columns), rel.fetchall())
    except duckdb.Error as exc:
        raise InvalidArgument(f"the query failed: {str(exc).splitlines()[0]}") from None
    if not exported(store):
        raise NotFound(f"no stats at {store.location}: run `depot stats export` first")
    return result


def exported(store: WriteStore) -> bool:
    """Whether any stats were exported to ``store``."""
    return any(True for _ in store.list(STATS_PREFIX))
