"""Delighted's people, survey requests, unsubscribes and bounces, served from cxloop's data.

A Delighted *person* is a cxloop ``Customer``; a *survey request* is an ``Invitation`` of the
workspace's compatibility survey (``http.compat_survey``), made through ``rules.schedule_for``
so cxloop's protections apply (consent, unsubscribes, bounces, the quiet period): a throttled
request answers ``survey_scheduled_at: null`` without an error, as Delighted did.

People created here get ``importing.person_external_id`` as their external id (the e-mail,
else ``tel:`` and the number) — the same key an import of Delighted's exports gives them, so
a second ``POST people`` or a re-run import finds the same customer. Nothing here
logs personal data: requests come in volume, and addresses do not belong in logs.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from typing import Any

from django.db import transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, JsonResponse

from cxloop.accounts.models import Workspace
from cxloop.accounts.services import audit
from cxloop.core import clock
from cxloop.core.validation import normalise_email, normalise_phone
from cxloop.customers.models import Customer
from cxloop.surveys import rules, suppression
from cxloop.surveys.models import (
    Decision,
    DecisionOutcome,
    DeliveryChannel,
    Invitation,
    InvitationStatus,
    Reason,
    Response,
    Suppression,
    SuppressionReason,
)

from . import http
from .http import ApiError, endpoint, placeholders_of
from .importing import person_external_id
from .models import SurveyRequest

# Longest ``delay`` accepted: a year (Delighted documented no limit; an invitation further
# out than that is a client bug, not a plan).
MAX_DELAY = 365 * 24 * 3600
# Person properties are copied onto every response; keep them a size a page can show.
MAX_PROPERTIES = 100
MAX_PROPERTIES_BYTES = 16_384
# Why an invitation was cancelled by ``DELETE …/survey_requests/pending``.
CANCELLED_BY_API = Reason.API_CANCELLED
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LOCALE_RE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")
FALSE_WORDS = {"false", "0", "no", "off", ""}


def _ok(status: int = 200) -> JsonResponse:
    return JsonResponse({"ok": True}, status=status)


def _invalid(field: str, message: str) -> ApiError:
    """Delighted's 422: ``errors`` lists the fields at fault, never echoing their values."""
    return ApiError(
        422,
        "Validation failed.",
        [{"field": field, "code": "invalid", "message": message}],
    )


def _text(params: dict[str, Any], name: str, limit: int) -> str:
    raw = params.get(name)
    if raw is None:
        return ""
    if not isinstance(raw, (str, int)) or isinstance(raw, bool):
        raise _invalid(name, f"{name} must be a string.")
    value = str(raw).strip()
    if len(value) > limit:
        raise _invalid(name, f"{name} must be at most {limit} characters.")
    return value


def _email(params: dict[str, Any], name: str = "email") -> str:
    """The address normalised (domain lower-cased); "" when not given."""
    raw = _text(params, name, 254)
    if not raw:
        return ""
    try:
        return normalise_email(raw)
    except ValueError:
        raise _invalid(name, "is not a valid e-mail address.") from None


def _phone(workspace: Workspace, params: dict[str, Any], name: str = "phone_number") -> str:
    """E.164; a number without a country code is read in the workspace's phone region."""
    raw = _text(params, name, 40)
    if not raw:
        return ""
    try:
        return normalise_phone(raw, workspace.phone_region or None)
    except ValueError:
        raise _invalid(name, "is not a valid phone number (write it as +E.164).") from None


def _flag(params: dict[str, Any], name: str, default: bool) -> bool:
    """Delighted's booleans arrive as JSON ``false``, or as ``"false"``/``"0"`` from forms."""
    raw = params.get(name)
    if raw is None:
        return default
    if isinstance(raw, str):
        return raw.strip().lower() not in FALSE_WORDS
    return bool(raw)


def _properties(params: dict[str, Any]) -> dict[str, Any]:
    raw = params.get("properties")
    if raw in (None, ""):
        return {}
    if not isinstance(raw, dict):
        raise _invalid("properties", "properties must be an object of names and values.")
    if len(raw) > MAX_PROPERTIES:
        raise _invalid("properties", f"at most {MAX_PROPERTIES} properties.")
    if len(json.dumps(raw, default=str)) > MAX_PROPERTIES_BYTES:
        raise _invalid("properties", f"properties must fit in {MAX_PROPERTIES_BYTES} bytes.")
    return {str(k): v for k, v in raw.items()}


