"""Recording answers: validation, merging, and answers a changed score no longer asks."""

from __future__ import annotations

import datetime as dt

import pytest

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.surveys.models import Invitation, InvitationStatus, Response
from cxloop.surveys.responses import AnswerError, record

from .factories import make_customer, make_survey


@pytest.fixture
def invitation(workspace: Workspace) -> Invitation:
    survey = make_survey(workspace)
    now = clock.now()
    return Invitation.objects.create(
        workspace=workspace, survey=survey, customer=make_customer(workspace),
        delivery_channel="email", language="ro", status=InvitationStatus.SENT,
        scheduled_for=now, expires_at=now + dt.timedelta(days=14),
    )  # fmt: skip


def test_answers_merge_and_the_invitation_is_marked_answered(invitation: Invitation) -> None:
    first = record(invitation, score=3, source="email")
    assert (first.score, first.source, first.language) == (3, "email", "ro")
    record(invitation, answers={"reasons": ["waiting", "staff"]}, comment=" Coada lungă ")
    response = Response.objects.get()
    assert response.pk == first.pk
    assert response.answers == {"reasons": ["waiting", "staff"]}
    assert response.comment == "Coada lungă"
    invitation.refresh_from_db()
    assert invitation.answered_at == first.answered_at
    assert invitation.clicked_at is not None


def test_a_changed_score_drops_the_call_back_answer(invitation: Invitation) -> None:
    record(
        invitation, score=2, answers={"contact": {"may_contact": True, "phone": "+373 69 123 456"}}
    )
    response = Response.objects.get()
    assert (response.may_contact, response.contact_phone) == (True, "+37369123456")
    record(invitation, score=10)
    response.refresh_from_db()
    assert "contact" not in response.answers
    assert (response.may_contact, response.contact_phone) == (None, "")


def test_bad_answers_are_refused_whole_and_nothing_is_kept(invitation: Invitation) -> None:
    with pytest.raises(AnswerError) as bad:
        record(
            invitation,
            score=11,
            answers={"reasons": ["teleport"], "nope": 1, "nps": 5, "contact": "maybe"},
        )
    assert set(bad.value.errors) == {
        "score", "answers.reasons", "answers.nope", "answers.nps", "answers.contact"
    }  # fmt: skip
    assert not Response.objects.exists()
    invitation.refresh_from_db()
    assert invitation.answered_at is None
