"""Commands for analysts: export the stats as parquet, query them with DuckDB, render the
HTML report. See docs/stats.md."""

from __future__ import annotations

import json

import click

from .shared import Settings, json_option


stats_option = click.option("--stats", "stats_at", default=None,
                            help="Where the stats were exported [default: the repository]: a path, s3://, or a name.")


def _stats_store(s: Settings, at: str | None):
    from pipeline.storage import open_store

    return open_store(s.locations.resolve(at)) if at else s.store


@click.group()
def stats():
    """Per-version stats for analysts: parquet, DuckDB, an HTML report."""


@stats.command(name="export")
@click.option("--out", default=None, help="Where to write them [default: the repository's stats/]: a path, s3://, or a name.")
@json_option
@click.pass_obj
def stats_export(s: Settings, out):
    """Export what is new since the last export (versions, files, chunks, updates, publishes)."""
    from pipeline.stats.export import export

    from .release import content_keys

    r = export(s.store, _stats_store(s, out) if out else None, content_keys(s))
    rows = ", ".join(f"{n} {t}" for t, n in sorted(r.rows.items())) or "nothing new"
    s.emit(r.to_dict(), f"{r.out}: {r.versions} versions, {r.plans} plans, {r.publishes} publishes exported "
                        f"({rows}), {r.read_documents} documents read, {r.elapsed_s} s")


@stats.command(name="query")
@click.argument("sql")
@stats_option
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@json_option
@click.pass_obj
def stats_query(s: Settings, sql, stats_at, fmt):
    """Run SQL over the views: versions, files, chunks, updates, publishes (docs/stats.md)."""
    from pipeline.stats.query import query

    r = query(_stats_store(s, stats_at), sql)
    if s.as_json or fmt == "json":
        click.echo(json.dumps(r.to_dicts(), default=str, sort_keys=False))
    elif fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(r.columns)
        writer.writerows(r.rows)
        click.echo(buf.getvalue(), nl=False)
    else:
        click.echo(_table(r.columns, r.rows))


def _table(columns: list[str], rows: list[tuple]) -> str:
    cells = [list(columns)] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    numeric = [all(isinstance(row[i], (int, float)) for row in rows if row[i] is not None) for i in range(len(columns))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if numeric[i] and n else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


@stats.command(name="report")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="The HTML file to write.")
@stats_option
@json_option
@click.pass_obj
def stats_report(s: Settings, out_path, stats_at):
    """Write one self-contained HTML file with charts and tables, per product."""
    from pipeline.stats.report import report

    r = report(_stats_store(s, stats_at), out_path)
    s.emit(r.to_dict(), f"{out_path}: {r.charts} charts for {len(r.products)} product{'' if len(r.products) == 1 else 's'}, {r.bytes} bytes")


COMMANDS = (stats,)
