"""Dispatch: each invitation sent at most once, at a bounded rate, retried only when it helps."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.surveys import dispatch, rules
from cxloop.surveys.models import (
    Decision,
    Invitation,
    InvitationStatus,
    Reason,
    Suppression,
)
from cxloop.surveys.suppression import unsubscribe
from cxloop.testing import Mailbox

from .factories import make_customer, make_interaction, make_org, make_survey

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def locmem(settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def tick(at: dt.datetime) -> dict[str, int]:
    """One heartbeat at ``at`` whose sends happen at once, at the same moment."""
    return dispatch.tick(
        lambda ids, reminder: dispatch.send(ids, reminder=reminder, now=at), interval=2, now=at
    )


def scheduled(workspace: Workspace, n: int = 1, **rule_overrides: Any) -> list[Invitation]:
    org = make_org(workspace)
    make_survey(workspace, quiet_period_days=0, **rule_overrides)
    for i in range(n):
        customer = make_customer(workspace, f"C{i}")
        make_interaction(
            workspace, customer, f"I{i}", occurred_at=NOW, touchpoint=org["touchpoint"],
            branch=org["branch"],
        )  # fmt: skip
    rules.evaluate_new(workspace, now=NOW)
    return list(Invitation.objects.order_by("pk"))


@pytest.mark.usefixtures("locmem")
def test_a_task_delivered_twice_sends_once(workspace: Workspace) -> None:
    [invitation] = scheduled(workspace)
    first = dispatch.send([invitation.pk], now=NOW)
    second = dispatch.send([invitation.pk], now=NOW)
    assert first == {"sent": 1}
    assert second == {}
    assert len(mail.outbox) == 1
    invitation.refresh_from_db()
    assert invitation.status == InvitationStatus.SENT
    assert invitation.sent_at == NOW
    assert invitation.attempts == 1
    assert invitation.message_id
    assert list(Decision.objects.filter(invitation=invitation).values_list("outcome", flat=True)) == [
        "scheduled", "sent"
    ]  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_racing_workers_send_each_invitation_once(workspace: Workspace, settings: Any) -> None:
    from django.db import connection

    if connection.vendor == "sqlite":
        # The in-memory test database uses SQLite's shared cache, whose table locks ignore
        # busy_timeout; the real file database (WAL, IMMEDIATE) serialises writers. CI runs
        # this test on PostgreSQL, where workers really race.
        pytest.skip("SQLite's in-memory test database cannot host concurrent writers")
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    invitations = scheduled(workspace, 20)
    ids = [i.pk for i in invitations]
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            dispatch.send(ids, now=NOW)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            from django.db import connection

            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(mail.outbox) == 20
    assert sorted(m.to[0] for m in mail.outbox) == sorted(f"c{i}@example.com" for i in range(20))
    assert Invitation.objects.filter(status=InvitationStatus.SENT).count() == 20


@pytest.mark.usefixtures("locmem")
def test_tick_queues_due_invitations_once_and_requeues_lost_ones(workspace: Workspace) -> None:
    [invitation] = scheduled(workspace)
    queued: list[list[int]] = []

    def lose(ids: list[int], reminder: bool) -> None:
        queued.append(ids)  # the broker "loses" the task: nothing is sent

    dispatch.tick(lose, interval=2, now=NOW)
    dispatch.tick(lose, interval=2, now=NOW + dt.timedelta(seconds=2))
    assert queued == [[invitation.pk]]  # not queued again while the task may still run
    later = NOW + dispatch.REQUEUE_AFTER + dt.timedelta(seconds=1)
    tick(later)
    invitation.refresh_from_db()
    assert invitation.status == InvitationStatus.SENT
    assert len(mail.outbox) == 1


@pytest.mark.usefixtures("locmem")
def test_not_due_yet_is_not_sent(workspace: Workspace) -> None:
    scheduled(workspace, delay_minutes=30)
    tick(NOW + dt.timedelta(minutes=29))
    assert not mail.outbox
    tick(NOW + dt.timedelta(minutes=30))
    assert len(mail.outbox) == 1


@pytest.mark.usefixtures("locmem")
def test_rate_limit_bounds_each_tick(workspace: Workspace, settings: Any) -> None:
    settings.DELIVERY_RATES = {"email": 3, "sms": 1}
    scheduled(workspace, 10)
    tick(NOW)
    assert len(mail.outbox) == 6  # 3 per second x 2 s
    tick(NOW + dt.timedelta(seconds=2))
    assert len(mail.outbox) == 10


@pytest.mark.usefixtures("locmem")
def test_worker_dying_mid_send_is_not_sent_twice(workspace: Workspace) -> None:
    [invitation] = scheduled(workspace)
    # A worker claimed it and died before recording the result.
    Invitation.objects.filter(pk=invitation.pk).update(
        status=InvitationStatus.SENDING, claim="dead", claimed_at=NOW
    )
    tick(NOW + dt.timedelta(minutes=1))
    invitation.refresh_from_db()
    assert invitation.status == InvitationStatus.SENDING
    tick(NOW + dispatch.STUCK_AFTER + dt.timedelta(minutes=1))
    invitation.refresh_from_db()
    assert (invitation.status, invitation.status_reason) == ("failed", Reason.INTERRUPTED)
    assert not mail.outbox
    assert Decision.objects.filter(invitation=invitation, reason=Reason.INTERRUPTED).exists()


@pytest.mark.usefixtures("locmem")
def test_expired_before_sending_is_cancelled(workspace: Workspace) -> None:
    [invitation] = scheduled(workspace, expiry_days=1)
    dispatch.tick(lambda ids, r: None, interval=2, now=NOW + dt.timedelta(days=2))
    invitation.refresh_from_db()
    assert (invitation.status, invitation.status_reason) == ("cancelled", Reason.EXPIRED)
    assert not mail.outbox


@pytest.mark.usefixtures("locmem")
def test_unsubscribed_between_scheduling_and_sending_is_cancelled(workspace: Workspace) -> None:
    [invitation] = scheduled(workspace)
    assert invitation.customer is not None
    unsubscribe(invitation.customer, via="cli", source="test")
    assert dispatch.send([invitation.pk], now=NOW) == {"cancelled": 1}
    invitation.refresh_from_db()
    assert (invitation.status, invitation.status_reason) == ("cancelled", Reason.UNSUBSCRIBED)
    assert not mail.outbox


def test_transient_refusal_is_retried_with_backoff_and_permanent_one_falls_back(
    workspace: Workspace, smtp: Mailbox, capsys: Any, settings: Any
) -> None:
    settings.SMS_BACKEND = "console"
    invitations = scheduled(workspace, 3)
    # C2 has consented to SMS too, so a refused address can fall back to a text message.
    invitations[2].customer.consent = {"email": True, "sms": True}  # type: ignore[union-attr]
    invitations[2].customer.save()  # type: ignore[union-attr]
    smtp.refuse_rcpt = {
        "c0@example.com": "451 4.7.1 try again later",
        "c2@example.com": "550 5.1.1 no such user",
    }
    counts = dispatch.send([i.pk for i in invitations], now=NOW)
    assert counts == {"retry": 1, "sent": 1, "fallback": 1}
    assert [m["To"] for m in smtp.messages] == ["c1@example.com"]
    retry, sent, fallback = (Invitation.objects.get(pk=i.pk) for i in invitations)
    assert retry.status == InvitationStatus.SCHEDULED
    assert retry.scheduled_for == NOW + dt.timedelta(seconds=dispatch.BACKOFF[0])
    assert "451" in retry.last_error and "example.com" not in retry.last_error
    assert sent.status == InvitationStatus.SENT
    assert (fallback.status, fallback.delivery_channel) == ("scheduled", "sms")
    assert Suppression.objects.filter(address="c2@example.com", reason="invalid").exists()
    # The server recovers; the retry goes out when due, the fallback goes by SMS (console).
    smtp.refuse_rcpt = {}
    tick(NOW + dt.timedelta(seconds=dispatch.BACKOFF[0]))
    assert sorted(m["To"] for m in smtp.messages) == ["c0@example.com", "c1@example.com"]
    fallback.refresh_from_db()
    assert fallback.status == InvitationStatus.SENT
    assert fallback.token in capsys.readouterr().out


def test_transient_errors_give_up_after_the_last_attempt(
    workspace: Workspace, smtp: Mailbox
) -> None:
    [invitation] = scheduled(workspace)
    smtp.refuse_rcpt = {"c0@example.com": "421 4.3.2 busy"}
    at = NOW
    for _ in range(dispatch.MAX_ATTEMPTS):
        dispatch.send([invitation.pk], now=at)
        invitation.refresh_from_db()
        at = invitation.scheduled_for
    assert (invitation.status, invitation.status_reason) == ("failed", Reason.TRANSIENT)
    assert invitation.attempts == dispatch.MAX_ATTEMPTS
    assert not smtp.messages


@pytest.mark.usefixtures("locmem")
def test_one_reminder_only_without_an_answer(workspace: Workspace) -> None:
    invitations = scheduled(workspace, 2, reminder_after_days=3)
    tick(NOW)
    assert len(mail.outbox) == 2
    answered, silent = (Invitation.objects.get(pk=i.pk) for i in invitations)
    assert silent.reminder_due_at == NOW + dt.timedelta(days=3)
    Invitation.objects.filter(pk=answered.pk).update(answered_at=NOW + dt.timedelta(days=1))
    due = NOW + dt.timedelta(days=3)
    tick(due)
    tick(due + dt.timedelta(seconds=2))
    tick(due + dt.timedelta(days=1))
    assert len(mail.outbox) == 3
    assert mail.outbox[2].to == ["c1@example.com"]
    assert mail.outbox[2].extra_headers["Message-ID"] != mail.outbox[1].extra_headers["Message-ID"]
    silent.refresh_from_db()
    assert silent.reminder_sent_at == due
    # Kept so that provider events about the reminder find the invitation.
    assert silent.reminder_message_id == mail.outbox[2].extra_headers["Message-ID"]
    # A duplicated reminder task sends nothing more.
    assert dispatch.send([silent.pk], reminder=True, now=due) == {}


@pytest.mark.usefixtures("locmem")
def test_switched_off_survey_sends_nothing(workspace: Workspace) -> None:
    [invitation] = scheduled(workspace)
    invitation.survey.is_active = False
    invitation.survey.save()
    dispatch.send([invitation.pk], now=NOW)
    invitation.refresh_from_db()
    assert (invitation.status, invitation.status_reason) == ("cancelled", Reason.SURVEY_INACTIVE)
    assert not mail.outbox


@pytest.mark.usefixtures("locmem")
def test_dispatcher_command_runs_one_heartbeat(workspace: Workspace) -> None:
    org = make_org(workspace)
    make_survey(workspace)
    customer = make_customer(workspace)
    make_interaction(
        workspace, customer, "I1", occurred_at=clock.now(), touchpoint=org["touchpoint"]
    )
    call_command("dispatcher", "--once")
    assert len(mail.outbox) == 1
    assert Invitation.objects.get().status == InvitationStatus.SENT
