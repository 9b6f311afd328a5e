"""The CX manager's survey pages: list, edit, detail with the funnel, waves, why-not, at risk.

Viewing needs ``VIEW_ALL_FEEDBACK`` (an analyst reads everything here); anything that changes
state — saving a survey, sending a test, drawing a wave — needs ``CONFIGURE``, goes by POST
with CSRF, and is written through the services, which audit it. Surveys are fetched with
``Survey.get_for_workspace``, so another workspace's code answers 404.

Pages that draw charts import altair lazily (it takes most of a second to import), and a
chart that fails is logged and left out: the tables beside it say the same thing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from cxloop.accounts.models import Permission
from cxloop.accounts.services import audit
from cxloop.core import clock
from cxloop.core.permissions import workspace_required
from cxloop.core.views import language_label
from cxloop.customers.models import Account, Customer

from . import funnel as funnels
from .definition import Rules, parse_rules
from .forms import CHANNEL_ORDER_CHOICES, CHANNEL_ORDERS, SurveyForm, WaveForm
from .models import (
    AtRiskAccount,
    Decision,
    DeliveryChannel,
    Invitation,
    InvitationStatus,
    Reason,
    Response,
    Survey,
    SurveyKind,
)
from .services import SurveyInvalid, save_survey

log = logging.getLogger(__name__)

RECENT_DAYS = 30
# The funnel's periods a reader can choose (days; 0 is "all time").
PERIODS = (7, 30, 90, 365, 0)


def _thousands(n: int) -> str:
    return f"{n:,}".replace(",", "\u202f")


def _percent(part: int, whole: int) -> str:
    return f"{round(100 * part / whole)}%" if whole else "—"


def _can_configure(request: HttpRequest) -> bool:
    membership = getattr(request, "membership", None)
    return membership is not None and membership.can(Permission.CONFIGURE)


def _survey(request: HttpRequest, code: str) -> Survey:
    return Survey.get_for_workspace(request.workspace, code=code)  # type: ignore[attr-defined]


# --- the list ------------------------------------------------------------------------------


@workspace_required(Permission.VIEW_ALL_FEEDBACK)
def survey_list(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    since = clock.now() - dt.timedelta(days=RECENT_DAYS)
    totals = funnels.survey_totals(workspace, since=since)
    rows = []
    for survey in Survey.objects.filter(workspace=workspace).order_by("name", "code"):
        total = totals.get(survey.pk)
        rows.append(
            {
                "survey": survey,
                "sent": total.sent if total else 0,
                "answered": total.answered if total else 0,
                "rate": _percent(total.answered, total.sent) if total else "—",
            }
        )
    return render(
        request,
        "surveys/list.html",
        {"rows": rows, "days": RECENT_DAYS, "can_configure": _can_configure(request)},
    )


# --- create and edit -----------------------------------------------------------------------


def _edit(request: HttpRequest, survey: Survey | None) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    if request.method == "POST":
        form = SurveyForm(request.POST, workspace=workspace, survey=survey)
        if form.is_valid():
            data = form.cleaned_data
            try:
                saved = save_survey(
                    workspace,
                    code=data["code"],
                    name=data["name"],
                    kind=data["kind"],
                    definition=data["definition"],
                    rules=form.rules(),
                    is_active=data["is_active"],
                    survey=survey,
                    via="web",
                    actor=request.user,
                )
            except SurveyInvalid as exc:
                form.add_service_errors(exc.errors)
                if survey is not None:
                    # A refused code was already set on the object: links go to the stored one.
                    survey.refresh_from_db()
            else:
                message = (
                    _("Survey “%(name)s” saved.") if survey else _("Survey “%(name)s” created.")
                )
                messages.success(request, message % {"name": saved.name})
                return redirect("surveys:detail", code=saved.code)
    else:
        form = SurveyForm(workspace=workspace, survey=survey)
    return render(request, "surveys/edit.html", {"form": form, "survey": survey})


@workspace_required(Permission.CONFIGURE)
def survey_new(request: HttpRequest) -> HttpResponse:
    return _edit(request, None)


@workspace_required(Permission.CONFIGURE)
def survey_edit(request: HttpRequest, code: str) -> HttpResponse:
    return _edit(request, _survey(request, code))


# --- the detail page -----------------------------------------------------------------------


def describe_rules(rules: Rules, kind: str, touchpoints: dict[str, str]) -> list[tuple[str, str]]:
    """The rules in words, as (what, how) pairs for the summary."""
    lines: list[tuple[str, str]] = []
    if kind == SurveyKind.TRANSACTIONAL:
        trigger = [touchpoints.get(code, code) for code in rules.touchpoints]
        if rules.interaction_types:
            trigger.append(
                _("interaction types %(types)s") % {"types": ", ".join(rules.interaction_types)}
            )
        lines.append((_("Triggered by"), "; ".join(trigger) or "—"))
        lines.append(
            (
                _("Delay"),
                ngettext(
                    "%(n)s minute after the interaction",
                    "%(n)s minutes after the interaction",
                    rules.delay_minutes,
                )
                % {"n": rules.delay_minutes}
                if rules.delay_minutes
                else _("none: as soon as the interaction arrives"),
            )
        )
        lines.append(
            (
                _("Sampling"),
                _("%(rate)s of matching interactions")
                % {"rate": f"{rules.sampling_rate * 100:g}%"},
            )
        )
        lines.append(
            (
                _("Too old"),
                ngettext(
                    "interactions older than %(n)s hour are not surveyed",
                    "interactions older than %(n)s hours are not surveyed",
                    rules.max_interaction_age_hours,
                )
                % {"n": rules.max_interaction_age_hours},
            )
        )
    lines.append(
        (
            _("Quiet period"),
            ngettext(
                "no survey for %(n)s day after any invitation",
                "no survey for %(n)s days after any invitation",
                rules.quiet_period_days,
            )
            % {"n": rules.quiet_period_days}
            if rules.quiet_period_days
            else _("none"),
        )
    )
    lines.append(
        (
            _("Limit per customer"),
            _("%(count)s in %(days)s days")
            % {"count": rules.max_per_customer, "days": rules.max_period_days},
        )
    )
    if kind == SurveyKind.TRANSACTIONAL:
        lines.append(
            (
                _("Daily cap per branch"),
                str(rules.branch_daily_cap) if rules.branch_daily_cap else _("none"),
            )
        )
    lines.append(
        (
            _("Send window"),
            _("any time")
            if rules.send_window is None
            else _("from %(start)s to %(end)s in the customer's local time")
            % {
                "start": rules.send_window.start.strftime("%H:%M"),
                "end": rules.send_window.end.strftime("%H:%M"),
            },
        )
    )
    order = next((k for k, v in CHANNEL_ORDERS.items() if v == list(rules.channels)), "")
    lines.append(
        (_("Channels"), str(dict(CHANNEL_ORDER_CHOICES).get(order, ", ".join(rules.channels))))
    )
    lines.append(
        (
            _("Reminder"),
            ngettext(
                "after %(n)s day, to those who have not answered",
                "after %(n)s days, to those who have not answered",
                rules.reminder_after_days,
            )
            % {"n": rules.reminder_after_days}
            if rules.reminder_after_days
            else _("none"),
        )
    )
    lines.append(
        (
            _("Expiry"),
            ngettext(
                "the link works for %(n)s day", "the link works for %(n)s days", rules.expiry_days
            )
            % {"n": rules.expiry_days},
        )
    )
    lines.append(
        (
            _("Account at risk"),
            _("after %(n)s unanswered invitations in a row") % {"n": rules.unanswered_in_row},
        )
    )
    return lines


def _bars_svg(rows: Sequence[tuple[str, int, str]], description: str) -> str | None:
    """Horizontal bars (label, value, text written after the bar) as SVG; None when empty."""
    if not rows or not any(value for _label, value, _text in rows):
        return None
    import altair as alt

    from cxloop.core import charts

    data = [{"label": label, "n": value, "text": text} for label, value, text in rows]
    base = alt.Chart(alt.Data(values=data)).encode(
        y=alt.Y(
            "label:N",
            title=None,
            sort=[label for label, _value, _text in rows],
            axis=alt.Axis(
                labelLimit=220,
                domain=False,
                ticks=False,
                labelPadding=6,
                labelColor=charts.INK,
                labelFontSize=14,
            ),
        ),
        x=alt.X("n:Q", title=None, axis=None, scale=alt.Scale(nice=False, domainMin=0)),
    )
    bars = base.mark_bar(color=charts.BRAND, cornerRadiusEnd=2, height={"band": 0.7}).encode(
        description=alt.Description("text:N")
    )
    labels = base.mark_text(align="left", dx=5, color=charts.MUTED, fontSize=13).encode(
        text="text:N"
    )
    chart = (
        alt.layer(bars, labels)
        .properties(
            width=charts.NARROW,
            height={"step": 32},
            autosize=alt.AutoSizeParams(type="fit-x", contains="padding"),
            description=description,
            # Room on the right for the text written after the longest bar.
            padding={"left": 4, "top": 4, "bottom": 4, "right": 110},
        )
        .configure(**charts._config())
    )
    return charts.render_svg(chart)


def _funnel_rows(row: funnels.FunnelRow) -> list[tuple[str, int, str]]:
    labels = funnels.stage_labels()
    return [
        (labels[stage], n, f"{_thousands(n)} · {_percent(n, row.sent)}")
        for stage, n in row.stages()
    ]


def _period(request: HttpRequest) -> int:
    try:
        days = int(request.GET.get("days", RECENT_DAYS))
    except ValueError:
        return RECENT_DAYS
    return days if days in PERIODS else RECENT_DAYS


def _waves(survey: Survey) -> list[dict[str, Any]]:
    counts = {
        row["wave_id"]: row
        for row in Invitation.objects.filter(survey=survey, wave__isnull=False, is_test=False)
        .values("wave_id")
        .annotate(
            invited=Count("pk"),
            sent=Count("pk", filter=Q(sent_at__isnull=False)),
            answered=Count("pk", filter=Q(sent_at__isnull=False, answered_at__isnull=False)),
        )
        .order_by()
    }
    rows = []
    for wave in survey.waves.select_related("created_by").order_by("-created_at")[:50]:
        n = counts.get(wave.pk, {})
        rows.append(
            {
                "wave": wave,
                "invited": n.get("invited", 0),
                "sent": n.get("sent", 0),
                "answered": n.get("answered", 0),
                "rate": _percent(n.get("answered", 0), n.get("sent", 0)),
                "strata": dict(_strata_labels()).get(wave.strata, wave.strata),
            }
        )
    return rows


def _strata_labels() -> list[tuple[str, str]]:
    return [("", _("none")), ("segment", _("segment")), ("region", _("region"))]


@workspace_required(Permission.VIEW_ALL_FEEDBACK)
def survey_detail(request: HttpRequest, code: str) -> HttpResponse:
    survey = _survey(request, code)
    workspace = request.workspace  # type: ignore[attr-defined]
    now = clock.now()
    days = _period(request)
    since = now - dt.timedelta(days=days) if days else None
    try:
        rules: Rules | None = parse_rules(survey.rules)
    except ValueError:
        rules = None  # stored before a rule tightened: the page still opens, the edit form fixes it
    touchpoint_names = {
        code: f"{name} ({code})"
        for code, name in _touchpoint_names(workspace, rules.touchpoints if rules else [])
    }
    languages = [
        (lang, language_label(lang)) for lang in (survey.definition or {}).get("languages", [])
    ]
    overall = funnels.funnel(survey, since=since)[0]
    by_channel = funnels.funnel(survey, since=since, by="delivery_channel")
    by_branch = funnels.funnel(survey, since=since, by="branch")
    reasons = funnels.decisions_by_reason(survey, since=now - dt.timedelta(days=RECENT_DAYS))
    not_surveyed = [r for r in reasons if r.not_surveyed]

    funnel_chart = reasons_chart = None
    charts_failed = False
    funnel_alt = "; ".join(f"{label}: {text}" for label, _n, text in _funnel_rows(overall))
    try:
        funnel_chart = _bars_svg(_funnel_rows(overall), _("Survey funnel"))
        reasons_chart = _bars_svg(
            [(r.label, r.count, _thousands(r.count)) for r in not_surveyed[:12]],
            _("Why customers were not surveyed"),
        )
    except Exception:
        log.exception("survey_charts_failed survey=%s", survey.pk)
        charts_failed = True

    waves: list[dict[str, Any]] = []
    competitors: list[Any] = []
    if survey.kind == SurveyKind.RELATIONSHIP:
        from .sampling import competitor_nps

        waves = _waves(survey)
        try:
            competitors = competitor_nps(survey)
        except ValueError:
            log.warning("competitor_nps_failed survey=%s", survey.pk)
    context = {
        "survey": survey,
        "rules": rules,
        "rules_words": describe_rules(rules, survey.kind, touchpoint_names) if rules else [],
        "public_url": f"{settings.SITE_URL}/s/p/{survey.public_code}",
        "qr_url": f"/s/p/{survey.public_code}/qr.svg",
        "languages": languages,
        "days": days,
        "periods": [(p, _period_label(p)) for p in PERIODS],
        "overall": overall,
        "overall_stages": _funnel_rows(overall),
        "by_channel": by_channel,
        "by_branch": by_branch,
        "funnel_chart": funnel_chart,
        "funnel_alt": funnel_alt,
        "reasons": reasons,
        "not_surveyed": not_surveyed,
        "reasons_chart": reasons_chart,
        "reasons_alt": "; ".join(f"{r.label}: {r.count}" for r in not_surveyed),
        "charts_failed": charts_failed,
        "recent_days": RECENT_DAYS,
        "waves": waves,
        "competitors": competitors,
        "can_configure": _can_configure(request),
    }
    return render(request, "surveys/detail.html", context)


def _period_label(days: int) -> str:
    if not days:
        return _("All time")
    return ngettext("Last %(n)s day", "Last %(n)s days", days) % {"n": days}


def _touchpoint_names(workspace: Any, codes: Sequence[str]) -> list[tuple[str, str]]:
    from cxloop.organisation.models import Touchpoint

    return list(
        Touchpoint.objects.filter(workspace=workspace, code__in=list(codes)).values_list(
            "code", "name"
        )
    )


# --- send a test to me ---------------------------------------------------------------------


@workspace_required(Permission.CONFIGURE)
@require_POST
def send_test(request: HttpRequest, code: str) -> HttpResponse:
    """Send the survey to the CX manager's own address, now; it never counts as a response."""
    from . import dispatch
    from .services import test_invitation

    survey = _survey(request, code)
    email = (getattr(request.user, "email", "") or "").strip()
    if not email:
        messages.error(
            request,
            _("Your account has no e-mail address, so there is nowhere to send the test. "
              "Ask an administrator to add one."),
        )  # fmt: skip
        return redirect("surveys:detail", code=survey.code)
    language = request.POST.get("language") or get_language() or ""
    try:
        invitation = test_invitation(survey, email=email, language=language)
    except ValueError:
        messages.error(request, _("The survey's definition is not valid; fix it before testing."))
        return redirect("surveys:detail", code=survey.code)
    audit(
        survey.workspace,
        "survey.test_send",
        via="web",
        actor=request.user,
        obj=survey,
        changes={"invitation": invitation.pk, "language": invitation.language},
    )
    try:
        dispatch.send([invitation.pk])
    except Exception:
        # The invitation stays "sending"; the reconciler marks it failed. Nothing to retry.
        log.exception("test_send_failed survey=%s invitation=%s", survey.pk, invitation.pk)
    invitation.refresh_from_db()
    if invitation.status == InvitationStatus.SENT:
        messages.success(request, _("Test sent to %(email)s.") % {"email": email})
    else:
        reason = dict(Reason.choices).get(invitation.status_reason, invitation.status_reason)
        messages.error(
            request,
            _("The test could not be sent: %(error)s")
            % {"error": invitation.last_error or reason or _("unknown error")},
        )
    return redirect("surveys:detail", code=survey.code)


