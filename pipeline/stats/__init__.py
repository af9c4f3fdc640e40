"""Stats for analysts.

export writes per-version parquet. query runs DuckDB over it. report writes one HTML page
with charts. collect gives the report's figures, render lays out its page, charts draws
its charts, and markup makes its HTML pieces.

May import: errors, layout, core, formats, storage.
"""
