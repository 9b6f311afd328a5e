"""The monthly NPS report as a PDF (docs/monthly-report.md).

One calendar month of a workspace (in its time zone), for one reader's scope: the company for
the roles that see all feedback (admin, cx_manager, analyst; and the ``monthly_report``
command), the employees of their teams for a supervisor (``views.team_employee_codes``, the
dashboard's own scoping). The numbers come from the same functions as the dashboard and the
digest; the charts are the dashboard's own altair charts (``charts.trend_svg``,
``charts.heatmap_svg``) rasterised by vl-convert, so the page, the digest and the report draw
the same picture.

What it says: the month's NPS with its interval and n against the previous month (difference,
significant or not); the trend of the last 12 months; NPS by branch (by employee for a
supervisor) with intervals, response rates and below-average flags; the weekday x hour heat
map; the top reasons of the pain map; the closed loop (cases opened, closed within SLA,
breached, problems fixed and verified). Org-chart names and reason labels only: no customer's
personal data.

Written in the workspace's default language (``translation.override``), numbers and dates
formatted for it. The PDF is drawn by fpdf2 with Noto Sans (the ``fontpkg-noto-sans`` wheel,
so Cyrillic and Romanian ș/ț render on a machine without system fonts).
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _

from cxloop.accounts.models import Membership, Permission, Role, Workspace
from cxloop.cases.models import OPEN_STATUSES, Case, Problem, ProblemStatus
from cxloop.cases.services import visible_cases
from cxloop.core import charts as core_charts
from cxloop.core import clock

from . import pain, rollups
from .queries import NpsQuery, nps
from .views import (
    CONFIDENCE,
    MIN_N,
    Period,
    _comparison,
    _period_label,
    _period_start,
    _stats_row,
    build,
    dimension_labels,
    team_employee_codes,
    weekday_labels,
)

log = logging.getLogger(__name__)

TREND_MONTHS = 12
TOP_REASONS = 5
MAX_GROUPS = 60  # a supervisor's employees, or a large network's branches, per table
CHART_WIDTH = 760  # CSS pixels; the PNG holds CHART_SCALE times as many
CHART_SCALE = 2.0
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


# --- the month -----------------------------------------------------------------------------


def parse_month(text: str) -> dt.date:
    """The first day of "YYYY-MM"; ``ValueError`` for anything else."""
    match = _MONTH.match(text.strip())
    if not match:
        raise ValueError(f"not a month (YYYY-MM): {text!r}")
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12 or year < 2000:
        raise ValueError(f"not a month (YYYY-MM): {text!r}")
    return dt.date(year, month, 1)


def default_month(workspace: Workspace, now: dt.datetime | None = None) -> dt.date:
    """The first day of the previous month in the workspace's time zone."""
    today = timezone.localtime(now or clock.now(), rollups.tz_of(workspace)).date()
    return add_months(today.replace(day=1), -1)


def add_months(first: dt.date, months: int) -> dt.date:
    index = first.year * 12 + first.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def month_period(first: dt.date, tz: dt.tzinfo, months: int = 1) -> Period:
    """``months`` calendar months from ``first`` (local days, inclusive)."""
    last_month = add_months(first, months - 1)
    last = last_month.replace(day=calendar.monthrange(last_month.year, last_month.month)[1])
    return Period.of(first, last, tz)


# --- the numbers ---------------------------------------------------------------------------


@dataclass
class MonthlyReport:
    """What one reader's report says; the PNGs are None when there is nothing to draw or the
    drawing failed (the table beside says the same)."""

    workspace: Workspace
    scope: str  # "company" or "teams"
    month: dt.date  # its first day
    period: Period
    previous: Period
    language: str
    overall: dict[str, Any]
    comparison: dict[str, Any]
    by: str
    groups: list[dict[str, Any]]
    trend: list[dict[str, Any]]
    heatmap: list[dict[str, Any]]
    reasons: list[dict[str, Any]]
    detractors: int
    loop: dict[str, Any]
    trend_png: bytes | None = None
    heatmap_png: bytes | None = None
    employees: list[str] = field(default_factory=list)  # a supervisor's people (codes)


