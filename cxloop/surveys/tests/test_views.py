"""The CX manager's survey pages through Django's test client: who may do what, the survey
form (valid, invalid, nothing lost), the detail page, test sends, waves, why-not, at risk."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from cxloop.accounts.models import AuditLog, Role, Workspace
from cxloop.core import clock
from cxloop.customers.models import Account
from cxloop.interactions.models import Interaction
from cxloop.surveys import rules as trigger
from cxloop.surveys.definition import default_definition
from cxloop.surveys.forms import SurveyForm
from cxloop.surveys.models import (
    AtRiskAccount,
    Decision,
    Invitation,
    InvitationStatus,
    Survey,
    SurveyKind,
    Wave,
)
from cxloop.surveys.tests.factories import (
    make_customer,
    make_interaction,
    make_org,
    make_survey,
)

pytestmark = pytest.mark.django_db

MakeUser = Callable[..., Any]


@pytest.fixture
def as_role(client: Client, workspace: Workspace, make_user: MakeUser) -> Callable[[str], Any]:
    """Log the test client in as a member of ``workspace`` with ``role``; returns the user."""

    def login(role: str) -> Any:
        user = make_user(workspace, role)
        client.force_login(user)
        return user

    return login


def form_data(workspace: Workspace, **changes: Any) -> dict[str, Any]:
    """What the new-survey form posts when filled in, with ``changes`` applied."""
    initial = SurveyForm.initial_for(workspace, None)
    data: dict[str, Any] = {
        key: value
        for key, value in initial.items()
        if value is not None and not isinstance(value, bool)
    }
    data["send_window_start"] = "09:00"
    data["send_window_end"] = "20:00"
    data["is_active"] = "on"
    data.update(code="after-visit", name="After a visit", touchpoints=["store-visit"])
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def text_of(response: Any) -> str:
    """The page's text without tags, spaces squeezed, for assertions on what a reader sees."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- permissions ---------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_log_in(client: Client, workspace: Workspace) -> None:
    response = client.get("/surveys/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_an_analyst_may_look_but_not_change(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any]
) -> None:
    make_org(workspace)
    survey = make_survey(workspace)
    as_role(Role.ANALYST)
    assert client.get("/surveys/").status_code == 200
    detail = client.get(f"/surveys/{survey.code}/")
    assert detail.status_code == 200
    # No buttons that would only answer 403.
    assert f"/surveys/{survey.code}/edit" not in detail.content.decode()
    assert "Send a test to me" not in detail.content.decode()
    assert client.get("/surveys/why").status_code == 200
    assert client.get("/surveys/at-risk").status_code == 200

    assert client.get("/surveys/new").status_code == 403
    assert client.post("/surveys/new", form_data(workspace)).status_code == 403
    assert client.get(f"/surveys/{survey.code}/edit").status_code == 403
    assert client.post(f"/surveys/{survey.code}/edit", form_data(workspace)).status_code == 403
    assert client.post(f"/surveys/{survey.code}/test").status_code == 403
    assert client.get(f"/surveys/{survey.code}/waves/new").status_code == 403
    assert Survey.objects.count() == 1
    assert Invitation.objects.count() == 0


@pytest.mark.parametrize("role", [Role.EMPLOYEE, Role.SUPERVISOR])
def test_roles_without_all_feedback_are_refused(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any], role: str
) -> None:
    survey = make_survey(workspace)
    as_role(role)
    for url in ("/surveys/", f"/surveys/{survey.code}/", "/surveys/why", "/surveys/at-risk"):
        assert client.get(url).status_code == 403, url
    assert client.get("/surveys/new").status_code == 403


def test_the_menu_shows_surveys_to_those_who_may_see_them(
    client: Client, workspace: Workspace, make_user: MakeUser
) -> None:
    for role, shown in ((Role.CX_MANAGER, True), (Role.ANALYST, True), (Role.EMPLOYEE, False)):
        client.force_login(make_user(workspace, role))
        nav = re.search(r"<nav>(.*?)</nav>", client.get("/").content.decode(), re.S)
        assert nav is not None
        assert ('href="/surveys/"' in nav.group(1)) is shown, role


