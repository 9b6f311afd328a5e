"""The pain map (/analytics/pain/) and the competitors page (/analytics/competitors/).

Numbers from ``pain.pain_map`` and ``competitors.compare`` (definitions in
``docs/pain-map.md``); the filter form, the period and the supervisor's scope are the
dashboard's (``views.py``). Who sees what:

* the pain map: roles that see all feedback see the workspace; a supervisor sees the
  detractors about the employees of their teams (``views.team_employee_codes``), without the
  extrapolation to the customer base (their teams' share says nothing about the whole base);
  the employee role gets 403;
* the competitors page: admin, CX manager and analyst only (``VIEW_ALL_FEEDBACK``); a
  supervisor gets 403 — relationship surveys are about the company, not about a team.

Both tables download as CSV or XLSX (``?format=csv``). A chart that fails is logged and left
out; the table beside it says the same thing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from cxloop.accounts.models import Membership, Permission, Role, Workspace
from cxloop.core import clock
from cxloop.core.permissions import workspace_required

from . import exports, rollups
from .competitors import Comparison, CompetitorQuery, compare, competitor_surveys
from .pain import PainMap, PainQuery, pain_map
from .queries import QueryError
from .views import CONFIDENCE, DashboardForm, Period, team_employee_codes

log = logging.getLogger(__name__)

PAIN_DAYS = 90
COMPETITOR_DAYS = 365


class PainForm(DashboardForm):
    """The dashboard's form without "by"; the trend per week or month."""

    def __init__(self, *args: Any, workspace: Workspace, today: dt.date, **kwargs: Any) -> None:
        super().__init__(*args, workspace=workspace, today=today, **kwargs)
        del self.fields["by"]
        every = self.fields["every"]
        assert isinstance(every, forms.ChoiceField)
        every.choices = [("week", _("Week")), ("month", _("Month"))]


class CompetitorsForm(DashboardForm):
    """Survey and period only; the surveys with a competitors question."""

    def __init__(self, *args: Any, workspace: Workspace, today: dt.date, **kwargs: Any) -> None:
        super().__init__(*args, workspace=workspace, today=today, **kwargs)
        for name in ("region", "branch", "by", "every"):
            del self.fields[name]
        self.surveys = {s.code: s for s in competitor_surveys(workspace)}
        survey = self.fields["survey"]
        assert isinstance(survey, forms.ChoiceField)
        survey.choices = [("", _("All relationship surveys"))] + [
            (code, s.name) for code, s in self.surveys.items()
        ]


def _with_defaults(request: HttpRequest, today: dt.date, days: int, **more: str) -> Any:
    data = request.GET.copy()
    defaults = {
        "since": (today - dt.timedelta(days=days - 1)).isoformat(),
        "until": today.isoformat(),
        **more,
    }
    for name, value in defaults.items():
        if not data.get(name):
            data[name] = value
    return data


