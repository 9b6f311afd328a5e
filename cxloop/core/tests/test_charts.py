"""The home page's charts: the weeks they draw, the SVG they make, and pages that never break."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.test import Client
from django.utils import translation

from cxloop.accounts.models import Role, Workspace
from cxloop.core import charts, clock
from cxloop.customers.services import upsert_customers
from cxloop.interactions.services import ingest_interactions

PASSWORD = "correct horse battery staple"
THURSDAY = dt.date(2026, 3, 12)


def test_weekly_rows_fill_empty_weeks_and_mark_the_week_in_progress() -> None:
    rows = charts.weekly_rows([(dt.date(2026, 2, 16), 4), (dt.date(2026, 3, 2), 7)], today=THURSDAY)
    assert [(r["week"], r["n"], r["partial"]) for r in rows] == [
        ("2026-02-16", 4, False),
        ("2026-02-23", 0, False),
        ("2026-03-02", 7, False),
        ("2026-03-09", 0, True),
    ]
    assert rows[0]["end"] == "2026-02-22"


def test_a_week_cut_by_the_start_of_the_period_is_left_out() -> None:
    weekly = [(dt.date(2025, 3, 10), 2), (dt.date(2025, 3, 17), 9)]
    rows = charts.weekly_rows(weekly, today=dt.date(2025, 3, 20), since=dt.date(2025, 3, 12))
    assert [r["week"] for r in rows] == ["2025-03-17"]
    # ...unless nothing else is left to draw.
    rows = charts.weekly_rows(weekly[:1], today=dt.date(2025, 3, 14), since=dt.date(2025, 3, 12))
    assert [r["week"] for r in rows] == ["2025-03-10"]


def test_nothing_to_draw_gives_no_chart() -> None:
    assert charts.weekly_rows([], today=THURSDAY) == []
    assert charts.weekly_interactions_svg([], THURSDAY) is None
    assert charts.weekly_interactions_svg([(THURSDAY, 0)], THURSDAY) is None
    assert charts.interaction_types_svg([]) is None


def test_the_weekly_chart_is_a_self_contained_scalable_svg() -> None:
    weekly = [(dt.date(2026, 1, 5) + dt.timedelta(weeks=n), 100 + n) for n in range(10)]
    svg = charts.weekly_interactions_svg(weekly, THURSDAY)
    assert svg is not None and svg.startswith("<svg")
    assert re.search(r'viewBox="0 0 [\d.]+ [\d.]+"', svg)
    # Nothing fetched from anywhere: the only URLs are XML namespaces.
    urls = set(re.findall(r"https?://[^\"' )]+", svg))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    bars = re.findall(r'aria-roledescription="bar"', svg)
    assert len(bars) == 10
    assert "Week of Jan. 5, 2026: 100" in svg


def test_chart_labels_follow_the_readers_language() -> None:
    weekly = [(dt.date(2026, 1, 5) + dt.timedelta(weeks=n), 10) for n in range(30)]
    with translation.override("ru"):
        svg = charts.weekly_interactions_svg(weekly, dt.date(2026, 7, 30))
    assert svg is not None and ">фев 2026<" in svg
    with translation.override("ro"):
        svg = charts.weekly_interactions_svg(weekly, dt.date(2026, 7, 30))
    assert svg is not None and ">feb. 2026<" in svg


def test_the_types_chart_names_each_type_and_its_count() -> None:
    svg = charts.interaction_types_svg([("call", 1234), ("store_visit", 56)])
    assert svg is not None
    text = re.sub(r"<[^>]+>", " ", svg)
    assert "call" in text and "store_visit" in text
    assert "1\u202f234" in text and "56" in text


def _client(workspace: Workspace, make_user: Any) -> Client:
    client = Client()
    assert client.login(username=make_user(workspace, Role.ANALYST).username, password=PASSWORD)
    return client


@pytest.mark.django_db
def test_the_home_page_of_an_empty_workspace_has_no_chart(
    workspace: Workspace, make_user: Any
) -> None:
    response = _client(workspace, make_user).get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<svg" not in html
    assert "No interactions yet" in html


@pytest.mark.django_db
def test_the_home_page_draws_both_charts(workspace: Workspace, make_user: Any) -> None:
    upsert_customers(workspace, [{"external_id": "C1"}])
    ingest_interactions(workspace, [
        {"source": "crm", "external_id": f"I{n}", "customer": "C1", "type": "call",
         "occurred_at": (clock.now() - dt.timedelta(days=n)).isoformat()}
        for n in range(20)
    ])  # fmt: skip
    html = _client(workspace, make_user).get("/").content.decode()
    assert html.count("<svg") == 2


@pytest.mark.django_db
def test_a_chart_that_fails_to_render_does_not_take_the_page_down(
    workspace: Workspace, make_user: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    upsert_customers(workspace, [{"external_id": "C1"}])
    ingest_interactions(workspace, [{"source": "crm", "external_id": "I1", "customer": "C1",
                                     "type": "call", "occurred_at": clock.now().isoformat()}])  # fmt: skip

    def broken(spec: Any, **kwargs: Any) -> str:
        raise RuntimeError("renderer unavailable")

    monkeypatch.setattr(charts.vl_convert, "vegalite_to_svg", broken)
    response = _client(workspace, make_user).get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "could not be drawn" in html
    assert "home_charts_failed" in caplog.text
    # The types panel falls back to the plain numbers.
    assert re.search(r"<td>call</td><td class=\"num\">1</td>", html)
