"""An organisation, an NPS survey and responses for the analytics tests, and an independent
recomputation of the rollup cells and NPS statistics from raw rows (plain Python)."""

from __future__ import annotations

import datetime as dt
import math
import random
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from cxloop.accounts.models import Workspace
from cxloop.analytics.models import DailyCell, HourlyCell, MonthlyCell
from cxloop.customers.models import Customer
from cxloop.organisation.models import (
    Branch,
    Channel,
    Employee,
    Journey,
    Product,
    Region,
    Stage,
    Team,
    Touchpoint,
)
from cxloop.surveys.models import Response, ResponseSource, Survey
from cxloop.surveys.tests.factories import make_survey

UTC = dt.UTC


@dataclass
class World:
    workspace: Workspace
    survey: Survey
    regions: list[Region]
    branches: list[Branch]  # B01, B02 in R1; B03, B04 in R2
    teams: list[Team]
    employees: list[Employee]  # E1..E8, two per branch, team T<branch>
    products: list[Product]
    channels: list[Channel]
    touchpoints: list[Touchpoint]  # TP1 (stage S1), TP2 (stage S2)
    customers: list[Customer]  # segments "mass", "vip", "" (none)


def build_world(workspace: Workspace, survey_code: str = "nps") -> World:
    ws = workspace
    regions = [Region.objects.create(workspace=ws, code=f"R{i}", name=f"R{i}") for i in (1, 2)]
    branches = [
        Branch.objects.create(
            workspace=ws, code=f"B0{i}", name=f"B{i}", region=regions[(i - 1) // 2]
        )
        for i in range(1, 5)
    ]
    teams = [
        Team.objects.create(workspace=ws, code=f"T{i}", name=f"T{i}", branch=b)
        for i, b in enumerate(branches, 1)
    ]
    employees = [
        Employee.objects.create(
            workspace=ws, code=f"E{i}", name=f"E{i}", team=teams[(i - 1) // 2],
            branch=branches[(i - 1) // 2],
        )
        for i in range(1, 9)
    ]  # fmt: skip
    products = [Product.objects.create(workspace=ws, code=f"P{i}", name=f"P{i}") for i in (1, 2)]
    channels = [Channel.objects.create(workspace=ws, code=c, name=c) for c in ("store", "web")]
    journey = Journey.objects.create(workspace=ws, code="J1", name="J1")
    stages = [
        Stage.objects.create(workspace=ws, code=f"S{i}", name=f"S{i}", journey=journey)
        for i in (1, 2)
    ]
    touchpoints = [
        Touchpoint.objects.create(
            workspace=ws, code=f"TP{i}", name=f"TP{i}", stage=stages[i - 1], channel=channels[0]
        )
        for i in (1, 2)
    ]
    customers = [
        Customer.objects.create(workspace=ws, external_id=f"C-{seg or 'none'}", segment=seg)
        for seg in ("mass", "vip", "")
    ]
    survey = make_survey(ws, survey_code)
    return World(
        ws, survey, regions, branches, teams, employees, products, channels, touchpoints, customers
    )


def response(world: World, n: int, when: dt.datetime, score: int | None, **refs: Any) -> Response:
    values: dict[str, Any] = {
        "workspace": world.workspace,
        "survey": world.survey,
        "external_id": f"R{n}",
        "score": score,
        "answered_at": when,
        "source": ResponseSource.IMPORT,
    }
    values.update(refs)
    return Response(**values)


def random_responses(
    world: World, count: int, seed: int = 1, start: dt.datetime | None = None, days: int = 60,
    offset: int = 0, weak: Branch | None = None,
) -> list[Response]:  # fmt: skip
    """``count`` responses spread over ``days`` days; ``weak``: that branch scores low."""
    rng = random.Random(seed)
    start = start or dt.datetime(2025, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(count):
        employee = rng.choice([*world.employees, None])
        branch = employee.branch if employee is not None else rng.choice([*world.branches, None])
        if weak is not None and branch == weak:
            score: int | None = rng.choice([0, 2, 5, 6, 6, 7, 8, 9, 10])
        else:
            score = rng.choice([5, 6, 7, 8, 9, 9, 10, 10, 10])
        if rng.random() < 0.03:
            score = None
        row = response(
            world, offset + i,
            start + dt.timedelta(seconds=rng.randrange(days * 86400)),
            score,
            branch=branch,
            employee=employee,
            product=rng.choice([*world.products, None]),
            channel=rng.choice([*world.channels, None]),
            touchpoint=rng.choice([*world.touchpoints, None]),
            customer=rng.choice([*world.customers, None]),
            is_test=rng.random() < 0.02,
        )  # fmt: skip
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- independent


KINDS = {
    "all": None,
    "branch": "branch_id",
    "employee": "employee_id",
    "product": "product_id",
    "channel": "channel_id",
    "touchpoint": "touchpoint_id",
    "segment": "segment",
}
HOURLY = ("all", "branch", "product", "channel", "touchpoint", "segment")


def raw_rows(workspace: Workspace) -> list[dict[str, Any]]:
    rows = []
    for r in Response.objects.filter(workspace=workspace).select_related("customer"):
        rows.append(
            {
                "survey_id": r.survey_id,
                "answered_at": r.answered_at,
                "score": r.score,
                "is_test": r.is_test,
                "branch_id": r.branch_id,
                "employee_id": r.employee_id,
                "product_id": r.product_id,
                "channel_id": r.channel_id,
                "touchpoint_id": r.touchpoint_id,
                "segment": r.customer.segment if r.customer else "",
            }
        )
    return rows


def expected_cells(workspace: Workspace) -> tuple[dict[Any, list[int]], dict[Any, list[int]]]:
    zone = zoneinfo.ZoneInfo(workspace.time_zone)
    daily: dict[Any, list[int]] = defaultdict(lambda: [0] * 11)
    hourly: dict[Any, list[int]] = defaultdict(lambda: [0] * 11)
    for row in raw_rows(workspace):
        if row["is_test"] or row["score"] is None:
            continue
        local = row["answered_at"].astimezone(zone)
        for kind, column in KINDS.items():
            value = None if column is None else row[column]
            if kind == "segment":
                value = value or ""
            daily[(row["survey_id"], local.date(), kind, value)][row["score"]] += 1
            if kind in HOURLY:
                hourly[(row["survey_id"], local.date(), local.hour, kind, value)][row["score"]] += 1
    return dict(daily), dict(hourly)


def stored_cells(workspace: Workspace) -> tuple[dict[Any, list[int]], dict[Any, list[int]]]:
    def value(cell: Any) -> Any:
        return cell.segment if cell.kind == "segment" else cell.entity_id

    daily: dict[Any, list[int]] = {}
    for c in DailyCell.objects.filter(workspace=workspace):
        key = (c.survey_id, c.day, c.kind, value(c))
        assert key not in daily, f"duplicate cell {key}"
        daily[key] = list(c.histogram())
    hourly: dict[Any, list[int]] = {}
    for h in HourlyCell.objects.filter(workspace=workspace):
        hkey = (h.survey_id, h.day, h.hour, h.kind, value(h))
        assert hkey not in hourly, f"duplicate cell {hkey}"
        hourly[hkey] = list(h.histogram())
    # The monthly cells are the daily ones summed per month, always (one row per key).
    months: dict[Any, list[int]] = defaultdict(lambda: [0] * 11)
    for (survey_id, day, kind, entity), counts in daily.items():
        month = months[(survey_id, day.replace(day=1), kind, entity)]
        for i, count in enumerate(counts):
            month[i] += count
    monthly: dict[Any, list[int]] = {}
    for m in MonthlyCell.objects.filter(workspace=workspace):
        mkey = (m.survey_id, m.day, m.kind, value(m))
        assert mkey not in monthly, f"duplicate monthly cell {mkey}"
        monthly[mkey] = list(m.histogram())
    assert monthly == dict(months), "the monthly cells are not the daily cells summed"
    return daily, hourly


def normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def wald(p: int, q: int, d: int, z: float = 1.959963984540054) -> dict[str, Any]:
    """Adjusted Wald by hand: n' = n + 3, p' = (P + .75)/n', d' = (D + .75)/n'."""
    n = p + q + d
    na = n + 3
    pa, da = (p + 0.75) / na, (d + 0.75) / na
    var = pa + da - (pa - da) ** 2
    half = z * math.sqrt(var / na)
    return {
        "n": n, "promoters": p, "passives": q, "detractors": d,
        "nps": None if n == 0 else 100.0 * (p - d) / n,
        "ci_low": max(-100.0, 100 * (pa - da - half)),
        "ci_high": min(100.0, 100 * (pa - da + half)),
        "_adj": (pa - da, var / na),
    }  # fmt: skip


def p_less(own: tuple[int, int, int], rest: tuple[int, int, int]) -> float:
    a, b = wald(*own)["_adj"], wald(*rest)["_adj"]
    return normal_cdf((a[0] - b[0]) / math.sqrt(a[1] + b[1]))


def bh_flags(p_values: dict[Any, float], lower: dict[Any, bool], fdr: float = 0.05) -> set[Any]:
    """Benjamini-Hochberg step-up by hand: the largest rank k with p(k) <= k/m·fdr."""
    ordered = sorted(p_values, key=lambda k: p_values[k])
    m = len(ordered)
    cut = 0
    for rank, key in enumerate(ordered, 1):
        if p_values[key] <= rank / m * fdr:
            cut = rank
    return {key for key in ordered[:cut] if lower[key]}


def classify(score: int, promoter_min: int = 9, detractor_max: int = 6) -> int:
    """0 promoter, 1 passive, 2 detractor."""
    return 0 if score >= promoter_min else 2 if score <= detractor_max else 1