def scope_of(membership: Membership | None) -> tuple[str, list[str]]:
    """("company", []) or ("teams", employee codes); ``LookupError`` for a reader without a
    report (an employee, a supervisor without a team): the dashboard's rule."""
    if membership is None or membership.can(Permission.VIEW_ALL_FEEDBACK):
        return "company", []
    if membership.role != Role.SUPERVISOR:
        raise LookupError(f"role {membership.role} gets no report")
    codes = team_employee_codes(membership)
    if not codes:
        raise LookupError("no team")
    return "teams", codes


def _closed_loop(
    workspace: Workspace, membership: Membership | None, scope: str, period: Period
) -> dict[str, Any]:
    """Cases and problems of the month, in the reader's scope."""
    cases = (
        visible_cases(membership)
        if membership is not None
        else Case.objects.filter(workspace=workspace)
    )
    opened = cases.filter(opened_at__gte=period.start, opened_at__lt=period.end)
    closed = cases.filter(closed_at__gte=period.start, closed_at__lt=period.end)
    closed_n = closed.count()
    within = closed.filter(breached=False).count()
    # Opened in the month and missed: closed late or escalated, or still open past the deadline
    # at the month's end.
    breached = opened.filter(
        Q(breached=True) | Q(status__in=OPEN_STATUSES, due_at__lt=period.end)
    ).count()
    problems = Problem.objects.filter(workspace=workspace)
    if scope != "company":
        # The register is the company's: a supervisor sees the problems their cases are part of.
        problems = problems.filter(cases__in=cases).distinct()
    fixed = problems.filter(fixed_on__gte=period.since, fixed_on__lte=period.until).count()
    verified = 0
    for effect in problems.filter(status=ProblemStatus.VERIFIED).values_list("effect", flat=True):
        measured = (effect or {}).get("measured_at")
        try:
            at = dt.datetime.fromisoformat(str(measured))
        except ValueError:
            continue
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.UTC)
        if period.start <= at < period.end:
            verified += 1
    return {
        "opened": opened.count(),
        "closed": closed_n,
        "closed_within_sla": within,
        "within_sla_pct": round(100.0 * within / closed_n, 1) if closed_n else None,
        "breached": breached,
        "problems_fixed": fixed,
        "problems_verified": verified,
    }


def _png(draw: Callable[[], str | None], name: str) -> bytes | None:
    try:
        svg = draw()
        if svg is None:
            return None
        png: bytes = core_charts.svg_to_png(svg, scale=CHART_SCALE)
        return png
    except Exception:
        log.exception("report_chart_failed chart=%s", name)
        return None


def collect(
    workspace: Workspace,
    month: dt.date,
    membership: Membership | None = None,
    *,
    charts: bool = True,
) -> MonthlyReport:
    """The month's numbers for the reader (None: the company), in the active language."""
    from . import charts as chart_builders

    scope, employees = scope_of(membership)
    filters: dict[str, list[str]] = {"employee": employees} if employees else {}
    by = "branch" if scope == "company" else "employee"
    tz = rollups.tz_of(workspace)
    period = month_period(month, tz)
    previous = month_period(add_months(month, -1), tz)
    # The dashboard's own computation: by group (with response rates), the previous period,
    # the heat map.
    board = build(
        workspace,
        survey=None,
        period=period,
        previous=previous,
        filters=filters,
        by=by,
        every="month",
    )
    months = month_period(add_months(month, 1 - TREND_MONTHS), tz, TREND_MONTHS)
    trend_result = nps(
        NpsQuery(
            workspace=workspace,
            since=months.start,
            until=months.end,
            group_by=("month",),
            filters=dict(filters),
            min_n=MIN_N,
            confidence=CONFIDENCE,
        )
    )
    trend: list[dict[str, Any]] = []
    for group in trend_result.groups:
        start = _period_start(group.key.get("month"))
        if start is not None:
            trend.append(
                {
                    "start": start,
                    "label": _period_label(start, "month"),
                    **_stats_row(group.stats),
                    "below_average": group.below_average,
                }
            )
    trend.sort(key=lambda row: row["start"])

    pains = pain.pain_map(
        pain.PainQuery(
            workspace=workspace,
            since=period.start,
            until=period.end,
            filters=dict(filters),
            every="month",
            confidence=CONFIDENCE,
            extrapolate=False,
        )
    )
    reasons = [
        {
            "label": reason.label,
            "citing": reason.citing,
            "share": 100.0 * reason.share,
            "share_low": 100.0 * reason.share_low,
            "share_high": 100.0 * reason.share_high,
            "nps_gain": reason.nps_gain,
        }
        for reason in pains.reasons[:TOP_REASONS]
    ]

    report = MonthlyReport(
        workspace=workspace,
        scope=scope,
        month=month,
        period=period,
        previous=previous,
        language=translation.get_language() or settings.LANGUAGE_CODE,
        overall=_stats_row(board.result.overall),
        comparison=_comparison(board.result, board.previous),
        by=by,
        groups=board.groups,
        trend=trend,
        heatmap=board.heatmap,
        reasons=reasons,
        detractors=pains.detractors,
        loop=_closed_loop(workspace, membership, scope, period),
        employees=employees,
    )
    if charts:
        report.trend_png = _png(
            lambda: chart_builders.trend_svg(trend, MIN_N, width=CHART_WIDTH, unit="month"),
            "trend",
        )
        report.heatmap_png = _png(
            lambda: chart_builders.heatmap_svg(
                board.heatmap, weekday_labels(), MIN_N, width=CHART_WIDTH
            ),
            "heatmap",
        )
    return report


