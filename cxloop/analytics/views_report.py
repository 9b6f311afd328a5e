"""/analytics/report.pdf?month=YYYY-MM: the monthly NPS report as a PDF (docs/monthly-report.md).

The dashboard's permissions and scoping: the employee role gets 403 (no
``VIEW_TEAM_FEEDBACK``), a supervisor gets their teams, a supervisor without a team 403; the
roles that see all feedback get the company. No month: the previous one in the workspace's
time zone; a month that is not ``YYYY-MM`` or lies in the future is a 400.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from cxloop.accounts.models import Membership, Permission
from cxloop.core import clock
from cxloop.core.permissions import workspace_required

from . import report, rollups


@workspace_required(Permission.VIEW_TEAM_FEEDBACK)
def report_pdf(request: HttpRequest) -> HttpResponse:
    membership: Membership = request.membership  # type: ignore[attr-defined]
    workspace = membership.workspace
    text = request.GET.get("month", "").strip()
    if text:
        try:
            month = report.parse_month(text)
        except ValueError:
            return HttpResponseBadRequest(
                _("Choose a month as YYYY-MM, e.g. 2026-03."), content_type="text/plain"
            )
        today = timezone.localtime(clock.now(), rollups.tz_of(workspace)).date()
        if month > today:
            return HttpResponseBadRequest(
                _("That month has not begun yet."), content_type="text/plain"
            )
    else:
        month = report.default_month(workspace)
    try:
        report.scope_of(membership)
    except LookupError:
        return HttpResponse(
            _("The report needs teams: you are not recorded as anyone's supervisor."),
            status=403,
            content_type="text/plain",
        )
    _built, pdf = report.report_pdf(workspace, month, membership)
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{report.filename(workspace, month)}"'
    response["Cache-Control"] = "private, no-store"
    return response
