"""Cases and problems as the API answers them and webhooks carry them.

Without ``contacts`` (webhooks, analysts) a case carries no phone number or customer contact;
the customer is named by its ``external_id`` only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cxloop.core.api import iso

from .models import Case, CaseEvent, EventKind, Problem


def _iso(value: dt.datetime | None) -> str | None:
    return iso(value) if value is not None else None


def _code(obj: Any) -> str | None:
    return obj.code if obj is not None else None


def case_data(case: Case, *, contacts: bool = False) -> dict[str, Any]:
    response = case.response
    data: dict[str, Any] = {
        "id": case.pk,
        "status": case.status,
        "source": case.source,
        "response": response.external_id if response is not None else None,
        "survey": case.survey.code if case.survey is not None else None,
        "customer": case.customer.external_id if case.customer is not None else None,
        "account": case.at_risk.account.external_id if case.at_risk is not None else None,
        "score": response.score if response is not None else None,
        "comment": response.comment if response is not None else "",
        "matched": list(case.matched),
        "priority": case.priority,
        "assignee": _code(case.assignee),
        "queue": "cx" if case.assignee_id is None else None,
        "escalation_level": case.escalation_level,
        "opened_at": iso(case.opened_at),
        "due_at": iso(case.due_at),
        "closed_at": _iso(case.closed_at),
        "breached": case.breached,
        "branch": _code(case.branch),
        "employee": _code(case.employee),
        "product": _code(case.product),
        "channel": _code(case.channel),
        "touchpoint": _code(case.touchpoint),
        "callback": {
            "apologised": case.apologised,
            "solved": case.solved or None,
            "reasons": sorted(r.code for r in case.reasons.all()),
            "expected": case.expected,
            "notes": case.notes,
        },
        "attempts": [
            {"at": iso(e.at), "result": e.result}
            for e in case.events.all()
            if e.kind == EventKind.ATTEMPT
        ],
        "problem": case.problem_id,
        "updated_at": iso(case.updated_at),
    }
    if contacts:
        data["contact"] = {
            "may_contact": response.may_contact if response is not None else None,
            "phone": (response.contact_phone if response is not None else "")
            or (case.customer.phone if case.customer is not None else ""),
        }
    return data


def event_data(event: CaseEvent) -> dict[str, Any]:
    return {
        "at": iso(event.at),
        "kind": event.kind,
        "via": event.via,
        "from_assignee": _code(event.from_assignee),
        "to_assignee": _code(event.to_assignee),
        "result": event.result or None,
        "note": event.note,
    }


def problem_data(problem: Problem) -> dict[str, Any]:
    return {
        "id": problem.pk,
        "title": problem.title,
        "description": problem.description,
        "function": problem.function,
        "owner": _code(problem.owner),
        "deadline": problem.deadline.isoformat() if problem.deadline else None,
        "authority": problem.authority,
        "resources": problem.resources,
        "status": problem.status,
        "reasons": sorted(r.code for r in problem.reasons.all()),
        "branches": sorted(b.code for b in problem.branches.all()),
        "cases": problem.cases.count(),
        "fixed_on": problem.fixed_on.isoformat() if problem.fixed_on else None,
        "effect": problem.effect or None,
        "created_at": iso(problem.created_at),
        "updated_at": iso(problem.updated_at),
    }
