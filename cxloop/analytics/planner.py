"""The sample-size planner (``docs/drivers-and-planner.md``): for each branch (region, team,
employee, product, channel, touchpoint, customer segment), how many answers a day, week or
month it needs for an NPS known to ± ``margin`` points at 95 %, against what it gets now.

* needed per period: n = ⌈z²·Var/E² - 3⌉ (``stats.sample_size``, adjusted Wald), Var the
  adjusted-Wald variance of the segment's answers in the last 90 days, 1 (the worst case)
  for a segment without answers;
* current volume per period: the segment's scored answers in the last 90 days * period / 90
  days (a month is 365.25 / 12 days);
* response rate: invitations sent in the last 90 days that were answered, per sent;
* invitations to send per period: ⌈needed / response rate⌉ (none without a rate);
* ``short``: the current volume is below the need.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.customers.models import Customer
from cxloop.organisation.models import Branch, Channel, Employee, Product, Region, Team, Touchpoint
from cxloop.surveys.models import Invitation, Survey

from . import rollups
from .queries import NpsQuery, nps
from .stats import nps_interval, sample_size, z_for

__all__ = [
    "CONFIDENCE",
    "DIMENSIONS",
    "MAX_MARGIN",
    "PERIODS",
    "PERIOD_DAYS",
    "WINDOW_DAYS",
    "Plan",
    "PlanRow",
    "plan",
]

CONFIDENCE = 0.95
WINDOW_DAYS = 90
MAX_MARGIN = 50.0
PERIOD_DAYS: dict[str, float] = {"day": 1.0, "week": 7.0, "month": 365.25 / 12}
PERIODS = tuple(PERIOD_DAYS)
# Each dimension's code as seen from a response or an invitation, and its model.
_PATHS: dict[str, str] = {
    "branch": "branch__code",
    "region": "branch__region__code",
    "team": "employee__team__code",
    "employee": "employee__code",
    "product": "product__code",
    "channel": "channel__code",
    "touchpoint": "touchpoint__code",
    "segment": "customer__segment",
}
_MODELS: dict[str, Any] = {
    "branch": Branch,
    "region": Region,
    "team": Team,
    "employee": Employee,
    "product": Product,
    "channel": Channel,
    "touchpoint": Touchpoint,
}
DIMENSIONS: tuple[str, ...] = tuple(_PATHS)


@dataclass(frozen=True)
class PlanRow:
    code: str
    label: str
    responses: int  # scored answers in the window
    nps: float | None
    variance: float  # per answer, proportion scale; 1 when unknown
    variance_known: bool
    needed: int  # answers needed per period
    current: float  # answers per period now
    sent: int  # invitations sent in the window
    answered: int  # of them answered
    response_rate: float | None  # 0..1
    invitations: int | None  # to send per period
    short: bool  # current < needed


@dataclass(frozen=True)
class Plan:
    by: str
    per: str
    margin: float
    confidence: float
    window_days: int
    start: dt.datetime
    end: dt.datetime
    rows: list[PlanRow]

    @property
    def first_day(self) -> dt.date:
        """The window's first day (local: ``start`` carries the workspace's time zone)."""
        return self.start.date()

    @property
    def last_day(self) -> dt.date:
        """The window's last day (the day before ``end``, local)."""
        return (self.end - dt.timedelta(days=1)).date()

    @property
    def short_count(self) -> int:
        return sum(1 for row in self.rows if row.short)


def _check(by: str, per: str, margin: float) -> None:
    if by not in DIMENSIONS:
        raise ValueError(f"by must be one of {', '.join(DIMENSIONS)}, got {by!r}")
    if per not in PERIODS:
        raise ValueError(f"per must be one of {', '.join(PERIODS)}, got {per!r}")
    if not (isinstance(margin, int | float) and math.isfinite(margin) and 0 < margin <= MAX_MARGIN):
        raise ValueError(f"margin must be more than 0 and at most {MAX_MARGIN:g} NPS points")


def _known_codes(workspace: Workspace, by: str) -> dict[str, str]:
    """{code: name} of every entity of the dimension (segments: the customers' values)."""
    if by == "segment":
        values = (
            Customer.objects.filter(workspace=workspace)
            .exclude(segment="")
            .values_list("segment", flat=True)
            .distinct()
        )
        return {value: value for value in values}
    qs = _MODELS[by].objects.filter(workspace=workspace)
    if by == "employee":
        qs = qs.filter(is_active=True)
    return dict(qs.values_list("code", "name"))


