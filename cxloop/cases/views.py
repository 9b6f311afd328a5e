"""The closed loop's pages: the inbox, a case, an employee's feedback, the problem register and
the settings (docs/closed-loop.md).

Who sees what is decided in one place, ``services.visible_cases``: a case outside it answers
404, whatever the role. Every change is a POST with CSRF that calls a function of
``services`` (which writes the case's history and its webhook event); a ``CaseError`` comes
back as the form's error and nothing is saved. Analysts read everything and change nothing
(403). Customers' phone numbers are shown only to roles with ``VIEW_CUSTOMER_CONTACTS``, and
the employee role never sees who a customer is.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import get_language, gettext_lazy, ngettext
from django.utils.translation import gettext as _

from cxloop.accounts.models import Membership, Permission, Role
from cxloop.accounts.services import audit
from cxloop.core import clock
from cxloop.core import cursor as keyset
from cxloop.core.permissions import workspace_required
from cxloop.interactions.models import Interaction
from cxloop.organisation.models import Employee, Team
from cxloop.surveys.models import Response

from . import services
from .forms import (
    AlertRuleForm,
    AssignForm,
    AttemptForm,
    CallbackForm,
    CaseSettingsForm,
    CloseForm,
    CoachingForm,
    EscalateForm,
    HolidayForm,
    InboxFilter,
    ProblemForm,
    ReasonCodeForm,
    ReopenForm,
)
from .models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    AlertRule,
    AttemptResult,
    Case,
    CaseEvent,
    CaseSettings,
    CaseStatus,
    CoachingNote,
    EventKind,
    Holiday,
    Problem,
    ProblemStatus,
    ReasonCode,
    Solved,
)
from .services import CaseError

log = logging.getLogger(__name__)

PAGE_SIZE = 50
# The inbox counts its list up to this many rows; beyond, it says "more than".
COUNT_LIMIT = 1000
EMPLOYEE_NPS_DAYS = 90


def _membership(request: HttpRequest) -> Membership:
    return request.membership  # type: ignore[attr-defined]


def _span(minutes: int) -> str:
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return _("%(d)s d %(h)s h") % {"d": days, "h": hours}
    if hours:
        return _("%(h)s h %(m)s min") % {"h": hours, "m": mins}
    return _("%(m)s min") % {"m": mins}


def time_left(due: dt.datetime, now: dt.datetime) -> tuple[str, bool]:
    """("2 h 10 min left", False) or ("overdue by 35 min", True)."""
    seconds = (due - now).total_seconds()
    if seconds >= 0:
        return _("%(span)s left") % {"span": _span(int(seconds // 60))}, False
    return _("overdue by %(span)s") % {"span": _span(int(-seconds // 60))}, True


def _mine(membership: Membership) -> list[int]:
    return list(services.my_employees(membership).values_list("pk", flat=True))


# --- the inbox ------------------------------------------------------------------------------


def _tabs(membership: Membership) -> list[tuple[str, str]]:
    tabs = [("mine", _("My open cases"))]
    if membership.role == Role.SUPERVISOR:
        tabs.append(("teams", _("My teams")))
    if membership.role in (Role.ADMIN, Role.CX_MANAGER):
        tabs.append(("queue", _("CX queue")))
    if membership.can(Permission.VIEW_ALL_FEEDBACK):
        tabs.append(("all", _("All open")))
    tabs.append(("closed", _("Closed")))
    return tabs


def _tab_cases(membership: Membership, tab: str, mine: list[int]) -> QuerySet[Case]:
    workspace_cases = Case.objects.filter(workspace=membership.workspace)
    if tab == "mine":
        return workspace_cases.filter(assignee__in=mine, status__in=OPEN_STATUSES)
    if tab == "teams":
        return services.visible_cases(membership).filter(status__in=OPEN_STATUSES)
    if tab == "queue":
        return workspace_cases.filter(assignee__isnull=True, status__in=OPEN_STATUSES)
    if tab == "all":
        return workspace_cases.filter(status__in=OPEN_STATUSES)
    return services.visible_cases(membership).filter(status__in=CLOSED_STATUSES)


def _keyset_page(
    qs: QuerySet[Case], field: str, descending: bool, after: str
) -> tuple[list[Case], str | None]:
    """One page ordered by (``field``, pk), and the cursor of the next: no OFFSET, no COUNT,
    as fast on the 2 000th page as on the first (the partial indexes cover the open lists)."""
    if after:
        try:
            value, pk = keyset.decode(after)
        except keyset.InvalidCursor:
            pass
        else:
            op = "lt" if descending else "gt"
            qs = qs.filter(Q(**{f"{field}__{op}": value}) | Q(**{field: value, f"pk__{op}": pk}))
    order = (f"-{field}", "-pk") if descending else (field, "pk")
    rows = list(qs.order_by(*order)[: PAGE_SIZE + 1])
    if len(rows) <= PAGE_SIZE:
        return rows, None
    last = rows[PAGE_SIZE - 1]
    return rows[:PAGE_SIZE], keyset.encode(getattr(last, field), last.pk)


@workspace_required(Permission.VIEW_TEAM_FEEDBACK)
def inbox(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    workspace = membership.workspace
    mine = _mine(membership)
    tabs = _tabs(membership)
    allowed = [key for key, _label in tabs]
    tab = request.GET.get("tab", "")
    if tab not in allowed:
        # Those who call back start with their own cases; HQ, with no cases of its own,
        # with everything open.
        tab = "mine" if mine or "all" not in allowed else "all"
    closed = tab == "closed"
    filters = InboxFilter(request.GET or None, workspace=workspace, closed=closed)
    cases = _tab_cases(membership, tab, mine)
    if filters.is_valid():
        data = filters.cleaned_data
        if data["status"]:
            cases = cases.filter(status=data["status"])
        if data["branch"] is not None:
            cases = cases.filter(branch=data["branch"])
        if data["priority"]:
            cases = cases.filter(priority=data["priority"])
    counted = cases.values("pk")[: COUNT_LIMIT + 1].count()
    listed = cases.select_related(
        "response", "customer", "branch", "employee", "assignee", "survey", "at_risk__account"
    ).defer("response__answers", "customer__attributes", "customer__consent")
    # Open cases by deadline, closed ones newest first: both orders have an index (the
    # partial (assignee, due_at) and (workspace, due_at) ones, and (workspace, updated_at)).
    rows, next_cursor = _keyset_page(
        listed, "updated_at" if closed else "due_at", closed, request.GET.get("after", "")
    )
    now = clock.now()
    items = []
    for case in rows:
        left, late = time_left(case.due_at, now)
        items.append({"case": case, "left": left, "late": late or case.breached})
    query = request.GET.copy()
    query.pop("after", None)
    return render(
        request,
        "cases/inbox.html",
        {
            "tabs": tabs,
            "tab": tab,
            "filters": filters,
            "items": items,
            "count": counted,
            "count_capped": counted > COUNT_LIMIT,
            "count_limit": COUNT_LIMIT,
            "next_cursor": next_cursor,
            "first_page": bool(request.GET.get("after")),
            "query": query.urlencode(),
            "can_configure": membership.can(Permission.CONFIGURE),
        },
    )


# --- a case ---------------------------------------------------------------------------------


def visible_case(membership: Membership, pk: int) -> Case:
    case = (
        services.visible_cases(membership)
        .select_related(
            "workspace",
            "response__survey",
            "customer",
            "survey",
            "branch",
            "employee__team",
            "assignee",
            "problem",
            "product",
            "channel",
            "touchpoint",
            "at_risk__account",
        )
        .filter(pk=pk)
        .first()
    )
    if case is None:
        raise Http404("no such case here")
    return case


def answer_rows(case: Case, response: Response) -> tuple[str, list[tuple[str, str]]]:
    """The score question's text and the other answers in the survey's words, as
    surveys.views.response_detail shows them (the contact question is shown apart), with the
    placeholders ({company}, {branch}…) filled in as the respondent read them."""
    from cxloop.surveys.definition import fill
    from cxloop.surveys.render import answer_rows, definition_of

    definition = definition_of(response.survey)
    lang = definition.pick_language(get_language() or definition.default_language)
    company = definition.branding.company_name or case.workspace.name
    context = {
        "company": company,
        "branch": case.branch.name if case.branch else company,
        "product": case.product.name if case.product else "",
        "touchpoint": case.touchpoint.name if case.touchpoint else "",
        "employee": case.employee.name.split(" ")[0] if case.employee else "",
    }
    rows = answer_rows(definition, response.answers or {}, lang, context, contact=False)
    score = definition.score_question
    return fill(score.text.get(lang) or score.text[definition.default_language], context), rows


def _event_result(event: CaseEvent) -> str:
    if event.kind == EventKind.ATTEMPT:
        return str(dict(AttemptResult.choices).get(event.result, event.result))
    if event.kind == EventKind.CLOSED:
        return str(dict(CaseStatus.choices).get(event.result, event.result))
    if event.kind == EventKind.CALLBACK and event.result:
        solved = dict(Solved.choices).get(event.result, event.result)
        return _("solved: %(solved)s") % {"solved": solved}
    return event.result


class _QuickSelect(forms.Select):
    """The same ``<select>`` built in Python: Django renders every option through a template
    (about 25 µs each), and the employee lists offer every active employee of the workspace
    (2,550 in benchmarks/cases.py: two such lists cost the case page 120 ms of CPU)."""

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> Any:
        from django.forms.utils import flatatt
        from django.utils.html import format_html, format_html_join
        from django.utils.safestring import mark_safe

        chosen = set(self.format_value(value))
        options = format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            (
                (str(key), mark_safe(" selected") if str(key) in chosen else "", label)
                for key, label in self.choices
            ),
        )
        built = flatatt(self.build_attrs(self.attrs, attrs))
        return format_html('<select name="{}"{}>{}</select>', name, built, options)


def _quick_selects(made: dict[str, forms.Form]) -> dict[str, forms.Form]:
    for form, name in (("assign", "assignee"), ("escalate", "owner")):
        field = made[form].fields[name]
        quick = _QuickSelect(attrs=field.widget.attrs)
        quick.choices = field.widget.choices
        field.widget = quick
    return made


def _case_forms(case: Case, bound: dict[str, forms.Form]) -> dict[str, forms.Form]:
    workspace = case.workspace
    unbound: dict[str, Callable[[], forms.Form]] = {
        "attempt": AttemptForm,
        "callback": lambda: CallbackForm(
            workspace=workspace,
            chosen=case.reasons.all(),
            initial={
                "apologised": {True: "yes", False: "no", None: None}[case.apologised],
                "solved": case.solved or None,
                "reasons": [r.pk for r in case.reasons.all()],
                "expected": case.expected,
                "notes": case.notes,
            },
        ),
        "close": CloseForm,
        "assign": lambda: AssignForm(
            workspace=workspace, current=case.assignee_id, initial={"assignee": case.assignee_id}
        ),
        "reopen": ReopenForm,
        "coaching": CoachingForm,
        "escalate": lambda: EscalateForm(workspace=workspace),
    }
    return _quick_selects({name: bound.get(name) or make() for name, make in unbound.items()})


def _case_page(
    request: HttpRequest, case: Case, bound: dict[str, forms.Form], status: int = 200
) -> HttpResponse:
    membership = _membership(request)
    now = clock.now()
    response = case.response
    score_text, rows = answer_rows(case, response) if response is not None else ("", [])
    earlier: list[Response] = []
    interactions: list[Interaction] = []
    if case.customer_id is not None:
        earlier = list(
            Response.objects.filter(
                workspace=case.workspace, customer_id=case.customer_id, is_test=False
            )
            .exclude(cases=case)
            .select_related("survey", "branch")
            .defer("answers")
            .order_by("-answered_at", "-pk")[:10]
        )
        interactions = list(
            Interaction.objects.filter(workspace=case.workspace, customer_id=case.customer_id)
            .select_related("touchpoint", "branch")
            .defer("attributes")
            .order_by("-occurred_at", "-pk")[:10]
        )
    events = list(
        case.events.select_related("actor", "from_assignee", "to_assignee").order_by("at", "pk")
    )
    history = [{"event": e, "result": _event_result(e)} for e in events]
    attempts = sum(1 for e in events if e.kind == EventKind.ATTEMPT)
    left, late = time_left(case.due_at, now)
    show_contacts = services.can_see_contacts(membership)
    phone = ""
    if show_contacts:
        phone = (response.contact_phone if response is not None else "") or (
            case.customer.phone if case.customer is not None else ""
        )
    context = {
        "case": case,
        "response": response,
        "score_text": score_text,
        "rows": rows,
        "earlier": earlier,
        "interactions": interactions,
        "history": history,
        "attempts": attempts,
        "max_attempts": services.settings_for(case.workspace_id).max_attempts,
        "left": left,
        "late": late or case.breached,
        "show_contacts": show_contacts,
        "phone": phone,
        "reasons": list(case.reasons.all()),
        "coaching": list(case.coaching_notes.select_related("author", "employee")),
        "can_act": services.can_act(membership),
        "can_see_problems": membership.can(Permission.VIEW_ALL_FEEDBACK),
        "forms": _case_forms(case, bound),
    }
    return render(request, "cases/case.html", context, status=status)


def _apply(
    request: HttpRequest, form: forms.Form, change: Callable[[dict[str, Any]], Any], done: str
) -> bool:
    """Validate ``form`` and make the change; a ``CaseError`` becomes the form's error."""
    if not form.is_valid():
        return False
    try:
        change(form.cleaned_data)
    except CaseError as exc:
        form.add_error(None, str(exc))
        return False
    messages.success(request, done)
    return True


