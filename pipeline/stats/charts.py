"""The report's charts: Vega-Lite specs built with Altair, rendered to SVG by vl-convert
and inlined. Both are heavy, so they are loaded on the first chart drawn, not on import."""

from __future__ import annotations

from .export import ENGINES
from .markup import e

# The specs are this module's own, the same for any data: checking them against Vega-Lite's
# schema (a fifth of a report's time) is the tests' job, which turn this on.
VALIDATE = False


class Charts:
    """Charts as inline SVG; counts them. Altair and vl-convert are loaded on first use."""

    def __init__(self):
        self.count = 0
        self._alt = self._vlc = None

    def _load(self):
        if self._alt is None:
            import altair
            import vl_convert

            self._alt, self._vlc = altair, vl_convert
        return self._alt

    def _axis_x(self, order: list[str]):
        alt = self._load()
        return alt.X("version:N", sort=order, scale=alt.Scale(domain=order),
                     axis=alt.Axis(title="version", labelAngle=-45 if len(order) > 8 else 0, labelOverlap=True,
                                   labelLimit=120))

    def _width(self, n: int) -> int:
        return max(560, min(940, 28 * n))

    def _colour(self, domain, colours, series: list[str]):
        alt = self._load()
        present = set(series)
        if domain:  # the fixed colours of the series present
            pairs = [(d, c) for d, c in zip(domain, colours or [None] * len(domain)) if d in present]
            domain, colours = [d for d, _ in pairs], [c for _, c in pairs] if colours else None
        else:
            domain = sorted(present, key=series.index)
        scale = alt.Scale(domain=domain, range=colours) if colours else alt.Scale(domain=domain)
        return alt.Color("series:N", scale=scale, sort=domain,
                         legend=alt.Legend(title=None, orient="bottom", direction="vertical" if len(domain) > 2
                                           else "horizontal", labelLimit=400))

    def lines(self, title, rows, order, unit, *, note="", empty="", domain=None, colours=None) -> str:
        if not rows:
            return self._empty(title, empty)
        alt = self._load()
        series = [r["series"] for r in rows]
        chart = alt.Chart(alt.Data(values=rows)).mark_line(point=alt.OverlayMarkDef(size=36), strokeWidth=2).encode(
            x=self._axis_x(order), y=alt.Y("value:Q", title=unit, scale=alt.Scale(zero=True)),
            color=self._colour(domain, colours, series))
        return self._figure(title, note, chart.properties(width=self._width(len(order)), height=240))

    def bars(self, title, rows, order, unit, *, note="", empty="", stack=False, domain=None, colours=None) -> str:
        if not rows:
            return self._empty(title, empty)
        alt = self._load()
        series = [r["series"] for r in rows]
        enc = dict(x=self._axis_x(order), y=alt.Y("value:Q", title=unit, stack=True if stack else None),
                   color=self._colour(domain, colours, series))
        if not stack and len(set(series)) > 1:
            present = [d for d in domain if d in set(series)] if domain else sorted(set(series), key=series.index)
            enc["xOffset"] = alt.XOffset("series:N", sort=present, scale=alt.Scale(domain=present))
        chart = alt.Chart(alt.Data(values=rows)).mark_bar().encode(**enc)
        return self._figure(title, note, chart.properties(width=self._width(len(order)), height=240))

    def engines(self, title, rows, *, note="", empty="") -> str:
        if not rows:
            return self._empty(title, empty)
        alt = self._load()
        base = alt.Chart(alt.Data(values=rows)).encode(
            y=alt.Y("engine:N", sort=list(ENGINES), title=None),
            x=alt.X("patches:Q", title="patches", scale=alt.Scale(zero=True)))
        chart = base.mark_bar(color="#4c78a8") + base.mark_text(align="left", dx=4).encode(text="label:N")
        return self._figure(title, note, chart.properties(width=420, height=24 * len(rows)))

    def _empty(self, title: str, text: str) -> str:
        return f'<section class="chart-empty"><h3>{e(title)}</h3><p class="empty">{e(text)}</p></section>'

    def _figure(self, title: str, note: str, chart) -> str:
        spec = chart.configure(aria=False, font="DejaVu Sans, sans-serif").configure_view(stroke=None).to_dict(
            validate=VALIDATE)
        svg = self._vlc.vegalite_to_svg(spec)
        self.count += 1
        return (f'<figure class="chart" role="img" aria-label="{e(title)}"><h3>{e(title)}</h3>'
                + (f'<p class="note">{e(note)}</p>' if note else "") + svg + "</figure>")