def _find_or_create(
    workspace: Workspace, email: str, phone: str, name: str
) -> tuple[Customer, bool]:
    """By e-mail (any case), else by phone, else a new customer; ``(customer, created)``.

    A found person's name is replaced when one is given; a missing e-mail or phone is filled
    in, an existing one never overwritten (it may be what another system keys on).
    """
    customers = Customer.objects.filter(workspace=workspace).select_related("workspace")
    customer = None
    if email:
        customer = customers.filter(email__iexact=email).order_by("pk").first()
    if customer is None and phone:
        customer = customers.filter(phone=phone).order_by("pk").first()
    created = False
    if customer is None:
        # get_or_create: two requests for the same new person at once make one customer.
        customer, created = Customer.objects.get_or_create(
            workspace=workspace,
            external_id=person_external_id(email, phone),
            defaults={"email": email, "phone": phone, "name": name},
        )
        customer.workspace = workspace
    if not created:
        changed: list[str] = []
        if name and customer.name != name:
            customer.name = name
            changed.append("name")
        if email and not customer.email:
            customer.email = email
            changed.append("email")
        if phone and not customer.phone:
            customer.phone = phone
            changed.append("phone")
        if changed:
            customer.save(update_fields=[*changed, "updated_at"])
    return customer, created


# ---------------------------------------------------------------------------------------------
# people


@endpoint("GET", "POST")
def people(request: HttpRequest, params: dict[str, Any]) -> HttpResponse:
    """``POST people`` creates or updates a person and asks for a survey; ``GET`` lists them."""
    if request.method == "POST":
        return _create_person(request, params)
    return _list_people(request, params)


def _create_person(request: HttpRequest, params: dict[str, Any]) -> HttpResponse:
    http.require_scope(request, "ingest")
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    email = _email(params)
    phone = _phone(workspace, params)
    if not email and not phone:
        raise ApiError(
            422,
            "Validation failed.",
            [
                {
                    "field": "email",
                    "code": "missing",
                    "message": "email or phone_number is required.",
                }
            ],
        )
    name = _text(params, "name", 200)
    properties = _properties(params)
    send = _flag(params, "send", True)
    delay = http.integer(params, "delay", 0, 0, MAX_DELAY)
    channel = params.get("channel")
    if channel is not None and channel not in (DeliveryChannel.EMAIL, DeliveryChannel.SMS):
        raise _invalid("channel", 'channel must be "email" or "sms".')
    locale = properties.get("locale")
    # Before any write: a workspace without an NPS survey cannot take survey requests.
    survey = http.compat_survey(workspace) if send else None

    scheduled_for: dt.datetime | None = None
    with transaction.atomic():
        customer, _ = _find_or_create(workspace, email, phone, name)
        if isinstance(locale, str) and LOCALE_RE.match(locale) and not customer.language:
            # Delighted's locale is the person's language; later surveys speak it too.
            customer.language = locale.lower().replace("_", "-")
            customer.save(update_fields=["language", "updated_at"])
        if survey is not None:
            decision = rules.schedule_for(
                survey,
                customer,
                delay=dt.timedelta(seconds=delay),
                channel=channel,
                language=locale if isinstance(locale, str) else None,
                placeholders=placeholders_of(properties),
                via="delighted",
            )
            invitation = decision.invitation
            # In the same transaction as the invitation: the dispatcher never sees an
            # invitation without the properties its message may use (question_product_name).
            SurveyRequest.objects.create(
                workspace=workspace,
                customer=customer,
                invitation=invitation,
                properties=properties,
            )
            if invitation is not None:
                scheduled_for = invitation.scheduled_for
    body = {
        **http.person(customer),
        "survey_scheduled_at": http.unix(scheduled_for),
        "properties": properties,
    }
    # Delighted answered 200 whether the person was new or not; clients check for 200.
    return JsonResponse(body, status=200)


def _encode_cursor(customer: Customer) -> str:
    micros = (customer.created_at - EPOCH) // dt.timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"{micros}.{customer.pk}".encode()).decode().rstrip("=")


def _decode_cursor(raw: Any) -> tuple[dt.datetime, int]:
    try:
        text = base64.urlsafe_b64decode(str(raw) + "=" * (-len(str(raw)) % 4)).decode()
        micros, pk = (int(part) for part in text.split("."))
        return EPOCH + dt.timedelta(microseconds=micros), pk
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError):
        raise ApiError(422, "page_info is not a cursor this API gave out.") from None


