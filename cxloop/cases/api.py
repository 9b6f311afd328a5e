"""The closed loop in ``/api/v1``: cases (read, call-back, reassign, call attempts, close) and
the problem register (docs/cases-api.md).

Every change goes through ``services``, the web's own path: each case action writes its
``CaseEvent`` (``via="api"``) and its webhook event; problem changes are audited as well.

Status codes: 422 when the request itself is wrong (an unknown code, a missing field, a value
out of its list), 409 when it is well formed but the case's or problem's state does not allow
it (``services.CaseError``: closing as resolved before the call-back, reassigning a closed
case…), 404 for an id that is not the key's workspace's (another workspace's case is never
told apart from one that does not exist).

Scopes: ``read`` reads; ``ingest`` acts on cases (a CRM or call centre writing back what
happened); ``admin`` changes the problem register and is the only scope that sees the
customer's phone number (``contact``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from ninja import Query, Router, Status
from ninja.errors import HttpError

from cxloop.accounts.models import ApiKey, Scope, Workspace
from cxloop.accounts.services import audit
from cxloop.core.api import NOT_VALID, Invalid, by_code, check_aware, list_page, require_scope
from cxloop.organisation.models import Branch, Employee
from cxloop.surveys.models import Response, Survey

from . import services
from .models import Case, CaseEvent, CaseStatus, Problem, ProblemStatus, ReasonCode
from .schemas import (
    AssignIn,
    AttemptIn,
    CallbackIn,
    CaseDetailOut,
    CasePage,
    CaseParams,
    CloseIn,
    Detail,
    ProblemIn,
    ProblemOut,
    ProblemPage,
    ProblemParams,
    ProblemPatch,
)
from .serialise import case_data, event_data, problem_data

cases = Router()
problems = Router()

# Case actions answer the case as GET /cases/{id} does.
CASE_ANSWERS: dict[int, Any] = {200: CaseDetailOut, 404: Detail, 409: Detail}


def _workspace(request: HttpRequest) -> Workspace:
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    return workspace


def _key(request: HttpRequest) -> ApiKey:
    key: ApiKey = request.api_key  # type: ignore[attr-defined]
    return key


def _contacts(request: HttpRequest) -> bool:
    """Only ``admin`` keys see the customer's phone: an integration that reads cases (a BI
    export, a dashboard) needs no personal data."""
    return Scope.ADMIN in _key(request).scopes


def _choices(values: list[str], allowed: Iterable[str], field: str) -> list[str]:
    """Repeated and comma-separated values, each checked against ``allowed``."""
    allowed = list(allowed)
    chosen = [part.strip() for value in values for part in value.split(",") if part.strip()]
    unknown = [value for value in chosen if value not in allowed]
    if unknown:
        raise Invalid(
            NOT_VALID,
            {field: [f"unknown {field} {v!r}; one of {', '.join(allowed)}" for v in unknown]},
        )
    return sorted(set(chosen))


def _reasons(workspace: Workspace, codes: list[str]) -> list[ReasonCode]:
    found = {r.code: r for r in ReasonCode.objects.filter(workspace=workspace, code__in=codes)}
    errors = [f"no reason code {code!r}" for code in codes if code not in found]
    errors += [f"reason code {c!r} is retired" for c, r in found.items() if not r.is_active]
    if errors:
        raise Invalid(NOT_VALID, {"reasons": errors})
    return [found[code] for code in dict.fromkeys(codes)]


def _branches(workspace: Workspace, codes: list[str]) -> list[Branch]:
    found = {b.code: b for b in Branch.objects.filter(workspace=workspace, code__in=codes)}
    errors = [f"no branch {code!r}" for code in codes if code not in found]
    if errors:
        raise Invalid(NOT_VALID, {"branches": errors})
    return [found[code] for code in dict.fromkeys(codes)]


def _employee(workspace: Workspace, field: str, code: str) -> Employee:
    employee = by_code(Employee, workspace, field, code)
    if not employee.is_active:
        raise Invalid(NOT_VALID, {field: [f"employee {code!r} is not active"]})
    return employee


def _conflict(exc: services.CaseError) -> HttpError:
    return HttpError(409, str(exc))


# --- cases ----------------------------------------------------------------------------------


CASE_JOINS = ("response", "survey", "customer", "at_risk__account", "assignee",
              "branch", "employee", "product", "channel", "touchpoint")  # fmt: skip


def _cases(workspace: Workspace, *, history: bool = False) -> QuerySet[Case]:
    """The workspace's cases with what ``case_data`` reads: one query for the rows and one
    for each of reasons and events, whatever the page's size."""
    events = CaseEvent.objects.order_by("at", "pk")
    if history:
        events = events.select_related("from_assignee", "to_assignee")
    else:
        # A list shows the call attempts only.
        events = events.filter(kind="attempt")
    return (
        Case.objects.filter(workspace=workspace)
        .select_related(*CASE_JOINS)
        .prefetch_related("reasons", Prefetch("events", queryset=events))
    )