def _case_action(request: HttpRequest, case: Case, action: str) -> tuple[forms.Form | None, bool]:
    """Run the posted ``action``: (its bound form, whether it was done)."""
    post, user = request.POST, request.user
    workspace = case.workspace
    if action == "attempt":
        form: forms.Form = AttemptForm(post)
        return form, _apply(
            request,
            form,
            lambda d: services.log_attempt(case, d["result"], note=d["note"], actor=user),
            _("Call attempt logged."),
        )
    if action == "callback":
        form = CallbackForm(post, workspace=workspace, chosen=case.reasons.all())
        return form, _apply(
            request,
            form,
            lambda d: services.record_callback(
                case,
                apologised=d["apologised"],
                solved=d["solved"],
                reasons=d["reasons"],
                expected=d["expected"],
                notes=d["notes"],
                actor=user,
            ),
            _("Call-back recorded."),
        )
    if action == "close":
        form = CloseForm(post)
        return form, _apply(
            request,
            form,
            lambda d: services.close(case, d["status"], note=d["note"], actor=user),
            _("Case closed."),
        )
    if action == "assign":
        form = AssignForm(post, workspace=workspace, current=case.assignee_id)
        return form, _apply(
            request,
            form,
            lambda d: services.assign(case, d["assignee"], note=d["note"], actor=user),
            _("Case reassigned."),
        )
    if action == "reopen":
        form = ReopenForm(post)
        return form, _apply(
            request,
            form,
            lambda d: services.reopen(case, note=d["note"], actor=user),
            _("Case reopened."),
        )
    if action == "coaching":
        form = CoachingForm(post)
        if case.employee is None:
            form.is_valid()
            form.add_error(None, _("No employee is named on this case."))
            return form, False
        employee = case.employee
        return form, _apply(
            request,
            form,
            lambda d: services.add_coaching(employee, d["text"], case=case, author=user),
            _("Coaching note added."),
        )
    if action == "escalate":
        form = EscalateForm(post, workspace=workspace)
        return form, _apply(
            request,
            form,
            lambda d: services.escalate_to_problem(
                case,
                title=d["title"],
                problem=d["problem"],
                actor=user,
                **(
                    {}
                    if d["problem"]
                    else {"function": d["function"], "owner": d["owner"], "deadline": d["deadline"]}
                ),
            ),
            _("The case is linked to a problem in the register."),
        )
    return None, False