# --- relationship waves --------------------------------------------------------------------


@workspace_required(Permission.CONFIGURE)
def wave_new(request: HttpRequest, code: str) -> HttpResponse:
    """Plan a wave (GET with the form's values), then create it (POST)."""
    from . import sampling

    survey = _survey(request, code)
    if survey.kind != SurveyKind.RELATIONSHIP:
        messages.error(request, _("Only a relationship survey is sent in waves."))
        return redirect("surveys:detail", code=survey.code)
    plan = None
    if request.method == "POST":
        form = WaveForm(request.POST)
        if form.is_valid():
            try:
                wave = sampling.create_wave(survey, **form.plan_arguments(), actor=request.user)
            except ValueError as exc:
                form.add_error(None, str(exc))
            else:
                invited = wave.invitations.count()
                messages.success(
                    request,
                    ngettext(
                        "Wave created: %(n)s customer will be invited.",
                        "Wave created: %(n)s customers will be invited.",
                        invited,
                    )
                    % {"n": invited},
                )
                return redirect("surveys:detail", code=survey.code)
    elif "margin" in request.GET:
        form = WaveForm(request.GET)
        if form.is_valid():
            try:
                plan = sampling.plan_wave(survey, **form.plan_arguments())
            except ValueError as exc:
                form.add_error(None, str(exc))
    else:
        form = WaveForm()
    reasons = dict(Reason.choices)
    excluded = (
        sorted(((str(reasons.get(r, r)), n) for r, n in plan.excluded.items()), key=lambda x: -x[1])
        if plan
        else []
    )
    return render(
        request,
        "surveys/wave_new.html",
        {"survey": survey, "form": form, "plan": plan, "excluded": excluded},
    )