def _case(request: HttpRequest, case_id: int) -> Case | None:
    return _cases(_workspace(request), history=True).filter(pk=case_id).first()


def _detail(request: HttpRequest, case_id: int) -> dict[str, Any]:
    """The case as it is now, with its history (read again after a change)."""
    case = _case(request, case_id)
    assert case is not None
    data = case_data(case, contacts=_contacts(request))
    data["events"] = [event_data(e) for e in case.events.all()]
    return data


def _missing(case_id: int) -> Status[dict[str, Any]]:
    return Status(404, {"detail": f"no case with id {case_id}"})


@cases.get(
    "",
    response=CasePage,
    exclude_unset=True,
    summary="List cases by opened_at",
    description="Filters: `response` (external_id), `status` (repeat or comma-separate), "
    "`assignee` (employee code, `none` for the CX team's queue), `branch`, `survey` (codes), "
    "`breached`, and `since` (inclusive) / `until` (exclusive) on `opened_at`, which need an "
    "offset. An unknown code or status answers 422 naming the filter. Pages never skip nor "
    "repeat a case. `contact` only for `admin` keys. Needs the `read` scope.",
)
def list_cases(request: HttpRequest, params: Query[CaseParams]) -> dict[str, Any]:
    require_scope(request, "read")
    workspace = _workspace(request)
    check_aware(params)
    qs = _cases(workspace)
    if params.response is not None:
        pk = (
            Response.objects.filter(workspace=workspace, external_id=params.response)
            .values_list("pk", flat=True)
            .first()
        )
        if pk is None:
            raise Invalid(
                NOT_VALID, {"response": [f"no response with external_id {params.response!r}"]}
            )
        qs = qs.filter(response_id=pk)
    if params.status:
        qs = qs.filter(status__in=_choices(params.status, CaseStatus.values, "status"))
    if params.assignee is not None:
        if params.assignee == "none":
            qs = qs.filter(assignee__isnull=True)
        else:
            qs = qs.filter(assignee=by_code(Employee, workspace, "assignee", params.assignee))
    if params.branch is not None:
        qs = qs.filter(branch=by_code(Branch, workspace, "branch", params.branch))
    if params.survey is not None:
        qs = qs.filter(survey=by_code(Survey, workspace, "survey", params.survey))
    if params.breached is not None:
        qs = qs.filter(breached=params.breached)
    rows, cursor = list_page(qs, "opened_at", params, workspace.time_zone)
    contacts = _contacts(request)
    return {"items": [case_data(c, contacts=contacts) for c in rows], "next": cursor}


@cases.get(
    "/{int:case_id}",
    response={200: CaseDetailOut, 404: Detail},
    exclude_unset=True,
    summary="Fetch one case with its history",
    description="`events` is everything that happened to the case, oldest first. Another "
    "workspace's case answers 404. Needs the `read` scope.",
)
def get_case(request: HttpRequest, case_id: int) -> Status[dict[str, Any]]:
    require_scope(request, "read")
    if _case(request, case_id) is None:
        return _missing(case_id)
    return Status(200, _detail(request, case_id))


@cases.patch(
    "/{int:case_id}",
    response=CASE_ANSWERS,
    exclude_unset=True,
    summary="Record the call-back",
    description="The call-back script: `apologised`, `solved` (yes, partly, no), `reasons` "
    "(reason codes; the list replaces the recorded one), `expected`, `notes`. Fields left out "
    "keep what was recorded; the first call-back needs `apologised`, `solved` and a reason "
    "(422 naming what is missing). Moves an open case to in_progress. 409 on a closed case. "
    "Needs the `ingest` scope.",
)
def patch_case(request: HttpRequest, case_id: int, payload: CallbackIn) -> Status[dict[str, Any]]:
    require_scope(request, "ingest")
    workspace = _workspace(request)
    case = _case(request, case_id)
    if case is None:
        return _missing(case_id)
    given = payload.model_dump(exclude_unset=True)
    if not given:
        raise Invalid(NOT_VALID, {"__all__": ["give at least one call-back field"]})
    reasons = (
        _reasons(workspace, given["reasons"]) if "reasons" in given else list(case.reasons.all())
    )
    apologised = given.get("apologised", case.apologised)
    solved = given.get("solved", case.solved)
    missing = {
        name: ["required: the case has no call-back recorded yet"]
        for name, value in (("apologised", apologised), ("solved", solved), ("reasons", reasons))
        if value is None or value == "" or value == []
    }
    if missing:
        raise Invalid(NOT_VALID, missing)
    try:
        services.record_callback(
            case,
            apologised=bool(apologised),
            solved=str(solved),
            reasons=reasons,
            expected=given.get("expected", case.expected),
            notes=given.get("notes", case.notes),
            via="api",
        )
    except services.CaseError as exc:
        raise _conflict(exc) from None
    return Status(200, _detail(request, case_id))


