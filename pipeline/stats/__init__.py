"""Stats for analysts.

Export writes per-version parquet. Query runs DuckDB over it. Report writes one HTML page
with charts: collect gives its figures, render its page, charts the charts, markup the
HTML pieces.

May import: errors, layout, core, formats, storage.
"""
