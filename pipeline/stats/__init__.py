"""Stats for analysts: per-version parquet (export), DuckDB views and queries over it
(query), and a self-contained HTML report with charts (report)."""