def test_another_workspaces_survey_is_not_found(
    client: Client,
    workspace: Workspace,
    other_workspace: Workspace,
    as_role: Callable[[str], Any],
) -> None:
    make_survey(workspace, "ours")
    theirs = make_survey(other_workspace, "theirs")
    as_role(Role.ADMIN)
    assert client.get("/surveys/ours/").status_code == 200
    for method, url in (
        ("get", "/surveys/theirs/"),
        ("get", "/surveys/theirs/edit"),
        ("post", "/surveys/theirs/edit"),
        ("post", "/surveys/theirs/test"),
        ("get", "/surveys/theirs/waves/new"),
    ):
        assert getattr(client, method)(url).status_code == 404, url
    listing = client.get("/surveys/").content.decode()
    assert "ours" in listing and "theirs" not in listing
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"


def test_state_changes_need_a_post(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any]
) -> None:
    survey = make_survey(workspace)
    as_role(Role.CX_MANAGER)
    assert client.get(f"/surveys/{survey.code}/test").status_code == 405
    csrf = Client(enforce_csrf_checks=True)
    csrf.force_login(as_role(Role.ADMIN))
    assert csrf.post("/surveys/new", form_data(workspace, code="forged")).status_code == 403
    assert not Survey.objects.filter(code="forged").exists()


# --- creating and editing ------------------------------------------------------------------


def test_a_cx_manager_creates_a_survey_through_the_form(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any]
) -> None:
    make_org(workspace)
    user = as_role(Role.CX_MANAGER)
    page = client.get("/surveys/new")
    assert page.status_code == 200
    # The definition starts as the ready-made survey, with the workspace's name as the brand.
    form = page.context["form"]
    assert json.loads(form.initial["definition"]) == default_definition("Acme Telecom")
    assert 'value="store-visit"' in page.content.decode()

    response = client.post(
        "/surveys/new",
        form_data(
            workspace,
            interaction_types="Store_Visit, call",
            sampling_percent="25",
            quiet_period_days="14",
            branch_daily_cap="40",
            channel_order="sms_email",
            reminder_after_days="3",
            send_window_start="10:30",
            send_window_end="19:00",
            unanswered_in_row="4",
        ),
    )
    assert response.status_code == 302
    assert response["Location"] == "/surveys/after-visit/"
    survey = Survey.objects.get(workspace=workspace, code="after-visit")
    assert survey.name == "After a visit"
    assert survey.kind == SurveyKind.TRANSACTIONAL and survey.is_active
    assert survey.rules["touchpoints"] == ["store-visit"]
    assert survey.rules["interaction_types"] == ["store_visit", "call"]
    assert survey.rules["sampling_rate"] == 0.25
    assert survey.rules["quiet_period_days"] == 14
    assert survey.rules["branch_daily_cap"] == 40
    assert survey.rules["channels"] == ["sms", "email"]
    assert survey.rules["reminder_after_days"] == 3
    assert survey.rules["send_window"] == {"start": "10:30:00", "end": "19:00:00"}
    assert survey.rules["unanswered_in_row"] == 4
    assert survey.definition["branding"]["company_name"] == "Acme Telecom"
    entry = AuditLog.objects.get(action="survey.create")
    assert entry.actor == user and entry.via == "web" and entry.object_id == str(survey.pk)

    detail = client.get(response["Location"])
    assert "Survey “After a visit” created." in text_of(detail)


def test_any_time_means_no_send_window(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any]
) -> None:
    make_org(workspace)
    as_role(Role.ADMIN)
    data = form_data(workspace, any_time="on", send_window_start="", send_window_end="")
    assert client.post("/surveys/new", data).status_code == 302
    assert Survey.objects.get(code="after-visit").rules["send_window"] is None
    # Without "any time", the window is required.
    data = form_data(workspace, code="second", send_window_start="")
    response = client.post("/surveys/new", data)
    assert response.status_code == 200
    assert "Give a time" in text_of(response)
    assert not Survey.objects.filter(code="second").exists()


