"""The home page's charts: the weeks they draw, the SVG they make, and pages that never break."""

from __future__ import annotations

import datetime as dt
import os
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


# --- keeping what was drawn ----------------------------------------------------------------


def _bars(values: list[int]) -> Any:
    import altair as alt

    rows = [{"label": f"B{i}", "n": n} for i, n in enumerate(values)]
    return alt.Chart(alt.Data(values=rows)).mark_bar().encode(x="n:Q", y="label:N")


@pytest.fixture
def drawings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The specs vl-convert is asked to draw."""
    import vl_convert

    drawn: list[str] = []
    real = vl_convert.vegalite_to_svg

    def counting(spec: Any, *args: Any, **kwargs: Any) -> str:
        drawn.append(str(spec))
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(vl_convert, "vegalite_to_svg", counting)
    return drawn


def test_a_chart_is_drawn_once_and_found_by_another_worker_in_the_shared_cache(
    drawings: list[str],
) -> None:
    first = charts.render_svg(_bars([3, 5]))
    assert charts.render_svg(_bars([3, 5])) == first and len(drawings) == 1
    # Another web worker: nothing in its own memory, the SVG in the cache they share.
    charts._local.clear()
    assert charts.render_svg(_bars([3, 5])) == first and len(drawings) == 1
    # Other numbers, or another language, are another drawing.
    charts.render_svg(_bars([3, 6]))
    with translation.override("ru"):
        charts.render_svg(_bars([3, 5]))
    assert len(drawings) == 3


def _redis_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


# CI starts Redis: there a missing one is a failure, not a skip.
@pytest.mark.skipif(not _redis_up() and not os.environ.get("CI"), reason="no Redis on 6379")
def test_workers_share_charts_through_redis(drawings: list[str], settings: Any) -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=12).flushdb()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/12",
        }
    }
    svg = charts.render_svg(_bars([7, 1, 4]))
    charts._local.clear()
    assert charts.render_svg(_bars([7, 1, 4])) == svg and len(drawings) == 1
    assert redis.Redis(host="127.0.0.1", port=6379, db=12).dbsize() == 1


built: list[list[int]] = []


@charts.cached
def _bars_svg(values: list[int]) -> str:
    built.append(values)
    return charts.render_svg(_bars(values))


def test_a_cached_builder_skips_altair_for_numbers_it_has_drawn(drawings: list[str]) -> None:
    built.clear()
    first = _bars_svg([1, 2])
    assert _bars_svg([1, 2]) == first and built == [[1, 2]] and len(drawings) == 1
    # Another worker finds it in the shared cache, without building the spec.
    charts._local.clear()
    assert _bars_svg([1, 2]) == first and built == [[1, 2]]
    _bars_svg([1, 3])
    with translation.override("ro"):
        _bars_svg([1, 2])
    assert built == [[1, 2], [1, 3], [1, 2]] and len(drawings) == 3


def test_a_slot_shows_its_last_drawing_while_it_is_young(
    drawings: list[str], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CHART_MAX_AGE = 60
    clock_now = [1_000_000.0]
    monkeypatch.setattr(charts.time, "time", lambda: clock_now[0])
    built.clear()
    with charts.slot("w1:/analytics/?by=branch#groups") as place:
        old = _bars_svg([3, 5])
    assert not place.stale and len(drawings) == 1

    # New answers 30 s later: the slot's drawing is shown, marked stale, nothing is built.
    clock_now[0] += 30
    with charts.slot("w1:/analytics/?by=branch#groups") as place:
        assert _bars_svg([3, 6]) == old
    assert place.stale and built == [[3, 5]] and len(drawings) == 1
    # Another place on the page, or another page, draws its own.
    with charts.slot("w1:/analytics/?by=branch#trend") as other:
        new = _bars_svg([3, 6])
    assert not other.stale and new != old and len(drawings) == 2
    # Outside a slot the chart is always the current one (the report, the digest).
    assert _bars_svg([3, 6]) == new

    # A minute after its drawing the request still gets it at once, and a thread draws the
    # current numbers for the next one.
    clock_now[0] += 31
    with charts.slot("w1:/analytics/?by=branch#groups") as place:
        assert _bars_svg([3, 7]) == old
    assert place.stale and place.drawn_at == 1_000_000.0
    for thread in charts._redrawing:
        thread.join(timeout=30)
    assert len(drawings) == 3 and built[-1] == [3, 7]
    with charts.slot("w1:/analytics/?by=branch#groups") as place:
        newest = _bars_svg([3, 7])
    assert not place.stale and newest not in (old, new)

    # Ten minutes without a request: the next one draws rather than show an old chart.
    clock_now[0] += 601
    with charts.slot("w1:/analytics/?by=branch#groups") as place:
        _bars_svg([3, 9])
    assert not place.stale and len(drawings) == 4

    # CHART_MAX_AGE = 0: every change is drawn at once.
    settings.CHART_MAX_AGE = 0
    with charts.slot("w1:/analytics/?by=branch#groups") as place:
        _bars_svg([3, 8])
    assert not place.stale and len(drawings) == 5


def test_page_slots_tell_workspaces_members_and_filters_apart() -> None:
    from types import SimpleNamespace

    from django.test import RequestFactory

    def slot_of(path: str, workspace: int, member: int, personal: bool = False) -> str:
        request = RequestFactory().get(path)
        request.membership = SimpleNamespace(pk=member, workspace_id=workspace)  # type: ignore[attr-defined]
        return charts.page_slot(request, "groups", personal=personal)

    base = slot_of("/analytics/?by=branch&since=2026-01-01", 1, 10)
    # The order of the parameters and the download ones do not matter...
    assert slot_of("/analytics/?since=2026-01-01&by=branch&format=csv", 1, 11) == base
    # ...the filters, the workspace and (personal) the member do.
    assert slot_of("/analytics/?by=product&since=2026-01-01", 1, 10) != base
    assert slot_of("/analytics/?by=branch&since=2026-01-01", 2, 10) != base
    assert slot_of("/analytics/?by=branch&since=2026-01-01", 1, 10, True) != slot_of(
        "/analytics/?by=branch&since=2026-01-01", 1, 11, True
    )