# The case page answers 404 to everyone outside ``visible_cases``, employees included (no
# permission in the decorator: a 403 would tell another workspace's case from a missing one).
@workspace_required()
def case_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The case; a POST is one of its forms, named by its ``action`` field: done, back to the
    page; refused, the page again with the form as it was typed and the reason."""
    membership = _membership(request)
    case = visible_case(membership, pk)
    if request.method != "POST":
        return _case_page(request, case, {})
    if not services.can_act(membership):
        raise PermissionDenied
    action = request.POST.get("action", "")
    form, done = _case_action(request, case, action)
    if form is None:
        messages.error(request, _("Unknown action."))
        return redirect("cases:detail", pk=case.pk)
    if done:
        return redirect("cases:detail", pk=case.pk)
    # The page shows the case as it is now, with the refused form.
    return _case_page(request, visible_case(membership, pk), {action: form})


# --- an employee's feedback -----------------------------------------------------------------


def may_see_employee(membership: Membership, employee: Employee) -> bool:
    """All feedback roles; the employee themselves; a supervisor for the people who report
    to them, work in their teams or at the branches they manage."""
    if membership.can(Permission.VIEW_ALL_FEEDBACK):
        return True
    if employee.user_id is not None and employee.user_id == membership.user_id:
        return True
    if membership.role != Role.SUPERVISOR:
        return False
    mine = _mine(membership)
    if not mine:
        return False
    if employee.pk in mine or employee.supervisor_id in mine:
        return True
    if employee.branch is not None and employee.branch.manager_id in mine:
        return True
    return (
        employee.team_id is not None
        and Team.objects.filter(pk=employee.team_id)
        .filter(Q(employees__supervisor__in=mine) | Q(employees__in=mine))
        .exists()
    )


def _nps(employee: Employee, since: dt.datetime) -> dict[str, Any]:
    counts = Response.objects.filter(
        workspace=employee.workspace,
        employee=employee,
        is_test=False,
        answered_at__gte=since,
        score__isnull=False,
        survey_id__in=services.nps_surveys(employee.workspace_id),
    ).aggregate(
        n=Count("pk"),
        promoters=Count("pk", filter=Q(score__gte=9)),
        detractors=Count("pk", filter=Q(score__lte=6)),
    )
    n = counts["n"]
    nps = round(100 * (counts["promoters"] - counts["detractors"]) / n) if n else None
    return {**counts, "nps": nps}


@workspace_required(Permission.VIEW_OWN_FEEDBACK)
def employee_detail(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request)
    employee = (
        Employee.objects.select_related("team", "branch", "supervisor")
        .filter(workspace=membership.workspace, pk=pk)
        .first()
    )
    if employee is None or not may_see_employee(membership, employee):
        raise Http404("no such employee here")
    is_self = employee.user_id == request.user.pk
    may_coach = services.can_act(membership) and not is_self
    form = CoachingForm()
    if request.method == "POST":
        if not may_coach:
            raise PermissionDenied
        form = CoachingForm(request.POST)
        if _apply(
            request,
            form,
            lambda d: services.add_coaching(employee, d["text"], author=request.user),
            _("Coaching note added."),
        ):
            return redirect("cases:employee", pk=employee.pk)
    # The employee role sees what customers said, never who they are.
    show_customers = membership.role != Role.EMPLOYEE
    responses = (
        Response.objects.filter(workspace=membership.workspace, employee=employee, is_test=False)
        .select_related("survey")
        .defer("answers")
        .order_by("-answered_at", "-pk")
    )
    if show_customers:
        responses = responses.select_related("customer").prefetch_related(
            Prefetch("cases", queryset=Case.objects.only("pk", "response_id", "status"))
        )
    page = Paginator(responses, PAGE_SIZE).get_page(request.GET.get("page"))
    notes = CoachingNote.objects.filter(employee=employee).select_related("author", "case")[:100]
    return render(
        request,
        "cases/employee.html",
        {
            "employee": employee,
            "is_self": is_self,
            "page": page,
            "show_customers": show_customers,
            "nps": _nps(employee, clock.now() - dt.timedelta(days=EMPLOYEE_NPS_DAYS)),
            "nps_days": EMPLOYEE_NPS_DAYS,
            "notes": notes,
            "may_coach": may_coach,
            "form": form,
        },
    )


@workspace_required(Permission.VIEW_OWN_FEEDBACK)
def my_page(request: HttpRequest) -> HttpResponse:
    """The feedback about the signed-in user, when they are an employee of the workspace."""
    employee = services.my_employees(_membership(request)).order_by("pk").first()
    if employee is None:
        messages.error(
            request,
            _("Your login is not linked to an employee of this workspace, so there is no "
              "feedback about you. An administrator links it in the organisation."),
        )  # fmt: skip
        return redirect("home")
    return redirect("cases:employee", pk=employee.pk)


# --- the problem register -------------------------------------------------------------------


def _problem_choices() -> list[tuple[str, str]]:
    return [(s.value, str(s.label)) for s in ProblemStatus]


@workspace_required(Permission.VIEW_ALL_FEEDBACK)
def problem_list(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    status = request.GET.get("status", "")
    problems = (
        Problem.objects.filter(workspace=membership.workspace)
        .select_related("owner")
        .prefetch_related("reasons")
        .annotate(case_count=Count("cases", distinct=True))
        .order_by("-updated_at", "-pk")
    )
    if status in ProblemStatus.values:
        problems = problems.filter(status=status)
    else:
        status = ""
    page = Paginator(problems, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "cases/problems.html",
        {
            "page": page,
            "status": status,
            "statuses": _problem_choices(),
            "can_manage": services.can_manage_problems(membership),
            "today": clock.now().date(),
        },
    )


@workspace_required(Permission.VIEW_ALL_FEEDBACK)
def problem_new(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    if not services.can_manage_problems(membership):
        raise PermissionDenied
    workspace = membership.workspace
    form = ProblemForm(request.POST or None, workspace=workspace)
    # A new problem is not fixed yet: the fix date is set on its page, with the status.
    del form.fields["fixed_on"]
    if request.method == "POST" and form.is_valid():
        fields = form.changes()
        title = fields.pop("title")
        try:
            problem = services.create_problem(
                workspace.pk,
                title=title,
                reasons=form.cleaned_data["reasons"],
                branches=form.cleaned_data["branches"],
                actor=request.user,
                **fields,
            )
        except CaseError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("Problem added to the register."))
            return redirect("problems:detail", pk=problem.pk)
    return render(request, "cases/problem_new.html", {"form": form})


VERDICTS: dict[str, tuple[str, Any]] = {
    "verified": (
        "good",
        gettext_lazy("Verified: significantly fewer detractors cite these reasons."),
    ),
    "not_effective": ("bad", gettext_lazy("Not effective: no significant drop.")),
    "insufficient_data": (
        "warn",
        gettext_lazy("Not enough data yet: at least %(n)s detractors before and after are needed."),
    ),
}


def _verdict(verdict: str) -> tuple[str, str]:
    from cxloop.analytics.stats import MIN_EFFECT_N

    tone, text = VERDICTS.get(verdict, ("", verdict))
    return tone, str(text) % {"n": MIN_EFFECT_N}


def _p_value(p: float | None) -> str:
    if p is None:
        return _("no test")
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def effect_rows(effect: dict[str, Any]) -> list[dict[str, Any]]:
    """Before and after, each with its share and Wilson 95 % interval in percent."""
    from cxloop.analytics.stats import wilson_interval

    rows = []
    for key, label in (("before", _("Before the fix")), ("after", _("After the fix"))):
        side = effect.get(key) or {}
        hits, n = int(side.get("citing") or 0), int(side.get("detractors") or 0)
        low, high = wilson_interval(hits, n) if n else (0.0, 0.0)
        rows.append(
            {
                "key": key,
                "label": label,
                "citing": hits,
                "detractors": n,
                "share": 100.0 * hits / n if n else None,
                "low": 100.0 * low,
                "high": 100.0 * high,
            }
        )
    return rows


def effect_svg(rows: list[dict[str, Any]]) -> str | None:
    """Two bars, before and after, with their Wilson intervals as error bars."""
    drawn = [row for row in rows if row["share"] is not None]
    if not drawn:
        return None
    import altair as alt

    from cxloop.core import charts

    data = [
        {
            "period": row["label"],
            "share": row["share"],
            "low": row["low"],
            "high": row["high"],
            "text": f"{row['share']:.0f}% ({row['citing']}/{row['detractors']})",
        }
        for row in drawn
    ]
    top = min(100.0, max(row["high"] for row in drawn) * 1.2 + 5)
    base = alt.Chart(alt.Data(values=data)).encode(
        x=alt.X(
            "period:N",
            title=None,
            sort=[row["period"] for row in data],
            axis=alt.Axis(labelAngle=0, labelColor=charts.INK, labelFontSize=13, ticks=False),
        )
    )
    y_scale = alt.Scale(domain=[0, top], nice=False)
    bars = base.mark_bar(
        color=charts.BRAND, width={"band": 0.45}, cornerRadiusTopLeft=2, cornerRadiusTopRight=2
    ).encode(
        y=alt.Y(
            "share:Q",
            title=None,
            scale=y_scale,
            axis=alt.Axis(tickCount=5, domain=False, ticks=False, labelExpr="datum.label + '%'"),
        ),
        description=alt.Description("text:N"),
    )
    errors = base.mark_errorbar(ticks={"width": 14}, color=charts.INK).encode(
        y=alt.Y("low:Q", scale=y_scale, title=None), y2="high:Q"
    )
    labels = base.mark_text(dy=-9, color=charts.MUTED, fontSize=13).encode(
        y=alt.Y("high:Q", scale=y_scale), text="text:N"
    )
    chart = (
        alt.layer(bars, errors, labels)
        .properties(
            # The width of the problem page's main column; narrower screens scale it down.
            width=680,
            height=240,
            autosize=alt.AutoSizeParams(type="fit-x", contains="padding"),
            description=_("Share of detractors citing the problem's reasons, before and after"),
            padding={"left": 4, "top": 8, "bottom": 4, "right": 8},
        )
        .configure(**charts._config())
    )
    return charts.render_svg(chart)


@workspace_required(Permission.VIEW_ALL_FEEDBACK)
def problem_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The problem; those who manage the register POST its forms, named by ``action``: save
    (the fields), status (along the flow), verify (measure the fix's effect)."""
    membership = _membership(request)
    workspace = membership.workspace
    problem = Problem.get_for_workspace(workspace, pk=pk)
    can_manage = services.can_manage_problems(membership)
    form = ProblemForm(workspace=workspace, problem=problem)
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied
        action = request.POST.get("action", "")
        if action == "save":
            form = ProblemForm(request.POST, workspace=workspace, problem=problem)
            if _apply(
                request,
                form,
                lambda d: services.update_problem(
                    problem,
                    form.changes(),
                    reasons=d["reasons"],
                    branches=d["branches"],
                    actor=request.user,
                ),
                _("Problem saved."),
            ):
                return redirect("problems:detail", pk=problem.pk)
        else:
            _problem_action(request, problem, action)
            return redirect("problems:detail", pk=problem.pk)
    return _problem_page(request, problem, form, can_manage)