@cases.post(
    "/{int:case_id}/assign",
    response=CASE_ANSWERS,
    exclude_unset=True,
    summary="Reassign a case",
    description="`assignee`: an active employee's code, or null for the CX team's queue; "
    "`note` goes into the history. The new assignee is e-mailed at the next heartbeat. 409 "
    "on a closed case. Needs the `ingest` scope.",
)
def assign_case(request: HttpRequest, case_id: int, payload: AssignIn) -> Status[dict[str, Any]]:
    require_scope(request, "ingest")
    case = _case(request, case_id)
    if case is None:
        return _missing(case_id)
    assignee = (
        _employee(_workspace(request), "assignee", payload.assignee)
        if payload.assignee is not None
        else None
    )
    try:
        services.assign(case, assignee, via="api", note=payload.note)
    except services.CaseError as exc:
        raise _conflict(exc) from None
    return Status(200, _detail(request, case_id))


@cases.post(
    "/{int:case_id}/attempts",
    response=CASE_ANSWERS,
    exclude_unset=True,
    summary="Log a call attempt",
    description="`result`: reached, no_answer, busy, voicemail or wrong_number. Moves an open "
    "case to in_progress; counts towards closing as unreachable. 409 on a closed case. Needs "
    "the `ingest` scope.",
)
def log_attempt(request: HttpRequest, case_id: int, payload: AttemptIn) -> Status[dict[str, Any]]:
    require_scope(request, "ingest")
    case = _case(request, case_id)
    if case is None:
        return _missing(case_id)
    try:
        services.log_attempt(case, str(payload.result), note=payload.note, via="api")
    except services.CaseError as exc:
        raise _conflict(exc) from None
    return Status(200, _detail(request, case_id))


@cases.post(
    "/{int:case_id}/close",
    response=CASE_ANSWERS,
    exclude_unset=True,
    summary="Close a case",
    description="`status`: resolved (needs the call-back recorded), unreachable (needs the "
    "workspace's number of call attempts, 3 by default) or declined (needs a logged call). "
    "409 with the reason when the case does not allow it, or is closed already. Needs the "
    "`ingest` scope.",
)
def close_case(request: HttpRequest, case_id: int, payload: CloseIn) -> Status[dict[str, Any]]:
    require_scope(request, "ingest")
    case = _case(request, case_id)
    if case is None:
        return _missing(case_id)
    try:
        services.close(case, payload.status, via="api", note=payload.note)
    except services.CaseError as exc:
        raise _conflict(exc) from None
    return Status(200, _detail(request, case_id))


# --- problems -------------------------------------------------------------------------------


def _problems(workspace: Workspace) -> QuerySet[Problem]:
    return (
        Problem.objects.filter(workspace=workspace)
        .select_related("owner")
        # problem_data counts the cases: from the prefetched ids, not one query a problem.
        .prefetch_related(
            "reasons", "branches", Prefetch("cases", queryset=Case.objects.only("pk", "problem"))
        )
    )


def _problem(request: HttpRequest, problem_id: int) -> Problem | None:
    return _problems(_workspace(request)).filter(pk=problem_id).first()


def _problem_answer(request: HttpRequest, problem_id: int) -> dict[str, Any]:
    problem = _problem(request, problem_id)
    assert problem is not None
    return problem_data(problem)


def _no_problem(problem_id: int) -> Status[dict[str, Any]]:
    return Status(404, {"detail": f"no problem with id {problem_id}"})


def _audited(changes: dict[str, Any]) -> dict[str, Any]:
    """What the audit log keeps of a change: JSON values, codes for rows."""
    out: dict[str, Any] = {}
    for name, value in changes.items():
        if isinstance(value, Employee):
            value = value.code
        elif isinstance(value, list):
            value = sorted(getattr(v, "code", v) for v in value)
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        out[name] = value
    return out


@problems.get(
    "",
    response=ProblemPage,
    summary="List problems by created_at",
    description="`status` keeps some (repeat or comma-separate; unknown → 422); `since` / "
    "`until` filter `created_at` and need an offset. Needs the `read` scope.",
)
def list_problems(request: HttpRequest, params: Query[ProblemParams]) -> dict[str, Any]:
    require_scope(request, "read")
    workspace = _workspace(request)
    check_aware(params)
    qs = _problems(workspace)
    if params.status:
        qs = qs.filter(status__in=_choices(params.status, ProblemStatus.values, "status"))
    rows, cursor = list_page(qs, "created_at", params, workspace.time_zone)
    return {"items": [problem_data(p) for p in rows], "next": cursor}


