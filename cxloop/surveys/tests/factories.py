"""Builders for survey tests: an organisation slice, a customer, a survey, an interaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.customers.models import Customer
from cxloop.interactions.models import Interaction
from cxloop.organisation.models import Branch, Channel, Journey, Region, Stage, Touchpoint
from cxloop.surveys.definition import default_definition
from cxloop.surveys.models import Survey, SurveyKind
from cxloop.surveys.services import save_survey


def make_org(workspace: Workspace, *, branch_tz: str = "") -> dict[str, Any]:
    region = Region.objects.create(workspace=workspace, code="R1", name="Centre")
    branch = Branch.objects.create(
        workspace=workspace, code="B01", name="Chișinău Centru", region=region, time_zone=branch_tz
    )
    channel = Channel.objects.create(workspace=workspace, code="store", name="Store")
    journey = Journey.objects.create(workspace=workspace, code="J1", name="Support")
    stage = Stage.objects.create(workspace=workspace, code="S1", name="Contact", journey=journey)
    touchpoint = Touchpoint.objects.create(
        workspace=workspace, code="store-visit", name="Store visit", stage=stage, channel=channel
    )
    return {"region": region, "branch": branch, "channel": channel, "touchpoint": touchpoint}


def make_customer(workspace: Workspace, external_id: str = "C1", **fields: Any) -> Customer:
    values: dict[str, Any] = {
        "email": f"{external_id.lower()}@example.com",
        "phone": "+37369123456",
        "language": "ro",
        "time_zone": "",
    }
    values.update(fields)
    return Customer.objects.create(workspace=workspace, external_id=external_id, **values)


def make_survey(
    workspace: Workspace,
    code: str = "after-visit",
    *,
    kind: str = SurveyKind.TRANSACTIONAL,
    definition: dict[str, Any] | None = None,
    **rules: Any,
) -> Survey:
    merged: dict[str, Any] = {"touchpoints": ["store-visit"], "send_window": None}
    merged.update(rules)
    if kind == SurveyKind.RELATIONSHIP:
        merged.pop("touchpoints", None)
    survey = save_survey(
        workspace,
        code=code,
        name=code.replace("-", " ").title(),
        kind=kind,
        definition=definition or default_definition("Acme"),
        rules=merged,
        via="cli",
    )
    # Tests post interactions "now"; let the survey count them.
    Survey.objects.filter(pk=survey.pk).update(active_since=clock.now() - dt.timedelta(days=3650))
    survey.refresh_from_db()
    return survey


def make_interaction(
    workspace: Workspace,
    customer: Customer,
    external_id: str = "I1",
    *,
    occurred_at: dt.datetime | None = None,
    touchpoint: Touchpoint | None = None,
    branch: Branch | None = None,
    type: str = "visit",
) -> Interaction:
    return Interaction.objects.create(
        workspace=workspace,
        source="crm",
        external_id=external_id,
        customer=customer,
        type=type,
        occurred_at=occurred_at or clock.now(),
        touchpoint=touchpoint,
        branch=branch,
    )
