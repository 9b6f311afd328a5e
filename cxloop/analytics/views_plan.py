"""The key-drivers page (/analytics/drivers) and the sample-size planner (/analytics/planner),
``docs/drivers-and-planner.md``. Both need ``VIEW_ALL_FEEDBACK`` (admin, CX manager, analyst):
the numbers are the workspace's, so a supervisor gets 403. Charts are SVG drawn on the server;
a chart that fails is logged and left out, the table beside it says the same."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import altair as alt
from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cxloop.accounts.models import Membership, Permission, Workspace
from cxloop.core import charts, clock
from cxloop.core.permissions import workspace_required
from cxloop.surveys.models import Survey

from . import drivers, planner, rollups

log = logging.getLogger(__name__)

DEFAULT_DAYS = 90
WIDTH = 1090
MAX_BARS = 40
BAD = "#c8322b"


def _nps_surveys(workspace: Workspace) -> list[Survey]:
    return [
        survey
        for survey in Survey.objects.filter(workspace=workspace).order_by("name", "code")
        if rollups.is_nps(survey)
    ]


def _dimension_labels() -> dict[str, str]:
    return {
        "branch": _("Branch"),
        "region": _("Region"),
        "team": _("Team"),
        "employee": _("Employee"),
        "product": _("Product"),
        "channel": _("Channel"),
        "touchpoint": _("Touchpoint"),
        "segment": _("Customer segment"),
    }


def _period_labels() -> dict[str, str]:
    return {"day": _("Day"), "week": _("Week"), "month": _("Month")}


def _date_field(label: Any) -> forms.DateField:
    return forms.DateField(
        label=label,
        required=False,
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )


class _SurveyForm(forms.Form):
    survey = forms.ChoiceField(label=gettext_lazy("Survey"), required=False)

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.surveys = {s.code: s for s in _nps_surveys(workspace)}
        field = self.fields["survey"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", _("All NPS surveys"))] + [
            (code, survey.name) for code, survey in self.surveys.items()
        ]

    def chosen_surveys(self) -> list[Survey]:
        code = self.cleaned_data.get("survey") or ""
        return [self.surveys[code]] if code else list(self.surveys.values())


class DriversForm(_SurveyForm):
    since = _date_field(gettext_lazy("From"))
    until = _date_field(gettext_lazy("To"))
    kind = forms.ChoiceField(
        label=gettext_lazy("Drivers"),
        required=False,
        choices=[
            ("reasons", gettext_lazy("Reasons")),
            ("attributes", gettext_lazy("Single-choice answers")),
        ],
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError(_("The start date is after the end date."))
        data["kind"] = data.get("kind") or "reasons"
        return data


class PlannerForm(_SurveyForm):
    by = forms.ChoiceField(label=gettext_lazy("By"), required=False)
    margin = forms.FloatField(
        label=gettext_lazy("Margin, ± NPS points"),
        required=False,
        min_value=0.1,
        max_value=planner.MAX_MARGIN,
        widget=forms.NumberInput(attrs={"step": "0.5"}),
    )
    per = forms.ChoiceField(label=gettext_lazy("Per"), required=False)

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, workspace=workspace, **kwargs)
        for name, options in (("by", _dimension_labels()), ("per", _period_labels())):
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)
            field.choices = list(options.items())

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        data["by"] = data.get("by") or "branch"
        data["per"] = data.get("per") or "month"
        if data.get("margin") is None and not self.has_error("margin"):
            data["margin"] = 5.0
        return data


# --- charts --------------------------------------------------------------------------------


@charts.cached
def drivers_svg(rows: Sequence[drivers.Driver], width: int = WIDTH) -> str | None:
    """Horizontal bars of each driver's share of R²; red when citing it lowers the score."""
    if not rows:
        return None
    data = [
        {
            "label": str(d.label),
            "share": round(d.share, 1),
            "tone": "down" if d.sign < 0 else "up",
            "text": f"{d.share:.0f}%  ({'+' if d.effect > 0 else ''}{d.effect:.1f})",
            "description": d.readout,
        }
        for d in rows[:MAX_BARS]
    ]
    base = alt.Chart(alt.Data(values=data)).encode(
        y=alt.Y(
            "label:N",
            title=None,
            sort=[str(row["label"]) for row in data],
            axis=alt.Axis(
                labelLimit=220,
                domain=False,
                ticks=False,
                labelPadding=8,
                labelColor=charts.INK,
                labelFontSize=13,
            ),
        ),
    )
    x = alt.X(
        "share:Q",
        title=_("Share of explained variation, %"),
        scale=alt.Scale(domain=[0, 100], nice=False),
        axis=alt.Axis(values=[0, 25, 50, 75, 100], domain=False, ticks=False),
    )
    bars = base.mark_bar(height={"band": 0.62}, cornerRadiusEnd=2).encode(
        x=x,
        color=alt.Color(
            "tone:N", scale=alt.Scale(domain=["up", "down"], range=[charts.BRAND, BAD]), legend=None
        ),
        description=alt.Description("description:N"),
    )
    labels = base.mark_text(align="left", dx=6, color=charts.MUTED, fontSize=12).encode(
        x=x, text="text:N"
    )
    chart = (
        alt.layer(bars, labels)
        .properties(
            width=width,
            height={"step": 28},
            autosize=alt.AutoSizeParams(type="fit-x", contains="padding"),
            description=_("Key drivers: share of the explained variation in scores"),
            padding={"left": 4, "top": 6, "bottom": 4, "right": 96},
        )
        .configure(**charts._config())
    )
    return charts.render_svg(chart)


