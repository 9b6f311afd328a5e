"""Delighted's survey responses and metrics, served from cxloop's own responses.

* ``POST survey_responses`` records an answer given elsewhere (a script that used to call
  Delighted) as a cxloop ``Response`` of the workspace's feed survey (``http.compat_survey``):
  source *import*, no invitation, ``external_id`` ``delighted-<uuid>``. It is a response like
  any other — dashboards count it, and ``surveys.signals.response_saved`` is sent after the
  commit so the closed loop and outgoing webhooks see it — plus a ``ResponseMeta`` row for
  what only Delighted has (person properties, notes, tags).
* ``GET survey_responses`` lists the feed survey's responses (another survey with
  ``survey=<code>`` or ``trend=<code or id>``), page by page as Delighted did: ``page`` and
  ``per_page`` (20, at most 100), oldest first unless ``order`` says otherwise. One query per
  page, whatever its size: the person, the Delighted fields and the survey request's
  properties come in by joins; the survey's definition is parsed once.
* ``GET``/``PUT survey_responses/{id}``: one response of the workspace (any survey); ``PUT``
  takes the whole object the official client sends back and changes only what may change
  (score, comment, person properties, notes, tags).
* ``GET metrics``: ``cxloop.surveys.metrics.nps_summary`` over the feed survey's responses —
  the very numbers cxloop's dashboards show.

Test responses are never listed, shown, changed nor counted.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.customers.models import Customer
from cxloop.surveys import signals
from cxloop.surveys.definition import SurveyDefinition, fill, texts_for
from cxloop.surveys.importing import FUTURE_TOLERANCE
from cxloop.surveys.metrics import nps_summary
from cxloop.surveys.models import Response, ResponseSource, Survey
from cxloop.surveys.render import definition_of
from cxloop.surveys.responses import MAX_TEXT, check_score, comment_question

from . import http
from .http import ApiError, endpoint, from_unix, integer, require_scope, unix
from .models import ResponseMeta

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
ORDERS = {
    "asc": ("answered_at", "pk"),
    "desc": ("-answered_at", "-pk"),
    "asc:updated_at": ("updated_at", "pk"),
    "desc:updated_at": ("-updated_at", "-pk"),
}
MAX_TAGS = 50
MAX_NOTES = 200
# Ids past 18 digits fit no database integer (SQLite raises rather than finding nothing).
MAX_ID_DIGITS = 18


def _invalid(field_name: str, message: str, code: str = "invalid") -> ApiError:
    """Delighted's 422: a summary and the list of problems, one per field."""
    return ApiError(
        422,
        f"Validation failed: {field_name} {message}.",
        [{"field": field_name, "code": code, "message": message}],
    )


def _unix(params: dict[str, Any], name: str) -> dt.datetime | None:
    """``http.from_unix``, its 422 with Delighted's ``errors`` list."""
    try:
        return from_unix(params, name)
    except ApiError:
        raise _invalid(name, "must be a Unix timestamp (seconds)") from None


def _whole(params: dict[str, Any], name: str, default: int) -> int:
    """A positive whole number (``page``, ``per_page``), its 422 with the ``errors`` list."""
    try:
        return integer(params, name, default, 1, 10**9)
    except ApiError:
        raise _invalid(name, "must be a whole number, 1 or more") from None


def _feed(workspace: Workspace) -> Survey:
    """``http.compat_survey``, its 422 with the ``errors`` list."""
    try:
        return http.compat_survey(workspace)
    except ApiError as exc:
        if exc.errors is not None:
            raise
        raise ApiError(
            exc.status,
            exc.message,
            [{"field": "survey", "code": "missing", "message": exc.message}],
        ) from None


def _workspace(request: HttpRequest) -> Workspace:
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    return workspace


def _as_list(value: Any) -> list[Any]:
    """``expand[]=person`` arrives as a list, ``expand=person`` as a string: both mean a list."""
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


# --- the response as Delighted's JSON ---------------------------------------------------------


