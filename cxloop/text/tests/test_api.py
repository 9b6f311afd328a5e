"""``/api/v1/comments``: the coded comments as an integrator reads them, and corrections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cxloop.accounts.models import Workspace
from cxloop.cases.models import ReasonCode
from cxloop.conftest import Api
from cxloop.surveys.models import Survey
from cxloop.surveys.tests.factories import make_org, make_survey
from cxloop.text.models import Comment, Label

from .test_pipeline import respond


@pytest.fixture
def survey(workspace: Workspace) -> Survey:
    make_org(workspace)
    return make_survey(workspace, "after-visit")


def test_list_filters_and_findings(survey: Survey, api: Api) -> None:
    respond(survey, "Очередь на час, никто не извинился, ужасно", score=1)
    respond(survey, "Mulțumesc, totul a fost excelent", score=10)
    answer = api.get("/comments")
    assert answer.status_code == 200
    items = answer.json()["items"]
    assert [i["language"]["value"] for i in items] == ["ru", "ro"]
    first = items[0]
    assert first["survey"] == "after-visit" and first["score"] == 1
    assert first["sentiment"]["value"] == "negative"
    assert first["sentiment"]["source"] == "rules" and first["sentiment"]["version"] == 0
    only = api.get("/comments", sentiment="positive", language="ro").json()["items"]
    assert [i["text"] for i in only] == ["Mulțumesc, totul a fost excelent"]
    assert api.get("/comments", language="en").json()["items"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [({"sentiment": "angry"}, "sentiment"), ({"reason": "nope"}, "reason"),
     ({"branch": "B99"}, "branch"), ({"since": "2026-01-01T00:00:00"}, "since")],
)  # fmt: skip
def test_bad_filters_name_themselves(
    survey: Survey, api: Api, params: dict[str, str], field: str
) -> None:
    answer = api.get("/comments", **params)
    assert answer.status_code == 422
    assert field in answer.json()["errors"]


def test_labels_need_admin_and_stay_in_the_workspace(
    survey: Survey,
    api: Api,
    make_api: Callable[..., Api],
    other_workspace: Workspace,
) -> None:
    ReasonCode.objects.create(workspace=survey.workspace, code="waiting", labels={"en": "Wait"})
    respond(survey, "Очередь на час", score=2)
    comment = Comment.objects.get()
    path = f"/comments/{comment.pk}/labels"
    assert api.post(path, {"task": "reasons", "value": "waiting"}).status_code == 403
    admin = make_api(survey.workspace, scopes=("admin", "read"))
    answer = admin.post(path, {"task": "reasons", "value": "waiting"})
    assert answer.status_code == 200
    assert answer.json()["reasons"] == [{"code": "waiting", "confidence": 1.0, "source": "analyst"}]
    assert Label.objects.filter(comment=comment, value="waiting").exists()
    bad = admin.post(path, {"task": "sentiment", "value": "furious"})
    assert bad.status_code == 422 and "value" in bad.json()["errors"]
    theirs = make_api(other_workspace, scopes=("admin", "read"))
    assert theirs.post(path, {"task": "sentiment", "value": "neutral"}).status_code == 404
    assert theirs.get("/comments").json()["items"] == []
    comment.refresh_from_db()
    assert comment.sentiment == "negative"


def test_pages_do_not_skip(survey: Survey, api: Api) -> None:
    for n in range(5):
        respond(survey, f"Comment {n} about the queue", score=3)
    seen: list[Any] = []
    page = api.get("/comments", limit=2).json()
    seen += page["items"]
    while page["next"]:
        page = api.get("/comments", limit=2, cursor=page["next"]).json()
        seen += page["items"]
    assert sorted(i["id"] for i in seen) == sorted(Comment.objects.values_list("pk", flat=True))
