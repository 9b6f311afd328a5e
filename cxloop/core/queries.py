"""The workspace at a glance, for the home page."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Count
from django.db.models.functions import TruncWeek

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.customers.models import Customer
from cxloop.interactions.models import Interaction
from cxloop.organisation.models import Branch, Employee, Product, Region, Team, Touchpoint


@dataclass
class Glance:
    customers: int
    b2b_customers: int
    interactions: int
    interactions_30d: int
    regions: int
    branches: int
    teams: int
    employees: int
    products: int
    touchpoints: int
    languages: list[tuple[str, int]] = field(default_factory=list)
    segments: list[tuple[str, int]] = field(default_factory=list)
    types_30d: list[tuple[str, int]] = field(default_factory=list)
    weekly: list[tuple[dt.date, int]] = field(default_factory=list)
    busiest_branches: list[tuple[str, int]] = field(default_factory=list)


def glance(workspace: Workspace) -> Glance:
    customers = Customer.objects.filter(workspace=workspace)
    interactions = Interaction.objects.filter(workspace=workspace)
    since = clock.now() - dt.timedelta(days=30)
    recent = interactions.filter(occurred_at__gte=since)
    year_ago = clock.now() - dt.timedelta(days=365)
    weekly = (
        interactions.filter(occurred_at__gte=year_ago)
        .annotate(week=TruncWeek("occurred_at"))
        .values("week")
        .annotate(n=Count("id"))
        .order_by("week")
    )
    return Glance(
        customers=customers.count(),
        b2b_customers=customers.filter(is_b2b=True).count(),
        interactions=interactions.count(),
        interactions_30d=recent.count(),
        regions=Region.objects.filter(workspace=workspace).count(),
        branches=Branch.objects.filter(workspace=workspace).count(),
        teams=Team.objects.filter(workspace=workspace).count(),
        employees=Employee.objects.filter(workspace=workspace).count(),
        products=Product.objects.filter(workspace=workspace).count(),
        touchpoints=Touchpoint.objects.filter(workspace=workspace).count(),
        languages=[
            (r["language"] or "—", r["n"])
            for r in customers.values("language").annotate(n=Count("id")).order_by("-n")[:6]
        ],
        segments=[
            (r["segment"] or "—", r["n"])
            for r in customers.values("segment").annotate(n=Count("id")).order_by("-n")[:6]
        ],
        types_30d=[
            (r["type"], r["n"])
            for r in recent.values("type").annotate(n=Count("id")).order_by("-n")[:10]
        ],
        weekly=[(r["week"].date(), r["n"]) for r in weekly],
        busiest_branches=[
            (r["branch__name"], r["n"])
            for r in recent.exclude(branch=None)
            .values("branch__name")
            .annotate(n=Count("id"))
            .order_by("-n")[:5]
        ],
    )