def _problem_action(request: HttpRequest, problem: Problem, action: str) -> None:
    try:
        if action == "status":
            status = request.POST.get("status", "")
            services.update_problem(problem, {"status": status}, actor=request.user)
            label = dict(_problem_choices()).get(status, status)
            messages.success(request, _("The problem is now “%(status)s”.") % {"status": label})
        elif action == "verify":
            services.verify_problem(problem, actor=request.user)
            messages.success(request, _("The fix's effect was measured."))
        else:
            messages.error(request, _("Unknown action."))
    except CaseError as exc:
        messages.error(request, str(exc))


def _problem_page(
    request: HttpRequest, problem: Problem, form: ProblemForm, can_manage: bool
) -> HttpResponse:
    problem = (
        Problem.objects.select_related("owner", "created_by")
        .prefetch_related("reasons")
        .get(pk=problem.pk)
    )
    cases = (
        problem.cases.select_related("response", "branch", "assignee", "employee")
        .defer("response__answers")
        .order_by("-opened_at", "-pk")
    )
    effect = problem.effect or {}
    rows = effect_rows(effect) if effect else []
    chart = None
    charts_failed = False
    if rows:
        try:
            chart = effect_svg(rows)
        except Exception:
            # The figures beside the chart say the same: the page never fails for it.
            log.exception("problem_effect_chart_failed problem=%s", problem.pk)
            charts_failed = True
    tone, verdict = _verdict(str(effect.get("verdict", ""))) if effect else ("", "")
    measured_at = None
    if effect.get("measured_at"):
        try:
            measured_at = dt.datetime.fromisoformat(str(effect["measured_at"]))
        except ValueError:
            measured_at = None
    flow = services.PROBLEM_FLOW.get(problem.status, ())
    return render(
        request,
        "cases/problem.html",
        {
            "problem": problem,
            "form": form,
            "can_manage": can_manage,
            "flow": [(s, dict(_problem_choices()).get(s, s)) for s in flow],
            "may_verify": problem.status
            in (ProblemStatus.FIXED, ProblemStatus.NOT_EFFECTIVE, ProblemStatus.VERIFIED),
            "cases": cases[:PAGE_SIZE],
            "case_count": cases.count(),
            "effect": effect,
            "effect_rows": rows,
            "chart": chart,
            "charts_failed": charts_failed,
            "verdict": verdict,
            "verdict_tone": tone,
            "p_value": _p_value(effect.get("p_value")),
            "measured_at": measured_at,
            "today": clock.now().date(),
        },
    )


