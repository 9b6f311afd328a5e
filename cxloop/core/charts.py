"""Charts for the web pages: Vega-Lite specs built with altair, rendered to SVG on the server.

The SVG is produced by vl-convert inside this process: no JavaScript in the browser, no fonts
or data fetched from anywhere (``allowed_base_urls=[]``). The SVG keeps its ``viewBox``, so the
page's CSS (``.chart svg {max-width: 100%; height: auto}``) scales it to the column it sits in.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import altair as alt
import vl_convert
from django.utils import formats
from django.utils.translation import get_language
from django.utils.translation import gettext as _

BRAND = "#2f5bea"
BRAND_LIGHT = "#aebff7"
INK = "#1d2433"
MUTED = "#5c6577"
GRID = "#e3e7ee"
# The page's own font stack: the browser draws the SVG's text with the page's fonts.
FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", "Noto Sans", sans-serif'
# The font vl-convert lays the text out with (``render_svg``): its bundled sans-serif.
MEASURE_FONT = "sans-serif"
_MEASURE_ATTRIBUTE = f'font-family="{MEASURE_FONT}"'
_PAGE_ATTRIBUTE = 'font-family="{}"'.format(FONT.replace('"', "&quot;"))


def _register_bundled_font() -> None:
    """Charts turned into PNG (the digest, the PDF report) are drawn by vl-convert with the
    fonts it knows: add Noto Sans from its wheel, so that Cyrillic and ș/ț render on a machine
    without system fonts."""
    try:
        import fontpkg_noto_sans

        vl_convert.register_font_directory(str(Path(fontpkg_noto_sans.ROOT) / "files"))
    except Exception:  # pragma: no cover - the system's fonts remain
        logging.getLogger(__name__).warning("chart_font_not_registered", exc_info=True)


_register_bundled_font()

# Width of the chart in the full-width panel of the home page (the panel's inner width at the
# page's maximum width); narrower screens scale the SVG down.
WIDE = 1090
# Width of a chart in one of the home page's smaller panels.
NARROW = 520

# d3-time-format has no Romanian locale; this one follows CLDR.
_RO_TIME = {
    "dateTime": "%A, %e %B %Y, %X",
    "date": "%d.%m.%Y",
    "time": "%H:%M:%S",
    "periods": ["AM", "PM"],
    "days": ["duminică", "luni", "marți", "miercuri", "joi", "vineri", "sâmbătă"],
    "shortDays": ["dum.", "lun.", "mar.", "mie.", "joi", "vin.", "sâm."],
    "months": ["ianuarie", "februarie", "martie", "aprilie", "mai", "iunie", "iulie",
               "august", "septembrie", "octombrie", "noiembrie", "decembrie"],
    "shortMonths": ["ian.", "feb.", "mar.", "apr.", "mai", "iun.", "iul.", "aug.", "sept.",
                    "oct.", "nov.", "dec."],
}  # fmt: skip
_TIME_LOCALES: dict[str, Any] = {"en": "en-GB", "ru": "ru-RU", "ro": _RO_TIME}


def _format_locale(language: str) -> dict[str, Any]:
    # Thousands are separated by a narrow space, as the ``thousands`` template filter does.
    decimal = "." if language == "en" else ","
    return {"decimal": decimal, "thousands": "\u202f", "grouping": [3], "currency": ["", ""]}


def _language() -> str:
    return (get_language() or "en").split("-")[0]


def _config() -> dict[str, Any]:
    return {
        "font": FONT,
        "background": "white",
        "view": {"stroke": None},
        "axis": {
            "labelColor": MUTED,
            "labelFontSize": 12,
            "titleColor": MUTED,
            "titleFontWeight": "normal",
            "domainColor": GRID,
            "tickColor": GRID,
            "gridColor": GRID,
        },
    }


def render_svg(chart: alt.TopLevelMixin, datasets: dict[str, list[Any]] | None = None) -> str:
    """The chart as an SVG document (a string that starts with ``<svg``).

    Rendering is the costly part of a page (vl-convert runs Vega in-process), so:

    * the text is laid out with ``MEASURE_FONT``, the sans-serif font bundled in vl-convert
      (Liberation Sans, metrically compatible with Arial), and the SVG then names the page's
      own ``FONT`` stack, which the browser draws with. Measuring with a system font found on
      disk (DejaVu Sans, Noto Sans) made vl-convert 4-8 times slower: a heat map of 168 cells
      took 0.5-0.9 s instead of 0.06-0.13 s;
    * the SVG is kept per process for the same spec and language: a chart whose data changed
      is a new spec, drawn afresh;
    * the spec is built without altair's JSON-schema validation, which our own builders do not
      need at run time, and ``datasets`` (name → rows, for charts built on
      ``alt.Data(name=…)``) go into the spec as they are, without altair walking every row.
    """
    spec = chart.to_dict(validate=False)
    spec.pop("$schema", None)
    spec.setdefault("config", {})["font"] = MEASURE_FONT
    if datasets:
        spec["datasets"] = {**spec.get("datasets", {}), **datasets}
    return _render(json.dumps(spec, sort_keys=True, default=str), _language())


@functools.lru_cache(maxsize=256)
def _render(spec: str, language: str) -> str:
    svg: str = vl_convert.vegalite_to_svg(
        json.loads(spec),
        allowed_base_urls=[],
        format_locale=_format_locale(language),
        time_format_locale=_TIME_LOCALES.get(language, "en-GB"),
    )
    return svg.replace(_MEASURE_ATTRIBUTE, _PAGE_ATTRIBUTE)


def svg_to_png(svg: str, scale: float | None = None) -> bytes:
    """A chart of ``render_svg`` as PNG, drawn by vl-convert with the font its text was
    measured with (the page's stack would pick DejaVu or Noto Sans, wider than the layout)."""
    png: bytes = vl_convert.svg_to_png(
        svg.replace(_PAGE_ATTRIBUTE, _MEASURE_ATTRIBUTE), scale=scale
    )
    return png


def clear_cache() -> None:
    """Forget the rendered charts (tests that make rendering fail, benchmarks of a first
    drawing)."""
    _render.cache_clear()


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def weekly_rows(
    weekly: Sequence[tuple[dt.date, int]], today: dt.date, since: dt.date | None = None
) -> list[dict[str, Any]]:
    """One row per week from the first week with data to this week, empty weeks as zeros.

    A week that starts before ``since`` (where the counted period begins) holds only the days
    after ``since``: it is left out rather than drawn as a misleading dip.
    """
    counts: dict[dt.date, int] = {}
    for week, n in weekly:
        monday = _monday(week)
        counts[monday] = counts.get(monday, 0) + n
    if since is not None and any(week >= since for week in counts):
        counts = {week: n for week, n in counts.items() if week >= since}
    if not counts:
        return []
    this_week = _monday(today)
    first = min(counts)
    last = max(this_week, max(counts))
    rows = []
    week = first
    while week <= last:
        rows.append(
            {
                "week": week.isoformat(),
                # The bar covers Monday to Saturday: Sunday is left as the gap between bars.
                "end": (week + dt.timedelta(days=6)).isoformat(),
                "n": counts.get(week, 0),
                "partial": week == this_week,
                "label": _("Week of %(date)s: %(count)s")
                % {"date": formats.date_format(week, "DATE_FORMAT"), "count": counts.get(week, 0)},
            }
        )
        week += dt.timedelta(days=7)
    return rows


def weekly_interactions_chart(
    weekly: Sequence[tuple[dt.date, int]],
    today: dt.date,
    since: dt.date | None = None,
    width: int = WIDE,
) -> alt.Chart | None:
    """Interactions per week as bars; the week in progress is drawn lighter. None when empty."""
    rows = weekly_rows(weekly, today, since)
    if not rows or not any(row["n"] for row in rows):
        return None
    if len(rows) > 20:
        # Months; the year is written on the first label and on each January.
        axis = alt.Axis(
            labelExpr="datum.index == 0 || utcmonth(datum.value) == 0"
            " ? utcFormat(datum.value, '%b %Y') : utcFormat(datum.value, '%b')",
            tickCount={"interval": "month", "step": 1},
        )
    else:
        axis = alt.Axis(format="%d %b", tickCount={"interval": "week", "step": 1})
    axis.labelOverlap = "greedy"
    axis.labelSeparation = 8
    axis.labelFlush = False
    axis.grid = False
    x = alt.X("week:T", title=None, scale=alt.Scale(type="utc"), axis=axis)
    y = alt.Y(
        "n:Q",
        title=None,
        axis=alt.Axis(format=",d", tickMinStep=1, tickCount=5, domain=False, ticks=False),
    )
    bars = (
        alt.Chart(alt.Data(values=rows))
        .mark_bar(cornerRadiusTopLeft=2, cornerRadiusTopRight=2)
        .encode(
            x=x,
            x2="end:T",
            y=y,
            # With x and x2 given, a bar is read as horizontal unless y2 is given too.
            y2=alt.Y2Datum(0),
            description=alt.Description("label:N"),
            color=alt.condition(alt.datum.partial, alt.value(BRAND_LIGHT), alt.value(BRAND)),
        )
    )
    chart: alt.Chart = bars.properties(
        width=width,
        height=220,
        autosize=alt.AutoSizeParams(type="fit", contains="padding"),
        description=_("Interactions per week"),
        padding={"left": 4, "top": 10, "bottom": 4, "right": 8},
    ).configure(**_config())
    return chart


def interaction_types_chart(
    types: Sequence[tuple[str, int]], width: int = NARROW
) -> alt.Chart | None:
    """Horizontal bars, one per interaction type, the count written at the end of each bar."""
    rows = [{"type": name, "n": n} for name, n in types if n]
    if not rows:
        return None
    order = [name for name, n in types if n]
    base = alt.Chart(alt.Data(values=rows)).encode(
        y=alt.Y(
            "type:N",
            title=None,
            sort=order,
            axis=alt.Axis(
                labelLimit=150,
                domain=False,
                ticks=False,
                labelPadding=6,
                labelColor=INK,
                labelFontSize=14,
            ),
        ),
        x=alt.X("n:Q", title=None, axis=None, scale=alt.Scale(nice=False)),
    )
    bars = base.mark_bar(color=BRAND, cornerRadiusEnd=2, height={"band": 0.7})
    labels = base.mark_text(align="left", dx=5, color=MUTED, fontSize=13).encode(
        text=alt.Text("n:Q", format=",d")
    )
    chart: alt.Chart = (
        alt.layer(bars, labels)
        .properties(
            width=width,
            height={"step": 30},
            autosize=alt.AutoSizeParams(type="fit-x", contains="padding"),
            description=_("Interaction types, last 30 days"),
            # Room on the right for the count written after the longest bar.
            padding={"left": 4, "top": 4, "bottom": 4, "right": 44},
        )
        .configure(**_config())
    )
    return chart


def weekly_interactions_svg(
    weekly: Sequence[tuple[dt.date, int]], today: dt.date, since: dt.date | None = None
) -> str | None:
    """The weekly chart as SVG, or None when there is nothing to draw."""
    chart = weekly_interactions_chart(weekly, today, since)
    return render_svg(chart) if chart is not None else None


def interaction_types_svg(types: Sequence[tuple[str, int]]) -> str | None:
    """The interaction types chart as SVG, or None when there is nothing to draw."""
    chart = interaction_types_chart(types)
    return render_svg(chart) if chart is not None else None
