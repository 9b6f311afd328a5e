"""The HTTP conventions of Delighted's REST API v1, shared by every endpoint here.

* **Auth**: HTTP Basic with a cxloop workspace API key as the user name; the official Python
  client sends ``base64(key)`` (no colon), the Ruby client ``base64(key:)`` — both work.
* **Errors**: 401 ``{"status": 401, "message": "…"}``; 422 ``{"status": 422, "message": …,
  "errors": […]}``; 429 with ``Retry-After``; 404 ``{"status": 404, "message": …}``.
* **Parameters**: query strings (``expand[]=person``, ``properties[key]=v``) on GET, JSON (or
  form) bodies on POST/PUT/DELETE; a GET may carry a body of ``{}``. Dates are Unix integers.
* **Pagination**: ``per_page`` (default 20, max 100) and a ``Link: <absolute URL>; rel="next"``
  header the official client follows.

Every view is ``@endpoint(...)``: it receives the request with ``request.workspace`` and
``request.api_key`` set and the parameters merged into one dict.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from cxloop.accounts.models import ApiKey, Workspace
from cxloop.accounts.services import authenticate_api_key
from cxloop.customers.models import Customer
from cxloop.surveys.models import Survey, SurveyKind

from .models import CompatSettings

View = Callable[..., HttpResponse]
# Requests per key per minute before 429 (Delighted's documented limit was per key too).
RATE_LIMIT = 600


class ApiError(Exception):
    """Raised by a view to answer ``status`` with Delighted's error body."""

    def __init__(self, status: int, message: str, errors: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors


def error(status: int, message: str, errors: Any = None) -> JsonResponse:
    body: dict[str, Any] = {"status": status, "message": message}
    if errors is not None or status == 422:
        # Delighted's 422 always carried a list of {field, code, message}.
        body["errors"] = errors if errors is not None else []
    return JsonResponse(body, status=status)


def _key(request: HttpRequest) -> ApiKey | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    raw = decoded.split(":", 1)[0]  # "key" (Python client) or "key:" (Ruby client)
    return authenticate_api_key(raw) if raw else None


def _rate_limited(key: ApiKey) -> int | None:
    """Seconds to wait when this key went over RATE_LIMIT requests this minute."""
    window = int(time.time() // 60)
    name = f"delighted:rate:{key.pk}:{window}"
    count = cache.get_or_set(name, 0, 120)
    try:
        count = cache.incr(name)
    except ValueError:
        cache.set(name, 1, 120)
        count = 1
    if count > RATE_LIMIT:
        return 60 - int(time.time() % 60) or 1
    return None


def _params(request: HttpRequest) -> dict[str, Any]:
    """Query string and body as one dict; ``a[]=`` lists and ``a[k]=`` dicts decoded."""
    params: dict[str, Any] = {}
    for name in request.GET:
        values = request.GET.getlist(name)
        _put(params, name, values)
    body = request.body
    if body and body.strip():
        content_type = request.content_type or ""
        if "json" in content_type or body.lstrip()[:1] in (b"{", b"["):
            try:
                data = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise ApiError(400, "The request body is not valid JSON.") from None
            if not isinstance(data, dict):
                raise ApiError(422, "The request body must be a JSON object.")
            params.update(data)
        elif request.method in ("POST", "PUT"):
            for name in request.POST:
                _put(params, name, request.POST.getlist(name))
    return params


def _put(params: dict[str, Any], name: str, values: list[str]) -> None:
    if name.endswith("[]"):
        params.setdefault(name[:-2], []).extend(values)
    elif "[" in name and name.endswith("]"):
        base, _, sub = name[:-1].partition("[")
        target = params.setdefault(base, {})
        if isinstance(target, dict):
            target[sub] = values[-1]
    else:
        params[name] = values[-1]


def endpoint(*methods: str) -> Callable[[View], View]:
    """Delighted's auth, rate limit, parameters and errors around a view."""

    def wrap(view: View) -> View:
        @csrf_exempt
        @functools.wraps(view)
        def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            key = _key(request)
            if key is None or not {"read", "ingest", "admin"} & set(key.scopes):
                response = error(401, "Invalid API key.")
                response["WWW-Authenticate"] = 'Basic realm="cxloop"'
                return response
            if request.method not in methods:
                response = error(405, f"{request.method} is not allowed here.")
                response["Allow"] = ", ".join(methods)
                return response
            wait = _rate_limited(key)
            if wait is not None:
                response = error(429, "Too many requests; retry later.")
                response["Retry-After"] = str(wait)
                return response
            request.api_key = key  # type: ignore[attr-defined]
            request.workspace = key.workspace  # type: ignore[attr-defined]
            try:
                params = _params(request)
                return view(request, params, *args, **kwargs)
            except ApiError as exc:
                return error(exc.status, exc.message, exc.errors)

        return inner

    return wrap


def require_scope(request: HttpRequest, scope: str) -> None:
    if scope not in request.api_key.scopes and "admin" not in request.api_key.scopes:  # type: ignore[attr-defined]
        raise ApiError(401, f"This API key lacks the {scope} scope.")


def unix(value: dt.datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def from_unix(params: dict[str, Any], name: str) -> dt.datetime | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return dt.datetime.fromtimestamp(int(str(raw)), dt.UTC)
    except (TypeError, ValueError, OverflowError):
        raise ApiError(422, f"{name} must be a Unix timestamp (seconds).") from None


def integer(params: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ApiError(422, f"{name} must be a whole number.") from None
    if not low <= value <= high:
        raise ApiError(422, f"{name} must be from {low} to {high}.")
    return value


def json_list(
    items: list[Any], request: HttpRequest, next_params: dict[str, Any] | None
) -> JsonResponse:
    """A JSON array, with a ``Link: <…>; rel="next"`` header when there is a next page."""
    response = JsonResponse(items, safe=False)
    if next_params is not None:
        url = f"{settings.SITE_URL}{request.path}?{urlencode(next_params, doseq=True)}"
        response["Link"] = f'<{url}>; rel="next"'
    return response


def compat_survey(workspace: Workspace) -> Survey:
    """The survey the compatibility API feeds: the workspace's setting, else ``after-visit``,
    else the first active transactional NPS survey."""
    chosen = CompatSettings.objects.filter(workspace=workspace).select_related("survey").first()
    if chosen is not None and chosen.survey is not None:
        return chosen.survey
    survey = Survey.objects.filter(workspace=workspace, code="after-visit").first()
    if survey is not None:
        return survey
    for survey in Survey.objects.filter(
        workspace=workspace, kind=SurveyKind.TRANSACTIONAL, is_active=True
    ).order_by("pk"):
        if (survey.definition.get("questions") or [{}])[0].get("type") == "nps":
            return survey
    raise ApiError(422, "No NPS survey to feed: create one or choose it in the settings.")


def person(customer: Customer) -> dict[str, Any]:
    """A customer as Delighted's person object."""
    return {
        "id": str(customer.pk),
        "email": customer.email or None,
        "name": customer.name or None,
        "phone_number": customer.phone or None,
        "created_at": unix(customer.created_at),
    }


def find_person(workspace: Workspace, identifier: str) -> Customer:
    """``123`` (id), ``email:ADDRESS`` or ``phone_number:+E164`` → the customer, else 404."""
    customers = Customer.objects.filter(workspace=workspace)
    kind, _, value = identifier.partition(":")
    found: Customer | None
    if not value:
        is_id = identifier.isdigit() and len(identifier) <= 18  # past 18 digits: not an id
        found = customers.filter(pk=int(identifier)).first() if is_id else None
        if found is None and "@" in identifier:
            found = customers.filter(email__iexact=identifier).first()
    elif kind == "email":
        found = customers.filter(email__iexact=value).first()
    elif kind == "phone_number":
        found = customers.filter(phone=value).first()
    else:
        found = None
    if found is None:
        raise ApiError(404, "The person was not found.")
    return found


# Delighted's special person properties that name something in the survey's texts.
PLACEHOLDER_PROPERTIES = {"question_product_name": "product"}


def placeholders_of(properties: dict[str, Any]) -> dict[str, str]:
    """``{"question_product_name": "Gold card"}`` → ``{"product": "Gold card"}`` for the
    invitation: the survey's ``{product}`` then reads as Delighted's question did."""
    return {
        placeholder: str(properties[name])[:200]
        for name, placeholder in PLACEHOLDER_PROPERTIES.items()
        if isinstance(properties.get(name), (str, int, float)) and str(properties[name]).strip()
    }
