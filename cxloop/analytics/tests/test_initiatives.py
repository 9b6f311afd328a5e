"""Initiatives: before/after NPS and reason shares against a hand computation, the scope,
the dashboard's annotations, who may do what, and bad input (``docs/initiatives.md``).

The constructed data, around the day D = today - 20 (window 14 days: before = [D-14, D),
after = [D, D+14)), answers at noon five days before D and three days after it:

    B01, product P1  before 10 P, 10 passives, 20 D (NPS -25)   after 30 P, 6 passives, 4 D (NPS 65)
    B01, product P2  before  0 P, 10 passives,  0 D             after  0 P, 0 passives, 10 D
    B02 (elsewhere)  before 20 P                                after 20 D
    B03 (unchanged)  before 15 P, 10 passives, 15 D             after the same

B01 P1's detractors: before, 15 tick "waiting" and 5 "price"; after, 1 ticks "waiting" and 3
tick "price", and one of those three has a call-back case coded "rude" (a reason code).
B01 P2's 10 later detractors cite nothing.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from cxloop.accounts.models import AuditLog, Role, Workspace
from cxloop.analytics import rollups
from cxloop.analytics.initiatives import chart_annotations, effect, windows
from cxloop.analytics.models import Initiative
from cxloop.cases.models import Case, CaseSource, ReasonCode
from cxloop.core import clock
from cxloop.organisation.models import Branch, Product, Region
from cxloop.surveys.models import Response, ResponseSource, Survey
from cxloop.surveys.tests.factories import make_survey

LIST = "/analytics/initiatives"
DASHBOARD = "/analytics/"
Z95 = 1.959963984540054
_ids = itertools.count()


@dataclass
class World:
    workspace: Workspace
    survey: Survey
    branches: dict[str, Branch]
    products: dict[str, Product]
    today: dt.date
    date: dt.date  # D


def _at(world: World, day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12), tzinfo=rollups.tz_of(world.workspace))


def add(
    world: World,
    scores: list[int],
    *,
    branch: str,
    product: str | None = None,
    after: bool,
    reasons: list[list[str]] | None = None,
) -> list[Response]:
    day = world.date + dt.timedelta(days=3) if after else world.date - dt.timedelta(days=5)
    rows = []
    for k, score in enumerate(scores):
        ticked = reasons[k] if reasons is not None and k < len(reasons) else []
        rows.append(
            Response(
                workspace=world.workspace,
                survey=world.survey,
                external_id=f"I{next(_ids)}",
                score=score,
                answered_at=_at(world, day),
                source=ResponseSource.WEB,
                branch=world.branches[branch],
                product=world.products[product] if product else None,
                answers={"reasons": ticked} if ticked else {},
            )
        )
    Response.objects.bulk_create(rows)
    rollups.mark_responses(rows)
    return rows


def mix(p: int, q: int, d: int) -> list[int]:
    return [10] * p + [8] * q + [3] * d


@pytest.fixture
def world(workspace: Workspace) -> World:
    region = Region.objects.create(workspace=workspace, code="R1", name="Centre")
    other_region = Region.objects.create(workspace=workspace, code="R2", name="North")
    branches = {
        "B01": Branch.objects.create(workspace=workspace, code="B01", name="Centru", region=region),
        "B02": Branch.objects.create(
            workspace=workspace, code="B02", name="Botanica", region=region
        ),
        "B03": Branch.objects.create(
            workspace=workspace, code="B03", name="Bălți", region=other_region
        ),
    }
    products = {
        code: Product.objects.create(workspace=workspace, code=code, name=f"Product {code}")
        for code in ("P1", "P2")
    }
    today = clock.now().date()
    w = World(
        workspace, make_survey(workspace, "nps"), branches, products, today,
        today - dt.timedelta(days=20),
    )  # fmt: skip
    add(
        w, mix(10, 10, 20), branch="B01", product="P1", after=False,
        reasons=[[]] * 20 + [["waiting"]] * 15 + [["price"]] * 5,
    )  # fmt: skip
    later = add(
        w, mix(30, 6, 4), branch="B01", product="P1", after=True,
        reasons=[[]] * 36 + [["waiting"], ["price"], ["price"], ["price"]],
    )  # fmt: skip
    rude = ReasonCode.objects.create(workspace=workspace, code="rude", labels={"en": "Rude staff"})
    now = clock.now()
    case = Case.objects.create(
        workspace=workspace, source=CaseSource.RESPONSE, response=later[-1], survey=w.survey,
        due_at=now, warn_at=now,
    )  # fmt: skip
    case.reasons.add(rude)
    add(w, mix(0, 10, 0), branch="B01", product="P2", after=False)
    add(w, mix(0, 0, 10), branch="B01", product="P2", after=True)
    add(w, mix(20, 0, 0), branch="B02", after=False)
    add(w, mix(0, 0, 20), branch="B02", after=True)
    add(w, mix(15, 10, 15), branch="B03", after=False)
    add(w, mix(15, 10, 15), branch="B03", after=True)
    return w


def initiative(
    world: World,
    name: str = "Queue-busting pilot",
    branches: tuple[str, ...] = ("B01",),
    products: tuple[str, ...] = ("P1",),
    date: dt.date | None = None,
) -> Initiative:
    item = Initiative.objects.create(workspace=world.workspace, name=name, date=date or world.date)
    item.branches.set([world.branches[c] for c in branches])
    item.products.set([world.products[c] for c in products])
    return item


# --------------------------------------------------------------------------- by hand


def adjusted(p: int, q: int, d: int) -> tuple[float, float]:
    n = p + q + d + 3
    pa, da = (p + 0.75) / n, (d + 0.75) / n
    return pa - da, (pa + da - (pa - da) ** 2) / n


def interval(p: int, q: int, d: int) -> tuple[float, float]:
    centre, var = adjusted(p, q, d)
    half = Z95 * math.sqrt(var)
    return 100 * (centre - half), 100 * (centre + half)


def z_difference(after: tuple[int, int, int], before: tuple[int, int, int]) -> float:
    (ca, va), (cb, vb) = adjusted(*after), adjusted(*before)
    return (ca - cb) / math.sqrt(va + vb)


def two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


def pooled_z(x1: int, n1: int, x2: int, n2: int) -> float:
    pooled = (x1 + x2) / (n1 + n2)
    return (x1 / n1 - x2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))


# --------------------------------------------------------------------------- the numbers


def test_windows_are_equal_and_end_by_today() -> None:
    today = dt.date(2025, 6, 30)
    full = windows(dt.date(2025, 5, 1), 30, today)
    assert (full.before_since, full.after_until, full.days) == (
        dt.date(2025, 4, 1), dt.date(2025, 5, 31), 30,
    )  # fmt: skip
    cut = windows(dt.date(2025, 6, 20), 30, today)
    assert cut.days == 10 and cut.cut
    assert cut.before_since == dt.date(2025, 6, 10) and cut.after_until == today
    assert windows(today, 30, today).days == 0
    assert windows(today + dt.timedelta(days=5), 30, today).days == 0


def test_a_jump_after_the_date_is_a_significant_improvement(world: World) -> None:
    result = effect(initiative(world), today=world.today, window=14)
    assert (result.before.promoters, result.before.passives, result.before.detractors) == (
        10, 10, 20,
    )  # fmt: skip
    assert (result.after.promoters, result.after.passives, result.after.detractors) == (30, 6, 4)
    assert result.before.nps == pytest.approx(-25.0)
    assert result.after.nps == pytest.approx(65.0)
    assert result.diff == pytest.approx(90.0)
    low, high = interval(30, 6, 4)
    assert (result.after.ci_low, result.after.ci_high) == (pytest.approx(low), pytest.approx(high))
    z = z_difference((30, 6, 4), (10, 10, 20))
    assert result.z == pytest.approx(z)
    assert result.p_value == pytest.approx(two_sided(z))
    assert result.p_value < 0.001
    assert result.verdict == "improved"


def test_unchanged_data_is_no_significant_change(world: World) -> None:
    result = effect(initiative(world, branches=("B03",), products=()), today=world.today, window=14)
    assert result.before.n == result.after.n == 40
    assert result.diff == pytest.approx(0.0)
    assert result.p_value == pytest.approx(1.0)
    assert result.verdict == "no_change"


def test_another_branch_or_product_does_not_count(world: World) -> None:
    # B01 with every product: P2's ten passives before and ten detractors after count too.
    both = effect(initiative(world, products=()), today=world.today, window=14)
    assert (both.before.n, both.before.passives) == (50, 20)
    assert (both.after.n, both.after.detractors) == (50, 14)
    # B02's answers (20 promoters, then 20 detractors) never count for B01.
    everywhere = effect(initiative(world, branches=(), products=()), today=world.today, window=14)
    assert everywhere.before.n == 50 + 20 + 40
    assert everywhere.after.n == 50 + 20 + 40
    assert both.before.promoters == 10 and both.after.promoters == 30


def test_a_window_outside_the_answers_finds_none(world: World) -> None:
    # Dated four days after D, the answers five days before and three after D are all in its
    # "before" window, and its "after" window holds none.
    late = effect(
        initiative(world, date=world.date + dt.timedelta(days=4)), today=world.today, window=14
    )
    assert late.after.n == 0 and late.before.n == 80
    assert late.verdict == "insufficient_data"
    ahead = effect(
        initiative(world, date=world.today + dt.timedelta(days=3)), today=world.today, window=14
    )
    assert ahead.verdict == "not_yet" and ahead.reasons == []


def test_reason_shares_and_their_tests_match_a_hand_computation(world: World) -> None:
    result = effect(initiative(world, products=()), today=world.today, window=14)
    assert (result.before_detractors, result.after_detractors) == (20, 14)
    by_code = {r.code: r for r in result.reasons}
    assert list(by_code) == ["waiting", "price", "rude"]  # 16, 8 and 1 citing over both
    waiting = by_code["waiting"]
    assert (waiting.before_citing, waiting.after_citing) == (15, 1)
    assert waiting.before_share == pytest.approx(0.75)
    assert waiting.after_share == pytest.approx(1 / 14)
    z = pooled_z(1, 14, 15, 20)
    assert waiting.z == pytest.approx(z)
    assert waiting.p_value == pytest.approx(two_sided(z))
    assert waiting.verdict == "less"
    price = by_code["price"]
    assert (price.before_citing, price.after_citing) == (5, 3)
    assert price.p_value == pytest.approx(two_sided(pooled_z(3, 14, 5, 20)))
    assert price.verdict == "no_change"
    rude = by_code["rude"]  # cited through the call-back's case only
    assert (rude.before_citing, rude.after_citing, rude.label) == (0, 1, "Rude staff")
    # Benjamini-Hochberg among the three tests.
    ps = sorted(r.p_value for r in result.reasons if r.p_value is not None)
    assert waiting.q_value == pytest.approx(min(1.0, 3 * ps[0] / 1, 3 * ps[1] / 2, ps[2]))


def test_a_product_scope_limits_the_nps_and_the_reasons(world: World) -> None:
    result = effect(initiative(world), today=world.today, window=14)
    assert result.after.detractors == 4  # P1's only
    assert result.after_detractors == 4  # the reasons too
    everywhere = effect(initiative(world, products=()), today=world.today, window=14)
    assert everywhere.after_detractors == 14  # B01's, every product


# --------------------------------------------------------------------------- the dashboard


def trend_svg(html: str) -> str:
    found = re.search(r'<figure class="chart" id="trend-chart".*?</figure>', html, re.S)
    assert found, "no trend chart"
    return found.group(0)


def test_the_trend_chart_marks_initiatives_in_its_period(
    world: World, make_user: Callable[..., Any]
) -> None:
    initiative(world, name="Queue-busting pilot")
    initiative(world, name="Ancient campaign", date=world.today - dt.timedelta(days=200))
    initiative(world, name="Northern refit", branches=("B03",), products=())
    client = Client()
    client.force_login(make_user(world.workspace, Role.ANALYST))
    since = (world.today - dt.timedelta(days=59)).isoformat()
    html = client.get(DASHBOARD, {"since": since, "until": world.today.isoformat()}).content
    svg = trend_svg(html.decode())
    assert "Queue-busting pilot" in svg
    assert "Northern refit" in svg
    assert "Ancient campaign" not in svg
    # Filtered to B01: the B03 initiative's scope does not meet it.
    html = client.get(
        DASHBOARD, {"since": since, "until": world.today.isoformat(), "branch": "B01"}
    ).content
    svg = trend_svg(html.decode())
    assert "Queue-busting pilot" in svg and "Northern refit" not in svg
    # A period that ends before the date: not drawn.
    early = world.date - dt.timedelta(days=1)
    html = client.get(
        DASHBOARD,
        {"since": (early - dt.timedelta(days=30)).isoformat(), "until": early.isoformat()},
    ).content
    svg = trend_svg(html.decode())
    assert "Queue-busting pilot" not in svg


def test_annotations_follow_region_and_survey(world: World) -> None:
    initiative(world, name="North", branches=("B03",), products=())
    initiative(world, name="Everywhere", branches=(), products=())
    since, until = world.date - dt.timedelta(days=1), world.date + dt.timedelta(days=1)
    names = [n for _, n in chart_annotations(world.workspace, since, until, regions=["R1"])]
    assert names == ["Everywhere"]
    other = make_survey(world.workspace, "other-nps")
    Initiative.objects.filter(name="North").update(survey=other)
    names = [n for _, n in chart_annotations(world.workspace, since, until, survey=world.survey)]
    assert names == ["Everywhere"]


# --------------------------------------------------------------------------- the pages


def client_for(world: World, make_user: Callable[..., Any], role: str) -> Client:
    client = Client()
    client.force_login(make_user(world.workspace, role, username=f"u-{role}"))
    return client


def form_data(world: World, **extra: Any) -> dict[str, Any]:
    return {
        "name": "New queue system",
        "date": world.date.isoformat(),
        "description": "Tickets and a screen.",
        "branches": [world.branches["B01"].pk],
        "products": [world.products["P1"].pk],
        "survey": "",
        **extra,
    }


def test_a_cx_manager_creates_edits_and_deletes_an_initiative(
    world: World, make_user: Callable[..., Any]
) -> None:
    client = client_for(world, make_user, Role.CX_MANAGER)
    response = client.post(LIST, form_data(world))
    assert response.status_code == 302
    item = Initiative.objects.get(workspace=world.workspace)
    assert item.name == "New queue system" and item.date == world.date
    assert [b.code for b in item.branches.all()] == ["B01"]
    assert item.created_by is not None
    log = AuditLog.objects.get(workspace=world.workspace, action="initiative.create")
    assert log.object_id == str(item.pk) and log.changes["branches"] == ["B01"]

    page = client.get(f"{LIST}/{item.pk}", {"window": 14})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="before-after-chart"' in html and "<svg" in html
    assert "-25.0" in html and "65.0" in html
    assert 'data-code="waiting"' in html

    listing = client.get(LIST, {"window": 14}).content.decode()
    assert "New queue system" in listing and "improved" in listing

    response = client.post(f"{LIST}/{item.pk}", form_data(world, name="Renamed"))
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.name == "Renamed"
    assert AuditLog.objects.filter(action="initiative.update", object_id=str(item.pk)).exists()

    response = client.post(f"{LIST}/{item.pk}", {"action": "delete"})
    assert response.status_code == 302
    assert not Initiative.objects.filter(pk=item.pk).exists()
    assert AuditLog.objects.filter(action="initiative.delete", object_id=str(item.pk)).exists()


def test_an_analyst_reads_but_cannot_change(world: World, make_user: Callable[..., Any]) -> None:
    item = initiative(world)
    client = client_for(world, make_user, Role.ANALYST)
    listing = client.get(LIST)
    assert listing.status_code == 200 and b"Queue-busting pilot" in listing.content
    assert b'id="initiative-form"' not in listing.content
    assert client.get(f"{LIST}/{item.pk}").status_code == 200
    assert client.post(LIST, form_data(world)).status_code == 403
    assert client.post(f"{LIST}/{item.pk}", {"action": "delete"}).status_code == 403
    assert client.post(f"{LIST}/{item.pk}", form_data(world, name="X")).status_code == 403
    assert Initiative.objects.filter(workspace=world.workspace).count() == 1


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.EMPLOYEE])
def test_supervisors_and_employees_get_403(
    world: World, make_user: Callable[..., Any], role: str
) -> None:
    item = initiative(world)
    client = client_for(world, make_user, role)
    assert client.get(LIST).status_code == 403
    assert client.get(f"{LIST}/{item.pk}").status_code == 403
    assert client.post(LIST, form_data(world)).status_code == 403


def test_another_workspaces_initiative_is_404(
    world: World, other_workspace: Workspace, make_user: Callable[..., Any]
) -> None:
    theirs = Initiative.objects.create(workspace=other_workspace, name="Theirs", date=world.date)
    client = client_for(world, make_user, Role.ADMIN)
    assert client.get(f"{LIST}/{theirs.pk}").status_code == 404


def test_bad_input_saves_nothing(
    world: World, other_workspace: Workspace, make_user: Callable[..., Any]
) -> None:
    foreign = Branch.objects.create(
        workspace=other_workspace,
        code="X1",
        name="Foreign",
        region=Region.objects.create(workspace=other_workspace, code="RX", name="RX"),
    )
    client = client_for(world, make_user, Role.ADMIN)
    far = (world.today + dt.timedelta(days=800)).isoformat()
    for data in (
        form_data(world, name="  "),
        form_data(world, date=far),
        form_data(world, date="not a date"),
        form_data(world, branches=[foreign.pk]),
    ):
        response = client.post(LIST, data)
        assert response.status_code == 400, data
        assert b'class="errorlist"' in response.content
    assert not Initiative.objects.exists()
    assert not AuditLog.objects.filter(action__startswith="initiative.").exists()
    item = initiative(world)
    response = client.post(f"{LIST}/{item.pk}", form_data(world, date=far))
    assert response.status_code == 400
    item.refresh_from_db()
    assert item.date == world.date and item.name == "Queue-busting pilot"


# --------------------------------------------------------------------------- the API


def test_the_api_lists_initiatives_with_their_before_and_after(
    world: World, make_api: Callable[..., Any], other_workspace: Workspace
) -> None:
    item = initiative(world)
    Initiative.objects.create(workspace=other_workspace, name="Theirs", date=world.date)
    response = make_api(world.workspace).get("/analytics/initiatives", window=14)
    assert response.status_code == 200, response.content
    (row,) = response.json()
    assert row["id"] == item.pk and row["branches"] == ["B01"] and row["products"] == ["P1"]
    assert row["window_days"] == 14
    assert row["before"]["nps"] == pytest.approx(-25.0)
    assert row["after"]["nps"] == pytest.approx(65.0)
    assert row["verdict"] == "improved"
    assert make_api(world.workspace).get("/analytics/initiatives", window=7).status_code == 422
    no_read = make_api(world.workspace, scopes=("ingest",))
    assert no_read.get("/analytics/initiatives").status_code == 403