BAD_JSON = '{"languages": ["en", "ro"], "title": {"en": "Hi",}'


def test_bad_json_is_shown_with_where_it_is_and_kept(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any]
) -> None:
    make_org(workspace)
    as_role(Role.CX_MANAGER)
    response = client.post(
        "/surveys/new", form_data(workspace, definition=BAD_JSON, name="Kept name")
    )
    assert response.status_code == 200
    assert not Survey.objects.exists()
    form = response.context["form"]
    assert "This is not valid JSON" in form.errors["definition"][0]
    assert "line 1" in form.errors["definition"][0]
    html = response.content.decode()
    # What was typed comes back as it was, in the text area and the other fields.
    assert "{&quot;languages&quot;: [&quot;en&quot;, &quot;ro&quot;]" in html
    assert 'value="Kept name"' in html
    assert 'value="25"' not in html and 'value="100"' in html


def test_definition_errors_are_listed_with_their_paths(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any]
) -> None:
    make_org(workspace)
    as_role(Role.CX_MANAGER)
    definition = default_definition("Acme")
    del definition["title"]["ro"]
    definition["intro"]["en"] = "Dear {customer_name}, thank you."
    raw = json.dumps(definition, ensure_ascii=False, indent=2)
    response = client.post(
        "/surveys/new", form_data(workspace, definition=raw, quiet_period_days="12")
    )
    assert response.status_code == 200
    assert not Survey.objects.exists()
    errors = response.context["form"].definition_errors
    paths = {path for path, _message in errors}
    assert "intro" in paths
    messages = " ".join(message for _path, message in errors)
    assert "unknown placeholder {customer_name}" in messages
    listed = re.search(r'id="definition-errors".*?</div>', response.content.decode(), re.S)
    assert listed is not None and "<code>intro</code>" in listed.group(0)
    # The missing Romanian title is named (pydantic checks it once the placeholders pass).
    definition["intro"]["en"] = "Thank you."
    response = client.post(
        "/surveys/new",
        form_data(workspace, definition=json.dumps(definition, ensure_ascii=False)),
    )
    text = " ".join(m for _p, m in response.context["form"].definition_errors)
    assert "texts missing for some languages" in text and "title: ro" in text
    # Input kept: the text area holds what was posted, the rules fields too.
    assert "Thank you." in response.content.decode()
    assert not Survey.objects.exists()


def test_an_unknown_placeholder_and_rule_errors_together(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any]
) -> None:
    make_org(workspace)
    as_role(Role.CX_MANAGER)
    definition = default_definition("Acme")
    definition["questions"][0]["text"]["ro"] = "Ce notă dați {firma}?"
    response = client.post(
        "/surveys/new",
        form_data(
            workspace,
            definition=json.dumps(definition),
            expiry_days="200",
            send_window_start="21:00",
        ),
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert any(
        path == "questions.0.text" and "unknown placeholder {firma}" in message
        for path, message in form.definition_errors
    )
    # Rules' errors sit next to the fields that edit them.
    assert "less than or equal to 90" in form.errors["expiry_days"][0]
    assert "must start before it ends" in form.errors["send_window_start"][0]
    # A transactional survey needs a trigger.
    response = client.post(
        "/surveys/new", form_data(workspace, touchpoints=None, interaction_types="")
    )
    errors = response.context["form"].errors
    assert "a transactional survey needs touchpoints" in errors["touchpoints"][0]
    assert not Survey.objects.exists()


def test_a_code_taken_by_another_survey_is_refused(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any]
) -> None:
    make_org(workspace)
    make_survey(workspace, "after-visit")
    as_role(Role.ADMIN)
    response = client.post("/surveys/new", form_data(workspace, code="after-visit", name="Twin"))
    assert response.status_code == 200
    assert (
        "another survey of this workspace has this code"
        in response.context["form"].errors["code"][0]
    )
    assert Survey.objects.filter(code="after-visit").get().name == "After Visit"
    bad = client.post("/surveys/new", form_data(workspace, code="Not A Code"))
    assert "lower-case" in bad.context["form"].errors["code"][0]

    # Renaming another survey to the taken code: refused, and the page still links to the
    # survey as it is stored (not to the code that was refused).
    second = make_survey(workspace, "second")
    response = client.post(
        "/surveys/second/edit", form_data(workspace, code="after-visit", name="Second")
    )
    assert "another survey" in response.context["form"].errors["code"][0]
    html = response.content.decode()
    assert 'href="/surveys/second/"' in html and 'href="/surveys/after-visit/"' not in html
    second.refresh_from_db()
    assert second.code == "second"