# --- settings -------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A value the audit log's JSON can hold."""
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if hasattr(value, "pk"):
        return getattr(value, "code", None) or value.pk
    return value


def _rule_changes(rule: AlertRule) -> dict[str, Any]:
    return {
        "survey": rule.survey.code,
        "name": rule.name,
        "score_min": rule.score_min,
        "score_max": rule.score_max,
        "reasons": list(rule.reasons),
        "phrases": list(rule.phrases),
        "language": rule.language,
        "priority": rule.priority,
        "is_active": rule.is_active,
    }


def _instance(model: Any, workspace: Any, raw: str | None) -> Any:
    if not raw:
        return None
    try:
        return model.objects.filter(workspace=workspace, pk=int(raw)).first()
    except ValueError:
        return None


@workspace_required(Permission.CONFIGURE)
def case_settings(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    workspace = membership.workspace
    user = request.user
    post = request.POST if request.method == "POST" else None
    which = request.POST.get("form", "") if post is not None else ""
    source = request.POST if post is not None else request.GET
    reason = _instance(ReasonCode, workspace, source.get("reason"))
    rule = _instance(AlertRule, workspace, source.get("rule"))
    stored = CaseSettings.objects.filter(workspace=workspace).first()
    sla_instance = stored or CaseSettings(workspace=workspace)

    reason_form = ReasonCodeForm(
        post if which == "reason" else None, workspace=workspace, instance=reason
    )
    rule_form = AlertRuleForm(post if which == "rule" else None, workspace=workspace, instance=rule)
    sla_form = CaseSettingsForm(
        post if which == "sla" else None, workspace=workspace, instance=sla_instance
    )
    holiday_form = HolidayForm(post if which == "holiday" else None, workspace=workspace)

    if post is not None:
        if which == "reason" and reason_form.is_valid():
            saved_reason = reason_form.save()
            audit(
                workspace,
                "reason_code.update" if reason else "reason_code.create",
                via="web",
                actor=user,
                obj=saved_reason,
                changes={
                    "code": saved_reason.code,
                    "labels": saved_reason.labels,
                    "category": saved_reason.category,
                    "position": saved_reason.position,
                    "is_active": saved_reason.is_active,
                },
            )
            messages.success(request, _("Reason “%(code)s” saved.") % {"code": saved_reason.code})
            return redirect(reverse("cases:settings") + "#reasons")
        if which == "rule" and rule_form.is_valid():
            saved_rule = rule_form.save()
            audit(
                workspace,
                "alert_rule.update" if rule else "alert_rule.create",
                via="web",
                actor=user,
                obj=saved_rule,
                changes=_rule_changes(saved_rule),
            )
            messages.success(request, _("Alert rule “%(name)s” saved.") % {"name": saved_rule.name})
            return redirect(reverse("cases:settings") + "#rules")
        if which == "standard_alerts":
            from cxloop.surveys.models import Survey
            from cxloop.text import phrases

            survey = _instance(Survey, workspace, request.POST.get("survey"))
            if survey is None:
                messages.error(request, _("Choose a survey."))
                return redirect(reverse("cases:settings") + "#standard-alerts")
            added = phrases.install(survey)
            for new_rule in added:
                audit(
                    workspace,
                    "alert_rule.create",
                    via="web",
                    actor=user,
                    obj=new_rule,
                    changes=_rule_changes(new_rule),
                )
            messages.success(
                request,
                ngettext(
                    "%(count)d alert rule added to “%(survey)s”.",
                    "%(count)d alert rules added to “%(survey)s”.",
                    len(added),
                )
                % {"count": len(added), "survey": survey.name},
            )
            return redirect(reverse("cases:settings") + "#rules")
        if which == "delete_rule" and rule is not None:
            audit(
                workspace,
                "alert_rule.delete",
                via="web",
                actor=user,
                obj=rule,
                changes=_rule_changes(rule),
            )
            rule.delete()
            messages.success(request, _("Alert rule deleted."))
            return redirect(reverse("cases:settings") + "#rules")
        if which == "sla" and sla_form.is_valid():
            saved_settings = sla_form.save()
            audit(
                workspace,
                "case_settings.update",
                via="web",
                actor=user,
                obj=saved_settings,
                changes={
                    name: _plain(sla_form.cleaned_data[name]) for name in sla_form.changed_data
                },
            )
            messages.success(request, _("SLA settings saved. New deadlines follow them."))
            return redirect(reverse("cases:settings") + "#sla")
        if which == "holiday" and holiday_form.is_valid():
            holiday = holiday_form.save()
            audit(
                workspace,
                "holiday.create",
                via="web",
                actor=user,
                obj=holiday,
                changes={"date": holiday.date.isoformat(), "branch": _plain(holiday.branch)},
            )
            messages.success(request, _("Holiday added."))
            return redirect(reverse("cases:settings") + "#holidays")
        if which == "delete_holiday":
            holiday_row = _instance(Holiday, workspace, request.POST.get("holiday"))
            if holiday_row is not None:
                audit(
                    workspace,
                    "holiday.delete",
                    via="web",
                    actor=user,
                    obj=holiday_row,
                    changes={
                        "date": holiday_row.date.isoformat(),
                        "branch": _plain(holiday_row.branch),
                    },
                )
                holiday_row.delete()
                messages.success(request, _("Holiday removed."))
            return redirect(reverse("cases:settings") + "#holidays")

    rules = list(
        AlertRule.objects.filter(workspace=workspace)
        .select_related("survey")
        .order_by("survey__name", "name")
    )
    from cxloop.surveys.models import Survey

    with_rules = {r.survey_id for r in rules}
    return render(
        request,
        "cases/settings.html",
        {
            "reasons": ReasonCode.objects.filter(workspace=workspace),
            "rules": rules,
            "surveys": Survey.objects.filter(workspace=workspace).order_by("name"),
            "default_surveys": Survey.objects.filter(workspace=workspace)
            .exclude(pk__in=with_rules)
            .order_by("name"),
            "holidays": Holiday.objects.filter(
                workspace=workspace, date__gte=clock.now().date() - dt.timedelta(days=31)
            ).select_related("branch"),
            "reason": reason,
            "rule": rule,
            "reason_form": reason_form,
            "rule_form": rule_form,
            "sla_form": sla_form,
            "holiday_form": holiday_form,
            "languages": ("en", "ru", "ro"),
        },
    )