def _with_activity(customers: QuerySet[Customer]) -> QuerySet[Customer]:
    """Delighted's ``last_sent_at``, ``last_responded_at`` and ``next_survey_scheduled_at``
    as one correlated subquery each, so a page of 100 people is one query, not 301."""
    invitations = Invitation.objects.filter(customer=OuterRef("pk"), is_test=False)
    return customers.annotate(
        last_sent_at=Subquery(
            invitations.filter(sent_at__isnull=False).order_by("-sent_at").values("sent_at")[:1]
        ),
        last_responded_at=Subquery(
            Response.objects.filter(customer=OuterRef("pk"), is_test=False)
            .order_by("-answered_at")
            .values("answered_at")[:1]
        ),
        next_survey_scheduled_at=Subquery(
            invitations.filter(status=InvitationStatus.SCHEDULED)
            .order_by("scheduled_for")
            .values("scheduled_for")[:1]
        ),
    )


def _created_between(params: dict[str, Any]) -> Q:
    """``since``/``until`` (Unix seconds, both inclusive) on the creation time."""
    condition = Q()
    since = http.from_unix(params, "since")
    until = http.from_unix(params, "until")
    if since is not None:
        condition &= Q(created_at__gte=since)
    if until is not None:
        # The whole second: a row made at 12:00:00.4 is "until 12:00:00".
        condition &= Q(created_at__lt=until + dt.timedelta(seconds=1))
    return condition


def _list_people(request: HttpRequest, params: dict[str, Any]) -> HttpResponse:
    """Cursor-paginated by (created_at, id): stable while people are added during the walk."""
    http.require_scope(request, "read")
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    per_page = http.integer(params, "per_page", 20, 1, 100)
    customers = Customer.objects.filter(workspace=workspace).filter(_created_between(params))
    filters: dict[str, Any] = {
        name: params[name] for name in ("since", "until") if params.get(name) not in (None, "")
    }
    email = _email(params)
    if email:
        customers = customers.filter(email__iexact=email)
        filters["email"] = email
    phone = _phone(workspace, params)
    if phone:
        customers = customers.filter(phone=phone)
        filters["phone_number"] = phone
    if params.get("page_info") not in (None, ""):
        after, pk = _decode_cursor(params["page_info"])
        customers = customers.filter(Q(created_at__gt=after) | Q(created_at=after, pk__gt=pk))
    rows = list(_with_activity(customers).order_by("created_at", "pk")[: per_page + 1])
    page, more = rows[:per_page], len(rows) > per_page
    items = [
        {
            **http.person(c),
            "last_sent_at": http.unix(c.last_sent_at),  # type: ignore[attr-defined]
            "last_responded_at": http.unix(c.last_responded_at),  # type: ignore[attr-defined]
            "next_survey_scheduled_at": http.unix(c.next_survey_scheduled_at),  # type: ignore[attr-defined]
        }
        for c in page
    ]
    next_params = (
        {**filters, "per_page": per_page, "page_info": _encode_cursor(page[-1])} if more else None
    )
    return http.json_list(items, request, next_params)


@endpoint("DELETE")
def person_detail(request: HttpRequest, params: dict[str, Any], identifier: str) -> HttpResponse:
    """``DELETE people/{id | email:… | phone_number:…}``: the person and all their data.

    Delighted removed the person with their responses; in cxloop the customer goes, and with
    it (by cascade) invitations, responses, decisions and suppressions. Audited — by id only:
    the audit log never holds personal data, and the customer's repr may be an address.
    """
    http.require_scope(request, "ingest")
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    with transaction.atomic():
        customer = http.find_person(workspace, identifier)
        audit(
            workspace,
            "customer.delete",
            via="api",
            api_key=request.api_key,  # type: ignore[attr-defined]
            obj=customer,
            changes={"via": "delighted"},
        )
        customer.delete()
    return JsonResponse({"ok": True}, status=202)