def test_editing_keeps_the_public_code_and_what_the_form_does_not_show(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any]
) -> None:
    make_org(workspace)
    survey = make_survey(
        workspace, sampling_rate=0.125, send_window={"start": "08:00", "end": "21:30"}
    )
    definition_before = survey.definition
    public_code = survey.public_code
    as_role(Role.CX_MANAGER)
    page = client.get(f"/surveys/{survey.code}/edit")
    assert page.status_code == 200
    initial = page.context["form"].initial
    assert initial["sampling_percent"] == "12.5"
    assert initial["send_window_start"] == dt.time(8, 0)
    assert initial["any_time"] is False

    # Post back what the page shows, with a new name.
    data = {
        key: value
        for key, value in initial.items()
        if value is not None and not isinstance(value, (bool, dt.time))
    }
    data.update(
        name="After a visit (v2)",
        is_active="on",
        send_window_start="08:00",
        send_window_end="21:30",
    )
    response = client.post(f"/surveys/{survey.code}/edit", data)
    assert response.status_code == 302
    survey.refresh_from_db()
    assert survey.name == "After a visit (v2)"
    assert survey.public_code == public_code
    assert survey.definition == definition_before
    assert survey.rules["sampling_rate"] == 0.125
    assert survey.rules["send_window"] == {"start": "08:00:00", "end": "21:30:00"}
    assert survey.rules["max_interaction_age_hours"] == 72
    entry = AuditLog.objects.filter(action="survey.update").latest("pk")
    assert entry.changes["name"] == ["After Visit", "After a visit (v2)"]


def test_a_touchpoint_the_organisation_lost_stays_in_the_rules(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any]
) -> None:
    make_org(workspace)
    survey = make_survey(workspace, touchpoints=["store-visit", "gone-touchpoint"])
    as_role(Role.CX_MANAGER)
    initial = client.get(f"/surveys/{survey.code}/edit").context["form"].initial
    data = {
        k: v for k, v in initial.items() if v is not None and not isinstance(v, (bool, dt.time))
    }
    data.update(is_active="on", any_time="on")
    assert client.post(f"/surveys/{survey.code}/edit", data).status_code == 302
    survey.refresh_from_db()
    assert survey.rules["touchpoints"] == ["store-visit", "gone-touchpoint"]


# --- the list and the detail page ----------------------------------------------------------


def sent_invitation(survey: Survey, customer: Any, *, answered: bool, **fields: Any) -> Invitation:
    now = clock.now()
    return Invitation.objects.create(
        workspace=survey.workspace,
        survey=survey,
        customer=customer,
        delivery_channel=fields.pop("delivery_channel", "email"),
        language="en",
        status=InvitationStatus.SENT,
        scheduled_for=now,
        expires_at=now + dt.timedelta(days=14),
        sent_at=fields.pop("sent_at", now - dt.timedelta(days=1)),
        answered_at=now if answered else None,
        **fields,
    )


