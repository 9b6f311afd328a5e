# ruff: noqa: RUF001 - Russian and Romanian comments on purpose
"""Standard phrase alerts: legal threats, safety and fraud open an urgent case whatever the
score, per language; installed from the case settings page."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from cxloop.accounts.models import Role, Workspace
from cxloop.cases.models import AlertRule, Priority
from cxloop.cases.services import open_for_response
from cxloop.surveys.models import Survey
from cxloop.surveys.tests.factories import make_org, make_survey
from cxloop.text import phrases

from .test_pipeline import respond


@pytest.fixture
def survey(workspace: Workspace) -> Survey:
    make_org(workspace)
    return make_survey(workspace, "after-visit")


@pytest.mark.parametrize(
    ("comment", "category"),
    [
        ("Voi deschide un proces și merg la ANPC", "Legal threat (ro)"),
        ("Я обращусь в суд и к адвокату", "Legal threat (ru)"),
        ("I will talk to my lawyer about this", "Legal threat (en)"),
        ("Someone stole my card details, this is fraud", "Fraud (en)"),
        ("С карты списали деньги без моего согласия", "Fraud (ru)"),
        ("Podeaua udă, bunica a căzut și a ajuns la spital", "Safety (ro)"),
    ],
)
def test_a_threat_opens_an_urgent_case_whatever_the_score(
    survey: Survey, comment: str, category: str
) -> None:
    phrases.install(survey)
    case = open_for_response(respond(survey, comment, score=10, signal=False).pk)
    assert case is not None and case.priority == Priority.URGENT
    assert any(why.startswith(category) for why in case.matched), case.matched


def test_rules_look_only_at_their_language(survey: Survey) -> None:
    phrases.install(survey)
    # "proces" is a Romanian legal stem, and the start of the English "process".
    english = respond(survey, "The whole process was quick and pleasant", score=10, signal=False)
    assert open_for_response(english.pk) is None
    # A comment too short to tell its language is looked at by every rule.
    assert open_for_response(respond(survey, "proces!", score=10, signal=False).pk) is not None


def test_installing_keeps_the_detractor_rule_and_is_idempotent(survey: Survey) -> None:
    first = phrases.install(survey)
    names = set(AlertRule.objects.filter(survey=survey).values_list("name", flat=True))
    assert "Detractors" in names and len(first) == len(names) == 1 + 3 * 4
    assert phrases.install(survey) == []
    # Detractors still open their (normal) case.
    case = open_for_response(respond(survey, "Slow", score=3, signal=False).pk)
    assert case is not None and case.priority == Priority.NORMAL


def test_the_settings_page_installs_them(
    client: Client, survey: Survey, make_user: Any, other_workspace: Workspace
) -> None:
    client.force_login(make_user(survey.workspace, Role.CX_MANAGER))
    url = reverse("cases:settings")
    page = client.get(url)
    assert b"standard-alerts" in page.content
    response = client.post(url, {"form": "standard_alerts", "survey": survey.pk}, follow=True)
    assert "13 alert rules added" in response.content.decode()
    rule = AlertRule.objects.get(survey=survey, name="Fraud (ro)")
    assert rule.language == "ro" and rule.priority == Priority.URGENT
    # Another workspace's survey cannot be touched from here.
    make_org(other_workspace)
    theirs = make_survey(other_workspace, "theirs")
    response = client.post(url, {"form": "standard_alerts", "survey": theirs.pk}, follow=True)
    assert "Choose a survey" in response.content.decode()
    assert not AlertRule.objects.filter(survey=theirs).exists()
    # The rule form edits the language like any other field.
    response = client.post(
        url,
        {"form": "rule", "rule": rule.pk, "survey": survey.pk, "name": rule.name,
         "phrases": "frauda", "language": "uk", "priority": "urgent", "is_active": "on"},
    )  # fmt: skip
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.language, rule.phrases) == ("uk", ["frauda"])
