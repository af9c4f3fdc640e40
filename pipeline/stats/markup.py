"""The HTML pieces of the report: escaping, sizes in MiB, tables."""

from __future__ import annotations

import html
from typing import AbstractSet

MiB = 1 << 20


def e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def mib(n, digits: int = 3) -> float | None:
    return None if n is None else round(n / MiB, digits)


def fmt_mib(n) -> str:
    return "" if n is None else f"{n / MiB:,.3f}"


def fmt_int(n) -> str:
    return "" if n is None else f"{n:,}"


def table(head: list[str], rows: list[list], numeric: AbstractSet[int], cls: str = "", markup: AbstractSet[int] = frozenset()) -> str:
    """Cells are escaped, except in the ``markup`` columns: HTML the caller escaped."""
    out = [f'<table class="{e(cls)}"><thead><tr>' + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(("<td class=\"n\">" if i in numeric else "<td>") + (c if i in markup else e(c))
                                    + "</td>" for i, c in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def folded(title: str, body: str, rows: int) -> str:
    """A long table folds away; a short one stays open."""
    return f"<details{' open' if rows <= 30 else ''}><summary>{e(title)} ({rows} rows)</summary>{body}</details>"