def test_the_list_shows_the_last_30_days(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any]
) -> None:
    survey = make_survey(workspace)
    quiet = make_survey(workspace, "quiet", kind=SurveyKind.RELATIONSHIP)
    customer = make_customer(workspace)
    for answered in (True, False, False, True):
        sent_invitation(survey, customer, answered=answered)
    sent_invitation(survey, customer, answered=True, sent_at=clock.now() - dt.timedelta(days=31))
    sent_invitation(survey, None, answered=True, is_test=True)
    as_role(Role.ANALYST)
    html = client.get("/surveys/").content.decode()
    row = re.search(r'<tr data-code="after-visit">.*?</tr>', html, re.S)
    assert row is not None
    cells = re.findall(r'<td class="num[^"]*">([^<]*)</td>', row.group(0))
    assert cells == ["4", "2", "50%"]
    other = re.search(r'<tr data-code="quiet">.*?</tr>', html, re.S)
    assert other is not None
    assert re.findall(r'<td class="num[^"]*">([^<]*)</td>', other.group(0)) == ["0", "0", "—"]
    assert "Relationship" in other.group(0) and quiet.name in other.group(0)


def test_the_detail_page_shows_rules_links_and_the_funnel(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any]
) -> None:
    org = make_org(workspace)
    survey = make_survey(
        workspace, quiet_period_days=21, reminder_after_days=2, branch_daily_cap=50
    )
    customer = make_customer(workspace)
    sent_invitation(survey, customer, answered=True, branch=org["branch"])
    sent_invitation(survey, customer, answered=False, branch=org["branch"])
    sent_invitation(survey, customer, answered=False, delivery_channel="sms")
    Decision.objects.create(
        workspace=workspace,
        survey=survey,
        customer=customer,
        outcome="skipped",
        reason="quiet_period",
    )
    as_role(Role.CX_MANAGER)
    response = client.get(f"/surveys/{survey.code}/")
    assert response.status_code == 200
    html = response.content.decode()
    text = text_of(response)
    assert "no survey for 21 days after any invitation" in text
    assert "after 2 days, to those who have not answered" in text
    assert "Store visit (store-visit)" in text
    assert f'<img class="qr" src="/s/p/{survey.public_code}/qr.svg"' in html
    assert f"/s/p/{survey.public_code}" in text
    for lang in ("en", "ru", "ro"):
        assert f'href="/s/preview/after-visit?lang={lang}"' in html
    # The funnel: overall table, by channel, by branch, and a chart with a text alternative.
    overall = re.search(r'id="funnel-overall".*?</table>', html, re.S)
    assert overall is not None
    assert "3 · 100%" in overall.group(0) and "1 · 33%" in overall.group(0)
    by_branch = re.search(r'id="funnel-branch".*?</table>', html, re.S)
    assert by_branch is not None
    assert "Chișinău Centru" in by_branch.group(0) and "No branch" in by_branch.group(0)
    by_channel = re.search(r'id="funnel-channel".*?</table>', html, re.S)
    assert by_channel is not None and "SMS" in by_channel.group(0)
    figure = re.search(r'<figure class="chart" role="img" aria-label="([^"]*)">\s*<svg', html)
    assert figure is not None
    assert "Sent: 3 · 100%" in figure.group(1) and "Answered: 1 · 33%" in figure.group(1)
    # Why customers were not surveyed: the reason, in words, in a table and a chart.
    reasons = re.search(r'id="reasons".*?</table>', html, re.S)
    assert reasons is not None and "Quiet period" in reasons.group(0)
    assert 'aria-label="Why customers were not surveyed: Quiet period: 1"' in html


def test_the_funnel_period_can_be_chosen(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any]
) -> None:
    survey = make_survey(workspace)
    customer = make_customer(workspace)
    sent_invitation(survey, customer, answered=True, sent_at=clock.now() - dt.timedelta(days=60))
    as_role(Role.ANALYST)
    recent = client.get(f"/surveys/{survey.code}/")
    assert recent.context["overall"].sent == 0
    assert "Nothing sent in this period." in text_of(recent)
    longer = client.get(f"/surveys/{survey.code}/?days=90")
    assert longer.context["overall"].sent == 1
    assert client.get(f"/surveys/{survey.code}/?days=13").context["days"] == 30


