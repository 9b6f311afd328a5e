"""Delighted's Autopilot API: ``autopilot/{email|sms}`` and its ``memberships``.

Autopilot surveys the people in it again and again, ``frequency`` seconds apart. Here the
configuration is set in the admin (``AutopilotConfig``: which survey, how often, on or off);
the API reads it and manages who is in it. ``autopilot.schedule_due`` does the surveying,
through the same protections as every other survey (consent, unsubscribes, quiet period).
"""

from __future__ import annotations

import json
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, JsonResponse

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.core.validation import normalise_email, normalise_phone
from cxloop.customers.models import Customer
from cxloop.surveys.models import (
    Decision,
    DecisionOutcome,
    Invitation,
    InvitationStatus,
)

from .autopilot import VIA, WITHDRAWN
from .http import ApiError, endpoint, find_person, integer, json_list, person, require_scope, unix
from .importing import find_customers, person_external_id
from .models import AutopilotConfig, AutopilotMembership

DAY = 86400
DEFAULT_FREQUENCY_DAYS = 90
# As POST people: properties are copied onto every Autopilot survey's response.
MAX_PROPERTIES = 100
MAX_BYTES = 16_384


@endpoint("GET")
def config(request: HttpRequest, params: dict[str, Any], platform: str) -> HttpResponse:
    """The platform's configuration; without one, Autopilot is off (nothing is sent)."""
    require_scope(request, "read")
    found = AutopilotConfig.objects.filter(
        workspace=request.workspace,  # type: ignore[attr-defined]
        platform=platform,
    ).first()
    if found is None:
        return JsonResponse(
            {"platform_id": platform, "active": False,
             "frequency": DEFAULT_FREQUENCY_DAYS * DAY, "created_at": None, "updated_at": None}
        )  # fmt: skip
    return JsonResponse(
        {
            "platform_id": platform,
            "active": found.active,
            "frequency": found.frequency_days * DAY,
            "created_at": unix(found.created_at),
            "updated_at": unix(found.updated_at),
        }
    )


@endpoint("GET", "POST", "DELETE")
def memberships(request: HttpRequest, params: dict[str, Any], platform: str) -> HttpResponse:
    if request.method == "GET":
        require_scope(request, "read")
        return _list(request, params, platform)
    require_scope(request, "ingest")
    if request.method == "POST":
        return _add(request, params, platform)
    return _remove(request, params, platform)


def _with_last_sent(qs: QuerySet[AutopilotMembership]) -> QuerySet[AutopilotMembership]:
    last = (
        Invitation.objects.filter(customer=OuterRef("customer"), sent_at__isnull=False)
        .values("customer")
        .annotate(last=Max("sent_at"))
        .values("last")
    )
    return qs.select_related("customer").annotate(last_sent_at=Subquery(last))


def membership_json(membership: AutopilotMembership) -> dict[str, Any]:
    """Delighted's membership object, with the flat fields cxloop documented first."""
    who = person(membership.customer)
    who["last_sent_at"] = unix(getattr(membership, "last_sent_at", None))
    scheduled = unix(membership.next_survey_at)
    return {
        "created_at": unix(membership.created_at),
        "updated_at": unix(membership.created_at),
        "person": who,
        "properties": membership.properties,
        "next_survey_scheduled_at": scheduled,
        "next_survey_request": None
        if scheduled is None
        else {
            "id": str(membership.pk),
            "created_at": unix(membership.created_at),
            "survey_scheduled_at": scheduled,
            "properties": membership.properties,
        },
    }


def _list(request: HttpRequest, params: dict[str, Any], platform: str) -> HttpResponse:
    """Oldest first, ``per_page`` at a time; the ``Link`` header names the next page by the
    last id seen, so members added meanwhile neither shift nor repeat a page."""
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    per_page = integer(params, "per_page", 20, 1, 100)
    after = integer(params, "since_id", 0, 0, 2**63 - 1)
    qs = AutopilotMembership.objects.filter(workspace=workspace, platform=platform, pk__gt=after)
    who = _person_filter(workspace, params)
    if who is not None:
        qs = qs.filter(customer=who)
    page = list(_with_last_sent(qs).order_by("pk")[: per_page + 1])
    more = len(page) > per_page
    page = page[:per_page]
    next_params = None
    if more:
        next_params = {"per_page": per_page, "since_id": page[-1].pk}
        next_params.update({k: params[k] for k in PERSON_KEYS if params.get(k)})
    return json_list([membership_json(m) for m in page], request, next_params)