@endpoint("DELETE")
def pending(request: HttpRequest, params: dict[str, Any], email: str) -> HttpResponse:
    """Cancel every scheduled, not yet sent, invitation of the person — of any survey.

    The conditional UPDATE (``status = scheduled``) loses cleanly to a dispatcher that has
    already claimed an invitation: what is being sent is not reported as cancelled.
    """
    http.require_scope(request, "ingest")
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    address = _email({"email": email})
    now = clock.now()
    with transaction.atomic():
        due = list(
            Invitation.objects.select_for_update()
            .filter(
                workspace=workspace,
                customer__email__iexact=address,
                status=InvitationStatus.SCHEDULED,
                is_test=False,
            )
            .only("pk", "workspace_id", "survey_id", "customer_id", "interaction_id")
        )
        Invitation.objects.filter(
            pk__in=[inv.pk for inv in due], status=InvitationStatus.SCHEDULED
        ).update(status=InvitationStatus.CANCELLED, status_reason=CANCELLED_BY_API)
        Decision.objects.bulk_create(
            Decision(
                workspace=workspace,
                survey_id=inv.survey_id,
                customer_id=inv.customer_id,
                interaction_id=inv.interaction_id,
                invitation=inv,
                outcome=DecisionOutcome.CANCELLED,
                reason=CANCELLED_BY_API,
                detail="pending survey requests deleted through the Delighted API",
                created_at=now,
            )
            for inv in due
        )
    return _ok()


# ---------------------------------------------------------------------------------------------
# unsubscribes and bounces


def _page(params: dict[str, Any]) -> tuple[int, int]:
    return http.integer(params, "per_page", 20, 1, 100), http.integer(
        params, "page", 1, 1, 1_000_000
    )


def _suppression_list(
    request: HttpRequest, params: dict[str, Any], reason: str, time_field: str
) -> HttpResponse:
    """Delighted's unsubscribe / bounce list: ``per_page``, ``page``, ``since``, ``until``.

    Unsubscribes are the customer-level rows (one per person); bounces are address rows, of
    e-mail only — Delighted's bounces were e-mail bounces.
    """
    http.require_scope(request, "read")
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    per_page, page = _page(params)
    rows = Suppression.objects.filter(workspace=workspace, reason=reason).filter(
        _created_between(params)
    )
    if reason == SuppressionReason.UNSUBSCRIBED:
        rows = rows.filter(address="", customer__isnull=False)
    else:
        rows = rows.filter(delivery_channel=DeliveryChannel.EMAIL).exclude(address="")
    start = (page - 1) * per_page
    found = list(
        rows.select_related("customer").order_by("created_at", "pk")[start : start + per_page + 1]
    )
    items = []
    for row in found[:per_page]:
        customer = row.customer
        items.append(
            {
                "person_id": str(customer.pk) if customer is not None else None,
                "email": row.address or (customer.email if customer is not None else "") or None,
                "name": (customer.name if customer is not None else "") or None,
                time_field: http.unix(row.created_at),
            }
        )
    next_params = None
    if len(found) > per_page:
        next_params = {
            **{k: params[k] for k in ("since", "until") if params.get(k) not in (None, "")},
            "per_page": per_page,
            "page": page + 1,
        }
    return http.json_list(items, request, next_params)


@endpoint("GET", "POST")
def unsubscribes(request: HttpRequest, params: dict[str, Any]) -> HttpResponse:
    """``POST unsubscribes {person_email}`` stops all surveys to that person; ``GET`` lists.

    An address cxloop does not know yet becomes a minimal customer, so the unsubscribe holds
    when the CRM sends that person later (Delighted accepted unknown addresses too).
    """
    if request.method == "GET":
        return _suppression_list(request, params, SuppressionReason.UNSUBSCRIBED, "unsubscribed_at")
    http.require_scope(request, "ingest")
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    email = _email(params, "person_email")
    if not email:
        raise ApiError(
            422,
            "Validation failed.",
            [{"field": "person_email", "code": "missing", "message": "person_email is required."}],
        )
    with transaction.atomic():
        customers = list(
            Customer.objects.filter(workspace=workspace, email__iexact=email).order_by("pk")
        )
        if not customers:
            customer, _ = _find_or_create(workspace, email, "", "")
            customers = [customer]
        for customer in customers:
            suppression.unsubscribe(
                customer,
                via="api",
                source="delighted",
                api_key=request.api_key,  # type: ignore[attr-defined]
            )
    return _ok()


@endpoint("GET")
def bounces(request: HttpRequest, params: dict[str, Any]) -> HttpResponse:
    """``GET bounces``: e-mail addresses that bounced, with the person when cxloop knows it."""
    return _suppression_list(request, params, SuppressionReason.BOUNCED, "bounced_at")