# --- one response ---------------------------------------------------------------------------


@workspace_required(Permission.VIEW_ALL_FEEDBACK)
def response_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One response with its answers in the survey's words (the permalink integrations get).

    The number the customer confirmed for a call-back is shown only to those who may see
    customers' contact details.
    """
    from .render import answer_rows, definition_of

    workspace = request.workspace  # type: ignore[attr-defined]
    response = Response.get_for_workspace(workspace, pk=pk)
    if response.is_test:
        raise Http404("test responses are not shown")
    definition = definition_of(response.survey)
    language = get_language() or definition.default_language
    lang = definition.pick_language(language)
    rows = answer_rows(definition, response.answers, lang)
    membership = request.membership  # type: ignore[attr-defined]
    return render(
        request,
        "surveys/response.html",
        {
            "response": response,
            "score_text": definition.score_question.text.get(lang)
            or definition.score_question.text[definition.default_language],
            "rows": rows,
            "show_phone": membership.can(Permission.VIEW_CUSTOMER_CONTACTS),
        },
    )


# --- why wasn't this customer surveyed? ----------------------------------------------------


@workspace_required(Permission.VIEW_ALL_FEEDBACK)
def why(request: HttpRequest) -> HttpResponse:
    """A customer's decisions across all surveys, newest first, without contact details."""
    from .suppression import is_unsubscribed, load_index

    workspace = request.workspace  # type: ignore[attr-defined]
    query = (request.GET.get("customer") or "").strip()
    customer = None
    page = None
    reach: list[dict[str, Any]] = []
    unsubscribed = False
    if query:
        customer = (
            Customer.objects.filter(workspace=workspace, external_id=query)
            .select_related("workspace")
            .first()
        )
    if customer is not None:
        decisions = (
            Decision.objects.filter(workspace=workspace, customer=customer)
            .select_related("survey", "interaction")
            .order_by("-created_at", "-pk")
        )
        page = Paginator(decisions, 50).get_page(request.GET.get("page"))
        unsubscribed = is_unsubscribed(customer)
        index = load_index(workspace, [customer])
        for channel, address in (
            (DeliveryChannel.EMAIL, customer.email),
            (DeliveryChannel.SMS, customer.phone),
        ):
            bad = index.address_reason(channel, address) if address else None
            reach.append(
                {
                    "channel": channel.label,
                    "on_file": bool(address),
                    "consent": customer.consents_to(channel),
                    "suppressed": _suppression_label(bad) if bad else "",
                }
            )
    return render(
        request,
        "surveys/why.html",
        {
            "query": query,
            "customer": customer,
            "page": page,
            "reach": reach,
            "unsubscribed": unsubscribed,
        },
        status=404 if query and customer is None else 200,
    )


