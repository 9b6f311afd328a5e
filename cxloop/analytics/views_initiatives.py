"""Initiatives (/analytics/initiatives): the list with the "new initiative" form, and each
initiative's page with its before/after numbers, edit and delete (``docs/initiatives.md``).

Numbers from ``initiatives.effect``. Who may do what: admin, CX manager and analyst read
(``VIEW_ALL_FEEDBACK``: an initiative is judged on the whole scope's answers); admin and CX
manager create, edit and delete, each change audit-logged; supervisors and employees get 403.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import altair as alt
from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cxloop.accounts.models import Membership, Permission, Role, Workspace
from cxloop.accounts.services import audit
from cxloop.core import charts as core_charts
from cxloop.core import clock
from cxloop.core.permissions import workspace_required
from cxloop.organisation.models import Branch, Product
from cxloop.surveys.models import Survey

from . import rollups
from .initiatives import DEFAULT_WINDOW, WINDOWS, Effect, effect, effects
from .models import Initiative
from .views import nps_surveys

log = logging.getLogger(__name__)

EDITORS = (Role.ADMIN, Role.CX_MANAGER)
# An initiative may be planned ahead, but not further than this.
MAX_AHEAD_DAYS = 366
EARLIEST = dt.date(2000, 1, 1)
LIST_LIMIT = 200


def _today(workspace: Workspace) -> dt.date:
    return timezone.localtime(clock.now(), rollups.tz_of(workspace)).date()


def _can_edit(membership: Membership) -> bool:
    return membership.role in EDITORS


class InitiativeForm(forms.ModelForm):
    date = forms.DateField(
        label=gettext_lazy("Date it took effect"),
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    branches = forms.ModelMultipleChoiceField(
        label=gettext_lazy("Branches"),
        queryset=Branch.objects.none(),
        required=False,
        help_text=gettext_lazy("None: every branch."),
    )
    products = forms.ModelMultipleChoiceField(
        label=gettext_lazy("Products"),
        queryset=Product.objects.none(),
        required=False,
        help_text=gettext_lazy("None: every product."),
    )
    survey = forms.ModelChoiceField(
        label=gettext_lazy("Survey"),
        queryset=Survey.objects.none(),
        required=False,
        empty_label=gettext_lazy("All NPS surveys"),
    )

    class Meta:
        model = Initiative
        fields = ["name", "date", "description", "branches", "products", "survey"]
        labels = {"name": gettext_lazy("Name"), "description": gettext_lazy("Description")}
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args: Any, workspace: Workspace, today: dt.date, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.today = today
        branches = self.fields["branches"]
        products = self.fields["products"]
        survey = self.fields["survey"]
        assert isinstance(branches, forms.ModelMultipleChoiceField)
        assert isinstance(products, forms.ModelMultipleChoiceField)
        assert isinstance(survey, forms.ModelChoiceField)
        branches.queryset = Branch.objects.filter(workspace=workspace).order_by("name", "code")
        products.queryset = Product.objects.filter(workspace=workspace).order_by("name", "code")
        survey.queryset = Survey.objects.filter(pk__in=[s.pk for s in nps_surveys(workspace)])

    def clean_name(self) -> str:
        name = str(self.cleaned_data.get("name") or "").strip()
        if not name:
            raise forms.ValidationError(_("Give the initiative a name."))
        return name

    def clean_date(self) -> dt.date:
        date: dt.date = self.cleaned_data["date"]
        if date > self.today + dt.timedelta(days=MAX_AHEAD_DAYS):
            raise forms.ValidationError(
                _("The date is more than a year ahead; plan it closer to the change.")
            )
        if date < EARLIEST:
            raise forms.ValidationError(_("The date is too far in the past."))
        return date


def _changes(initiative: Initiative) -> dict[str, Any]:
    return {
        "name": initiative.name,
        "date": initiative.date.isoformat(),
        "description": initiative.description,
        "branches": sorted(initiative.branches.values_list("code", flat=True)),
        "products": sorted(initiative.products.values_list("code", flat=True)),
        "survey": initiative.survey.code if initiative.survey is not None else None,
    }


def _save(form: InitiativeForm, request: HttpRequest, membership: Membership) -> Initiative:
    initiative: Initiative = form.save(commit=False)
    created = initiative.pk is None
    initiative.workspace = membership.workspace
    if created:
        initiative.created_by = membership.user
    initiative.save()
    form.save_m2m()
    audit(
        membership.workspace,
        "initiative.create" if created else "initiative.update",
        via="web",
        actor=request.user,
        obj=initiative,
        changes=_changes(initiative),
    )
    return initiative


def _scope_text(initiative: Initiative) -> str:
    branches = [b.name for b in initiative.branches.all()]
    products = [p.name for p in initiative.products.all()]
    parts = [", ".join(branches) if branches else _("all branches")]
    parts.append(", ".join(products) if products else _("all products"))
    if initiative.survey is not None:
        parts.append(initiative.survey.name)
    return " · ".join(parts)


def verdict_labels() -> dict[str, str]:
    return {
        "improved": _("improved"),
        "worsened": _("worsened"),
        "no_change": _("no significant change"),
        "insufficient_data": _("too few answers"),
        "not_yet": _("not in effect yet"),
        "less": _("cited less"),
        "more": _("cited more"),
        "untested": _("not tested"),
    }


def _p_text(p: float | None) -> str:
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _r1(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _pct(share: float | None) -> float | None:
    return None if share is None else round(100.0 * share, 1)


def _row(initiative: Initiative, result: Effect) -> dict[str, Any]:
    labels = verdict_labels()
    return {
        "initiative": initiative,
        "scope": _scope_text(initiative),
        "before": _r1(result.before.nps),
        "after": _r1(result.after.nps),
        "before_n": result.before.n,
        "after_n": result.after.n,
        "diff": _r1(result.diff),
        "verdict": result.verdict,
        "verdict_label": labels[result.verdict],
    }


def _chart(result: Effect) -> str | None:
    """Two bars, before and after, with their intervals as black rules."""
    if result.before.nps is None and result.after.nps is None:
        return None
    data = [
        {
            "label": label,
            "nps": stats.nps if stats.nps is not None else 0.0,
            "low": stats.ci_low,
            "high": stats.ci_high,
            "text": "—" if stats.nps is None else f"{stats.nps:.0f}  (n {stats.n})",
            "has": stats.nps is not None,
        }
        for label, stats in ((_("Before"), result.before), (_("After"), result.after))
    ]
    drawn = [row for row in data if row["has"]]
    order = [str(row["label"]) for row in data]
    y_scale = alt.Scale(domain=[-100, 100], nice=False)
    base = alt.Chart(alt.Data(values=drawn)).encode(
        x=alt.X("label:N", title=None, sort=order, axis=alt.Axis(labelAngle=0, ticks=False))
    )
    bars = base.mark_bar(size=56, color=core_charts.BRAND).encode(
        y=alt.Y("nps:Q", title=_("NPS"), scale=y_scale), y2=alt.Y2Datum(0)
    )
    errors = base.mark_rule(color=core_charts.INK, strokeWidth=2).encode(
        y=alt.Y("low:Q", scale=y_scale), y2="high:Q"
    )
    labels = base.mark_text(dx=34, align="left", color=core_charts.MUTED, fontSize=12).encode(
        y=alt.Y("nps:Q", scale=y_scale), text="text:N"
    )
    chart = (
        alt.layer(bars, errors, labels)
        .properties(
            width=360,
            height=220,
            description=_("NPS before and after, with intervals"),
            padding={"left": 4, "top": 6, "bottom": 4, "right": 8},
        )
        .configure(**core_charts._config())
    )
    return core_charts.render_svg(chart)


def _window_of(request: HttpRequest) -> int:
    try:
        window = int(request.GET.get("window", DEFAULT_WINDOW))
    except ValueError:
        return DEFAULT_WINDOW
    return window if window in WINDOWS else DEFAULT_WINDOW


@workspace_required(Permission.VIEW_ALL_FEEDBACK)
def initiatives_page(request: HttpRequest) -> HttpResponse:
    membership: Membership = request.membership  # type: ignore[attr-defined]
    workspace = membership.workspace
    today = _today(workspace)
    can_edit = _can_edit(membership)
    form = None
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied
        form = InitiativeForm(request.POST, workspace=workspace, today=today)
        if form.is_valid():
            initiative = _save(form, request, membership)
            messages.success(request, _("Initiative “%(name)s” saved.") % {"name": initiative.name})
            return redirect(reverse("analytics:initiative", args=[initiative.pk]))
    elif can_edit:
        form = InitiativeForm(workspace=workspace, today=today)

    window = _window_of(request)
    found = (
        Initiative.objects.filter(workspace=workspace)
        .select_related("survey")
        .prefetch_related("branches", "products")
        .order_by("-date", "-pk")[:LIST_LIMIT]
    )
    items = list(found)
    for item in items:
        item.workspace = workspace  # known: no query each
    rows = [
        _row(i, result)
        for i, result in zip(items, effects(items, today=today, window=window), strict=True)
    ]
    context = {
        "rows": rows,
        "form": form,
        "can_edit": can_edit,
        "window": window,
        "windows": WINDOWS,
        "today": today,
    }
    return render(
        request, "analytics/initiatives.html", context, status=400 if form and form.errors else 200
    )


@workspace_required(Permission.VIEW_ALL_FEEDBACK)
def initiative_page(request: HttpRequest, pk: int) -> HttpResponse:
    membership: Membership = request.membership  # type: ignore[attr-defined]
    workspace = membership.workspace
    initiative = get_object_or_404(
        Initiative.objects.select_related("survey").prefetch_related("branches", "products"),
        pk=pk,
        workspace=workspace,
    )
    today = _today(workspace)
    can_edit = _can_edit(membership)
    form = None
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied
        if request.POST.get("action") == "delete":
            changes = _changes(initiative)
            audit(
                workspace,
                "initiative.delete",
                via="web",
                actor=request.user,
                obj=initiative,
                changes=changes,
            )
            name = initiative.name
            initiative.delete()
            messages.success(request, _("Initiative “%(name)s” deleted.") % {"name": name})
            return redirect(reverse("analytics:initiatives"))
        form = InitiativeForm(request.POST, instance=initiative, workspace=workspace, today=today)
        if form.is_valid():
            saved = _save(form, request, membership)
            messages.success(request, _("Initiative “%(name)s” saved.") % {"name": saved.name})
            return redirect(reverse("analytics:initiative", args=[saved.pk]))
        # Show the numbers of what is stored, not of the rejected input.
        initiative.refresh_from_db()
    elif can_edit:
        form = InitiativeForm(instance=initiative, workspace=workspace, today=today)

    window = _window_of(request)
    result = effect(initiative, today=today, window=window)
    labels = verdict_labels()
    chart = None
    chart_failed = False
    try:
        chart = _chart(result)
    except Exception:
        # The table beside the chart says the same: the page never fails for a chart.
        log.exception("analytics_chart_failed chart=initiative")
        chart_failed = True
    reasons = [
        {
            "code": r.code,
            "label": r.label,
            "before": _pct(r.before_share),
            "after": _pct(r.after_share),
            "before_citing": r.before_citing,
            "after_citing": r.after_citing,
            "diff": _r1(r.diff_points),
            "p_text": _p_text(r.p_value),
            "q_text": _p_text(r.q_value),
            "verdict": r.verdict,
            "verdict_label": labels[r.verdict],
        }
        for r in result.reasons
    ]
    context = {
        "initiative": initiative,
        "scope": _scope_text(initiative),
        "result": result,
        "row": _row(initiative, result),
        "stats": {
            "before": {
                "n": result.before.n,
                "nps": _r1(result.before.nps),
                "low": _r1(result.before.ci_low),
                "high": _r1(result.before.ci_high),
            },
            "after": {
                "n": result.after.n,
                "nps": _r1(result.after.nps),
                "low": _r1(result.after.ci_low),
                "high": _r1(result.after.ci_high),
            },
        },
        "z": round(result.z, 2),
        "p_text": _p_text(result.p_value),
        "reasons": reasons,
        "chart": chart,
        "chart_failed": chart_failed,
        "form": form,
        "can_edit": can_edit,
        "window": window,
        "windows": WINDOWS,
    }
    status = 400 if form is not None and form.errors else 200
    return render(request, "analytics/initiative.html", context, status=status)
