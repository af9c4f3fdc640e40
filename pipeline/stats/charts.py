"""The report's charts: Vega-Lite specs built with Altair, rendered to SVG by vl-convert
and inlined. Both are heavy, so they are loaded on the first chart drawn, not on import."""

from __future__ import annotations

from .export import ENGINES
from .markup import e

# Every chart is as wide as a card on the page: render.STYLE's column (1120 px) less the
# card's padding and border. The SVG then scales with the card on a narrower window.
WIDTH = 1086
HEIGHT = 180
FEW = 12
# The series of a line chart differ in colour, shape and size, and their points are open:
# equal values at one spot (a version whose build size is its download) nest, each visible.
SHAPES = ("circle", "square", "triangle-up", "diamond")
SIZES = (280, 110, 44, 18)  # square pixels: each fits inside the one before

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

    def _series(self, domain, colours, series: list[str]) -> tuple[list[str], list[str] | None]:
        """The series present, in the given order, with their fixed colours if any."""
        present = set(series)
        if domain:
            pairs = [(d, c) for d, c in zip(domain, colours or [None] * len(domain)) if d in present]
            return [d for d, _ in pairs], [c for _, c in pairs] if colours else None
        return sorted(present, key=series.index), None

    def _legend(self, domain: list[str]):
        return self._load().Legend(title=None, orient="bottom", labelLimit=400,
                                   direction="vertical" if len(domain) > 2 else "horizontal")

    def _colour(self, domain: list[str], colours: list[str] | None):
        alt = self._load()
        scale = alt.Scale(domain=domain, range=colours) if colours else alt.Scale(domain=domain)
        return alt.Color("series:N", scale=scale, sort=domain, legend=self._legend(domain))

    def lines(self, title, rows, order, unit, *, note="", empty="", domain=None, colours=None) -> str:
        if not rows:
            return self._empty(title, empty)
        alt = self._load()
        domain, colours = self._series(domain, colours, [r["series"] for r in rows])
        base = alt.Chart(alt.Data(values=rows)).encode(
            x=self._axis_x(order), y=alt.Y("value:Q", title=unit, scale=alt.Scale(zero=True)),
            color=self._colour(domain, colours))
        size = (alt.Size("series:N", scale=alt.Scale(domain=domain, range=list(SIZES[:len(domain)])), sort=domain,
                         legend=None) if len(domain) > 1 else alt.value(SIZES[1]))  # a one-value scale draws nothing
        points = base.mark_point(filled=False, strokeWidth=2, opacity=1).encode(
            shape=alt.Shape("series:N", scale=alt.Scale(domain=domain, range=list(SHAPES[:len(domain)])), sort=domain,
                            legend=self._legend(domain)), size=size)
        chart = base.mark_line(strokeWidth=2) + points
        return self._figure(title, note, chart)

    def bars(self, title, rows, order, unit, *, note="", empty="", stack=False, domain=None, colours=None) -> str:
        if not rows:
            return self._empty(title, empty)
        alt = self._load()
        domain, colours = self._series(domain, colours, [r["series"] for r in rows])
        enc = dict(x=self._axis_x(order), y=alt.Y("value:Q", title=unit, stack=True if stack else None),
                   color=self._colour(domain, colours))
        if not stack and len(domain) > 1:
            enc["xOffset"] = alt.XOffset("series:N", sort=domain, scale=alt.Scale(domain=domain))
        # a bar takes the width it would have among FEW versions at most: a lone one is not a page wide
        band = 0.9 * min(1, len(order) / FEW)
        chart = alt.Chart(alt.Data(values=rows)).mark_bar(width=alt.RelativeBandSize(band)).encode(**enc)
        return self._figure(title, note, chart)

    def engines(self, title, rows, *, note="", empty="") -> str:
        if not rows:
            return self._empty(title, empty)
        alt = self._load()
        base = alt.Chart(alt.Data(values=rows)).encode(
            y=alt.Y("engine:N", sort=list(ENGINES), title=None),
            x=alt.X("patches:Q", title="patches", scale=alt.Scale(zero=True)))
        chart = base.mark_bar(color="#4c78a8") + base.mark_text(align="left", dx=4).encode(text="label:N")
        return self._figure(title, note, chart, height=24 * len(rows))

    def _empty(self, title: str, text: str) -> str:
        return f'<section class="chart-empty"><h3>{e(title)}</h3><p class="empty">{e(text)}</p></section>'

    def _figure(self, title: str, note: str, chart, height: int = HEIGHT) -> str:
        alt = self._load()
        # "fit-x": the whole chart, axes and legend included, is WIDTH wide
        chart = chart.properties(width=WIDTH, height=height,
                                 autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))
        spec = chart.configure(aria=False, font="DejaVu Sans, sans-serif").configure_view(stroke=None).to_dict(
            validate=VALIDATE)
        svg = self._vlc.vegalite_to_svg(spec)
        self.count += 1
        return (f'<figure class="chart" role="img" aria-label="{e(title)}"><h3>{e(title)}</h3>'
                + (f'<p class="note">{e(note)}</p>' if note else "") + svg + "</figure>")
