"""The weekly NPS digest e-mail (docs/digest.md): one per ISO week, user and workspace.

Who: active members with the role admin, cx_manager or analyst (the company's numbers) or
supervisor (the employees of their teams, as the dashboard scopes them); never employees, never
a user without an e-mail address. What: the last 7 local days' NPS with its interval and n
against the 7 days before (difference, significant or not), the groups flagged below average
(branches for the company, employees for a supervisor), the open cases and breached SLAs in the
reader's scope, the trend of the last 12 complete weeks as an inline PNG (the dashboard's own
``charts.trend_svg``, rasterised) and a link to the dashboard. Org-chart names only: no
customer's personal data.

Idempotent without a table of its own: each digest sent is recorded in the audit log (action
``digest.sent``, object the user, ``changes={"week": "2026-W48"}``) and a recorded week is
never sent again. The check and the record happen under a row lock on the membership
(``select_for_update``), so two runs at once on PostgreSQL send one e-mail; a send that fails
records nothing and the next run tries again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.mime.image import MIMEImage
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from cxloop.accounts.models import AuditLog, Membership, Role, Workspace
from cxloop.cases.services import open_cases, visible_cases
from cxloop.core import charts as core_charts
from cxloop.core import clock

from . import rollups
from .queries import NpsQuery, nps
from .views import (
    CONFIDENCE,
    MIN_N,
    Period,
    _comparison,
    _names,
    _period_label,
    _period_start,
    _stats_row,
    team_employee_codes,
)

log = logging.getLogger(__name__)

ACTION = "digest.sent"
COMPANY_ROLES = (Role.ADMIN, Role.CX_MANAGER, Role.ANALYST)
TEAM_ROLES = (Role.SUPERVISOR,)
DAYS = 7
TREND_WEEKS = 12
MAX_WEAK = 5
CHART_WIDTH = 600  # CSS pixels in the e-mail; the PNG holds twice as many for sharp screens
CHART_SCALE = 2.0
CHART_CID = "nps-trend"


def iso_week(day: dt.date) -> str:
    year, week, _weekday = day.isocalendar()
    return f"{year:04d}-W{week:02d}"


@dataclass
class Digest:
    """What one reader's e-mail says; ``png`` is None when there is no trend to draw."""

    membership: Membership
    scope: str  # "company" or "teams"
    week: str
    period: Period
    previous: Period
    overall: dict[str, Any]
    comparison: dict[str, Any]
    by: str
    weak: list[dict[str, Any]]
    open_cases: int
    breached: int
    trend: list[dict[str, Any]]
    png: bytes | None
    url: str
    employees: list[str] = field(default_factory=list)  # a supervisor's people (codes)

    @property
    def recipient(self) -> str:
        return str(self.membership.user.email)


@dataclass
class Outcome:
    sent: list[str] = field(default_factory=list)  # addresses
    already: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "username: why"
    would_send: list[Digest] = field(default_factory=list)  # --dry-run
    failed: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "digest_sent": len(self.sent),
            "digest_already": len(self.already),
            "digest_skipped": len(self.skipped),
            "digest_failed": len(self.failed),
        }


# --- who -----------------------------------------------------------------------------------


def candidates(workspace: Workspace) -> list[Membership]:
    """Members whose role gets a digest, active users only, in a stable order."""
    return list(
        Membership.objects.filter(
            workspace=workspace,
            role__in=[*COMPANY_ROLES, *TEAM_ROLES],
            user__is_active=True,
        )
        .select_related("user", "workspace")
        .order_by("user__username", "pk")
    )


def already_sent(membership: Membership, week: str) -> bool:
    return AuditLog.objects.filter(
        workspace=membership.workspace,
        action=ACTION,
        object_type="user",
        object_id=str(membership.user_id),
        changes__week=week,
    ).exists()


def _record(membership: Membership, week: str, via: str) -> None:
    # Not ``services.audit(obj=user)``: its ``object_repr`` would be the user's name or
    # address, and the audit log holds no personal data.
    AuditLog.objects.create(
        workspace=membership.workspace,
        actor=None,
        via=via,
        action=ACTION,
        object_type="user",
        object_id=str(membership.user_id),
        object_repr="",
        changes={"week": week, "role": membership.role},
    )


# --- what ----------------------------------------------------------------------------------


