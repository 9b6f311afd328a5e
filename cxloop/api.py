"""The HTTP API, ``/api/v1``: authentication, error shapes and the routers of each app."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, ValidationError
from ninja.security import HttpBearer

from cxloop.accounts.models import ApiKey
from cxloop.accounts.services import authenticate_api_key
from cxloop.core.api import Invalid
from cxloop.core.cursor import InvalidCursor


class ApiKeyAuth(HttpBearer):
    """``Authorization: Bearer cxl_…``, a workspace API key."""

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        key = authenticate_api_key(token)
        if key is not None:
            request.api_key = key  # type: ignore[attr-defined]
            request.workspace = key.workspace  # type: ignore[attr-defined]
        return key


api = NinjaAPI(
    title="cxloop API",
    version="1",
    description=(
        "Push customers and interactions from your CRM/ERP and read them back; configure "
        "surveys, read and import responses, unsubscribe customers and see why a customer "
        "was or wasn't surveyed; work the closed loop's cases (call-back, reassign, call "
        "attempts, close) and its problem register; read coded comments (language, sentiment, "
        "emotion, reasons) and correct them. "
        "Authenticate with `Authorization: Bearer <key>`; create keys with "
        "`cxloop apikey create` or on the API keys page. Errors are JSON: "
        '`{"detail": "…", "errors": {"field": ["message"]}}`.'
    ),
    auth=ApiKeyAuth(),
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
)


def _error(request: HttpRequest, status: int, detail: str, **extra: Any) -> HttpResponse:
    return api.create_response(request, {"detail": detail, **extra}, status=status)


def _loc(parts: list[Any]) -> str:
    # ninja puts "body"/"query" and the parameter name first; the caller knows neither.
    trimmed = [str(p) for p in parts if p not in ("body", "query", "path", "payload", "filters")]
    return ".".join(trimmed) or "__all__"


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    for err in exc.errors:
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "json_invalid":
            return _error(request, 400, f"the body is not valid JSON: {err.get('ctx', {})}")
        errors.setdefault(_loc(list(err.get("loc", []))), []).append(message)
    return _error(request, 422, "the request is not valid", errors=errors)


@api.exception_handler(AuthenticationError)
def on_auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _error(request, 401, "missing, unknown or revoked API key (Authorization: Bearer …)")


@api.exception_handler(RequestDataTooBig)
def on_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return _error(request, 413, "the request body is too large")


@api.exception_handler(Invalid)
def on_invalid(request: HttpRequest, exc: Invalid) -> HttpResponse:
    return _error(request, 422, exc.detail, errors=exc.errors)


@api.exception_handler(InvalidCursor)
def on_bad_cursor(request: HttpRequest, exc: InvalidCursor) -> HttpResponse:
    return _error(request, 422, str(exc), errors={"cursor": [str(exc)]})


def _register() -> None:
    from cxloop.analytics.api import router as analytics
    from cxloop.analytics.api_initiatives import router as analytics_initiatives
    from cxloop.analytics.api_more import router as analytics_more
    from cxloop.analytics.api_plan import router as analytics_plan
    from cxloop.cases import api as cases
    from cxloop.customers.api import router as customers
    from cxloop.interactions.api import router as interactions
    from cxloop.surveys import api as surveys
    from cxloop.text.api import comments

    api.add_router("/customers", customers, tags=["customers"])
    api.add_router("/interactions", interactions, tags=["interactions"])
    api.add_router("/responses", surveys.responses, tags=["responses"])
    api.add_router("/surveys", surveys.surveys, tags=["surveys"])
    api.add_router("/unsubscribes", surveys.unsubscribes, tags=["unsubscribes"])
    api.add_router("/decisions", surveys.decisions, tags=["decisions"])
    api.add_router("/cases", cases.cases, tags=["cases"])
    api.add_router("/problems", cases.problems, tags=["problems"])
    api.add_router("/analytics", analytics, tags=["analytics"])
    api.add_router("/analytics", analytics_plan, tags=["analytics"])
    api.add_router("/analytics", analytics_more, tags=["analytics"])
    api.add_router("/analytics", analytics_initiatives, tags=["analytics"])
    api.add_router("/comments", comments, tags=["comments"])


_register()
