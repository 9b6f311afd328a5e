"""The dashboard's charts: NPS per group with its interval, the trend with its band, and the
weekday-by-hour heat map. Vega-Lite specs built with altair, rendered to SVG on the server by
``cxloop.core.charts.render_svg`` (no JavaScript in the browser).

Each builder takes plain rows (dicts the view also puts in its tables) and returns an SVG
string, or None when there is nothing to draw. A group with fewer answers than ``min_n`` is
drawn lighter: its interval is wide and it is never flagged.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

import altair as alt
from django.utils.translation import gettext as _

from cxloop.core import charts

BAD = "#c8322b"
# The chart's own width; the page's CSS scales the SVG to the panel.
WIDTH = 1090
# At most this many bars: an "employee" breakdown may hold hundreds of people. With more
# groups the chart shows the highest and the lowest half of this each (``chart_groups``); the
# table under it lists them all.
MAX_BARS = 40
# At most this many labelled ticks on the trend's time axis (a year by day has 365 periods;
# measuring 365 labels to hide most of them cost vl-convert about 0.1 s).
MAX_TICKS = 26
# The heat map's colour legend and the padding around it, in px.
HEAT_LEGEND_ROOM = 63


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def interval_description(row: dict[str, Any]) -> str:
    """A bar's or dot's text for screen readers: its label, NPS, interval and n."""
    return _("%(label)s: NPS %(nps)s, interval %(low)s to %(high)s, n %(n)s") % {
        "label": row["label"],
        "nps": _fmt(row["nps"]),
        "low": _fmt(row["ci_low"]),
        "high": _fmt(row["ci_high"]),
        "n": row["n"],
    }


def label_axis() -> alt.Axis:
    """The axis of group names beside horizontal bars or dots: long names, no ticks."""
    return alt.Axis(
        labelLimit=220,
        domain=False,
        ticks=False,
        labelPadding=8,
        labelColor=charts.INK,
        labelFontSize=13,
    )


def chart_groups(rows: Sequence[dict[str, Any]], limit: int = MAX_BARS) -> list[dict[str, Any]]:
    """The groups the bar chart draws, in the table's order (NPS from high to low): all the
    groups with answers when they are at most ``limit``, else the ``limit // 2`` highest and the
    ``limit - limit // 2`` lowest — the groups to praise and to look at."""
    with_nps = [row for row in rows if row["nps"] is not None]
    if len(with_nps) <= limit:
        return with_nps
    top = limit // 2
    return with_nps[:top] + with_nps[len(with_nps) - (limit - top) :]


@charts.cached
def groups_svg(
    rows: Sequence[dict[str, Any]], overall: float | None, min_n: int, width: int = WIDTH
) -> str | None:
    """Horizontal bars, one per group: the NPS from 0, its interval as a black line, the
    company's NPS as a dashed rule. Below-average groups are red, small ones light. More
    than ``MAX_BARS`` groups: the highest and the lowest (``chart_groups``)."""
    drawn = chart_groups(rows)
    if not drawn:
        return None
    data = [
        {
            "label": row["label"],
            "nps": row["nps"],
            "low": row["ci_low"],
            "high": row["ci_high"],
            # The label goes after the interval, or after 0 for a bar that points left.
            "label_at": max(row["ci_high"], 0.0),
            "tone": "below" if row["below_average"] else ("small" if row["n"] < min_n else "ok"),
            "text": f"{_fmt(row['nps'])}  (n {row['n']})",
            "description": interval_description(row),
        }
        for row in drawn
    ]
    order = [row["label"] for row in data]
    x_scale = alt.Scale(domain=[-100, 100], nice=False)
    base = alt.Chart(alt.Data(name="groups")).encode(
        y=alt.Y(
            "label:N",
            title=None,
            sort=order,
            axis=label_axis(),
        )
    )
    bars = base.mark_bar(height={"band": 0.62}, cornerRadiusEnd=2).encode(
        x=alt.X(
            "nps:Q",
            title=_("NPS"),
            scale=x_scale,
            axis=alt.Axis(values=[-100, -50, 0, 50, 100], domain=False, ticks=False),
        ),
        x2=alt.X2Datum(0),
        color=alt.Color(
            "tone:N",
            scale=alt.Scale(
                domain=["ok", "below", "small"], range=[charts.BRAND, BAD, charts.BRAND_LIGHT]
            ),
            legend=None,
        ),
        description=alt.Description("description:N"),
    )
    errors = base.mark_rule(color=charts.INK, strokeWidth=1.5).encode(
        x=alt.X("low:Q", scale=x_scale), x2=alt.X2("high:Q")
    )
    labels = base.mark_text(align="left", dx=6, color=charts.MUTED, fontSize=12).encode(
        x=alt.X("label_at:Q", scale=x_scale), text=alt.Text("text:N")
    )
    layers: list[Any] = [bars, errors, labels]
    if overall is not None:
        layers.append(
            alt.Chart(alt.Data(name="overall"))
            .mark_rule(color=charts.MUTED, strokeDash=[4, 3])
            .encode(x=alt.X("overall:Q", scale=x_scale))
        )
    # Sized here, not by vl-convert ("fit" lays the chart out twice): the plot is the width
    # less the names (about 7 px a letter at 13 px, at most the axis's 220) and the padding.
    label_room = 8 + min(220, 7 * max(len(str(row["label"])) for row in data))
    chart = (
        alt.layer(*layers)
        .properties(
            width=width - label_room - 100,
            height={"step": 28},
            autosize=alt.AutoSizeParams(type="pad"),
            description=_("NPS by group with its interval"),
            # Room on the right for the label after an interval that reaches 100.
            padding={"left": 4, "top": 6, "bottom": 4, "right": 96},
        )
        .configure(**charts._config())
    )
    return charts.render_svg(chart, {"groups": data, "overall": [{"overall": overall}]})