# --- send a test to me ---------------------------------------------------------------------


def test_send_a_test_to_me_delivers_one_email_to_the_user(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any], settings: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    survey = make_survey(workspace)
    user = as_role(Role.CX_MANAGER)
    response = client.post(f"/surveys/{survey.code}/test", {"language": "ro"}, follow=True)
    assert response.status_code == 200
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [user.email]
    assert "Cum a fost vizita" in message.subject  # the Romanian subject
    assert f"Test sent to {user.email}." in text_of(response)
    invitation = Invitation.objects.get(survey=survey)
    assert invitation.is_test and invitation.status == InvitationStatus.SENT
    assert invitation.customer is None and invitation.language == "ro"
    assert AuditLog.objects.filter(action="survey.test_send", actor=user).count() == 1
    # A test is never counted in the funnel.
    assert client.get(f"/surveys/{survey.code}/").context["overall"].sent == 0


def test_a_switched_off_draft_can_still_be_tested(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any], settings: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    survey = make_survey(workspace)
    survey.is_active = False
    survey.save()
    as_role(Role.CX_MANAGER)
    client.post(f"/surveys/{survey.code}/test", {"language": "en"}, follow=True)
    assert len(mail.outbox) == 1
    assert Invitation.objects.get(survey=survey).status == InvitationStatus.SENT


def test_send_a_test_without_an_email_address_says_so(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any], settings: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    survey = make_survey(workspace)
    user = as_role(Role.ADMIN)
    user.email = ""
    user.save()
    response = client.post(f"/surveys/{survey.code}/test", follow=True)
    assert "Your account has no e-mail address" in text_of(response)
    assert mail.outbox == []
    assert not Invitation.objects.exists()


# --- relationship waves --------------------------------------------------------------------


def test_a_wave_is_planned_then_created(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any]
) -> None:
    survey = make_survey(workspace, "nps-2026", kind=SurveyKind.RELATIONSHIP)
    for n in range(40):
        make_customer(workspace, f"C{n:02}", segment="retail" if n < 30 else "business")
    make_customer(workspace, "NOPE", consent={"email": False, "sms": False})
    user = as_role(Role.CX_MANAGER)
    page = client.get(f"/surveys/{survey.code}/waves/new")
    assert page.status_code == 200 and page.context["plan"] is None

    params = {"margin": "5", "confidence": "0.95", "response_rate": "20", "strata": "segment"}
    planned = client.get(f"/surveys/{survey.code}/waves/new", params)
    plan = planned.context["plan"]
    assert plan.population == 40
    # 40 customers cannot give the ~385 answers ±5 points needs: everyone is invited.
    assert plan.sample_size == 40
    assert plan.allocation == {
        "business": {"population": 10, "sample": 10},
        "retail": {"population": 30, "sample": 30},
    }
    html = planned.content.decode()
    assert 'id="plan-population">40<' in html
    assert "No consent" in text_of(planned)  # who was left out, and why
    assert not Wave.objects.exists()

    response = client.post(f"/surveys/{survey.code}/waves/new", params)
    assert response.status_code == 302
    wave = Wave.objects.get(survey=survey)
    assert wave.margin == 5 and wave.confidence == 0.95 and wave.response_rate == 0.2
    assert wave.strata == "segment" and wave.created_by == user
    assert Invitation.objects.filter(wave=wave, status=InvitationStatus.SCHEDULED).count() == 40
    assert AuditLog.objects.filter(action="survey.wave").exists()
    detail = client.get(f"/surveys/{survey.code}/")
    waves = re.search(r'id="waves".*?</table>', detail.content.decode(), re.S)
    assert waves is not None and "segment" in waves.group(0) and "±5" in waves.group(0)