def _weeks(today: dt.date) -> tuple[dt.date, dt.date]:
    """The first and the last day of the TREND_WEEKS complete ISO weeks before this one."""
    monday = today - dt.timedelta(days=today.weekday())
    return monday - dt.timedelta(weeks=TREND_WEEKS), monday - dt.timedelta(days=1)


def _trend_png(rows: Sequence[dict[str, Any]]) -> bytes | None:
    """The dashboard's trend chart (``charts.trend_svg``) as a PNG; None when nothing to draw
    or when drawing fails (the digest goes out without its picture)."""
    from . import charts

    try:
        svg = charts.trend_svg(rows, MIN_N, width=CHART_WIDTH, unit="week")
        if svg is None:
            return None
        png: bytes = core_charts.svg_to_png(svg, scale=CHART_SCALE)
        return png
    except Exception:
        log.exception("digest_chart_failed")
        return None


def build(membership: Membership, now: dt.datetime | None = None, *, chart: bool = True) -> Digest:
    """The numbers of one reader's digest, in the workspace's zone (no e-mail sent).

    Raises ``LookupError`` for a reader the digest has nothing for (an employee, a supervisor
    without an employee record or team)."""
    now = now or clock.now()
    workspace = membership.workspace
    tz = rollups.tz_of(workspace)
    today = timezone.localtime(now, tz).date()
    filters: dict[str, list[str]] = {}
    employees: list[str] = []
    if membership.role in COMPANY_ROLES:
        scope, by = "company", "branch"
    elif membership.role in TEAM_ROLES:
        scope, by = "teams", "employee"
        employees = team_employee_codes(membership)
        if not employees:
            raise LookupError("no team")
        filters["employee"] = employees
    else:
        raise LookupError(f"role {membership.role} gets no digest")

    period = Period.of(today - dt.timedelta(days=DAYS), today - dt.timedelta(days=1), tz)
    previous = period.previous(tz)
    first_week, last_week = _weeks(today)
    weeks = Period.of(first_week, last_week, tz)

    def query(p: Period, group_by: tuple[str, ...]) -> NpsQuery:
        return NpsQuery(
            workspace=workspace,
            since=p.start,
            until=p.end,
            group_by=group_by,
            filters=dict(filters),
            min_n=MIN_N,
            confidence=CONFIDENCE,
        )

    result = nps(query(period, (by,)))
    before = nps(query(previous, ()))
    trend_result = nps(query(weeks, ("week",)))

    flagged = [g for g in result.groups if g.below_average and g.key.get(by) is not None]
    names = _names(by, workspace, [g.key[by] for g in flagged])
    weak = sorted(
        (
            {
                "code": str(g.key[by]),
                "label": names.get(str(g.key[by]), str(g.key[by])),
                **_stats_row(g.stats),
            }
            for g in flagged
        ),
        key=lambda row: (row["nps"], -row["n"]),
    )[:MAX_WEAK]

    trend: list[dict[str, Any]] = []
    for group in trend_result.groups:
        start = _period_start(group.key.get("week"))
        if start is not None:
            trend.append(
                {
                    "start": start,
                    "label": _period_label(start, "week"),
                    **_stats_row(group.stats),
                    "below_average": group.below_average,
                }
            )
    trend.sort(key=lambda row: row["start"])

    cases = open_cases(visible_cases(membership))
    return Digest(
        membership=membership,
        scope=scope,
        week=iso_week(today),
        period=period,
        previous=previous,
        overall=_stats_row(result.overall),
        comparison=_comparison(result, before),
        by=by,
        weak=weak,
        open_cases=cases.count(),
        breached=cases.filter(Q(breached=True) | Q(due_at__lte=now)).count(),
        trend=trend,
        png=_trend_png(trend) if chart else None,
        url=f"{settings.SITE_URL}/analytics/",
        employees=employees,
    )