@dataclass
class Serialiser:
    """What every response of a page shares: the workspace, whether to expand the person, and
    each survey's definition, parsed once (``None`` when the stored one no longer validates)."""

    workspace: Workspace
    expand_person: bool
    definitions: dict[int, SurveyDefinition | None] = field(default_factory=dict)

    def definition(self, survey: Survey) -> SurveyDefinition | None:
        if survey.pk not in self.definitions:
            try:
                self.definitions[survey.pk] = definition_of(survey)
            except ValueError:
                self.definitions[survey.pk] = None
        return self.definitions[survey.pk]

    def __call__(self, response: Response, survey: Survey) -> dict[str, Any]:
        definition = self.definition(survey)
        meta = _meta(response)
        person: Any = None
        # Read the customer only when expanding: it is joined in then, and only then.
        if self.expand_person and response.customer is not None:
            person = http.person(response.customer)
        elif response.customer_id is not None:
            person = str(response.customer_id)
        return {
            "id": str(response.pk),
            "person": person,
            "survey_type": definition.score_question.type if definition else "nps",
            "score": response.score,
            "comment": response.comment or None,
            "permalink": permalink(response),
            "created_at": unix(response.answered_at),
            "updated_at": unix(response.updated_at),
            "person_properties": _person_properties(response, meta),
            "notes": list(meta.notes) if meta else [],
            "tags": list(meta.tags) if meta else [],
            "additional_answers": (
                additional_answers(response, definition, self._company(definition))
                if definition
                else []
            ),
        }

    def _company(self, definition: SurveyDefinition) -> str:
        return definition.branding.company_name or self.workspace.name


def response_json(response: Response, *, expand_person: bool = False) -> dict[str, Any]:
    """One response as Delighted's JSON outside a request: the outgoing webhooks' payload, the
    same object the API shows (related rows are read as needed)."""
    return Serialiser(response.workspace, expand_person)(response, response.survey)


def permalink(response: Response) -> str:
    """The response's page in cxloop's UI: a stable address Delighted's ``permalink`` maps to
    (the page itself belongs to the responses screens of the dashboard)."""
    return f"{settings.SITE_URL}/surveys/responses/{response.pk}"


def _meta(response: Response) -> ResponseMeta | None:
    try:
        return response.delighted
    except ObjectDoesNotExist:
        return None


def _person_properties(response: Response, meta: ResponseMeta | None) -> dict[str, Any]:
    """Given with the response, else those of the ``POST people`` that asked for the survey."""
    if meta is not None and meta.person_properties:
        return dict(meta.person_properties)
    if response.invitation_id is None or response.invitation is None:
        return {}
    try:
        return dict(response.invitation.delighted_request.properties or {})
    except ObjectDoesNotExist:
        return {}


def _value(**given: Any) -> dict[str, Any]:
    """Delighted's answer value: all four kinds present, the one that applies filled in."""
    return {"free_response": None, "scale": None, "select_one": None, "select_many": None, **given}


def additional_answers(
    response: Response, definition: SurveyDefinition, company: str
) -> list[dict[str, Any]]:
    """``response.answers`` in Delighted's shape, in the survey's question order.

    A single choice is ``select_one`` and a multiple choice ``select_many`` (option code and
    text), a free text ``free_response``; cxloop's call-back question becomes a yes/no
    ``select_one`` (the phone number stays in cxloop, with the closed loop); a competitors
    question becomes a ``select_many`` of the providers used and a ``scale`` answer (0-10) per
    provider scored. The comment question has its own field, ``comment``.
    """
    language = response.language or definition.default_language
    context = {"company": company, "branch": company}

    def text(texts: dict[str, str]) -> str:
        return fill(texts_for(texts, language, definition.default_language), context)

    def entry(answer_id: str, question_id: str, title: str, **value: Any) -> dict[str, Any]:
        kind = next(iter(value))
        return {
            "id": answer_id,
            "value": _value(**value),
            "question": {"id": question_id, "type": kind, "text": title},
        }

    comment = comment_question(definition)
    answers = response.answers or {}
    result: list[dict[str, Any]] = []
    for question in definition.questions[1:]:
        if (comment is not None and question.code == comment.code) or question.code not in answers:
            continue
        given = answers[question.code]
        answer_id, code, title = (
            f"{response.pk}-{question.code}",
            question.code,
            text(question.text),
        )
        options = {o.code: text(o.text) for o in question.options}
        if question.type == "single":
            choice = {"id": given, "text": options.get(given, given)}
            result.append(entry(answer_id, code, title, select_one=choice))
        elif question.type == "multiple":
            chosen = [{"id": c, "text": options.get(c, c)} for c in _as_list(given)]
            result.append(entry(answer_id, code, title, select_many=chosen))
        elif question.type == "text":
            result.append(entry(answer_id, code, title, free_response=given or None))
        elif question.type == "contact" and isinstance(given, dict):
            yes = bool(given.get("may_contact"))
            choice = {"id": "yes" if yes else "no", "text": "Yes" if yes else "No"}
            result.append(entry(answer_id, code, title, select_one=choice))
        elif question.type == "competitors" and isinstance(given, dict):
            uses = [{"id": name, "text": name} for name in given.get("uses") or []]
            result.append(entry(answer_id, code, title, select_many=uses))
            for name, score in (given.get("scores") or {}).items():
                result.append(entry(f"{answer_id}-{name}", f"{code}:{name}", name, scale=score))
    return result