def test_a_wave_form_with_bad_values_plans_nothing(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any]
) -> None:
    survey = make_survey(workspace, "nps-2026", kind=SurveyKind.RELATIONSHIP)
    as_role(Role.CX_MANAGER)
    bad = {"margin": "0", "confidence": "0.5", "response_rate": "20", "strata": "segment"}
    response = client.get(f"/surveys/{survey.code}/waves/new", bad)
    assert response.context["plan"] is None
    assert set(response.context["form"].errors) == {"margin", "confidence"}
    assert client.post(f"/surveys/{survey.code}/waves/new", bad).status_code == 200
    assert not Wave.objects.exists()


def test_a_transactional_survey_has_no_waves(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any]
) -> None:
    survey = make_survey(workspace)
    as_role(Role.CX_MANAGER)
    params = {"margin": "5", "confidence": "0.95", "response_rate": "20", "strata": ""}
    response = client.post(f"/surveys/{survey.code}/waves/new", params, follow=True)
    assert "Only a relationship survey is sent in waves." in text_of(response)
    assert not Wave.objects.exists()


# --- why wasn't this customer surveyed? ----------------------------------------------------


def test_why_lists_a_quiet_period_skip(
    client: Client,
    workspace: Workspace,
    other_workspace: Workspace,
    as_role: Callable[[str], Any],
) -> None:
    org = make_org(workspace)
    survey = make_survey(workspace, quiet_period_days=30)
    customer = make_customer(workspace, "C-77", email="ana@example.com", phone="+37369000777")
    make_interaction(workspace, customer, "I1", touchpoint=org["touchpoint"])
    assert trigger.evaluate_new(workspace) == 1
    make_interaction(workspace, customer, "I2", touchpoint=org["touchpoint"])
    assert trigger.evaluate_new(workspace) == 1
    skipped = Decision.objects.get(interaction__external_id="I2")
    assert skipped.reason == "quiet_period"
    make_customer(other_workspace, "C-99")

    as_role(Role.ANALYST)
    response = client.get("/surveys/why", {"customer": "C-77"})
    assert response.status_code == 200
    html = response.content.decode()
    rows = re.findall(r'<tr data-reason="([^"]+)">(.*?)</tr>', html, re.S)
    # Newest first: the skip, then the scheduled invitation.
    assert [reason for reason, _row in rows] == ["quiet_period", "matched"]
    skip_row = rows[0][1]
    assert survey.name in skip_row
    assert "Quiet period" in skip_row
    assert "Skipped" in skip_row
    assert "crm/I2" in skip_row and "visit" in skip_row
    assert "quiet period 30 days" in skip_row
    # No contact details.
    assert "ana@example.com" not in html and "+37369000777" not in html
    # Someone else's customer, or nobody: not found.
    theirs = client.get("/surveys/why", {"customer": "C-99"})
    assert theirs.status_code == 404
    assert "No customer “C-99” was found in this workspace." in text_of(theirs)
    assert client.get("/surveys/why").status_code == 200


def test_why_shows_how_a_customer_can_be_reached_without_the_addresses(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any]
) -> None:
    from cxloop.surveys.suppression import unsubscribe

    customer = make_customer(workspace, "C-5", email="bob@example.com", phone="")
    unsubscribe(customer, via="cli", source="test")
    as_role(Role.CX_MANAGER)
    response = client.get("/surveys/why", {"customer": "C-5"})
    assert response.context["unsubscribed"] is True
    reach = response.context["reach"]
    assert [(r["on_file"], r["consent"]) for r in reach] == [(True, False), (False, False)]
    assert "bob@example.com" not in response.content.decode()
    assert "unsubscribed from all surveys" in text_of(response)


# --- accounts at risk ----------------------------------------------------------------------


