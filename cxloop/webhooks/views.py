"""The workspace's webhook endpoints: list and add, rotate the secret, switch on and off,
send a test event, and each endpoint's delivery log. Configuring needs ``CONFIGURE``."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from cxloop.accounts.models import Permission
from cxloop.core.permissions import workspace_required

from . import delivery, events
from .forms import EndpointForm
from .models import Delivery, DeliveryAttempt, Endpoint
from .services import create_endpoint, rotate_secret, set_active

LOG_ROWS = 50


@workspace_required(Permission.CONFIGURE)
def endpoints(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    form = EndpointForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        created = create_endpoint(
            workspace, form.cleaned_data["url"], form.cleaned_data["event_types"],
            via="web", actor=request.user,
        )  # fmt: skip
        form = EndpointForm()
    rows = Endpoint.for_workspace(workspace)
    return render(
        request,
        "webhooks/endpoints.html",
        # The secret of a new endpoint is shown this once (rotating gives a new one).
        {"form": form, "endpoints": rows, "created": created},
    )


def _detail(request: HttpRequest, endpoint: Endpoint, new_secret: str = "") -> HttpResponse:
    deliveries = (
        Delivery.objects.filter(endpoint=endpoint)
        .annotate(last_attempt_at=Max("log__at"))
        .order_by("-created_at", "-pk")[:LOG_ROWS]
    )
    attempts = (
        DeliveryAttempt.objects.filter(delivery__endpoint=endpoint)
        .select_related("delivery")
        .order_by("-at", "-pk")[:LOG_ROWS]
    )
    return render(
        request,
        "webhooks/detail.html",
        {
            "endpoint": endpoint,
            "deliveries": deliveries,
            "attempts": attempts,
            "new_secret": new_secret,
            "backoff": [_wait(seconds) for seconds in delivery.BACKOFF],
            "disable_after": delivery.DISABLE_AFTER,
        },
    )


def _wait(seconds: int) -> str:
    if seconds % 3600 == 0:
        return _("%(n)s h") % {"n": seconds // 3600}
    if seconds % 60 == 0:
        return _("%(n)s min") % {"n": seconds // 60}
    return _("%(n)s s") % {"n": seconds}


@workspace_required(Permission.CONFIGURE)
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = Endpoint.get_for_workspace(request.workspace, pk=pk)  # type: ignore[attr-defined]
    return _detail(request, endpoint)


@workspace_required(Permission.CONFIGURE)
@require_POST
def rotate(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = Endpoint.get_for_workspace(request.workspace, pk=pk)  # type: ignore[attr-defined]
    secret = rotate_secret(endpoint, via="web", actor=request.user)
    return _detail(request, endpoint, new_secret=secret)


@workspace_required(Permission.CONFIGURE)
@require_POST
def active(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = Endpoint.get_for_workspace(request.workspace, pk=pk)  # type: ignore[attr-defined]
    on = request.POST.get("active") == "1"
    if set_active(endpoint, on, via="web", actor=request.user):
        if on:
            messages.success(request, _("Switched on: its waiting events go out now."))
        else:
            messages.success(request, _("Switched off: its events wait until it is on again."))
    return redirect("webhooks:detail", pk=endpoint.pk)


@workspace_required(Permission.CONFIGURE)
@require_POST
def test_event(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = Endpoint.get_for_workspace(request.workspace, pk=pk)  # type: ignore[attr-defined]
    events.ping(endpoint)
    if endpoint.is_active:
        messages.success(
            request,
            _(
                "A test event (ping) is on its way; its result appears in the log below "
                "within a few seconds."
            ),
        )
    else:
        messages.warning(
            request, _("A test event (ping) is waiting: it goes out when the endpoint is on.")
        )
    return redirect("webhooks:detail", pk=endpoint.pk)
