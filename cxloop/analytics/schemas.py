"""The shapes of ``GET /api/v1/analytics/nps`` and ``/trend`` (see ``docs/analytics-api.md``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ninja import Schema
from pydantic import Field


class NpsParams(Schema):
    survey: str | None = Field(
        default=None, description="Survey code; left out: every NPS survey of the workspace."
    )
    since: dt.datetime | None = Field(default=None, description="Inclusive, with an offset.")
    until: dt.datetime | None = Field(default=None, description="Exclusive, with an offset.")
    group_by: str | None = Field(
        default=None,
        description="Up to two of region, branch, team, employee, product, channel, "
        "touchpoint, stage, segment, weekday, hour, day, week, month; comma-separated.",
    )
    min_n: int = Field(default=30, ge=0, le=1_000_000)
    region: str | None = Field(default=None, description="Filter: codes, comma-separated.")
    branch: str | None = None
    team: str | None = None
    employee: str | None = None
    product: str | None = None
    channel: str | None = None
    touchpoint: str | None = None
    stage: str | None = None
    segment: str | None = Field(default=None, description="Filter: segment values.")


class TrendParams(Schema):
    survey: str | None = Field(
        default=None, description="Survey code; left out: every NPS survey of the workspace."
    )
    since: dt.datetime | None = Field(default=None, description="Inclusive, with an offset.")
    until: dt.datetime | None = Field(default=None, description="Exclusive, with an offset.")
    every: str = Field(default="week", description="day, week (ISO, from Monday) or month.")
    region: str | None = Field(default=None, description="Filter: codes, comma-separated.")
    branch: str | None = None
    team: str | None = None
    employee: str | None = None
    product: str | None = None
    channel: str | None = None
    touchpoint: str | None = None
    stage: str | None = None
    segment: str | None = Field(default=None, description="Filter: segment values.")


class NpsStatsOut(Schema):
    n: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None
    ci_low: float
    ci_high: float


class NpsGroupOut(NpsStatsOut):
    key: dict[str, Any]
    p_value: float | None
    below_average: bool


class NpsOut(Schema):
    confidence: float
    method: str
    overall: NpsStatsOut
    groups: list[NpsGroupOut]


class TrendPointOut(Schema):
    period: str = Field(description="YYYY-MM-DD, YYYY-Www (ISO week) or YYYY-MM, local time.")
    start: dt.date = Field(description="The period's first day (a week's Monday).")
    n: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None
    ci_low: float
    ci_high: float


class TrendInitiativeOut(Schema):
    id: int
    name: str
    description: str
    date: dt.date
    branches: list[str]
    products: list[str]
    survey: str | None


class TrendOut(Schema):
    confidence: float
    method: str
    every: str
    points: list[TrendPointOut]
    initiatives: list[TrendInitiativeOut]