@charts.cached
def trend_svg(
    rows: Sequence[dict[str, Any]],
    min_n: int,
    width: int = WIDTH,
    unit: str = "week",
    annotations: Sequence[tuple[dt.date, str]] = (),
) -> str | None:
    """The NPS per period as a line over its interval band; n written under each point when
    the periods are few enough to read them. Periods with fewer than ``min_n`` answers are
    hollow points. ``annotations``: (day, label) pairs drawn as dashed vertical rules with
    the label at the top (the initiatives of ``initiatives.annotations``)."""
    drawn = [row for row in rows if row["nps"] is not None]
    if not drawn:
        return None
    data = [
        {
            "start": row["start"].isoformat(),
            "nps": row["nps"],
            "low": row["ci_low"],
            "high": row["ci_high"],
            "n": row["n"],
            "n_text": f"n {row['n']}",
            "small": row["n"] < min_n,
            "description": _("%(period)s: NPS %(nps)s, interval %(low)s to %(high)s, n %(n)s")
            % {
                "period": row["label"],
                "nps": _fmt(row["nps"]),
                "low": _fmt(row["ci_low"]),
                "high": _fmt(row["ci_high"]),
                "n": row["n"],
            },
        }
        for row in drawn
    ]
    # Room under the band for the row of n.
    low = max(-100.0, min(row["low"] for row in data) - 12)
    high = min(100.0, max(row["high"] for row in data) + 5)
    y_scale = alt.Scale(domain=[low, high], nice=True, zero=False)
    fmt = {"day": "%d %b", "week": "%d %b", "month": "%b %Y"}.get(unit, "%d %b")
    x = alt.X(
        "start:T",
        title=None,
        # Room at both ends for the text centred on the first and the last point.
        scale=alt.Scale(type="utc", padding=28),
        # Ticks on the periods themselves (a month's ticks at every half-month would label
        # each month twice; a week's would fall on Sundays).
        axis=alt.Axis(
            format=fmt,
            values=[row["start"] for row in data][:: math.ceil(len(data) / MAX_TICKS)],
            labelOverlap="greedy",
            labelSeparation=8,
            grid=False,
        ),
    )
    base = alt.Chart(alt.Data(name="trend")).encode(x=x)
    band = base.mark_area(color=charts.BRAND, opacity=0.15).encode(
        y=alt.Y("low:Q", scale=y_scale, title=None, axis=alt.Axis(domain=False, ticks=False)),
        y2=alt.Y2("high:Q"),
    )
    line = base.mark_line(color=charts.BRAND, strokeWidth=2).encode(y=alt.Y("nps:Q", scale=y_scale))
    points = base.mark_point(size=46, strokeWidth=2, color=charts.BRAND).encode(
        y=alt.Y("nps:Q", scale=y_scale),
        fill=alt.FillValue(charts.BRAND, condition={"test": "datum.small", "value": "white"}),
        description=alt.Description("description:N"),
    )
    layers: list[Any] = [band, line, points]
    if len(data) <= 16:
        layers.append(
            base.mark_text(dy=-12, color=charts.INK, fontSize=12).encode(
                y=alt.Y("nps:Q", scale=y_scale), text=alt.Text("nps:Q", format=".0f")
            )
        )
        layers.append(
            base.mark_text(baseline="bottom", dy=-4, color=charts.MUTED, fontSize=11).encode(
                y=alt.YDatum(low, scale=y_scale), text=alt.Text("n_text:N")
            )
        )
    datasets: dict[str, list[Any]] = {"trend": data}
    if annotations:
        datasets["annotations"] = [
            {"start": day.isoformat(), "note": label[:40], "description": label}
            for day, label in annotations
        ]
        marks = alt.Chart(alt.Data(name="annotations")).encode(x=x)
        layers.append(
            marks.mark_rule(color=charts.INK, strokeDash=[5, 3], strokeWidth=1.2).encode(
                description=alt.Description("description:N")
            )
        )
        layers.append(
            marks.mark_text(
                align="left", baseline="top", dx=4, dy=2, color=charts.INK, fontSize=11
            ).encode(y=alt.YValue(0), text=alt.Text("note:N"))
        )
    chart = (
        alt.layer(*layers)
        .properties(
            width=width,
            height=240,
            autosize=alt.AutoSizeParams(type="fit", contains="padding"),
            description=_("NPS per period with its interval"),
            padding={"left": 4, "top": 10, "bottom": 4, "right": 12},
        )
        .configure(**charts._config())
    )
    return charts.render_svg(chart, datasets)