# --- reading ----------------------------------------------------------------------------------


def _visible(workspace: Workspace) -> QuerySet[Response]:
    """The workspace's real responses with everything the JSON needs, joined in."""
    return Response.objects.filter(workspace=workspace, is_test=False).select_related(
        "delighted", "invitation__delighted_request"
    )


def _chosen_survey(workspace: Workspace, params: dict[str, Any]) -> Survey:
    """``survey`` (a cxloop survey code) or ``trend`` (a survey code or id), else the feed.

    Delighted's trends were saved subsets of one project; in cxloop a subset worth a number of
    its own is a survey, so a trend names one. An unknown one is a 422, not an empty answer: a
    Delighted trend id copied into a script must not read as "no responses".
    """
    for name in ("survey", "trend"):
        raw = params.get(name)
        if raw in (None, ""):
            continue
        wanted = str(raw)
        condition = Q(code=wanted)
        if name == "trend" and wanted.isdigit():
            condition |= Q(pk=int(wanted))
        survey = Survey.objects.filter(condition, workspace=workspace).order_by("pk").first()
        if survey is None:
            raise _invalid(name, f"names no survey of this workspace ({wanted!r})", "not_found")
        return survey
    return _feed(workspace)


def _between(
    qs: QuerySet[Response], column: str, since: dt.datetime | None, until: dt.datetime | None
) -> QuerySet[Response]:
    """Delighted's ``since``/``until`` are inclusive and whole seconds: ``until=T`` keeps an
    answer at T.4 seconds, which the JSON shows as T."""
    if since is not None:
        qs = qs.filter(**{f"{column}__gte": since})
    if until is not None:
        qs = qs.filter(**{f"{column}__lt": until + dt.timedelta(seconds=1)})
    return qs


def _list(request: HttpRequest, params: dict[str, Any]) -> HttpResponse:
    require_scope(request, "read")
    workspace = _workspace(request)
    survey = _chosen_survey(workspace, params)
    page = _whole(params, "page", 1)
    # Delighted capped per_page at 100 rather than refusing more; so does this.
    per_page = min(_whole(params, "per_page", DEFAULT_PER_PAGE), MAX_PER_PAGE)
    order = str(params.get("order") or "asc")
    if order not in ORDERS:
        raise _invalid("order", f"must be one of {', '.join(ORDERS)}")
    expand = _as_list(params.get("expand"))

    qs = _visible(workspace).filter(survey=survey)
    qs = _between(qs, "answered_at", _unix(params, "since"), _unix(params, "until"))
    qs = _between(qs, "updated_at", _unix(params, "updated_since"), _unix(params, "updated_until"))
    person_id = str(params.get("person_id") or "")
    if person_id:
        if not person_id.isdigit() or len(person_id) > MAX_ID_DIGITS:
            raise _invalid("person_id", "must be a person's id")
        qs = qs.filter(customer_id=int(person_id))
    person_email = params.get("person_email")
    if person_email not in (None, ""):
        qs = qs.filter(customer__email__iexact=str(person_email))
    if "person" in expand:
        qs = qs.select_related("customer")

    start = (page - 1) * per_page
    # One row more than the page tells whether there is a next page, without a COUNT.
    rows = list(qs.order_by(*ORDERS[order])[start : start + per_page + 1])
    serialise = Serialiser(workspace, expand_person="person" in expand)
    items = [serialise(response, survey) for response in rows[:per_page]]
    next_params: dict[str, Any] | None = None
    if len(rows) > per_page:
        next_params = dict(request.GET.lists())
        next_params["page"] = [str(page + 1)]
        next_params["per_page"] = [str(per_page)]
    return http.json_list(items, request, next_params)