def _suppression_label(reason: str) -> str:
    from .models import SuppressionReason

    return str(dict(SuppressionReason.choices).get(reason, reason))


# --- accounts at risk ----------------------------------------------------------------------


@workspace_required(Permission.VIEW_ALL_FEEDBACK)
def at_risk(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    flags = (
        AtRiskAccount.objects.filter(workspace=workspace, cleared_at__isnull=True)
        .select_related("account")
        .annotate(contact_count=Count("account__contacts"))
        .order_by("-unanswered", "flagged_at", "pk")
    )
    page = Paginator(flags, 50).get_page(request.GET.get("page"))
    # Contacts of the accounts on this page only, by their external ids (not contact details).
    accounts = Account.objects.filter(pk__in=[flag.account_id for flag in page]).prefetch_related(
        Prefetch(
            "contacts",
            queryset=Customer.objects.only("pk", "external_id", "account_id").order_by(
                "external_id"
            ),
        )
    )
    contacts = {account.pk: list(account.contacts.all())[:5] for account in accounts}
    rows = [{"flag": flag, "contacts": contacts.get(flag.account_id, [])} for flag in page]
    return render(
        request,
        "surveys/at_risk.html",
        {
            "page": page,
            "rows": rows,
            "threshold": funnels.unanswered_threshold(workspace),
        },
    )