# --- the PDF -------------------------------------------------------------------------------


WEIGHTS = {"": 400, "B": 700}


def font_path() -> Path:
    """Noto Sans (variable) from the ``fontpkg-noto-sans`` wheel: Latin, Cyrillic, ș and ț."""
    import fontpkg_noto_sans

    return Path(fontpkg_noto_sans.ROOT) / "files" / "NotoSans[wdth,wght].ttf"


@functools.cache
def static_fonts() -> dict[str, Path]:
    """{fpdf style: a static TTF} cut from the variable font once and kept under
    ``VAR_DIR/fonts`` (cutting takes seconds; every later report in any process reuses it)."""
    from fontTools import ttLib
    from fontTools.varLib import instancer

    source = font_path()
    stamp = hashlib.sha256(
        f"{source}:{source.stat().st_size}:{source.stat().st_mtime_ns}".encode()
    ).hexdigest()[:12]
    folder = Path(settings.VAR_DIR) / "fonts"
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for style, weight in WEIGHTS.items():
        path = folder / f"NotoSans-{weight}-{stamp}.ttf"
        if not path.exists():
            font = ttLib.TTFont(source)
            instancer.instantiateVariableFont(
                font, {"wght": weight, "wdth": 100}, inplace=True, static=True
            )
            fd, temporary = tempfile.mkstemp(dir=folder, suffix=".ttf")
            os.close(fd)
            font.save(temporary)
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)  # atomic: a reader never sees half a file
        paths[style] = path
    return paths