@problems.get(
    "/{int:problem_id}",
    response={200: ProblemOut, 404: Detail},
    summary="Fetch one problem",
    description="Another workspace's problem answers 404. Needs the `read` scope.",
)
def get_problem(request: HttpRequest, problem_id: int) -> Status[dict[str, Any]]:
    require_scope(request, "read")
    problem = _problem(request, problem_id)
    if problem is None:
        return _no_problem(problem_id)
    return Status(200, problem_data(problem))


@problems.post(
    "",
    response={201: ProblemOut},
    summary="Register a problem",
    description="`title` is required; `owner` is an employee code, `reasons` reason codes "
    "(unknown → 422). Audited. Needs the `admin` scope.",
)
def create_problem(request: HttpRequest, payload: ProblemIn) -> Status[dict[str, Any]]:
    require_scope(request, "admin")
    workspace = _workspace(request)
    fields = payload.model_dump(exclude={"title", "reasons", "owner", "branches"})
    owner = _employee(workspace, "owner", payload.owner) if payload.owner else None
    reasons = _reasons(workspace, payload.reasons)
    branches = _branches(workspace, payload.branches)
    try:
        with transaction.atomic():
            problem = services.create_problem(
                workspace.pk, title=payload.title, reasons=reasons, branches=branches,
                owner=owner, **fields,
            )  # fmt: skip
            audit(
                workspace, "problem.created", via="api", api_key=_key(request), obj=problem,
                changes=_audited({"title": problem.title, "owner": owner, "reasons": reasons}),
            )  # fmt: skip
    except services.CaseError as exc:
        raise _conflict(exc) from None
    return Status(201, _problem_answer(request, problem.pk))


@problems.patch(
    "/{int:problem_id}",
    response={200: ProblemOut, 404: Detail, 409: Detail},
    summary="Change a problem",
    description="Fields left out are kept; `reasons` replaces the linked codes. `status` moves "
    "open ⇄ in_progress → fixed (`fixed_on` defaults to today) and back to in_progress; "
    "verified and not_effective come from `/verify` (409 otherwise, as for any move the "
    "flow does not allow). Audited. Needs the `admin` scope.",
)
def patch_problem(
    request: HttpRequest, problem_id: int, payload: ProblemPatch
) -> Status[dict[str, Any]]:
    require_scope(request, "admin")
    workspace = _workspace(request)
    problem = _problem(request, problem_id)
    if problem is None:
        return _no_problem(problem_id)
    changes = payload.model_dump(exclude_unset=True)
    if not changes:
        raise Invalid(NOT_VALID, {"__all__": ["give at least one field to change"]})
    reasons = _reasons(workspace, changes.pop("reasons")) if "reasons" in changes else None
    branches = _branches(workspace, changes.pop("branches")) if "branches" in changes else None
    if "owner" in changes:
        code = changes["owner"]
        changes["owner"] = _employee(workspace, "owner", code) if code is not None else None
    if "status" in changes:
        changes["status"] = str(changes["status"])
    try:
        with transaction.atomic():
            services.update_problem(problem, changes, reasons=reasons, branches=branches)
            logged = changes if reasons is None else {**changes, "reasons": reasons}
            if branches is not None:
                logged = {**logged, "branches": branches}
            audit(
                workspace, "problem.updated", via="api", api_key=_key(request), obj=problem,
                changes=_audited(logged),
            )  # fmt: skip
    except services.CaseError as exc:
        raise _conflict(exc) from None
    return Status(200, _problem_answer(request, problem_id))


@problems.post(
    "/{int:problem_id}/verify",
    response={200: ProblemOut, 404: Detail, 409: Detail},
    summary="Measure a fixed problem's effect",
    description="Compares the share of detractors citing the problem's reasons in the 30 days "
    "before `fixed_on` with the days since: `verified` when the drop is significant, "
    "`not_effective` when not, still `fixed` while either side has too few answers "
    "(`effect.verdict` is `insufficient_data`). 409 unless the problem is fixed (or measured "
    "before) and has reason codes. Audited. Needs the `admin` scope.",
)
def verify_problem(request: HttpRequest, problem_id: int) -> Status[dict[str, Any]]:
    require_scope(request, "admin")
    workspace = _workspace(request)
    problem = _problem(request, problem_id)
    if problem is None:
        return _no_problem(problem_id)
    try:
        with transaction.atomic():
            measured = services.verify_problem(problem)
            audit(
                workspace, "problem.verified", via="api", api_key=_key(request), obj=measured,
                changes={"status": measured.status, "verdict": measured.effect.get("verdict")},
            )  # fmt: skip
    except services.CaseError as exc:
        raise _conflict(exc) from None
    return Status(200, _problem_answer(request, problem_id))
