"""The NPS dashboard (docs/dashboards.md): the company's NPS with its interval and the change
since the previous period, the trend, NPS by one dimension with response rates, and the
weekday x hour heat map. Every table downloads as CSV or XLSX (``?format=csv&table=groups``).

The numbers come from ``queries.nps``; this module only chooses what to ask and lays it out.
Who sees what: roles that see all feedback see the workspace; a supervisor sees the answers
about the employees of their teams (``team_employee_codes``: the same people as the cases
they see), and nothing else; the employee role gets 403 (no ``VIEW_TEAM_FEEDBACK``).

Charts are SVG drawn on the server; a chart that fails is logged and left out, the tables
beside it say the same thing.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import pickle
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django import forms
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.defaultfilters import floatformat
from django.template.loader import get_template
from django.utils import formats, timezone, translation
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cxloop.accounts.models import Membership, Permission, Role, Workspace
from cxloop.core import clock
from cxloop.core.permissions import workspace_required
from cxloop.core.templatetags.humanize_cx import thousands
from cxloop.organisation.models import (
    Branch,
    Channel,
    Employee,
    Product,
    Region,
    Stage,
    Team,
    Touchpoint,
)
from cxloop.surveys.models import Invitation, Survey

from . import exports, rollups
from .queries import NpsQuery, NpsResult, QueryError, nps_many
from .stats import NpsStats, nps_difference

log = logging.getLogger(__name__)

DEFAULT_DAYS = 90
MIN_N = 30
CONFIDENCE = 0.95
GRANULARITIES = ("day", "week", "month")
# The dimensions a reader may break the NPS down by, with the invitation's path to each code
# (for the response rate: invitations sent and answered in the same group).
ENTITY_DIMS: dict[str, str] = {
    "region": "branch__region__code",
    "branch": "branch__code",
    "team": "employee__team__code",
    "employee": "employee__code",
    "product": "product__code",
    "channel": "channel__code",
    "touchpoint": "touchpoint__code",
    "stage": "touchpoint__stage__code",
    "segment": "customer__segment",
}
_MODELS: dict[str, Any] = {
    "region": Region,
    "branch": Branch,
    "team": Team,
    "employee": Employee,
    "product": Product,
    "channel": Channel,
    "touchpoint": Touchpoint,
    "stage": Stage,
}
TABLES = ("groups", "trend", "heatmap")


def dimension_labels() -> dict[str, str]:
    return {
        "region": _("Region"),
        "branch": _("Branch"),
        "team": _("Team"),
        "employee": _("Employee"),
        "product": _("Product"),
        "channel": _("Channel"),
        "touchpoint": _("Touchpoint"),
        "stage": _("Journey stage"),
        "segment": _("Customer segment"),
    }


def weekday_labels() -> list[str]:
    """Monday first; ``queries.nps`` numbers the days as ISO does, Monday 1 to Sunday 7."""
    return [_("Mon"), _("Tue"), _("Wed"), _("Thu"), _("Fri"), _("Sat"), _("Sun")]


# --- who sees what -------------------------------------------------------------------------


def team_employee_codes(membership: Membership) -> list[str]:
    """A supervisor's people, as ``cases.services.visible_cases`` defines them: those who
    report to them, work in their teams or at the branches they manage (and themselves)."""
    mine = list(
        Employee.objects.filter(workspace=membership.workspace, user=membership.user).values_list(
            "pk", flat=True
        )
    )
    if not mine:
        return []
    teams = Team.objects.filter(Q(employees__supervisor__in=mine) | Q(employees__in=mine)).values(
        "pk"
    )
    return sorted(
        Employee.objects.filter(workspace=membership.workspace)
        .filter(
            Q(pk__in=mine)
            | Q(supervisor__in=mine)
            | Q(team__in=teams)
            | Q(branch__manager__in=mine)
            | Q(team__branch__manager__in=mine)
        )
        .values_list("code", flat=True)
        .distinct()
    )


# --- the filter form -----------------------------------------------------------------------


def nps_surveys(workspace: Workspace) -> list[Survey]:
    """The workspace's surveys whose score question is an NPS (0-10)."""
    return [
        survey
        for survey in Survey.objects.filter(workspace=workspace).order_by("name", "code")
        if rollups.is_nps(survey)
    ]


