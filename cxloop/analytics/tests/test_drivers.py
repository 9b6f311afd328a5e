"""Key drivers: Johnson's relative weights against independent computations (squared
correlations of orthogonal predictors, numpy's lstsq R²), a constructed data set where one
reason dominates, the minimum n, reasons nobody cites, the API's 422s and the page.

The constructed data (survey "after-visit", reasons question "reasons")::

    60 responses ticked "waiting"           scores 2, 3, 4 (20 each)
    20 responses with a case coded waiting  score 3 (no option ticked)
    120 other responses                     scores 9, 10 (60 each)
    "staff" ticked by every 4th response, whatever its score; "price" never ticked.

Waiting alone separates the low from the high scores, so it takes almost all of R².
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.test import Client

from cxloop.accounts.models import Role, Workspace
from cxloop.analytics import drivers
from cxloop.analytics.drivers import compute, key_drivers, relative_weights
from cxloop.cases.models import Case, ReasonCode
from cxloop.surveys.models import Response, ResponseSource, Survey
from cxloop.surveys.tests.factories import make_survey

_ids = itertools.count()
AT = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)


def lstsq_r2(x: np.ndarray, y: np.ndarray) -> float:
    design = np.column_stack([np.ones(len(y)), x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    return float(1 - residual @ residual / ((y - y.mean()) @ (y - y.mean())))


# --------------------------------------------------------------------------- the maths


def test_orthogonal_predictors_weigh_their_squared_correlations() -> None:
    # x1 and x2 are exactly uncorrelated (a balanced 2 x 2 design).
    x1 = np.array([1, 1, 0, 0] * 25, dtype=float)
    x2 = np.array([1, 0, 1, 0] * 25, dtype=float)
    rng = np.random.default_rng(7)
    y = 3 * x1 - 1 * x2 + rng.normal(0, 1, 100)
    assert abs(np.corrcoef(x1, x2)[0, 1]) < 1e-12

    weights, r2 = relative_weights(np.column_stack([x1, x2]), y)

    r1, r2_ = np.corrcoef(x1, y)[0, 1], np.corrcoef(x2, y)[0, 1]
    assert weights == pytest.approx([r1**2, r2_**2], rel=1e-9)
    assert r2 == pytest.approx(r1**2 + r2_**2, rel=1e-9)
    assert r2 == pytest.approx(lstsq_r2(np.column_stack([x1, x2]), y), rel=1e-9)


def test_correlated_predictors_share_the_lstsq_r2() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 4))
    x[:, 1] += 0.8 * x[:, 0]
    y = 2 * x[:, 0] - x[:, 2] + rng.normal(size=400)

    weights, r2 = relative_weights(x, y)

    assert r2 == pytest.approx(lstsq_r2(x, y), rel=1e-9)
    assert weights.sum() == pytest.approx(r2, rel=1e-9)
    assert np.all(weights >= 0)
    # x3 plays no part: its weight is tiny; x0 (the biggest coefficient) comes first.
    assert weights[3] < 0.01 and int(np.argmax(weights)) == 0


def test_collinear_dummies_still_give_the_least_squares_r2() -> None:
    rng = np.random.default_rng(5)
    group = rng.integers(0, 3, 300)
    x = np.eye(3)[group]  # one-hot: the columns add up to 1
    y = np.array([8.0, 5.0, 2.0])[group] + rng.normal(0, 1, 300)

    weights, r2 = relative_weights(x, y)

    assert r2 == pytest.approx(lstsq_r2(x, y), rel=1e-9)
    assert weights.sum() == pytest.approx(r2, rel=1e-9)


def test_constant_columns_are_refused_by_the_core_and_dropped_by_compute() -> None:
    x = np.zeros((60, 2))
    x[::2, 0] = 1
    y = np.where(x[:, 0] > 0, 3.0, 9.0)
    with pytest.raises(ValueError, match="must vary"):
        relative_weights(x, y)

    result = compute(x.astype(np.int8), y, [("a", "A"), ("b", "B")])

    assert [d.code for d in result.drivers] == ["a"]
    assert result.dropped == [("b", "B")]
    assert any("B" in m for m in result.messages)
    # One binary predictor that fully determines the score: R² = 1, share 100 %, 6 points lower.
    assert result.r2 == pytest.approx(1.0)
    assert result.drivers[0].share == pytest.approx(100.0)
    assert result.drivers[0].effect == pytest.approx(-6.0)
    assert result.drivers[0].readout == (
        "A explains 100% of the explained variation in scores; "
        "customers who cite it score 6.0 points lower on average."
    )


# --------------------------------------------------------------------------- the data


def _save(workspace: Workspace, survey: Survey, score: int, ticked: list[str]) -> Response:
    return Response(
        workspace=workspace,
        survey=survey,
        external_id=f"D{next(_ids)}",
        score=score,
        answered_at=AT,
        source=ResponseSource.WEB,
        answers={"reasons": ticked} if ticked else {},
    )


def build(workspace: Workspace, survey: Survey, waiting: int = 60, coded: int = 20) -> None:
    rows = []
    for i in range(waiting):
        rows.append(
            _save(workspace, survey, 2 + i % 3, ["waiting"] + (["staff"] if i % 4 == 0 else []))
        )
    for i in range(coded):
        rows.append(_save(workspace, survey, 3, ["staff"] if i % 4 == 0 else []))
    for i in range(120):
        rows.append(_save(workspace, survey, 9 + i % 2, ["staff"] if i % 4 == 0 else []))
    Response.objects.bulk_create(rows)
    reason, _ = ReasonCode.objects.get_or_create(
        workspace=workspace, code="waiting", defaults={"labels": {"en": "Waiting time"}}
    )
    for response in rows[waiting : waiting + coded]:
        case = Case.objects.create(
            workspace=workspace, source="response", response=response, due_at=AT, warn_at=AT
        )
        case.reasons.add(reason)


@pytest.fixture
def survey(workspace: Workspace) -> Survey:
    return make_survey(workspace)


def test_the_dominant_reason_takes_almost_all_of_r2(workspace: Workspace, survey: Survey) -> None:
    build(workspace, survey)

    result = key_drivers(workspace, [survey])

    assert result.n == 200
    by_code = {d.code: d for d in result.drivers}
    waiting = by_code["waiting"]
    # Ticked (60) or coded on the case (20): 80 responses cite it, the taxonomy's label.
    assert waiting.n_with == 80 and waiting.label == "Waiting time"
    assert result.drivers[0].code == "waiting" and waiting.share > 95
    assert waiting.sign == -1
    assert waiting.mean_with == pytest.approx((20 * 2 + 20 * 3 + 20 * 4 + 20 * 3) / 80)
    assert waiting.mean_without == pytest.approx(9.5)
    assert "customers who cite it score 6.5 points lower on average" in waiting.readout
    assert sum(d.share for d in result.drivers) == pytest.approx(100.0)
    # Nobody ticked price, quality or other: dropped, with a message naming them.
    assert {code for code, _label in result.dropped} == {"price", "quality", "other"}
    assert result.messages
    # The same R² as an independent least-squares fit of the indicators.
    x = np.zeros((200, 2))
    x[:80, 0] = 1
    x[:60:4, 1] = 1
    x[60:80:4, 1] = 1
    x[80::4, 1] = 1
    y = np.array([2 + i % 3 for i in range(60)] + [3] * 20 + [9 + i % 2 for i in range(120)], float)
    assert result.r2 == pytest.approx(lstsq_r2(x, y), rel=1e-9)


def test_below_the_minimum_n_no_drivers_are_computed(workspace: Workspace, survey: Survey) -> None:
    Response.objects.bulk_create([_save(workspace, survey, i % 11, ["waiting"]) for i in range(49)])

    result = key_drivers(workspace, [survey])

    assert result.n == 49 and result.r2 is None and result.drivers == []
    assert "at least 50" in result.messages[0]


def test_another_workspace_is_never_counted(
    workspace: Workspace, other_workspace: Workspace, survey: Survey
) -> None:
    build(workspace, survey)
    other_survey = make_survey(other_workspace)
    Response.objects.bulk_create(
        [_save(other_workspace, other_survey, 0, ["price"]) for _ in range(300)]
    )

    result = key_drivers(workspace, [survey, other_survey])

    assert result.n == 200
    assert "price" not in {d.code for d in result.drivers}


# --------------------------------------------------------------------------- API and page


def test_the_api_returns_the_drivers(workspace: Workspace, survey: Survey, api: Any) -> None:
    build(workspace, survey)

    response = api.get("/analytics/drivers", survey=survey.code)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["n"] == 200 and body["method"] == "johnson-relative-weights"
    assert body["drivers"][0]["code"] == "waiting" and body["drivers"][0]["sign"] == -1
    assert body["r2"] == pytest.approx(key_drivers(workspace, [survey]).r2)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"survey": "nope"}, "survey"),
        ({"kind": "feelings"}, "kind"),
        ({"since": "2026-03-01T00:00:00"}, "since"),
        ({"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, "until"),
    ],
)
def test_the_api_refuses_what_it_cannot_use(
    survey: Survey, api: Any, params: dict[str, str], field: str
) -> None:
    response = api.get("/analytics/drivers", **params)

    assert response.status_code == 422
    assert field in response.json()["errors"]


def test_the_api_needs_the_read_scope(workspace: Workspace, make_api: Callable[..., Any]) -> None:
    response = make_api(workspace, ("ingest",)).get("/analytics/drivers")
    assert response.status_code == 403


def test_the_page_draws_the_shares(
    workspace: Workspace, survey: Survey, make_user: Callable[..., Any]
) -> None:
    build(workspace, survey)
    client = Client()
    client.force_login(make_user(workspace, Role.ANALYST))

    response = client.get("/analytics/drivers", {"since": "2026-03-01", "until": "2026-03-31"})

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="drivers-chart"' in html and "<svg" in html
    assert "Waiting time explains" in html
    assert 'data-code="waiting"' in html


def test_supervisors_are_refused(workspace: Workspace, make_user: Callable[..., Any]) -> None:
    client = Client()
    client.force_login(make_user(workspace, Role.SUPERVISOR))
    assert client.get("/analytics/drivers").status_code == 403


def test_the_module_names_its_minimum() -> None:
    assert drivers.MIN_N == 50