def _query_string(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("format", None)
    query.pop("table", None)
    return query.urlencode()


def _p_text(p: float | None) -> str:
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _draw(
    request: HttpRequest, name: str, draw: Callable[[], str | None], *, personal: bool = False
) -> tuple[str | None, bool, dt.datetime | None]:
    """The chart, whether drawing it failed, and when it was drawn if it is an earlier
    drawing than the numbers (``core.charts.slot``; workspace time)."""
    from cxloop.core import charts as core_charts

    try:
        with core_charts.slot(core_charts.page_slot(request, name, personal=personal)) as at:
            svg = draw()
    except Exception:
        # The table beside the chart says the same: the page never fails for a chart.
        log.exception("analytics_chart_failed chart=%s", name)
        return None, True, None
    membership = getattr(request, "membership", None)
    tz = rollups.tz_of(membership.workspace) if membership is not None else dt.UTC
    return svg, False, core_charts.stale_since(at, tz)


def _period_label(start: dt.date, every: str) -> str:
    if every == "month":
        return formats.date_format(start, "YEAR_MONTH_FORMAT")
    return _("Week of %(date)s") % {"date": formats.date_format(start, "SHORT_DATE_FORMAT")}


# --- the pain map --------------------------------------------------------------------------


def pain_rows(result: PainMap) -> list[dict[str, Any]]:
    """The table's rows: percentages rounded to 0.1, the trend as bars of 0-100."""
    rows = []
    for reason in result.reasons:
        affected = reason.extrapolation
        trend = [
            {
                "label": _period_label(point.start, result.every),
                "share": None if point.share is None else round(100 * point.share, 1),
                "citing": point.citing,
                "detractors": point.detractors,
            }
            for point in reason.trend
        ]
        rows.append(
            {
                "code": reason.code,
                "label": reason.label,
                "source": reason.source,
                "citing": reason.citing,
                "share_pct": round(100 * reason.share, 1),
                "share_low_pct": round(100 * reason.share_low, 1),
                "share_high_pct": round(100 * reason.share_high, 1),
                "cumulative_pct": round(100 * reason.cumulative, 1),
                "nps_gain": round(reason.nps_gain, 1),
                "cumulative_gain": round(reason.cumulative_gain, 1),
                "affected": None
                if affected is None
                else {"estimate": affected.estimate, "low": affected.low, "high": affected.high},
                "trend": trend,
            }
        )
    return rows


def _pain_download(rows: list[dict[str, Any]], fmt: str, period: Period) -> HttpResponse:
    headers = [
        _("Reason"), _("Code"), _("Detractors citing"), _("Share of detractors %"),
        _("Interval low %"), _("Interval high %"), _("Cumulative %"), _("NPS gain, points"),
        _("Cumulative NPS gain, points"), _("Customers affected"), _("Customers affected, low"),
        _("Customers affected, high"),
    ]  # fmt: skip
    table = [
        [
            r["label"], r["code"], r["citing"], r["share_pct"], r["share_low_pct"],
            r["share_high_pct"], r["cumulative_pct"], r["nps_gain"], r["cumulative_gain"],
            *(
                [r["affected"]["estimate"], r["affected"]["low"], r["affected"]["high"]]
                if r["affected"]
                else [None, None, None]
            ),
        ]
        for r in rows
    ]  # fmt: skip
    stem = f"pain-map-{period.since}-{period.until}"
    if fmt == "xlsx":
        return exports.xlsx_response(f"{stem}.xlsx", _("Pain map"), headers, table)
    return exports.csv_response(f"{stem}.csv", headers, table)


@workspace_required(Permission.VIEW_TEAM_FEEDBACK)
def pain(request: HttpRequest) -> HttpResponse:
    membership: Membership = request.membership  # type: ignore[attr-defined]
    workspace = membership.workspace
    tz = rollups.tz_of(workspace)
    today = timezone.localtime(clock.now(), tz).date()
    data = _with_defaults(request, today, PAIN_DAYS, every="week")
    form = PainForm(data, workspace=workspace, today=today)
    context: dict[str, Any] = {"form": form, "confidence": round(CONFIDENCE * 100)}

    scoped = not membership.can(Permission.VIEW_ALL_FEEDBACK)
    filters: dict[str, list[str]] = {}
    if scoped:
        codes = team_employee_codes(membership) if membership.role == Role.SUPERVISOR else []
        if not codes:
            return render(request, "analytics/pain.html", {**context, "no_team": True})
        filters["employee"] = codes
    context["scoped"] = scoped
    if not form.is_valid():
        return render(request, "analytics/pain.html", context)
    chosen = form.cleaned_data
    for name in ("region", "branch"):
        if chosen.get(name):
            filters[name] = [chosen[name]]
    period = Period.of(chosen["since"], chosen["until"], tz)
    every = chosen["every"] if chosen["every"] in ("week", "month") else "week"
    try:
        result = pain_map(
            PainQuery(
                workspace=workspace,
                survey=form.surveys.get(chosen["survey"]),
                since=period.start,
                until=period.end,
                filters=filters,
                every=every,
                confidence=CONFIDENCE,
                extrapolate=not scoped,
            )
        )
    except QueryError as exc:
        form.add_error(None, exc.message)
        return render(request, "analytics/pain.html", context)
    rows = pain_rows(result)
    fmt = request.GET.get("format", "")
    if fmt in ("csv", "xlsx"):
        return _pain_download(rows, fmt, period)

    from . import charts_more

    chart, failed, drawn_at = _draw(
        request, "pareto", lambda: charts_more.pareto_svg(rows), personal=scoped
    )
    context.update(
        {
            "result": result,
            "rows": rows,
            "period": period,
            "every": every,
            "chart": chart,
            "chart_failed": failed,
            "chart_drawn_at": drawn_at,
            "query": _query_string(request),
            "citing_any_pct": round(100 * result.citing_any / result.detractors, 1)
            if result.detractors
            else None,
        }
    )
    return render(request, "analytics/pain.html", context)


# --- competitors ---------------------------------------------------------------------------


def competitor_rows(result: Comparison) -> list[dict[str, Any]]:
    """Us first, then each competitor with the tests of the difference."""

    def r1(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    ours = result.ours
    rows: list[dict[str, Any]] = [
        {
            "label": _("Us"),
            "ours": True,
            "n": ours.n,
            "users": None,
            "nps": r1(ours.nps),
            "ci_low": r1(ours.ci_low),
            "ci_high": r1(ours.ci_high),
        }
    ]
    for c in result.competitors:
        significant = (
            c.stats.n > 0 and ours.n > 0 and c.difference.p_two_sided < 1.0 - result.confidence
        )
        rows.append(
            {
                "label": c.name,
                "ours": False,
                "n": c.stats.n,
                "users": c.users,
                "nps": r1(c.stats.nps),
                "ci_low": r1(c.stats.ci_low),
                "ci_high": r1(c.stats.ci_high),
                "diff": r1(c.difference.diff),
                "z": round(c.difference.z, 2),
                "p_value": c.difference.p_two_sided,
                "p_text": _p_text(c.difference.p_two_sided) if c.stats.n else "—",
                "significant": significant,
                "paired_n": c.paired.n,
                "paired_diff": r1(c.paired.diff),
                "paired_p": c.paired.p_two_sided,
                "paired_p_text": _p_text(c.paired.p_two_sided),
            }
        )
    return rows


def _competitors_download(rows: list[dict[str, Any]], fmt: str, period: Period) -> HttpResponse:
    headers = [
        _("Provider"), "n", _("Users"), "NPS", _("Interval low"), _("Interval high"),
        _("Difference, points (us - them)"), "z", _("p-value"), _("Paired n"),
        _("Paired difference, points"), _("Paired p-value"),
    ]  # fmt: skip
    table = []
    for r in rows:
        line = [r["label"], r["n"], r["users"], r["nps"], r["ci_low"], r["ci_high"]]
        if r["ours"]:
            line += [None] * 6
        else:
            line += [
                r["diff"], r["z"], round(r["p_value"], 4), r["paired_n"], r["paired_diff"],
                None if r["paired_p"] is None else round(r["paired_p"], 4),
            ]  # fmt: skip
        table.append(line)
    stem = f"competitors-{period.since}-{period.until}"
    if fmt == "xlsx":
        return exports.xlsx_response(f"{stem}.xlsx", _("Competitors"), headers, table)
    return exports.csv_response(f"{stem}.csv", headers, table)


@workspace_required(Permission.VIEW_ALL_FEEDBACK)
def competitors(request: HttpRequest) -> HttpResponse:
    membership: Membership = request.membership  # type: ignore[attr-defined]
    workspace = membership.workspace
    tz = rollups.tz_of(workspace)
    today = timezone.localtime(clock.now(), tz).date()
    data = _with_defaults(request, today, COMPETITOR_DAYS)
    form = CompetitorsForm(data, workspace=workspace, today=today)
    context: dict[str, Any] = {"form": form, "confidence": round(CONFIDENCE * 100)}
    if not form.surveys:
        return render(request, "analytics/competitors.html", {**context, "no_survey": True})
    if not form.is_valid():
        return render(request, "analytics/competitors.html", context)
    chosen = form.cleaned_data
    period = Period.of(chosen["since"], chosen["until"], tz)
    try:
        result = compare(
            CompetitorQuery(
                workspace=workspace,
                survey=form.surveys.get(chosen["survey"]),
                since=period.start,
                until=period.end,
                confidence=CONFIDENCE,
            )
        )
    except QueryError as exc:
        form.add_error(None, exc.message)
        return render(request, "analytics/competitors.html", context)
    rows = competitor_rows(result)
    fmt = request.GET.get("format", "")
    if fmt in ("csv", "xlsx"):
        return _competitors_download(rows, fmt, period)

    from . import charts_more

    chart, failed, drawn_at = _draw(
        request, "competitors", lambda: charts_more.competitors_svg(rows)
    )
    context.update(
        {
            "result": result,
            "rows": rows,
            "period": period,
            "chart": chart,
            "chart_failed": failed,
            "chart_drawn_at": drawn_at,
            "query": _query_string(request),
        }
    )
    return render(request, "analytics/competitors.html", context)
