"""The surveys part of ``/api/v1``: responses (read and import), survey configuration,
unsubscribes and the decisions that answer "why wasn't this customer surveyed?".

Each router validates, checks the key's scope and delegates: the import to
``importing.import_responses``, survey changes to ``services.save_survey`` (the web's own
path, audited), unsubscribes to ``suppression.unsubscribe``. Lists are keyset pages
(``{"items", "next"}``) read with ``values()`` and joins: one query a page, whatever its size.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Query, Router, Status
from pydantic import Field

from cxloop.accounts.models import Workspace
from cxloop.core.api import (
    BatchIn,
    BatchOut,
    Invalid,
    ListParams,
    batch_answer,
    batch_docs,
    check_aware,
    check_batch_size,
    iso,
    list_page,
    require_scope,
)
from cxloop.customers.models import Customer

from .definition import default_definition
from .importing import import_responses
from .models import Decision, Response, Suppression, SuppressionReason, Survey
from .schemas import (
    CODES,
    DecisionPage,
    Detail,
    ResponseIn,
    ResponsePage,
    SurveyIn,
    SurveyList,
    SurveyOut,
    UnsubscribeIn,
    UnsubscribeOut,
    UnsubscribePage,
)
from .services import SurveyInvalid, save_survey
from .suppression import unsubscribe

responses = Router()
surveys = Router()
unsubscribes = Router()
decisions = Router()


def _workspace(request: HttpRequest) -> Workspace:
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    return workspace


def _survey_id(workspace: Workspace, code: str) -> int:
    """The id of the survey with this code; 422 naming the code when there is none (a typo in
    a filter must not look like "no data")."""
    pk = Survey.objects.filter(workspace=workspace, code=code).values_list("pk", flat=True).first()
    if pk is None:
        raise Invalid("the request is not valid", {"survey": [f"no survey with code {code!r}"]})
    return pk


def _interaction(source: str | None, external_id: str | None) -> str | None:
    return f"{source}:{external_id}" if source is not None else None


# --- responses ------------------------------------------------------------------------------

RESPONSE_FIELDS = (
    "id", "external_id", "survey__code", "customer__external_id", "interaction__source",
    "interaction__external_id", "score", "comment", "answers", "language", "answered_at",
    *(f"{name}__code" for name in CODES), "source", "may_contact", "updated_at",
)  # fmt: skip


def serialise_response(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "external_id": row["external_id"],
        "survey": row["survey__code"],
        "customer": row["customer__external_id"],
        "interaction": _interaction(row["interaction__source"], row["interaction__external_id"]),
        "score": row["score"],
        "comment": row["comment"],
        "answers": row["answers"],
        "language": row["language"],
        "answered_at": iso(row["answered_at"]),
        **{name: row[f"{name}__code"] for name in CODES},
        "source": row["source"],
        "may_contact": row["may_contact"],
        "updated_at": iso(row["updated_at"]),
    }


class ResponseParams(ListParams):
    survey: str | None = Field(default=None, description="Only this survey's responses (code).")


RESPONSE_EXAMPLE = {
    "external_id": "KIOSK-2026-000123",
    "survey": "after-visit",
    "customer": "C0000042",
    "score": 9,
    "comment": "Fast and friendly",
    "answers": {"reasons": ["staff", "waiting"]},
    "language": "ro",
    "answered_at": "2026-11-20T10:42:00+02:00",
    "branch": "B07",
    "employee": "E0131",
}


def _batch_docs() -> dict[str, Any]:
    # ResponseIn is not the body of any endpoint, so it is not among the document's components:
    # the item's schema is written in place, with an example.
    docs = batch_docs("ResponseIn")
    content = docs["requestBody"]["content"]["application/json"]
    content["schema"]["properties"]["items"]["items"] = ResponseIn.model_json_schema()
    content["example"] = {
        "items": [
            RESPONSE_EXAMPLE,
            {
                "external_id": "IVR-88121",
                "survey": "after-visit",
                "customer": "C0000043",
                "interaction": "crm:V-778812",
                "score": 3,
                "answered_at": "2026-11-21T08:05:00Z",
            },
        ]
    }
    return docs


@responses.post(
    "/batch",
    response=BatchOut,
    summary="Import up to 10,000 responses collected elsewhere",
    openapi_extra=_batch_docs(),
    description="For a migration from another tool, kiosks or an IVR. Each item is accepted, a "
    "duplicate (its external_id is stored, or came earlier in the batch: nothing changes) or "
    "rejected; `errors` gives the index of each rejected item and its reasons by field, e.g. "
    '`{"index": 3, "errors": {"score": ["must be from 0 to 10"]}}`. Needs the `ingest` scope.',
)
def post_responses_batch(request: HttpRequest, payload: BatchIn) -> dict[str, Any]:
    require_scope(request, "ingest")
    check_batch_size(payload.items)
    return batch_answer(import_responses(_workspace(request), payload.items))


@responses.get(
    "",
    response=ResponsePage,
    summary="List responses by answered_at",
    description="`since` (inclusive) and `until` (exclusive) filter `answered_at` and need an "
    "offset; `survey` keeps one survey's (an unknown code answers 422). Pages never skip nor "
    "repeat a response. Test responses are never listed. Needs the `read` scope.",
)
def list_responses(request: HttpRequest, params: Query[ResponseParams]) -> dict[str, Any]:
    require_scope(request, "read")
    workspace = _workspace(request)
    check_aware(params)
    qs = Response.objects.filter(workspace=workspace, is_test=False)
    if params.survey is not None:
        qs = qs.filter(survey_id=_survey_id(workspace, params.survey))
    rows, cursor = list_page(
        qs.values(*RESPONSE_FIELDS), "answered_at", params, workspace.time_zone
    )
    return {"items": [serialise_response(r) for r in rows], "next": cursor}


# --- surveys --------------------------------------------------------------------------------


def serialise_survey(survey: Survey) -> dict[str, Any]:
    return {
        "code": survey.code,
        "name": survey.name,
        "kind": survey.kind,
        "is_active": survey.is_active,
        "definition": survey.definition,
        "rules": survey.rules,
        "public_link": f"{settings.SITE_URL}/s/p/{survey.public_code}",
        "active_since": iso(survey.active_since),
        "created_at": iso(survey.created_at),
        "updated_at": iso(survey.updated_at),
    }


SURVEY_EXAMPLE = {
    "code": "after-visit",
    "name": "After the store visit",
    "kind": "transactional",
    "is_active": True,
    "definition": default_definition("Acme"),
    "rules": {"touchpoints": ["STORE-SALE"], "quiet_period_days": 30, "channels": ["email"]},
}
SURVEY_BODY_DOCS = {
    "requestBody": {"content": {"application/json": {"example": SURVEY_EXAMPLE}}},
}


def _save(request: HttpRequest, payload: SurveyIn, survey: Survey | None) -> Survey:
    try:
        return save_survey(
            _workspace(request),
            code=payload.code,
            name=payload.name,
            kind=payload.kind,
            is_active=payload.is_active,
            definition=payload.definition,
            rules=payload.rules,
            survey=survey,
            via="api",
            api_key=request.api_key,  # type: ignore[attr-defined]
        )
    except SurveyInvalid as exc:
        raise Invalid("the survey is not valid", exc.errors) from None


@surveys.get(
    "",
    response=SurveyList,
    summary="List every survey, by code",
    description="All the workspace's surveys in one page (`next` is always null). Needs `read`.",
)
def list_surveys(request: HttpRequest) -> dict[str, Any]:
    require_scope(request, "read")
    rows = Survey.objects.filter(workspace=_workspace(request)).order_by("code")
    return {"items": [serialise_survey(s) for s in rows], "next": None}


@surveys.get(
    "/{code}",
    response={200: SurveyOut, 404: Detail},
    summary="Fetch one survey",
    description="As stored: definition and rules with every default filled in. Needs `read`.",
)
def get_survey(request: HttpRequest, code: str) -> Status[dict[str, Any]]:
    require_scope(request, "read")
    survey = Survey.objects.filter(workspace=_workspace(request), code=code).first()
    if survey is None:
        return Status(404, {"detail": f"no survey with code {code!r}"})
    return Status(200, serialise_survey(survey))


@surveys.post(
    "",
    response={201: SurveyOut},
    summary="Create a survey",
    openapi_extra=SURVEY_BODY_DOCS,
    description="Validated as on the Surveys page: every problem at once, by field path, e.g. "
    '`{"definition.questions.0.text": ["…"], "definition": ["texts missing for some '
    'languages — title: ro"]}` (422). Audited. Needs the `admin` scope.',
)
def create_survey(request: HttpRequest, payload: SurveyIn) -> Status[dict[str, Any]]:
    require_scope(request, "admin")
    return Status(201, serialise_survey(_save(request, payload, None)))


@surveys.put(
    "/{code}",
    response={200: SurveyOut, 404: Detail},
    summary="Replace a survey",
    openapi_extra=SURVEY_BODY_DOCS,
    description="The body is the whole survey; a field left out takes its default (`is_active` "
    "true, `rules` defaults). A different `code` in the body renames the survey. Switching a "
    "survey back on counts only interactions from then on. Audited. Needs `admin`.",
)
def put_survey(request: HttpRequest, code: str, payload: SurveyIn) -> Status[dict[str, Any]]:
    require_scope(request, "admin")
    survey = Survey.objects.filter(workspace=_workspace(request), code=code).first()
    if survey is None:
        return Status(404, {"detail": f"no survey with code {code!r}"})
    return Status(200, serialise_survey(_save(request, payload, survey)))


# --- unsubscribes ---------------------------------------------------------------------------


def _customer(workspace: Workspace, external_id: str) -> Customer | None:
    return Customer.objects.filter(workspace=workspace, external_id=external_id).first()


# unsubscribe() writes one row for the customer (address "") and may add one for their
# address; the customer's row is the one unsubscribe is listed by, once per customer.
def _unsubscribed(workspace: Workspace) -> QuerySet[Suppression]:
    return Suppression.objects.filter(
        workspace=workspace,
        reason=SuppressionReason.UNSUBSCRIBED,
        customer__isnull=False,
        address="",
    )


@unsubscribes.post(
    "",
    response={200: UnsubscribeOut, 201: UnsubscribeOut, 404: Detail},
    summary="Unsubscribe a customer from every survey",
    openapi_extra={
        "requestBody": {"content": {"application/json": {"example": {"customer": "C0000042"}}}}
    },
    description="For an opt-out received elsewhere (call centre, CRM). Consent is withdrawn on "
    "every channel and no survey invites the customer again, even if the CRM later sends "
    "consent again. 201 when done now, 200 with `already: true` when they had unsubscribed. "
    "Audited. Needs the `ingest` scope.",
)
def post_unsubscribe(request: HttpRequest, payload: UnsubscribeIn) -> Status[dict[str, Any]]:
    require_scope(request, "ingest")
    workspace = _workspace(request)
    customer = _customer(workspace, payload.customer)
    if customer is None:
        return Status(404, {"detail": f"no customer with external_id {payload.customer!r}"})
    done = unsubscribe(
        customer,
        via="api",
        source="api",
        api_key=request.api_key,  # type: ignore[attr-defined]
    )
    row = _unsubscribed(workspace).filter(customer=customer).first()
    assert row is not None  # unsubscribe() wrote it, now or before
    answer = {
        "customer": customer.external_id,
        "unsubscribed_at": iso(row.created_at),
        "already": not done,
    }
    return Status(201 if done else 200, answer)


@unsubscribes.get(
    "",
    response=UnsubscribePage,
    summary="List unsubscribed customers by when they unsubscribed",
    description="`since`/`until` filter the moment of the unsubscribe (need an offset). Needs "
    "the `read` scope.",
)
def list_unsubscribes(request: HttpRequest, params: Query[ListParams]) -> dict[str, Any]:
    require_scope(request, "read")
    workspace = _workspace(request)
    check_aware(params)
    qs = _unsubscribed(workspace).values(
        "id", "customer__external_id", "delivery_channel", "created_at", "source"
    )
    rows, cursor = list_page(qs, "created_at", params, workspace.time_zone)
    items = [
        {
            "customer": r["customer__external_id"],
            "channel": r["delivery_channel"],
            "created_at": iso(r["created_at"]),
            "source": r["source"],
        }
        for r in rows
    ]
    return {"items": items, "next": cursor}


# --- decisions ------------------------------------------------------------------------------


class DecisionParams(ListParams):
    customer: str = Field(description="The customer's external_id (required).")
    survey: str | None = Field(default=None, description="Only this survey's decisions (code).")


DECISION_FIELDS = (
    "id", "survey__code", "interaction__source", "interaction__external_id", "outcome",
    "reason", "detail", "created_at", "invitation__status",
)  # fmt: skip


@decisions.get(
    "",
    response={200: DecisionPage, 404: Detail},
    summary="Why was (or wasn't) this customer surveyed?",
    description="Every step the survey rules took for the customer, oldest first: scheduled or "
    "skipped with the reason (unsubscribed, no_consent, quiet_period, sampled_out, "
    "branch_cap…), then sent, reminded, cancelled or failed, with the invitation's status "
    "now. `customer` is required (404 when unknown). Needs the `read` scope.",
)
def list_decisions(request: HttpRequest, params: Query[DecisionParams]) -> Status[dict[str, Any]]:
    require_scope(request, "read")
    workspace = _workspace(request)
    check_aware(params)
    customer = _customer(workspace, params.customer)
    if customer is None:
        return Status(404, {"detail": f"no customer with external_id {params.customer!r}"})
    qs = Decision.objects.filter(workspace=workspace, customer=customer)
    if params.survey is not None:
        qs = qs.filter(survey_id=_survey_id(workspace, params.survey))
    rows, cursor = list_page(qs.values(*DECISION_FIELDS), "created_at", params, workspace.time_zone)
    items = [
        {
            "survey": r["survey__code"],
            "interaction": _interaction(r["interaction__source"], r["interaction__external_id"]),
            "outcome": r["outcome"],
            "reason": r["reason"],
            "detail": r["detail"],
            "created_at": iso(r["created_at"]),
            "invitation_status": r["invitation__status"],
        }
        for r in rows
    ]
    return Status(200, {"items": items, "next": cursor})