PERSON_KEYS = ("person_id", "person_email", "person_phone_number")


def _person_filter(workspace: Workspace, params: dict[str, Any]) -> Customer | None:
    """The person a list is restricted to (at most one of the three keys), else None."""
    given = [k for k in PERSON_KEYS if params.get(k)]
    if not given:
        return None
    if len(given) > 1:
        raise ApiError(422, "Give one of person_id, person_email or person_phone_number.")
    return _find(workspace, given[0], str(params[given[0]]))


def _find(workspace: Workspace, key: str, value: str) -> Customer:
    value = value.strip()
    if key == "person_id":
        if not value.isdigit():
            raise ApiError(404, "The person was not found.")
        return find_person(workspace, value)
    if key == "person_email":
        return find_person(workspace, f"email:{value}")
    return find_person(workspace, f"phone_number:{_phone(workspace, value)}")


def _phone(workspace: Workspace, value: str) -> str:
    try:
        return normalise_phone(value, workspace.phone_region or None)
    except ValueError:
        raise _invalid(
            "person_phone_number", "is not a valid phone number (write it as +E.164)."
        ) from None


def _add(request: HttpRequest, params: dict[str, Any], platform: str) -> HttpResponse:
    """Add a person (creating the customer if need be) or replace their properties.

    A new member is due at once; a member added again keeps their schedule, as in Delighted.
    """
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    properties = params.get("properties") or {}
    if not isinstance(properties, dict):
        raise _invalid("properties", "properties must be an object of names and values.")
    if len(properties) > MAX_PROPERTIES or len(json.dumps(properties, default=str)) > MAX_BYTES:
        raise _invalid(
            "properties", f"at most {MAX_PROPERTIES} properties, {MAX_BYTES} bytes in all."
        )
    person_id = str(params.get("person_id") or "").strip() or None
    email = str(params.get("person_email") or "").strip() or None
    phone = str(params.get("person_phone_number") or "").strip() or None
    # Refused before anything is written: a wrong call leaves no customer behind.
    if platform == "email" and not (email or person_id):
        raise _invalid("person_email", "An e-mail Autopilot member needs person_email.")
    if platform == "sms" and not (phone or person_id):
        raise _invalid("person_phone_number", "An SMS Autopilot member needs person_phone_number.")
    customer = upsert_person(
        workspace, person_id=person_id, email=email, phone=phone, name=params.get("person_name")
    )
    if platform == "email" and not customer.email:
        raise _invalid("person_email", "An e-mail Autopilot member needs person_email.")
    if platform == "sms" and not customer.phone:
        raise _invalid("person_phone_number", "An SMS Autopilot member needs person_phone_number.")
    now = clock.now()
    try:
        with transaction.atomic():
            membership, created = AutopilotMembership.objects.get_or_create(
                workspace=workspace,
                platform=platform,
                customer=customer,
                defaults={"properties": properties, "next_survey_at": now, "created_at": now},
            )
    except IntegrityError:  # added by a second request at the same moment
        membership, created = (
            AutopilotMembership.objects.get(
                workspace=workspace, platform=platform, customer=customer
            ),
            False,
        )
    if not created and membership.properties != properties:
        membership.properties = properties
        membership.save(update_fields=["properties"])
    membership = _with_last_sent(AutopilotMembership.objects.filter(pk=membership.pk)).get()
    return JsonResponse(membership_json(membership))


def _invalid(field: str, message: str) -> ApiError:
    """Delighted's 422, as the other endpoints write it: the fields at fault, no values."""
    return ApiError(
        422, "Validation failed.", [{"field": field, "code": "invalid", "message": message}]
    )


