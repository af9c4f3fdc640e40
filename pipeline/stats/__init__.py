"""Stats for analysts: per-version parquet (export), DuckDB views and queries over it
(query), and a self-contained HTML report with charts (report: its figures from collect,
its page from render, the charts in charts, the HTML pieces in markup)."""