def test_the_at_risk_page_lists_open_flags(
    client: Client,
    workspace: Workspace,
    other_workspace: Workspace,
    as_role: Callable[[str], Any],
) -> None:
    acme = Account.objects.create(workspace=workspace, external_id="A1", name="Acme Parts SRL")
    calm = Account.objects.create(workspace=workspace, external_id="A2", name="Calm SRL")
    theirs = Account.objects.create(workspace=other_workspace, external_id="G1", name="Globex")
    for n in range(3):
        make_customer(workspace, f"A1-{n}", account=acme, email=f"p{n}@acme.example")
    AtRiskAccount.objects.create(workspace=workspace, account=acme, unanswered=4)
    AtRiskAccount.objects.create(
        workspace=workspace, account=calm, unanswered=3, cleared_at=clock.now()
    )
    AtRiskAccount.objects.create(workspace=other_workspace, account=theirs, unanswered=9)
    as_role(Role.ANALYST)
    response = client.get("/surveys/at-risk")
    html = response.content.decode()
    rows = re.findall(r'<tr data-account="([^"]+)">(.*?)</tr>', html, re.S)
    assert [account for account, _row in rows] == ["A1"]
    row = rows[0][1]
    assert "Acme Parts SRL" in row
    assert re.search(r'class="num unanswered">4<', row)
    assert re.findall(r'href="/surveys/why\?customer=([^"]+)"', row) == ["A1-0", "A1-1", "A1-2"]
    assert "in all" not in row
    assert "acme.example" not in html
    assert "Globex" not in html and "Calm SRL" not in html


def test_interactions_do_not_leak_between_why_pages(
    client: Client, workspace: Workspace, as_role: Callable[[str], Any]
) -> None:
    """Decisions are read by customer: another customer's skip does not show."""
    org = make_org(workspace)
    make_survey(workspace)
    first = make_customer(workspace, "C1")
    second = make_customer(workspace, "C2")
    make_interaction(workspace, first, "I1", touchpoint=org["touchpoint"])
    make_interaction(workspace, second, "I2", touchpoint=org["touchpoint"])
    trigger.evaluate_new(workspace)
    assert Interaction.objects.count() == 2
    as_role(Role.ANALYST)
    html = client.get("/surveys/why", {"customer": "C2"}).content.decode()
    assert "crm/I2" in html and "crm/I1" not in html


def test_the_guides_example_definition_is_valid_and_uses_every_feature() -> None:
    """docs/surveys.md shows a definition to copy: it must save as it is."""
    from pathlib import Path

    from cxloop.surveys.definition import parse_definition

    guide = Path(__file__).resolve().parents[3] / "docs" / "surveys.md"
    block = re.search(r"```json\n(.*?)\n```", guide.read_text(encoding="utf-8"), re.S)
    assert block is not None
    definition = parse_definition(json.loads(block.group(1)))
    types = {q.type for q in definition.questions}
    assert types == {"nps", "single", "text", "contact", "competitors"}
    assert definition.review is not None and definition.branding.logo_url
    assert any(q.show_if_score_at_least for q in definition.questions)
    assert any(q.show_if_score_at_most for q in definition.questions)


def test_a_response_page_shows_answers_in_words_and_the_phone_only_to_whom_may_see_it(
    client: Client, workspace: Workspace, other_workspace: Workspace, make_user: Any
) -> None:
    from cxloop.surveys.models import Response

    survey = make_survey(workspace)
    customer = make_customer(workspace, "CRM-9")
    response = Response.objects.create(
        workspace=workspace, survey=survey, customer=customer, external_id="R1", score=3,
        comment="Coadă mare", answers={"reasons": ["waiting"], "contact": {"may_contact": True,
        "phone": "+37369000111"}}, may_contact=True, contact_phone="+37369000111",
        answered_at=clock.now(), source="web",
    )  # fmt: skip
    client.force_login(make_user(workspace, Role.ANALYST))
    page = client.get(f"/surveys/responses/{response.pk}")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Coadă mare" in html and "Waiting time" in html and "CRM-9" in html
    assert "+37369000111" not in html  # an analyst may not see contact details
    client.force_login(make_user(workspace, Role.CX_MANAGER))
    assert "+37369000111" in client.get(f"/surveys/responses/{response.pk}").content.decode()
    client.force_login(make_user(other_workspace, Role.ADMIN, username="outsider"))
    assert client.get(f"/surveys/responses/{response.pk}").status_code == 404