def message(digest: Digest) -> EmailMultiAlternatives:
    """multipart/related: the text and HTML alternatives, and the chart the HTML shows by its
    Content-ID (``cid:nps-trend``)."""
    workspace = digest.membership.workspace
    context = {
        "digest": digest,
        "workspace": workspace,
        "user": digest.membership.user,
        "overall": digest.overall,
        "comparison": digest.comparison,
        "chart_cid": CHART_CID if digest.png else None,
        "chart_width": CHART_WIDTH,
        "min_n": MIN_N,
        "confidence": round(CONFIDENCE * 100),
        "company": digest.scope == "company",
    }
    subject = _("%(workspace)s: NPS of the week %(week)s") % {
        "workspace": workspace.name,
        "week": digest.week,
    }
    text = render_to_string("analytics/email/digest.txt", context)
    html = render_to_string("analytics/email/digest.html", context)
    mail = EmailMultiAlternatives(subject, text, None, [digest.recipient])
    mail.attach_alternative(html, "text/html")
    if digest.png:
        mail.mixed_subtype = "related"
        image = MIMEImage(digest.png, "png")
        image.add_header("Content-ID", f"<{CHART_CID}>")
        image.add_header("Content-Disposition", "inline", filename="nps-trend.png")
        mail.attach(image)
    return mail


# --- sending -------------------------------------------------------------------------------


SEND_FROM = dt.time(7)  # local time on Monday
CATCH_UP_DAYS = 3  # Monday to Wednesday: a worker down on Monday still sends that week's


def is_due(workspace: Workspace, now: dt.datetime) -> bool:
    """Whether the scheduled run sends this workspace's digests now: from Monday 07:00 in its
    own time zone until Wednesday's end (later in the week, a digest of the week before is
    stale; readers added on Thursday wait for Monday)."""
    local = timezone.localtime(now, rollups.tz_of(workspace))
    day = local.isoweekday()
    if day == 1:
        return local.time() >= SEND_FROM
    return day <= CATCH_UP_DAYS


def send_workspace(
    workspace: Workspace,
    now: dt.datetime | None = None,
    *,
    dry_run: bool = False,
    via: str = "task",
    outcome: Outcome | None = None,
    scheduled: bool = False,
) -> Outcome:
    """Each due reader's digest for this ISO week (local), once; ``dry_run``: build, don't send
    or record (the outcome's ``would_send`` holds the digests); ``scheduled``: only when
    ``is_due`` (the hourly task and the dispatcher; by hand, the command sends at once)."""
    now = now or clock.now()
    outcome = outcome or Outcome()
    if scheduled and not is_due(workspace, now):
        return outcome
    week = iso_week(timezone.localtime(now, rollups.tz_of(workspace)).date())
    with translation.override(workspace.default_language or settings.LANGUAGE_CODE):
        for membership in candidates(workspace):
            user = membership.user
            if not user.email:
                outcome.skipped.append(f"{user.get_username()}: no e-mail address")
                continue
            if already_sent(membership, week):
                outcome.already.append(user.email)
                continue
            if dry_run:
                try:
                    outcome.would_send.append(build(membership, now, chart=False))
                except LookupError as exc:
                    outcome.skipped.append(f"{user.get_username()}: {exc}")
                continue
            try:
                _send_one(membership, week, now, via, outcome)
            except Exception:
                log.exception("digest_failed user=%s workspace=%s", user.pk, workspace.slug)
                outcome.failed.append(user.email)
    return outcome


def _send_one(
    membership: Membership, week: str, now: dt.datetime, via: str, outcome: Outcome
) -> None:
    with transaction.atomic():
        # One sender at a time per reader: the second waits, then finds the record.
        Membership.objects.select_for_update().filter(pk=membership.pk).first()
        if already_sent(membership, week):
            outcome.already.append(membership.user.email)
            return
        try:
            digest = build(membership, now)
        except LookupError as exc:
            outcome.skipped.append(f"{membership.user.get_username()}: {exc}")
            return
        message(digest).send()
        _record(membership, week, via)
    outcome.sent.append(digest.recipient)


def send_all(
    now: dt.datetime | None = None,
    *,
    workspaces: Sequence[Workspace] | None = None,
    dry_run: bool = False,
    via: str = "task",
    scheduled: bool = False,
) -> Outcome:
    """Every workspace's digests (or those named) for this week; ``scheduled``: of the
    workspaces where it is time (``is_due``)."""
    now = now or clock.now()
    outcome = Outcome()
    chosen = list(workspaces) if workspaces is not None else list(Workspace.objects.order_by("pk"))
    for workspace in chosen:
        send_workspace(
            workspace, now, dry_run=dry_run, via=via, outcome=outcome, scheduled=scheduled
        )
    return outcome