def _one(workspace: Workspace, pk: str) -> Response:
    if len(pk) > MAX_ID_DIGITS:
        raise ApiError(404, "The survey response was not found.")
    response = _visible(workspace).select_related("survey", "customer").filter(pk=int(pk)).first()
    if response is None:
        raise ApiError(404, "The survey response was not found.")
    return response


def _show(
    request: HttpRequest, response: Response, expand: bool, status: int = 200
) -> JsonResponse:
    body = Serialiser(_workspace(request), expand_person=expand)(response, response.survey)
    return JsonResponse(body, status=status)


# --- writing ----------------------------------------------------------------------------------


def _score(definition: SurveyDefinition, params: dict[str, Any]) -> int:
    raw = params.get("score")
    if raw is None or raw == "":
        raise _invalid("score", "is required", "blank")
    try:
        return check_score(definition, raw)
    except ValueError as exc:
        raise _invalid("score", str(exc)) from None


def _comment(params: dict[str, Any]) -> str:
    raw = params.get("comment")
    if raw is None:
        return ""
    if not isinstance(raw, str) or len(raw) > MAX_TEXT:
        raise _invalid("comment", f"must be text of at most {MAX_TEXT} characters")
    return raw.strip()


def _properties(params: dict[str, Any]) -> dict[str, Any] | None:
    """``person_properties`` (Delighted's name) or ``properties``; None when neither is given."""
    for name in ("person_properties", "properties"):
        if name in params and params[name] is not None:
            value = params[name]
            if not isinstance(value, dict):
                raise _invalid(name, "must be an object of property name → value")
            return value
    return None


def _tags(raw: Any) -> list[str]:
    """Tags as names: a string each, or Delighted-style ``{"name": …}`` objects."""
    if not isinstance(raw, list) or len(raw) > MAX_TAGS:
        raise _invalid("tags", f"must be a list of at most {MAX_TAGS} tags")
    names: list[str] = []
    for tag in raw:
        name = tag.get("name") if isinstance(tag, dict) else tag
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise _invalid("tags", "each tag must be a name of 1 to 100 characters")
        names.append(name.strip())
    return list(dict.fromkeys(names))


def _notes(raw: Any) -> list[Any]:
    """Delighted's internal notes, kept as given: each a text or an object with ``text``."""
    if not isinstance(raw, list) or len(raw) > MAX_NOTES:
        raise _invalid("notes", f"must be a list of at most {MAX_NOTES} notes")
    for note in raw:
        text = note.get("text") if isinstance(note, dict) else note
        if not isinstance(text, str) or len(text) > MAX_TEXT:
            raise _invalid("notes", f"each note must be a text of at most {MAX_TEXT} characters")
    return raw


def _customer(workspace: Workspace, params: dict[str, Any]) -> Customer:
    """``person`` (an id, ``email:…`` or ``phone_number:…``) or ``person_email``; 422 if unknown."""
    raw = params.get("person")
    name = "person"
    if raw in (None, "") and params.get("person_email"):
        raw, name = f"email:{params['person_email']}", "person_email"
    if raw in (None, ""):
        raise _invalid("person", "is required", "blank")
    if isinstance(raw, dict):  # an expanded person sent back
        raw = raw.get("id")
    if str(raw).isdigit() and len(str(raw)) > MAX_ID_DIGITS:
        raise _invalid(name, f"names no person of this account ({raw!r})", "not_found")
    try:
        return http.find_person(workspace, str(raw))
    except ApiError:
        raise _invalid(name, f"names no person of this account ({raw!r})", "not_found") from None


