"""Delivery channels: e-mail (Django's mail framework, anymail for providers) and SMS.

``deliver(channel, invitations, reminder=...)`` sends a batch and returns one ``Outcome`` per
invitation, in order. It never raises for a single message: a refusal by the server or
provider is an outcome, *transient* (try again later: timeouts, 4xx SMTP replies, HTTP 429
and 5xx) or *permanent* (the address is wrong or refused). ``error`` holds no personal data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..models import Invitation


@dataclass
class Outcome:
    invitation: Invitation
    ok: bool
    message_id: str = ""
    transient: bool = False
    error: str = ""


def deliver(channel: str, invitations: Sequence[Invitation], *, reminder: bool) -> list[Outcome]:
    if channel == "email":
        from .email import deliver_email

        return deliver_email(invitations, reminder=reminder)
    if channel == "sms":
        from .sms import deliver_sms

        return deliver_sms(invitations, reminder=reminder)
    return [Outcome(inv, ok=False, error=f"no such channel: {channel}") for inv in invitations]