def _num(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return formats.number_format(value, use_l10n=True, force_grouping=True)
    return formats.number_format(round(value, digits), digits, use_l10n=True)


def _signed(value: float | None) -> str:
    if value is None:
        return "—"
    text = _num(value)
    return f"+{text}" if value > 0 else text


def _interval(row: dict[str, Any]) -> str:
    if row.get("ci_low") is None:
        return "—"
    return f"{_num(row['ci_low'])} … {_num(row['ci_high'])}"


def _month_label(first: dt.date) -> str:
    return formats.date_format(first, "YEAR_MONTH_FORMAT")


def title_of(report: MonthlyReport) -> str:
    return _("%(company)s: NPS report for %(month)s") % {
        "company": report.workspace.name,
        "month": _month_label(report.month),
    }


def render_pdf(report: MonthlyReport) -> bytes:
    """The report as PDF bytes (A4 portrait), in the active language."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    ink, muted, bad = (29, 36, 51), (92, 101, 119), (200, 50, 43)
    generated = formats.date_format(
        timezone.localtime(clock.now(), rollups.tz_of(report.workspace)), "DATETIME_FORMAT"
    )
    footer_text = _("Generated %(when)s · no customer personal data · page") % {"when": generated}

    class Document(FPDF):
        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("Noto", "", 8)
            self.set_text_color(*muted)
            self.cell(0, 6, f"{footer_text} {self.page_no()}/{{nb}}", align="C")

    pdf = Document(orientation="portrait", unit="mm", format="A4")
    pdf.set_title(title_of(report))
    pdf.set_author(report.workspace.name)
    pdf.set_creator("cxloop")
    pdf.set_lang(report.language)
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(True, margin=16)
    for style, path in static_fonts().items():
        pdf.add_font("Noto", style=style, fname=path)
    pdf.alias_nb_pages()
    pdf.add_page()
    width = pdf.epw
    head_style = FontFace(emphasis="BOLD", fill_color=(236, 240, 247))

    def heading(text: str, size: float = 13) -> None:
        pdf.ln(3)
        if pdf.get_y() > pdf.h - 60:
            pdf.add_page()
        pdf.set_font("Noto", "B", size)
        pdf.set_text_color(*ink)
        pdf.multi_cell(width, size * 0.5, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)

    def para(text: str, size: float = 10, color: tuple[int, int, int] = ink) -> None:
        pdf.set_font("Noto", "", size)
        pdf.set_text_color(*color)
        pdf.multi_cell(width, size * 0.5, text, new_x="LMARGIN", new_y="NEXT")

    def image(png: bytes | None, empty: str) -> None:
        if png is None:
            para(empty, 9, muted)
            return
        import io

        from PIL import Image

        with Image.open(io.BytesIO(png)) as img:
            height = width * img.height / img.width
        if pdf.get_y() + height > pdf.h - 16:
            pdf.add_page()
        pdf.image(io.BytesIO(png), x=pdf.l_margin, w=width)
        pdf.ln(2)

    def table(
        headers: Sequence[str],
        rows: Sequence[Sequence[str]],
        widths: Sequence[int],
        red: Sequence[bool] = (),
    ) -> None:
        pdf.set_font("Noto", "", 9)
        pdf.set_text_color(*ink)
        aligns = ["LEFT"] + ["RIGHT"] * (len(headers) - 1)
        with pdf.table(
            col_widths=tuple(widths),
            text_align=tuple(aligns),
            headings_style=head_style,
            line_height=5,
            borders_layout="HORIZONTAL_LINES",
            width=width,
        ) as grid:
            header = grid.row()
            for text in headers:
                header.cell(text)
            for index, cells in enumerate(rows):
                style = FontFace(color=bad) if index < len(red) and red[index] else None
                row = grid.row(style=style)
                for text in cells:
                    row.cell(text)
        pdf.ln(2)

    # Title and scope.
    pdf.set_font("Noto", "B", 18)
    pdf.set_text_color(*ink)
    pdf.multi_cell(width, 9, title_of(report), new_x="LMARGIN", new_y="NEXT")
    scope = (
        _("Scope: the whole company")
        if report.scope == "company"
        else _("Scope: the employees of your teams (%(count)s)") % {"count": len(report.employees)}
    )
    days = _("%(since)s to %(until)s") % {
        "since": formats.date_format(report.period.since, "SHORT_DATE_FORMAT"),
        "until": formats.date_format(report.period.until, "SHORT_DATE_FORMAT"),
    }
    para(f"{scope} · {days}", 10, muted)

    # The month's NPS against the previous month.
    heading(_("NPS of the month"))
    overall, comparison = report.overall, report.comparison
    previous = comparison["previous"]
    confidence = round(CONFIDENCE * 100)
    if overall["nps"] is None:
        para(_("No answers this month."))
    else:
        pdf.set_font("Noto", "B", 26)
        pdf.set_text_color(*ink)
        pdf.cell(0, 13, _num(overall["nps"]), new_x="LMARGIN", new_y="NEXT")
        para(
            _("%(confidence)s %% interval %(low)s to %(high)s, n %(n)s")
            % {
                "confidence": confidence,
                "low": _num(overall["ci_low"]),
                "high": _num(overall["ci_high"]),
                "n": _num(overall["n"]),
            }
        )
    if previous["nps"] is None:
        para(_("No answers in the previous month to compare with."), 10, muted)
    else:
        para(
            _("Previous month (%(month)s): NPS %(nps)s, interval %(low)s to %(high)s, n %(n)s")
            % {
                "month": _month_label(add_months(report.month, -1)),
                "nps": _num(previous["nps"]),
                "low": _num(previous["ci_low"]),
                "high": _num(previous["ci_high"]),
                "n": _num(previous["n"]),
            }
        )
        if comparison["diff"] is not None:
            verdict = (
                _("significant at %(confidence)s %%")
                if comparison["significant"]
                else _("not significant at %(confidence)s %%")
            ) % {"confidence": confidence}
            para(
                _("Difference: %(diff)s points (%(p)s, %(verdict)s)")
                % {
                    "diff": _signed(comparison["diff"]),
                    "p": comparison["p_text"],
                    "verdict": verdict,
                }
            )

    # The trend.
    heading(_("NPS trend, last %(count)s months") % {"count": TREND_MONTHS})
    image(report.trend_png, _("No answers to draw."))
    if report.trend:
        table(
            [_("Month"), "n", "NPS", _("Interval")],
            [
                [row["label"], _num(row["n"]), _num(row["nps"]), _interval(row)]
                for row in report.trend
            ],
            [40, 15, 15, 30],
        )

    # By branch (or employee).
    label = dimension_labels()[report.by]
    heading(_("NPS by %(dimension)s") % {"dimension": label.lower()})
    shown = report.groups[:MAX_GROUPS]
    if not shown:
        para(_("No answers this month."), 10, muted)
    else:
        table(
            [label, "n", "NPS", _("Interval"), _("Response rate"), _("Flag")],
            [
                [
                    str(row["label"]),
                    _num(row["n"]),
                    _num(row["nps"]),
                    _interval(row),
                    "—" if row["rate"] is None else f"{_num(row['rate'])} %",
                    _("below average") if row["below_average"] else "",
                ]
                for row in shown
            ],
            [38, 10, 11, 22, 15, 20],
            red=[bool(row["below_average"]) for row in shown],
        )
        para(
            _(
                "Below average: lower than the rest at %(confidence)s %% confidence, corrected "
                "for the number of groups. Groups with fewer than %(min_n)s answers are never "
                "flagged."
            )
            % {"confidence": confidence, "min_n": MIN_N},
            8,
            muted,
        )
        if len(report.groups) > MAX_GROUPS:
            para(
                _("%(count)s more not shown.") % {"count": len(report.groups) - MAX_GROUPS},
                8,
                muted,
            )

    # The heat map.
    heading(_("NPS by weekday and hour"))
    image(report.heatmap_png, _("No answers to draw."))

    # The pain map.
    heading(_("Top reasons of detractors (pain map)"))
    if not report.reasons:
        para(_("No reasons recorded for this month's detractors."), 10, muted)
    else:
        table(
            [_("Reason"), _("Detractors citing"), _("Share of detractors"), _("NPS gain")],
            [
                [
                    str(reason["label"]),
                    _num(reason["citing"]),
                    f"{_num(reason['share'])} %",
                    _signed(reason["nps_gain"]),
                ]
                for reason in report.reasons
            ],
            [50, 17, 18, 15],
        )
        para(
            _(
                "Of %(detractors)s detractors. NPS gain: the points the NPS would rise if the "
                "detractors citing the reason had been passives."
            )
            % {"detractors": _num(report.detractors)},
            8,
            muted,
        )

    # The closed loop.
    heading(_("Closed loop"))
    loop = report.loop
    within = (
        "—"
        if loop["within_sla_pct"] is None
        else f"{_num(loop['within_sla_pct'])} % ({_num(loop['closed_within_sla'])}/"
        f"{_num(loop['closed'])})"
    )
    table(
        [_("Figure"), _("This month")],
        [
            [_("Cases opened"), _num(loop["opened"])],
            [_("Cases closed"), _num(loop["closed"])],
            [_("Closed within SLA"), within],
            [_("Cases opened that breached their SLA"), _num(loop["breached"])],
            [_("Problems fixed"), _num(loop["problems_fixed"])],
            [_("Problems verified"), _num(loop["problems_verified"])],
        ],
        [70, 30],
    )
    return bytes(pdf.output())


def report_pdf(
    workspace: Workspace, month: dt.date, membership: Membership | None = None
) -> tuple[MonthlyReport, bytes]:
    """Build and render in the workspace's default language."""
    with translation.override(workspace.default_language or settings.LANGUAGE_CODE):
        report = collect(workspace, month, membership)
        return report, render_pdf(report)


def filename(workspace: Workspace, month: dt.date) -> str:
    return f"nps-report-{workspace.slug}-{month:%Y-%m}.pdf"