class DashboardForm(forms.Form):
    survey = forms.ChoiceField(label=gettext_lazy("Survey"), required=False)
    since = forms.DateField(
        label=gettext_lazy("From"),
        required=False,
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    until = forms.DateField(
        label=gettext_lazy("To"),
        required=False,
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    region = forms.ChoiceField(label=gettext_lazy("Region"), required=False)
    branch = forms.ChoiceField(label=gettext_lazy("Branch"), required=False)
    by = forms.ChoiceField(label=gettext_lazy("By"), required=False)
    every = forms.ChoiceField(label=gettext_lazy("Trend per"), required=False)

    def __init__(self, *args: Any, workspace: Workspace, today: dt.date, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.today = today
        self.surveys = {s.code: s for s in nps_surveys(workspace)}
        regions = Region.objects.filter(workspace=workspace).values_list("code", "name")
        branches = Branch.objects.filter(workspace=workspace).values_list("code", "name")
        choices: dict[str, list[tuple[str, str]]] = {
            "survey": [("", _("All NPS surveys"))]
            + [(code, survey.name) for code, survey in self.surveys.items()],
            "region": [("", _("All regions")), *regions],
            "branch": [("", _("All branches")), *branches],
            "by": list(dimension_labels().items()),
            "every": [("day", _("Day")), ("week", _("Week")), ("month", _("Month"))],
        }
        for name, options in choices.items():
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)
            field.choices = options

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        until = data.get("until") or self.today
        since = data.get("since") or until - dt.timedelta(days=DEFAULT_DAYS - 1)
        if self.has_error("since") or self.has_error("until"):
            return data
        if since > until:
            raise forms.ValidationError(_("The start date is after the end date."))
        if (until - since).days > 3 * 366:
            raise forms.ValidationError(_("Choose a period of at most three years."))
        data["since"], data["until"] = since, until
        data["by"] = data.get("by") or "branch"
        data["every"] = data.get("every") or "week"
        return data


# --- the numbers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Dates the reader chose (inclusive, in the workspace's time zone) and their instants."""

    since: dt.date
    until: dt.date
    start: dt.datetime
    end: dt.datetime  # exclusive: midnight after ``until``

    @classmethod
    def of(cls, since: dt.date, until: dt.date, tz: dt.tzinfo) -> Period:
        start = dt.datetime.combine(since, dt.time.min, tzinfo=tz)
        end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
        return cls(since, until, start, end)

    def previous(self, tz: dt.tzinfo) -> Period:
        days = (self.until - self.since).days + 1
        return Period.of(
            self.since - dt.timedelta(days=days), self.since - dt.timedelta(days=1), tz
        )


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _stats_row(stats: NpsStats) -> dict[str, Any]:
    return {
        "n": stats.n,
        "promoters": stats.promoters,
        "passives": stats.passives,
        "detractors": stats.detractors,
        "nps": _round(stats.nps),
        "ci_low": _round(stats.ci_low),
        "ci_high": _round(stats.ci_high),
    }


def _names(dimension: str, workspace: Workspace, codes: Sequence[Any]) -> dict[str, str]:
    model = _MODELS.get(dimension)
    if model is None:
        return {}
    return dict(
        model.objects.filter(workspace=workspace, code__in=[str(c) for c in codes]).values_list(
            "code", "name"
        )
    )


def response_rates(
    workspace: Workspace,
    dimension: str,
    *,
    surveys: Sequence[Survey],
    period: Period,
    filters: Mapping[str, Sequence[str]],
) -> dict[str, tuple[int, int]]:
    """{group code: (invitations sent, of them answered)} in the period, one aggregate query.

    Invitations sent in the period, answered at any time since (an answer that comes the day
    after the period still answers that period's invitation). Test sends never count.
    """
    invitations = Invitation.objects.filter(
        workspace=workspace,
        survey__in=list(surveys),
        is_test=False,
        sent_at__gte=period.start,
        sent_at__lt=period.end,
    )
    for name, codes in filters.items():
        invitations = invitations.filter(**{f"{ENTITY_DIMS[name]}__in": list(codes)})
    path = ENTITY_DIMS[dimension]
    rows = (
        invitations.values(path)
        .annotate(sent=Count("pk"), answered=Count("pk", filter=Q(answered_at__isnull=False)))
        .order_by()
    )
    return {str(row[path] or ""): (row["sent"], row["answered"]) for row in rows}


def _period_start(value: Any) -> dt.date | None:
    """The first day of a period key of ``queries.nps``: "2025-03-07", "2025-W10", "2025-03"."""
    text = str(value)
    try:
        if "-W" in text:
            year, week = text.split("-W")
            return dt.date.fromisocalendar(int(year), int(week), 1)
        if len(text) == 7:
            return dt.date.fromisoformat(f"{text}-01")
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def _period_label(start: dt.date, every: str) -> str:
    if every == "month":
        return formats.date_format(start, "YEAR_MONTH_FORMAT")
    if every == "week":
        return _("Week of %(date)s") % {"date": formats.date_format(start, "SHORT_DATE_FORMAT")}
    return formats.date_format(start, "SHORT_DATE_FORMAT")


def _p_text(p: float | None) -> str:
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _p_phrase(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


@dataclass
class Dashboard:
    """Everything the page shows, computed once for the page and its downloads."""

    result: NpsResult
    previous: NpsResult
    groups: list[dict[str, Any]]
    trend: list[dict[str, Any]]
    heatmap: list[dict[str, Any]]


def build(
    workspace: Workspace,
    *,
    survey: Survey | None,
    period: Period,
    previous: Period,
    filters: Mapping[str, Sequence[str]],
    by: str,
    every: str,
) -> Dashboard:
    """Four questions to ``queries.nps`` (by group, the previous period, the trend, the heat
    map) and one aggregate query for the response rates."""

    def query(start: dt.datetime, end: dt.datetime, group_by: tuple[str, ...]) -> NpsQuery:
        return NpsQuery(
            workspace=workspace,
            survey=survey,
            since=start,
            until=end,
            group_by=group_by,
            filters=dict(filters),
            min_n=MIN_N,
            confidence=CONFIDENCE,
        )

    result, before, trend, heat = nps_many(
        [
            query(period.start, period.end, (by,)),
            query(previous.start, previous.end, ()),
            query(period.start, period.end, (every,)),
            query(period.start, period.end, ("weekday", "hour")),
        ]
    )

    surveys = [survey] if survey is not None else nps_surveys(workspace)
    rates = response_rates(workspace, by, surveys=surveys, period=period, filters=filters)
    codes = [group.key.get(by) for group in result.groups]
    names = _names(by, workspace, [c for c in codes if c not in (None, "")])
    groups = []
    for group in result.groups:
        code = group.key.get(by)
        code_text = "" if code is None else str(code)
        sent, answered = rates.get(code_text, (0, 0))
        groups.append(
            {
                "code": code_text,
                "label": names.get(code_text, code_text) or _("(not set)"),
                **_stats_row(group.stats),
                "p_value": group.p_value,
                "p_text": _p_text(group.p_value),
                "below_average": group.below_average,
                "sent": sent,
                "answered": answered,
                "rate": _round(100.0 * answered / sent) if sent else None,
            }
        )
    groups.sort(key=lambda row: (row["nps"] is None, -(row["nps"] or 0), -row["n"]))

    trend_rows = []
    for group in trend.groups:
        start = _period_start(group.key.get(every))
        if start is None:
            continue
        trend_rows.append(
            {
                "start": start,
                "label": _period_label(start, every),
                **_stats_row(group.stats),
                "below_average": group.below_average,
            }
        )
    trend_rows.sort(key=lambda row: row["start"])

    days = weekday_labels()
    cells = []
    for group in heat.groups:
        weekday, hour = group.key.get("weekday"), group.key.get("hour")
        if weekday is None or hour is None:
            continue
        cells.append(
            {
                "weekday": int(weekday),
                "weekday_label": days[(int(weekday) - 1) % 7],
                "hour": int(hour),
                **_stats_row(group.stats),
                "p_text": _p_text(group.p_value),
                "below_average": group.below_average,
            }
        )
    cells.sort(key=lambda cell: (cell["weekday"], cell["hour"]))
    return Dashboard(result, before, groups, trend_rows, cells)


# --- tables for the downloads --------------------------------------------------------------


def _table(dashboard: Dashboard, table: str, by: str) -> tuple[str, list[str], list[list[Any]]]:
    """(title, headers, rows) of one table, the values as the page shows them."""
    if table == "trend":
        headers = [_("Period start"), "n", "NPS", _("Interval low"), _("Interval high")]
        rows: list[list[Any]] = [
            [r["start"].isoformat(), r["n"], r["nps"], r["ci_low"], r["ci_high"]]
            for r in dashboard.trend
        ]
        return _("NPS trend"), headers, rows
    if table == "heatmap":
        headers = [
            _("Weekday"), _("Hour"), "n", "NPS", _("Interval low"), _("Interval high"),
            _("Below average"),
        ]  # fmt: skip
        rows = [
            [c["weekday_label"], c["hour"], c["n"], c["nps"], c["ci_low"], c["ci_high"],
             c["below_average"]]
            for c in dashboard.heatmap
        ]  # fmt: skip
        return _("NPS by weekday and hour"), headers, rows
    label = dimension_labels()[by]
    headers = [
        label, _("Code"), "n", "NPS", _("Interval low"), _("Interval high"), _("p-value"),
        _("Below average"), _("Invitations sent"), _("Answered"), _("Response rate %"),
    ]  # fmt: skip
    rows = [
        [g["label"], g["code"], g["n"], g["nps"], g["ci_low"], g["ci_high"],
         None if g["p_value"] is None else round(g["p_value"], 4), g["below_average"],
         g["sent"], g["answered"], g["rate"]]
        for g in dashboard.groups
    ]  # fmt: skip
    return _("NPS by %(dimension)s") % {"dimension": label.lower()}, headers, rows


def _download(dashboard: Dashboard, fmt: str, table: str, by: str, period: Period) -> HttpResponse:
    title, headers, rows = _table(dashboard, table, by)
    stem = f"nps-{by if table == 'groups' else table}-{period.since}-{period.until}"
    if fmt == "xlsx":
        return exports.xlsx_response(f"{stem}.xlsx", title, headers, rows)
    return exports.csv_response(f"{stem}.csv", headers, rows)


# --- the page ------------------------------------------------------------------------------


def _charts(
    request: HttpRequest,
    dashboard: Dashboard,
    every: str,
    annotations: Sequence[tuple[dt.date, str]] = (),
    *,
    personal: bool = False,
) -> tuple[dict[str, str | None], bool, float | None]:
    """The page's charts, whether one failed, and when the oldest of them was drawn if one
    is an earlier drawing than the numbers (``core.charts.slot``; epoch seconds)."""
    from cxloop.core import charts as core_charts

    from . import charts

    drawn: dict[str, str | None] = {}
    failed = False
    overall = dashboard.result.overall.nps
    builders: dict[str, Callable[[], str | None]] = {
        "groups": lambda: charts.groups_svg(dashboard.groups, overall, MIN_N),
        "trend": lambda: charts.trend_svg(
            dashboard.trend, MIN_N, unit=every, annotations=annotations
        ),
        "heatmap": lambda: charts.heatmap_svg(dashboard.heatmap, weekday_labels(), MIN_N),
    }
    stale: float | None = None
    for name, draw in builders.items():
        try:
            with core_charts.slot(core_charts.page_slot(request, name, personal=personal)) as at:
                drawn[name] = draw()
            if at.stale and at.drawn_at is not None:
                stale = at.drawn_at if stale is None else min(stale, at.drawn_at)
        except Exception:
            # The table beside the chart says the same: the page never fails for a chart.
            log.exception("analytics_chart_failed chart=%s", name)
            drawn[name] = None
            failed = True
    return drawn, failed, stale


@functools.lru_cache(maxsize=16384)
def _one_decimal(value: float, language: str | None) -> str:
    """``floatformat:1`` of a value in a language, kept: a table repeats the same few
    thousand values, and the filter (Decimal arithmetic, localisation) is its dearest part."""
    return str(floatformat(value, 1))


def groups_rows(groups: Sequence[Mapping[str, Any]], min_n: int) -> SafeString:
    """The group table's rows, as ``dashboard.html`` wrote them with a ``{% for %}`` (the test
    renders both and compares): 300 employees through the template engine cost a first request
    after new answers about a hundred milliseconds, this a fraction."""
    language = translation.get_language()
    below = _("below average")
    small = _("n &lt; %(n)s") % {"n": min_n}

    def number(value: float | None, default: str = "") -> str:
        return default if value is None else _one_decimal(value, language)

    rows = []
    for g in groups:
        if g["below_average"]:
            css, flag = "below", f'<span class="tag bad flag">{below}</span>'
        elif g["n"] < min_n:
            css, flag = "small", f'<span class="muted">{small}</span>'
        else:
            css, flag = "", ""
        rate = "—" if g["rate"] is None else f"{number(g['rate'])}%"
        rows.append(
            f'<tr data-code="{escape(g["code"])}" class="{css}">\n'
            f'      <th scope="row">{escape(g["label"])}</th>'
            f'<td class="num">{thousands(g["n"])}</td>'
            f'<td class="num nps">{number(g["nps"], "—")}</td>'
            f'<td class="num interval">{number(g["ci_low"])} … {number(g["ci_high"])}</td>'
            f'<td class="num">{escape(g["p_text"])}</td>\n'
            f"      <td>{flag}</td>\n"
            f'      <td class="num">{thousands(g["sent"])}</td><td class="num rate">{rate}</td></tr>\n'
            "    "
        )
    return mark_safe("".join(rows))  # noqa: S308 - every value above is escaped or ours


def _table_keys(board: Dashboard, by_label: str) -> dict[str, str]:
    """The keys under which the page's three tables are kept rendered (``{% cache %}``): their
    rows, the language and the template's text. The same numbers render the same HTML, so a
    page asked again skips rendering its tables (the employee table alone is 300 rows of
    formatted numbers: most of a warm request's CPU); new numbers are new keys."""
    common = (translation.get_language(), MIN_N, _template_version())
    rows = {"trend": board.trend, "groups": (board.groups, by_label), "heatmap": board.heatmap}
    keys = {}
    for name, data in rows.items():
        try:
            blob = pickle.dumps((common, data), protocol=5)
        except Exception:  # never for our rows; then this table is rendered every time
            keys[name] = uuid.uuid4().hex
            continue
        keys[name] = hashlib.blake2b(blob, digest_size=16).hexdigest()
    return keys


@functools.cache
def _template_version() -> str:
    """The dashboard template's text, hashed: a release with other markup gets other keys."""
    origin = getattr(get_template("analytics/dashboard.html"), "origin").name  # noqa: B009
    return hashlib.blake2b(Path(origin).read_bytes(), digest_size=8).hexdigest()


def _comparison(result: NpsResult, previous: NpsResult) -> dict[str, Any]:
    now, before = result.overall, previous.overall
    difference = nps_difference(now, before)
    significant = difference.diff is not None and difference.p_two_sided < 1.0 - CONFIDENCE
    return {
        "previous": _stats_row(before),
        "diff": _round(difference.diff),
        "p_value": difference.p_two_sided,
        "p_text": _p_phrase(difference.p_two_sided),
        "significant": significant,
    }


@workspace_required(Permission.VIEW_TEAM_FEEDBACK)
def dashboard(request: HttpRequest) -> HttpResponse:
    membership: Membership = request.membership  # type: ignore[attr-defined]
    workspace = membership.workspace
    tz = rollups.tz_of(workspace)
    today = timezone.localtime(clock.now(), tz).date()
    # The defaults go into the form's data, so that its fields show the period on the page.
    data = request.GET.copy()
    defaults = {
        "since": (today - dt.timedelta(days=DEFAULT_DAYS - 1)).isoformat(),
        "until": today.isoformat(),
        "by": "branch",
        "every": "week",
    }
    for name, value in defaults.items():
        if not data.get(name):
            data[name] = value
    form = DashboardForm(data, workspace=workspace, today=today)
    context: dict[str, Any] = {"form": form, "min_n": MIN_N, "confidence": round(CONFIDENCE * 100)}

    scoped = not membership.can(Permission.VIEW_ALL_FEEDBACK)
    filters: dict[str, list[str]] = {}
    if scoped:
        if membership.role != Role.SUPERVISOR:
            return render(request, "analytics/dashboard.html", {**context, "no_team": True})
        codes = team_employee_codes(membership)
        if not codes:
            return render(request, "analytics/dashboard.html", {**context, "no_team": True})
        filters["employee"] = codes
    context["scoped"] = scoped

    if not form.is_valid():
        return render(request, "analytics/dashboard.html", context)
    chosen = form.cleaned_data
    if chosen["region"]:
        filters["region"] = [chosen["region"]]
    if chosen["branch"]:
        filters["branch"] = [chosen["branch"]]
    period = Period.of(chosen["since"], chosen["until"], tz)
    previous = period.previous(tz)
    by, every = chosen["by"], chosen["every"]
    try:
        board = build(
            workspace,
            survey=form.surveys.get(chosen["survey"]),
            period=period,
            previous=previous,
            filters=filters,
            by=by,
            every=every,
        )
    except QueryError as exc:
        form.add_error(None, exc.message)
        return render(request, "analytics/dashboard.html", context)

    fmt = request.GET.get("format", "")
    if fmt in ("csv", "xlsx"):
        table = request.GET.get("table", "groups")
        return _download(board, fmt, table if table in TABLES else "groups", by, period)

    # The initiatives dated in the period mark the trend (not for a supervisor's own view).
    marks: list[tuple[dt.date, str]] = []
    if not scoped:
        from .initiatives import chart_annotations

        marks = chart_annotations(
            workspace,
            period.since,
            period.until,
            branches=filters.get("branch", ()),
            regions=filters.get("region", ()),
            survey=form.surveys.get(chosen["survey"]),
        )
    drawn, charts_failed, charts_stale = _charts(request, board, every, marks, personal=scoped)
    from .charts import MAX_BARS

    with_nps = sum(1 for group in board.groups if group["nps"] is not None)
    capped = (
        {"top": MAX_BARS // 2, "bottom": MAX_BARS - MAX_BARS // 2, "total": with_nps}
        if with_nps > MAX_BARS
        else None
    )
    query = request.GET.copy()
    query.pop("format", None)
    query.pop("table", None)
    context.update(
        {
            "board": board,
            "overall": _stats_row(board.result.overall),
            "comparison": _comparison(board.result, board.previous),
            "period": period,
            "previous_period": previous,
            "by": by,
            "by_label": dimension_labels()[by],
            "every": every,
            "charts": drawn,
            "charts_failed": charts_failed,
            "charts_drawn_at": None
            if charts_stale is None
            else timezone.localtime(dt.datetime.fromtimestamp(charts_stale, dt.UTC), tz),
            "table_keys": _table_keys(board, by_label=dimension_labels()[by]),
            # Called by the template only when the kept table is not found.
            "groups_rows": functools.partial(groups_rows, board.groups, MIN_N),
            "chart_capped": capped,
            "query": query.urlencode(),
            "weekdays": weekday_labels(),
        }
    )
    return render(request, "analytics/dashboard.html", context)
