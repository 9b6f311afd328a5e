"""E-mails to the people who must act: a new case, a deadline coming, an escalation.

Sent by the heartbeat, never inside the respondent's request. A new case is claimed by a
conditional UPDATE of ``notified_at``, so two heartbeats never send the same e-mail; a failed
send is tried again at the next heartbeat. Cases in the CX team's queue go to the workspace's
CX managers. The e-mail names the case, score, survey, branch and deadline, and links to the
case page: the customer's contact details stay in cxloop.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from collections.abc import Sequence

from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from cxloop.accounts.models import Membership, Role

from .models import OPEN_STATUSES, Case

log = logging.getLogger(__name__)


def recipients(case: Case) -> list[str]:
    assignee = case.assignee
    if assignee is not None:
        address = assignee.email or (assignee.user.email if assignee.user else "")
        if address:
            return [address]
    # The queue, or an assignee without an address: the CX managers act.
    return sorted(
        {
            m.user.email
            for m in Membership.objects.filter(
                workspace_id=case.workspace_id, role=Role.CX_MANAGER
            ).select_related("user")
            if m.user.email
        }
    )


def _message(case: Case, kind: str) -> tuple[str, str]:
    local_due = timezone.localtime(case.due_at, timezone.get_current_timezone())
    where = case.branch.name if case.branch else _("no branch")
    score = case.response.score if case.response is not None else None
    survey = case.survey.name if case.survey is not None else _("no survey")
    subjects = {
        "new": _("New case %(id)s: call the customer back by %(due)s"),
        "warn": _("Case %(id)s is due at %(due)s"),
        "escalated": _("Case %(id)s was escalated to you: its deadline passed"),
    }
    values = {"id": case.pk, "due": local_due.strftime("%Y-%m-%d %H:%M")}
    subject = subjects[kind] % values
    lines = [
        subject,
        "",
        _("Survey: %(survey)s") % {"survey": survey},
        _("Score: %(score)s") % {"score": "—" if score is None else score},
        _("Branch: %(branch)s") % {"branch": where},
        _("Why: %(why)s") % {"why": "; ".join(case.matched)},
        "",
        _("Open the case: %(url)s") % {"url": f"{settings.SITE_URL}/cases/{case.pk}"},
    ]
    return subject, "\n".join(lines)


def send(case: Case, kind: str) -> bool:
    to = recipients(case)
    if not to:
        return True  # nobody to tell; the case is in the inbox and the queue
    import zoneinfo

    from cxloop.accounts.models import Workspace

    workspace = Workspace.objects.get(pk=case.workspace_id)
    with (
        translation.override(workspace.default_language),
        timezone.override(zoneinfo.ZoneInfo(workspace.time_zone)),
    ):
        subject, body = _message(case, kind)
    try:
        EmailMessage(subject, body, to=to).send()
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("case %s: %s e-mail not sent (%s)", case.pk, kind, type(exc).__name__)
        return False
    return True


def _load(ids: Sequence[int]) -> list[Case]:
    return list(
        Case.objects.filter(pk__in=ids).select_related(
            "assignee__user", "branch", "survey", "response"
        )
    )


def send_due(now: dt.datetime, *, warned: Sequence[int] = (), escalated: Sequence[int] = ()) -> int:
    """Send the e-mails the heartbeat owes; returns how many were sent."""
    sent = 0
    for case in _load(escalated):
        sent += send(case, "escalated")
    fresh = list(
        Case.objects.filter(status__in=OPEN_STATUSES, notified_at__isnull=True)
        .exclude(pk__in=escalated)
        .values_list("pk", flat=True)[:500]
    )
    claimed = [
        pk
        for pk in fresh
        if Case.objects.filter(pk=pk, notified_at__isnull=True).update(notified_at=now)
    ]
    for case in _load(claimed):
        if send(case, "new"):
            sent += 1
        else:
            Case.objects.filter(pk=case.pk).update(notified_at=None)
    for case in _load([pk for pk in warned if pk not in escalated]):
        sent += send(case, "warn")
    return sent
