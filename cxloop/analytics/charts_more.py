"""Charts of the pain map and the competitors page: altair specs rendered to SVG on the server
by ``cxloop.core.charts.render_svg``. Each builder takes the rows its page's table shows and
returns an SVG string, or None when there is nothing to draw."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
from django.utils.translation import gettext as _

from cxloop.core import charts

from .charts import BAD, WIDTH, interval_description, label_axis

# At most this many bars: the long tail of a Pareto chart says little.
MAX_REASONS = 20


def _pct(value: float) -> str:
    return f"{value:.0f}%"


@charts.cached
def pareto_svg(rows: Sequence[dict[str, Any]], width: int = WIDTH) -> str | None:
    """Bars: the share of detractors citing each reason (%), ranked; line: the cumulative share
    of detractors citing at least one of the reasons so far. One axis, 0-100 %."""
    drawn = list(rows)[:MAX_REASONS]
    if not drawn:
        return None
    data = [
        {
            "label": row["label"],
            "share": row["share_pct"],
            "cumulative": row["cumulative_pct"],
            "text": _pct(row["share_pct"]),
            "description": _(
                "%(label)s: %(share)s of detractors (%(citing)s), cumulative %(cumulative)s"
            )
            % {
                "label": row["label"],
                "share": _pct(row["share_pct"]),
                "citing": row["citing"],
                "cumulative": _pct(row["cumulative_pct"]),
            },
        }
        for row in drawn
    ]
    order = [row["label"] for row in data]
    y_scale = alt.Scale(domain=[0, 100], nice=False)
    base = alt.Chart(alt.Data(values=data)).encode(
        x=alt.X(
            "label:N",
            title=None,
            sort=order,
            axis=alt.Axis(
                labelAngle=-30,
                labelLimit=160,
                domain=False,
                ticks=False,
                labelColor=charts.INK,
                labelFontSize=12,
            ),
        )
    )
    bars = base.mark_bar(color=charts.BRAND, cornerRadiusTopLeft=2, cornerRadiusTopRight=2).encode(
        y=alt.Y(
            "share:Q",
            title=_("Share of detractors, %"),
            scale=y_scale,
            axis=alt.Axis(values=[0, 25, 50, 75, 100], domain=False, ticks=False),
        ),
        description=alt.Description("description:N"),
    )
    labels = base.mark_text(dy=-6, baseline="bottom", color=charts.MUTED, fontSize=11).encode(
        y=alt.Y("share:Q", scale=y_scale), text="text:N"
    )
    line = base.mark_line(color=BAD, strokeWidth=2).encode(y=alt.Y("cumulative:Q", scale=y_scale))
    points = base.mark_point(color=BAD, filled=True, size=36).encode(
        y=alt.Y("cumulative:Q", scale=y_scale)
    )
    chart = (
        alt.layer(bars, labels, line, points)
        .properties(
            width=width,
            height=260,
            autosize=alt.AutoSizeParams(type="fit-x", contains="padding"),
            description=_("Reasons cited by detractors, ranked, with the cumulative share"),
            padding={"left": 4, "top": 10, "bottom": 4, "right": 12},
        )
        .configure(**charts._config())
    )
    return charts.render_svg(chart)


@charts.cached
def competitors_svg(rows: Sequence[dict[str, Any]], width: int = WIDTH) -> str | None:
    """One row per provider (us first): the NPS as a dot, its interval as a line."""
    drawn = [row for row in rows if row["nps"] is not None]
    if not drawn:
        return None
    data = [
        {
            "label": row["label"],
            "nps": row["nps"],
            "low": row["ci_low"],
            "high": row["ci_high"],
            "ours": bool(row["ours"]),
            "text": f"{row['nps']:.0f}  (n {row['n']})",
            "label_at": row["ci_high"],
            "description": interval_description(row),
        }
        for row in drawn
    ]
    order = [row["label"] for row in data]
    x_scale = alt.Scale(domain=[-100, 100], nice=False)
    base = alt.Chart(alt.Data(values=data)).encode(
        y=alt.Y(
            "label:N",
            title=None,
            sort=order,
            axis=label_axis(),
        )
    )
    color = alt.condition(alt.datum.ours, alt.value(charts.BRAND), alt.value(charts.MUTED))
    rules = base.mark_rule(strokeWidth=2).encode(
        x=alt.X(
            "low:Q",
            title=_("NPS"),
            scale=x_scale,
            axis=alt.Axis(values=[-100, -50, 0, 50, 100], domain=False, ticks=False),
        ),
        x2="high:Q",
        color=color,
    )
    dots = base.mark_point(filled=True, size=110, opacity=1).encode(
        x=alt.X("nps:Q", scale=x_scale),
        color=color,
        description=alt.Description("description:N"),
    )
    labels = base.mark_text(align="left", dx=8, color=charts.MUTED, fontSize=12).encode(
        x=alt.X("label_at:Q", scale=x_scale), text="text:N"
    )
    zero = (
        alt.Chart(alt.Data(values=[{"x": 0}]))
        .mark_rule(color=charts.GRID)
        .encode(x=alt.X("x:Q", scale=x_scale))
    )
    chart = (
        alt.layer(zero, rules, dots, labels)
        .properties(
            width=width,
            height={"step": 34},
            autosize=alt.AutoSizeParams(type="fit-x", contains="padding"),
            description=_("Our NPS and each competitor's, with intervals"),
            padding={"left": 4, "top": 6, "bottom": 4, "right": 96},
        )
        .configure(**charts._config())
    )
    return charts.render_svg(chart)