def upsert_person(
    workspace: Workspace,
    *,
    person_id: str | None,
    email: str | None,
    phone: str | None,
    name: Any,
) -> Customer:
    """The customer a membership call names: by id, else by e-mail (any case), else by phone;
    a new one (``importing.person_external_id``) when none matches.

    As ``POST people`` does: a given name replaces the stored one; a missing e-mail or phone
    is filled in, an existing one never overwritten (another system may key on it).
    """
    if email:
        try:
            email = normalise_email(email)
        except ValueError:
            raise _invalid("person_email", "is not a valid e-mail address.") from None
    if phone:
        phone = _phone(workspace, phone)
    if name is not None and not isinstance(name, str):
        raise _invalid("person_name", "person_name must be a string.")
    name = (name or "").strip()
    if len(name) > 200:
        raise _invalid("person_name", "person_name must be at most 200 characters.")
    found: Customer | None = None
    if person_id:
        if not person_id.isdigit():
            raise ApiError(404, "The person was not found.")
        found = find_person(workspace, person_id)
    else:
        by_email, by_phone = find_customers(
            workspace, {email.lower()} if email else set(), {phone} if phone else set()
        )
        found = (by_email.get(email.lower()) if email else None) or (
            by_phone.get(phone) if phone else None
        )
    if found is None:
        if not (email or phone):
            raise ApiError(
                422,
                "Validation failed.",
                [{"field": "person_email", "code": "missing",
                  "message": "person_email or person_phone_number is required."}],
            )  # fmt: skip
        # get_or_create: two requests adding the same new person at once make one customer.
        found, _ = Customer.objects.get_or_create(
            workspace=workspace,
            external_id=person_external_id(email, phone),
            defaults={"email": email or "", "phone": phone or "", "name": name},
        )
    changed: list[str] = []
    for attr, value, replace in (
        ("name", name, True),
        ("email", email, False),
        ("phone", phone, False),
    ):
        if value and getattr(found, attr) != value and (replace or not getattr(found, attr)):
            setattr(found, attr, value)
            changed.append(attr)
    if changed:
        found.save(update_fields=[*changed, "updated_at"])
    found.workspace = workspace
    return found


def _remove(request: HttpRequest, params: dict[str, Any], platform: str) -> HttpResponse:
    """Take a person out of Autopilot and withdraw the Autopilot survey not yet sent to them.

    Exactly one of person_id, person_email, person_phone_number names them. Their
    responses, and surveys already sent, stay.
    """
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    given = [k for k in PERSON_KEYS if params.get(k)]
    if len(given) != 1:
        raise ApiError(422, "Give exactly one of person_id, person_email or person_phone_number.")
    customer = _find(workspace, given[0], str(params[given[0]]))
    membership = AutopilotMembership.objects.filter(
        workspace=workspace, platform=platform, customer=customer
    ).first()
    if membership is None:
        raise ApiError(404, "The person is not in Autopilot.")
    now = clock.now()
    with transaction.atomic():
        membership.delete()
        withdraw_scheduled(customer, platform, now)
    return JsonResponse({"person": person(customer)})


def withdraw_scheduled(customer: Customer, platform: str, now: Any) -> int:
    """Cancel the customer's Autopilot invitations on ``platform`` still waiting to be sent.

    Only ``scheduled`` rows move (a conditional UPDATE), so one a worker has already claimed
    for sending is left to finish rather than raced.
    """
    ids = list(
        Invitation.objects.filter(
            workspace_id=customer.workspace_id,
            customer=customer,
            delivery_channel=platform,
            status=InvitationStatus.SCHEDULED,
            decisions__outcome=DecisionOutcome.SCHEDULED,
            decisions__detail__endswith=f"requested by {VIA}",
        ).values_list("pk", flat=True)
    )
    if not ids:
        return 0
    Invitation.objects.filter(pk__in=ids, status=InvitationStatus.SCHEDULED).update(
        status=InvitationStatus.CANCELLED, status_reason=WITHDRAWN
    )
    cancelled = list(
        Invitation.objects.filter(
            pk__in=ids, status=InvitationStatus.CANCELLED, status_reason=WITHDRAWN
        )
    )
    Decision.objects.bulk_create(
        [
            Decision(
                workspace_id=inv.workspace_id, survey_id=inv.survey_id,
                customer_id=inv.customer_id, invitation=inv,
                outcome=DecisionOutcome.CANCELLED, reason=WITHDRAWN,
                detail="removed from Autopilot", created_at=now,
            )
            for inv in cancelled
        ]
    )  # fmt: skip
    return len(cancelled)
