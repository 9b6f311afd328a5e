from __future__ import annotations

import datetime as dt
import logging

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone, translation

from cxloop.core import clock
from cxloop.core.permissions import workspace_required

from . import queries

log = logging.getLogger(__name__)


def language_label(code: str) -> str:
    """ "ro" → "Romanian (ro)" in the reader's language; an unknown code stays as it is."""
    try:
        info = translation.get_language_info(code)
    except KeyError:
        return code
    return f"{info['name_translated']} ({code})"


@workspace_required()
def home(request: HttpRequest) -> HttpResponse:
    # altair takes most of a second to import: only pages that draw charts pay for it.
    from . import charts

    workspace = request.workspace  # type: ignore[attr-defined]
    glance = queries.glance(workspace)
    # Weeks are cut in the workspace's time zone (activated by WorkspaceMiddleware), as
    # ``queries.glance`` cuts them.
    today = timezone.localdate(clock.now())
    chart = types_chart = None
    charts_failed = False
    try:
        chart = charts.weekly_interactions_svg(
            glance.weekly, today, since=today - dt.timedelta(days=365)
        )
        types_chart = charts.interaction_types_svg(glance.types_30d)
    except Exception:
        # A chart illustrates figures the page shows anyway: it never takes the page down.
        log.exception("home_charts_failed workspace=%s", workspace.pk)
        charts_failed = True
    context = {
        "glance": glance,
        "chart": chart,
        "types_chart": types_chart,
        "charts_failed": charts_failed,
        "languages": [(language_label(code), n) for code, n in glance.languages],
    }
    return render(request, "core/home.html", context)


def healthz(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