def _saved(response: Response, *, created: bool) -> None:
    """Tell the closed loop and webhooks, once the change is committed."""
    transaction.on_commit(
        lambda: signals.response_saved.send(Response, response=response, created=created)
    )


def _create(request: HttpRequest, params: dict[str, Any]) -> HttpResponse:
    require_scope(request, "ingest")
    workspace = _workspace(request)
    survey = _feed(workspace)
    try:
        definition = definition_of(survey)
    except ValueError:
        raise _invalid("survey", "has an invalid definition; fix it in cxloop first") from None
    customer = _customer(workspace, params)
    score = _score(definition, params)
    comment = _comment(params)
    properties = _properties(params)
    now = clock.now()
    answered_at = _unix(params, "created_at") or now
    if answered_at > now + FUTURE_TOLERANCE:
        raise _invalid("created_at", "is more than 24 hours in the future")

    with transaction.atomic():
        response = Response.objects.create(
            workspace=workspace,
            external_id=f"delighted-{uuid.uuid4().hex}",
            survey=survey,
            customer=customer,
            score=score,
            comment=comment,
            language=definition.pick_language(customer.language),
            answered_at=answered_at,
            source=ResponseSource.IMPORT,
        )
        response.delighted = ResponseMeta.objects.create(
            response=response, person_properties=properties or {}
        )
        _saved(response, created=True)
    expand = "person" in _as_list(params.get("expand"))
    return _show(request, response, expand, status=201)


def _update(request: HttpRequest, params: dict[str, Any], response: Response) -> HttpResponse:
    """Change what may change; the rest of the object the client sends back (id, person,
    permalink, dates, additional answers…) is read-only and ignored."""
    require_scope(request, "ingest")
    try:
        definition = definition_of(response.survey)
    except ValueError:
        raise _invalid("survey", "has an invalid definition; fix it in cxloop first") from None
    if "score" in params:
        response.score = _score(definition, params)
    if "comment" in params:
        response.comment = _comment(params)
    properties = _properties(params)
    tags = _tags(params["tags"]) if params.get("tags") is not None else None
    notes = _notes(params["notes"]) if params.get("notes") is not None else None

    with transaction.atomic():
        response.save()  # bumps updated_at, as any change does
        meta = _meta(response) or ResponseMeta(response=response)
        if properties is not None:
            meta.person_properties = properties
        if tags is not None:
            meta.tags = tags
        if notes is not None:
            meta.notes = notes
        meta.save()
        response.delighted = meta
        _saved(response, created=False)
    # The official client's save() means to ask for the person expanded but sends the object
    # as it holds it: an expanded person in the body is the same wish.
    expand = "person" in _as_list(params.get("expand")) or isinstance(params.get("person"), dict)
    return _show(request, response, expand)


# --- the endpoints ----------------------------------------------------------------------------


@endpoint("GET", "POST")
def survey_responses(request: HttpRequest, params: dict[str, Any]) -> HttpResponse:
    """``GET`` lists responses, ``POST`` adds one."""
    if request.method == "POST":
        return _create(request, params)
    return _list(request, params)


@endpoint("GET", "PUT")
def survey_response(request: HttpRequest, params: dict[str, Any], pk: str) -> HttpResponse:
    """``GET`` shows one response, ``PUT`` changes it."""
    response = _one(_workspace(request), pk)
    if request.method == "PUT":
        return _update(request, params, response)
    require_scope(request, "read")
    return _show(request, response, "person" in _as_list(params.get("expand")))


@endpoint("GET")
def metrics(request: HttpRequest, params: dict[str, Any]) -> HttpResponse:
    """NPS, counts and percentages of the feed survey (or ``trend``), by ``answered_at``.

    ``groups`` other than ``core`` (Delighted's e-mail, SMS, web… counts) are not served: the
    core numbers come back whatever is asked.
    """
    require_scope(request, "read")
    workspace = _workspace(request)
    survey = _chosen_survey(workspace, params)
    qs = Response.objects.filter(workspace=workspace, survey=survey)
    qs = _between(qs, "answered_at", _unix(params, "since"), _unix(params, "until"))
    return JsonResponse(nps_summary(qs).as_dict())