@charts.cached
def planner_svg(rows: Sequence[planner.PlanRow], width: int = WIDTH) -> str | None:
    """Per segment, two bars: answers needed per period and answers received now."""
    shown = list(rows[:MAX_BARS])
    if not shown:
        return None
    needed, current = _("needed"), _("current")
    data = []
    for row in shown:
        data.append({"label": row.label, "what": needed, "n": row.needed})
        data.append({"label": row.label, "what": current, "n": round(row.current, 1)})
    chart = (
        alt.Chart(alt.Data(values=data))
        .mark_bar(cornerRadiusEnd=2)
        .encode(
            y=alt.Y(
                "label:N",
                title=None,
                sort=[row.label for row in shown],
                axis=alt.Axis(
                    labelLimit=220,
                    domain=False,
                    ticks=False,
                    labelPadding=8,
                    labelColor=charts.INK,
                    labelFontSize=13,
                ),
            ),
            yOffset=alt.YOffset("what:N", sort=[needed, current]),
            x=alt.X("n:Q", title=_("Answers per period"), axis=alt.Axis(domain=False)),
            color=alt.Color(
                "what:N",
                scale=alt.Scale(domain=[needed, current], range=[charts.BRAND_LIGHT, charts.BRAND]),
                legend=alt.Legend(title=None, orient="top"),
            ),
            tooltip=["label:N", "what:N", "n:Q"],
        )
        .properties(
            width=width,
            height={"step": 16},
            autosize=alt.AutoSizeParams(type="fit-x", contains="padding"),
            description=_("Answers needed and received per segment"),
            padding={"left": 4, "top": 6, "bottom": 4, "right": 12},
        )
        .configure(**charts._config())
    )
    return charts.render_svg(chart)


def _draw(
    request: HttpRequest, name: str, draw: Any, *args: Any
) -> tuple[str | None, bool, dt.datetime | None]:
    """The chart, whether drawing it failed, and when it was drawn if it is an earlier
    drawing than the numbers (``core.charts.slot``; workspace time)."""
    try:
        with charts.slot(charts.page_slot(request, name)) as at:
            svg = draw(*args)
    except Exception:
        log.exception("analytics_chart_failed chart=%s", name)
        return None, True, None
    membership: Membership = request.membership  # type: ignore[attr-defined]
    return svg, False, charts.stale_since(at, rollups.tz_of(membership.workspace))


# --- the pages -----------------------------------------------------------------------------


@workspace_required(Permission.VIEW_ALL_FEEDBACK)
def drivers_page(request: HttpRequest) -> HttpResponse:
    membership: Membership = request.membership  # type: ignore[attr-defined]
    workspace = membership.workspace
    tz = rollups.tz_of(workspace)
    today = timezone.localtime(clock.now(), tz).date()
    data = request.GET.copy()
    defaults = {
        "since": (today - dt.timedelta(days=DEFAULT_DAYS - 1)).isoformat(),
        "until": today.isoformat(),
        "kind": "reasons",
    }
    for name, value in defaults.items():
        if not data.get(name):
            data[name] = value
    form = DriversForm(data, workspace=workspace)
    context: dict[str, Any] = {"form": form, "min_n": drivers.MIN_N}
    if not form.is_valid():
        return render(request, "analytics/drivers.html", context)
    chosen = form.cleaned_data
    start = dt.datetime.combine(chosen["since"], dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(chosen["until"] + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    result = drivers.key_drivers(
        workspace, form.chosen_surveys(), since=start, until=end, kind=chosen["kind"]
    )
    svg, failed, drawn_at = _draw(request, "drivers", drivers_svg, result.drivers)
    context.update(
        {
            "result": result,
            "since": chosen["since"],
            "until": chosen["until"],
            "chart": svg,
            "chart_failed": failed,
            "chart_drawn_at": drawn_at,
            "r2_percent": None if result.r2 is None else 100 * result.r2,
        }
    )
    return render(request, "analytics/drivers.html", context)


@workspace_required(Permission.VIEW_ALL_FEEDBACK)
def planner_page(request: HttpRequest) -> HttpResponse:
    membership: Membership = request.membership  # type: ignore[attr-defined]
    workspace = membership.workspace
    data = request.GET.copy()
    for name, value in {"by": "branch", "margin": "5", "per": "month"}.items():
        if not data.get(name):
            data[name] = value
    form = PlannerForm(data, workspace=workspace)
    context: dict[str, Any] = {
        "form": form,
        "window_days": planner.WINDOW_DAYS,
        "confidence": round(planner.CONFIDENCE * 100),
    }
    if not form.is_valid():
        return render(request, "analytics/planner.html", context)
    chosen = form.cleaned_data
    result = planner.plan(
        workspace,
        form.chosen_surveys(),
        by=chosen["by"],
        margin=float(chosen["margin"]),
        per=chosen["per"],
    )
    svg, failed, drawn_at = _draw(request, "planner", planner_svg, result.rows)
    context.update(
        {
            "plan": result,
            "by_label": _dimension_labels()[result.by],
            "per_label": _period_labels()[result.per].lower(),
            "chart": svg,
            "chart_failed": failed,
            "chart_drawn_at": drawn_at,
        }
    )
    return render(request, "analytics/planner.html", context)