def plan(
    workspace: Workspace,
    surveys: Sequence[Survey],
    *,
    by: str = "branch",
    margin: float = 5.0,
    per: str = "month",
    now: dt.datetime | None = None,
    confidence: float = CONFIDENCE,
) -> Plan:
    """The plan for the NPS ``surveys`` of ``workspace``, over the last ``WINDOW_DAYS`` whole
    days before today (the workspace's time zone).

    Whole days: the counts come from the rollup cells alone, and they stay the same all day
    (a window ending at this second would lose the answers of 90 days ago second by second, so
    every request would ask for a chart with other numbers and draw it afresh).
    """
    _check(by, per, margin)
    tz = rollups.tz_of(workspace)
    today = timezone.localtime(now or clock.now(), tz).date()
    end = dt.datetime.combine(today, dt.time.min, tzinfo=tz)
    start = dt.datetime.combine(today - dt.timedelta(days=WINDOW_DAYS), dt.time.min, tzinfo=tz)
    survey_ids = [s.pk for s in surveys if s.workspace_id == workspace.pk]
    path = _PATHS[by]
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    # The answers per group come from queries.nps (the rollup cells of the window's whole
    # days): the same counts as grouping the window's responses, without scanning them
    # (2.5 million in 90 days at 10 million a year).
    every_nps = set(rollups.nps_survey_ids(workspace))
    chosen = [s for s in surveys if s.workspace_id == workspace.pk and s.pk in every_nps]
    asked: list[Survey | None] = (
        [None] if chosen and {s.pk for s in chosen} == every_nps else list(chosen)
    )
    for survey in asked:
        result = nps(NpsQuery(workspace, survey=survey, since=start, until=end, group_by=(by,)))
        for group in result.groups:
            code = group.key[by]
            if code in (None, ""):
                continue
            slot = counts[str(code)]
            slot[0] += group.stats.promoters
            slot[1] += group.stats.passives
            slot[2] += group.stats.detractors
    invited = (
        Invitation.objects.filter(
            workspace=workspace,
            survey_id__in=survey_ids,
            is_test=False,
            sent_at__gte=start,
            sent_at__lt=end,
        )
        .values(path)
        .annotate(sent=Count("pk"), answered=Count("pk", filter=Q(answered_at__isnull=False)))
        .order_by()
    )
    rates = {
        str(row[path]): (row["sent"], row["answered"])
        for row in invited
        if row[path] not in (None, "")
    }
    names = _known_codes(workspace, by)
    codes = sorted(set(names) | set(counts) | set(rates))
    scale = PERIOD_DAYS[per] / WINDOW_DAYS
    rows = []
    for code in codes:
        promoters, passives, detractors = counts.get(code, [0, 0, 0])
        n = promoters + passives + detractors
        stats = nps_interval(promoters, passives, detractors, confidence) if n else None
        variance = stats.variance if stats is not None else None
        needed = sample_size(margin, variance, confidence)
        sent, answered = rates.get(code, (0, 0))
        rate = answered / sent if sent else None
        current = n * scale
        rows.append(
            PlanRow(
                code=code,
                label=names.get(code, code),
                responses=n,
                nps=stats.nps if stats is not None else None,
                variance=variance if variance is not None else 1.0,
                variance_known=variance is not None,
                needed=needed,
                current=current,
                sent=sent,
                answered=answered,
                response_rate=rate,
                invitations=math.ceil(needed / rate) if rate else None,
                short=current < needed,
            )
        )
    rows.sort(key=lambda r: (not r.short, -(r.needed - r.current), r.label))
    return Plan(by, per, float(margin), confidence, WINDOW_DAYS, start, end, rows)


def payload(result: Plan) -> dict[str, Any]:
    """The API's JSON."""
    return {
        "by": result.by,
        "per": result.per,
        "margin": result.margin,
        "confidence": result.confidence,
        "z": z_for(result.confidence),
        "window_days": result.window_days,
        "since": result.start,
        "until": result.end,
        "short": result.short_count,
        "rows": [
            {
                "code": r.code,
                "label": r.label,
                "responses": r.responses,
                "nps": r.nps,
                "variance": r.variance,
                "variance_known": r.variance_known,
                "needed": r.needed,
                "current": r.current,
                "sent": r.sent,
                "answered": r.answered,
                "response_rate": r.response_rate,
                "invitations": r.invitations,
                "short": r.short,
            }
            for r in result.rows
        ],
    }