@charts.cached
def heatmap_svg(
    cells: Sequence[dict[str, Any]],
    weekdays: Sequence[str],
    min_n: int,
    width: int = WIDTH,
) -> str | None:
    """Weekday rows and hour columns, coloured by NPS (red below 0, blue above), the NPS and n
    written in each cell. A below-average cell has a dark frame; a small one is faded."""
    drawn = [cell for cell in cells if cell["nps"] is not None]
    if not drawn:
        return None
    data = [
        {
            "weekday": cell["weekday_label"],
            "hour": f"{cell['hour']:02d}",
            "nps": cell["nps"],
            "nps_text": _fmt(cell["nps"]),
            "n_text": f"n {cell['n']}",
            "small": cell["n"] < min_n,
            "below": bool(cell["below_average"]),
            # White on the dark ends of the scale; a faded cell is light whatever its colour.
            "light_text": abs(cell["nps"]) >= 55 and cell["n"] >= min_n,
            "description": _(
                "%(weekday)s %(hour)s:00: NPS %(nps)s, interval %(low)s to %(high)s, n %(n)s"
            )
            % {
                "weekday": cell["weekday_label"],
                "hour": f"{cell['hour']:02d}",
                "nps": _fmt(cell["nps"]),
                "low": _fmt(cell["ci_low"]),
                "high": _fmt(cell["ci_high"]),
                "n": cell["n"],
            },
        }
        for cell in drawn
    ]
    hours = sorted({row["hour"] for row in data})
    base = alt.Chart(alt.Data(name="cells")).encode(
        x=alt.X(
            "hour:O",
            title=_("Hour"),
            sort=hours,
            axis=alt.Axis(labelAngle=0, domain=False, ticks=False, orient="top"),
        ),
        y=alt.Y(
            "weekday:O",
            title=None,
            sort=list(weekdays),
            axis=alt.Axis(domain=False, ticks=False, labelColor=charts.INK, labelFontSize=13),
        ),
    )
    rects = base.mark_rect(cornerRadius=3).encode(
        color=alt.Color(
            "nps:Q",
            title=_("NPS"),
            scale=alt.Scale(scheme="redblue", domain=[-100, 100], domainMid=0),
            legend=alt.Legend(orient="right", gradientLength=180),
        ),
        opacity=alt.OpacityValue(1.0, condition={"test": "datum.small", "value": 0.45}),
        stroke=alt.StrokeValue("white", condition={"test": "datum.below", "value": charts.INK}),
        strokeWidth=alt.StrokeWidthValue(1, condition={"test": "datum.below", "value": 2.5}),
        description=alt.Description("description:N"),
    )
    text_color = alt.ColorValue(
        charts.INK, condition={"test": "datum.light_text", "value": "white"}
    )
    scores = base.mark_text(dy=-6, fontSize=12, fontWeight="bold").encode(
        text=alt.Text("nps_text:N"), color=text_color
    )
    counts = base.mark_text(dy=8, fontSize=9).encode(text=alt.Text("n_text:N"), color=text_color)
    # Sized here, not by vl-convert: "fit" lays the chart out twice, which cost half of its
    # drawing. The plot is the width less the weekday labels (about 7 px a letter at 13 px,
    # and their padding) and the legend; the total comes within 1 % of ``width``.
    label_room = 12 + 7 * max((len(day) for day in weekdays), default=3)
    chart = (
        alt.layer(rects, scores, counts)
        .properties(
            width=width - label_room - HEAT_LEGEND_ROOM,
            height={"step": 40},
            autosize=alt.AutoSizeParams(type="pad"),
            description=_("NPS by weekday and hour"),
            padding={"left": 4, "top": 4, "bottom": 4, "right": 4},
        )
        .configure(**charts._config())
    )
    return charts.render_svg(chart, {"cells": data})
