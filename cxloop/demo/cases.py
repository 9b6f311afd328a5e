# ruff: noqa: RUF001 - Russian texts are written in Cyrillic on purpose
"""The demo's closed loop: the last three weeks of detractors called back, and HQ's problems.

Built after the surveys (``build``), from their responses:

* a reason-code taxonomy in English, Russian and Romanian whose codes include the surveys'
  reason options (a detractor who ticked "waiting" cites the reason ``waiting``);
* alert rules: the after-visit survey's detractors (0-6) and an urgent rule for legal and
  safety phrases in the three languages; the other surveys use the default;
* a case for every detractor who answered in the last 90 days, routed as the live system
  routes (supervisor, else branch manager, else the CX queue), with its SLA deadline; the
  older ones closed (resolved, unreachable after three attempts, declined) with attempts,
  the call-back script, reason codes and sometimes a coaching note; about one in eight missed
  its deadline and was escalated; the newest are still open, a few already overdue;
* four problems in the register: consultants giving wrong tariff information, fixed by a
  training 40 days ago and *verified* (the call-backs found the cause behind 45 % of
  detractors before, 4 % after); the planted queue problem at the waiting branch, fixed two
  thirds into the history, whose single store has too few detractors in the 30-day windows
  to verify (the page says so); billing errors (in progress); technicians arriving late
  (open).

Deterministic for a seed, like the rest of the demo (one numpy stream of its own).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import numpy as np
from django.db import transaction

from cxloop.accounts.models import Workspace
from cxloop.cases import services, sla
from cxloop.cases.models import (
    AlertRule,
    AttemptResult,
    Case,
    CaseEvent,
    CaseSettings,
    CaseSource,
    CaseStatus,
    CoachingNote,
    EventKind,
    Holiday,
    Priority,
    Problem,
    ProblemStatus,
    ReasonCode,
)
from cxloop.organisation.models import Branch, Employee
from cxloop.surveys.models import Response, Survey

from .generator import HOLIDAYS, WAITING_BRANCH, WAITING_FIX_AT

CASES_STREAM = 7
WINDOW = dt.timedelta(days=90)
# The verified fix: consultants were trained on the new tariffs this many days before the end;
# before it, supervisors found "wrong information" behind many detractors' anger, after it few.
TRAINING_DAYS_AGO = 40
WRONG_INFO_BEFORE, WRONG_INFO_AFTER = 0.45, 0.04
# The newest cases are still open (the overdue ones escalate at the first heartbeat).
STILL_OPEN = 12


def _t(en: str, ru: str, ro: str) -> dict[str, str]:
    return {"en": en, "ru": ru, "ro": ro}


# (code, labels, category); the first codes are the surveys' reason options.
TAXONOMY: tuple[tuple[str, dict[str, str], str], ...] = (
    ("waiting", _t("Waiting time", "Время ожидания", "Timpul de așteptare"), "Service"),
    ("staff", _t("Staff behaviour", "Поведение сотрудников", "Comportamentul personalului"), "People"),
    ("price", _t("Price and tariffs", "Цены и тарифы", "Prețuri și tarife"), "Commercial"),
    ("quality", _t("Product quality", "Качество товара", "Calitatea produsului"), "Product"),
    ("resolution", _t("Problem not solved", "Проблема не решена", "Problema nerezolvată"), "Service"),
    ("ease", _t("Hard to get help", "Сложно получить помощь", "Greu de obținut ajutor"), "Service"),
    ("network", _t("Network coverage", "Покрытие сети", "Acoperirea rețelei"), "Network"),
    ("service", _t("Customer service", "Обслуживание клиентов", "Serviciul clienți"), "Service"),
    ("app", _t("Mobile app", "Мобильное приложение", "Aplicația mobilă"), "Digital"),
    ("billing_error", _t("Wrong invoice", "Ошибка в счёте", "Factură greșită"), "Commercial"),
    ("technician_late", _t("Technician late", "Техник опоздал", "Tehnicianul a întârziat"), "Field"),
    ("wrong_info", _t("Wrong information given", "Неверная информация", "Informații greșite"), "People"),
    ("out_of_stock", _t("Product out of stock", "Нет в наличии", "Produs lipsă în stoc"), "Product"),
)  # fmt: skip
# What a supervisor finds on the call when the customer ticked no reason.
ROOT_CAUSES = ("staff", "wrong_info", "billing_error", "out_of_stock", "technician_late", "waiting")
ROOT_WEIGHTS = np.array([0.25, 0.2, 0.2, 0.1, 0.1, 0.15])

LEGAL_PHRASES = (
    "lawyer", "sue", "court", "police", "fire", "injured",
    "адвокат", "суд", "полиц", "пожар", "травм",
    "avocat", "judecat", "poliți", "incendiu", "rănit", "protecția consumatorului",
)  # fmt: skip

EXPECTED = {
    "waiting": _t("To be served within ten minutes", "Чтобы обслужили за десять минут",
                  "Să fie servit în zece minute"),
    "staff": _t("A polite answer and someone who listens", "Вежливого ответа и внимания",
                "Un răspuns politicos și atenție"),
    "price": _t("The price promised in the offer", "Цену, обещанную в предложении",
                "Prețul promis în ofertă"),
    "billing_error": _t("A correct invoice without calling twice", "Правильный счёт без звонков",
                        "O factură corectă fără să sune de două ori"),
    "technician_late": _t("The technician within the agreed window", "Техника в назначенное время",
                          "Tehnicianul în intervalul stabilit"),
}  # fmt: skip
NOTES = (
    _t("Apologised; explained what went wrong and what we changed.",
       "Извинились; объяснили, что пошло не так и что изменили.",
       "Ne-am cerut scuze; am explicat ce nu a mers și ce am schimbat."),
    _t("Customer calmer after the call; offered a discount on the next bill.",
       "Клиент успокоился; предложили скидку на следующий счёт.",
       "Clientul s-a calmat; am oferit o reducere la următoarea factură."),
    _t("Problem fixed during the call.", "Проблему решили во время звонка.",
       "Problema rezolvată în timpul apelului."),
)  # fmt: skip
COACHING = (
    _t("Went through the greeting and the queue-ticket script again.",
       "Ещё раз разобрали приветствие и работу с талонами.",
       "Am repetat salutul și procedura tichetelor de ordine."),
    _t("Discussed how to explain tariff changes before the customer asks.",
       "Обсудили, как объяснять изменения тарифа заранее.",
       "Am discutat cum explicăm schimbările de tarif din timp."),
)  # fmt: skip

CLOSE_OUTCOMES = (CaseStatus.RESOLVED, CaseStatus.UNREACHABLE, CaseStatus.DECLINED)
CLOSE_WEIGHTS = np.array([0.78, 0.12, 0.10])
BREACH_SHARE = 0.12


def _holidays(workspace: Workspace, today: dt.date) -> None:
    rows = [
        Holiday(workspace=workspace, date=dt.date(year, month, day), name="Public holiday")
        for year in (today.year - 1, today.year, today.year + 1)
        for month, day in sorted(HOLIDAYS)
    ]
    Holiday.objects.bulk_create(rows, ignore_conflicts=True)


def _rules(workspace: Workspace) -> None:
    survey = Survey.objects.filter(workspace=workspace, code="after-visit").first()
    if survey is None:
        return
    AlertRule.objects.create(
        workspace=workspace, survey=survey, name="detractor", score_min=0, score_max=6
    )
    AlertRule.objects.create(
        workspace=workspace, survey=survey, name="legal or safety",
        phrases=list(LEGAL_PHRASES), priority=Priority.URGENT,
    )  # fmt: skip


class _Calendars:
    def __init__(self, workspace: Workspace, settings: CaseSettings) -> None:
        self.workspace = workspace
        self.settings = settings
        self.cache: dict[int | None, sla.Calendar] = {}

    def deadline(self, branch: Branch | None, at: dt.datetime) -> dt.datetime:
        key = branch.pk if branch else None
        if key not in self.cache:
            self.cache[key] = sla.calendar_for(self.workspace.pk, branch, self.settings)
        return sla.due_at(
            at, self.cache[key], mode=self.settings.sla_mode, hours=self.settings.sla_hours,
            min_left_minutes=self.settings.min_minutes_left,
        )  # fmt: skip


def build(workspace: Workspace, now: dt.datetime, seed: int) -> dict[str, int]:
    """The closed loop of the demo workspace; returns counts for the summary."""
    rng = np.random.default_rng([seed, CASES_STREAM])
    with transaction.atomic():
        reasons = {
            code: ReasonCode.objects.create(
                workspace=workspace, code=code, labels=labels, category=category, position=i
            )
            for i, (code, labels, category) in enumerate(TAXONOMY)
        }
        settings = CaseSettings.objects.create(workspace=workspace)
        _holidays(workspace, now.date())
        _rules(workspace)
        counts = _cases(workspace, now, rng, reasons, settings)
        counts["problems"] = _problems(workspace, now, reasons)
    return counts


def _cases(
    workspace: Workspace,
    now: dt.datetime,
    rng: np.random.Generator,
    reasons: dict[str, ReasonCode],
    settings: CaseSettings,
) -> dict[str, int]:
    employees = {
        e.pk: e
        for e in Employee.objects.filter(workspace=workspace).select_related(
            "supervisor", "branch__manager"
        )
    }
    branches = {
        b.pk: b for b in Branch.objects.filter(workspace=workspace).select_related("manager")
    }
    for person in employees.values():
        if person.supervisor_id:
            person.supervisor = employees.get(person.supervisor_id)
    calendars = _Calendars(workspace, settings)
    responses = list(
        Response.objects.filter(
            workspace=workspace, is_test=False, answered_at__gte=now - WINDOW, answered_at__lt=now
        )
        .select_related("survey")
        .order_by("answered_at", "pk")
    )
    rules = {survey_id: None for survey_id in {r.survey_id for r in responses}}
    chosen_rules = {
        pk: services.rules_for(next(r.survey for r in responses if r.survey_id == pk))
        for pk in rules
    }
    cases: list[Case] = []
    plans: list[dict[str, Any]] = []
    for response in responses:
        found = services.evaluate(response, chosen_rules[response.survey_id])
        if found is None:
            continue
        why, priority = found
        employee = employees.get(response.employee_id) if response.employee_id else None
        branch = branches.get(response.branch_id) if response.branch_id else None
        assignee = services.route(employee, branch)
        opened = response.answered_at + dt.timedelta(seconds=int(rng.integers(2, 30)))
        due = calendars.deadline(branch or (employee.branch if employee else None), opened)
        case = Case(
            workspace=workspace, source=CaseSource.RESPONSE, response=response,
            survey_id=response.survey_id, customer_id=response.customer_id,
            branch_id=response.branch_id, employee_id=response.employee_id,
            product_id=response.product_id, channel_id=response.channel_id,
            touchpoint_id=response.touchpoint_id, matched=why, priority=priority,
            assignee=assignee, opened_at=opened, due_at=due,
            warn_at=max(opened, due - dt.timedelta(minutes=settings.warn_minutes)),
            notified_at=opened,
        )  # fmt: skip
        cases.append(case)
    for i, case in enumerate(cases):
        newest = i >= len(cases) - STILL_OPEN
        assert case.response is not None
        plans.append(_plan(rng, case, case.response, now, reasons, employees, newest))
    Case.objects.bulk_create(cases, batch_size=1000)
    events: list[CaseEvent] = []
    links: list[Any] = []
    notes: list[CoachingNote] = []
    for case, plan in zip(cases, plans, strict=True):
        events.extend(plan["events"](case))
        links.extend(
            Case.reasons.through(case_id=case.pk, reasoncode_id=reasons[code].pk)
            for code in plan["reasons"]
        )
        if plan["coaching"] and case.employee_id:
            language = plan["language"]
            notes.append(
                CoachingNote(
                    workspace=workspace,
                    employee_id=case.employee_id,
                    case=case,
                    text=COACHING[int(rng.integers(len(COACHING)))][language],
                    created_at=case.closed_at or now,
                )
            )
    CaseEvent.objects.bulk_create(events, batch_size=2000)
    Case.reasons.through.objects.bulk_create(links, batch_size=2000)
    CoachingNote.objects.bulk_create(notes, batch_size=1000)
    by_status: dict[str, int] = defaultdict(int)
    for case in cases:
        by_status[case.status] += 1
    return {
        "cases": len(cases),
        "cases_open": by_status[CaseStatus.OPEN] + by_status[CaseStatus.IN_PROGRESS],
        "cases_breached": sum(1 for c in cases if c.breached),
        "coaching_notes": len(notes),
    }


def _plan(
    rng: np.random.Generator,
    case: Case,
    response: Response,
    now: dt.datetime,
    reasons: dict[str, ReasonCode],
    employees: dict[int, Employee],
    newest: bool,
) -> dict[str, Any]:
    """Fill in ``case``'s outcome and return what to write with it once it has an id."""
    language = response.language if response.language in ("en", "ru", "ro") else "ro"
    chosen = [c for c in services.chosen_options(response.answers or {}) if c in reasons]
    picked = chosen[:2] or [ROOT_CAUSES[int(rng.choice(len(ROOT_CAUSES), p=ROOT_WEIGHTS))]]
    training = now - dt.timedelta(days=TRAINING_DAYS_AGO)
    wrong_info = WRONG_INFO_BEFORE if response.answered_at < training else WRONG_INFO_AFTER
    if "wrong_info" not in picked and rng.random() < wrong_info:
        picked = ["wrong_info", *picked[:1]]
    elif "wrong_info" in picked and response.answered_at >= training and rng.random() > 0.1:
        picked = [c for c in picked if c != "wrong_info"] or ["staff"]
    history: list[dict[str, Any]] = [
        {"kind": EventKind.OPENED, "at": case.opened_at, "to": case.assignee,
         "note": "; ".join(case.matched)},
    ]  # fmt: skip
    still_open = bool(newest)
    breached = bool(rng.random() < BREACH_SHARE)
    if still_open and rng.random() < 0.35:
        at = case.opened_at + dt.timedelta(minutes=int(rng.integers(10, 120)))
        if at < now:
            history.append({"kind": EventKind.ATTEMPT, "at": at,
                            "result": AttemptResult.NO_ANSWER})  # fmt: skip
            case.status = CaseStatus.IN_PROGRESS
    if still_open:
        picked = []
        # Not yet called back: nothing to code, and no root cause counted for the problems.
    else:
        outcome = CLOSE_OUTCOMES[int(rng.choice(3, p=CLOSE_WEIGHTS))]
        span = case.due_at - case.opened_at
        if breached:
            closed = case.due_at + dt.timedelta(hours=float(rng.uniform(1, 20)))
            boss = _escalation_target(case, employees)
            history.append({"kind": EventKind.ESCALATED, "at": case.due_at, "from": case.assignee,
                            "to": boss, "note": "deadline passed; level 1"})  # fmt: skip
            case.assignee = boss
            case.escalation_level = 1
            case.escalated_at = case.due_at
            case.breached = True
        else:
            closed = case.opened_at + span * float(rng.uniform(0.1, 0.95))
        closed = min(closed, now - dt.timedelta(minutes=5))
        tries = 3 if outcome == CaseStatus.UNREACHABLE else 1 + int(rng.random() < 0.3)
        for i in range(tries):
            at = case.opened_at + (closed - case.opened_at) * (i + 1) / (tries + 1)
            result = (
                AttemptResult.REACHED
                if outcome != CaseStatus.UNREACHABLE and i == tries - 1
                else AttemptResult.NO_ANSWER
            )
            history.append({"kind": EventKind.ATTEMPT, "at": at, "result": result})
        if outcome == CaseStatus.UNREACHABLE:
            picked = []
        else:
            case.apologised = True
            case.solved = ("yes", "partly", "no")[int(rng.choice(3, p=[0.55, 0.3, 0.15]))]
            code = picked[0]
            case.expected = EXPECTED.get(code, EXPECTED["staff"])[language]
            case.notes = NOTES[int(rng.integers(len(NOTES)))][language]
            history.append({"kind": EventKind.CALLBACK, "at": closed - dt.timedelta(minutes=2),
                            "result": case.solved, "note": ", ".join(picked)})  # fmt: skip
            if outcome == CaseStatus.DECLINED:
                case.solved = "no"
        history.append({"kind": EventKind.CLOSED, "at": closed, "result": outcome})
        case.status = outcome
        case.closed_at = closed
        case.warned_at = case.warn_at if case.warn_at < closed else None
        if closed > case.due_at:
            case.breached = True

    def events(saved: Case) -> list[CaseEvent]:
        return [
            CaseEvent(
                workspace_id=saved.workspace_id,
                case=saved,
                kind=item["kind"],
                at=item["at"],
                via="web"
                if item["kind"] in (EventKind.ATTEMPT, EventKind.CALLBACK, EventKind.CLOSED)
                else "system",
                from_assignee=item.get("from"),
                to_assignee=item.get("to"),
                result=item.get("result", ""),
                note=item.get("note", ""),
            )
            for item in history
        ]

    return {
        "events": events,
        "reasons": picked,
        "language": language,
        "coaching": not still_open and bool(picked) and rng.random() < 0.15,
    }


def _escalation_target(case: Case, employees: dict[int, Employee]) -> Employee | None:
    current = case.assignee
    if current is None:
        return None
    if current.supervisor_id and current.supervisor_id in employees:
        return employees[current.supervisor_id]
    return None


def _problems(workspace: Workspace, now: dt.datetime, reasons: dict[str, ReasonCode]) -> int:
    from .generator import Timeline

    timeline = Timeline(now, 12)
    fixed_on = timeline.first_day + dt.timedelta(days=int(timeline.days * WAITING_FIX_AT))
    branch = Branch.objects.filter(workspace=workspace, code=WAITING_BRANCH).first()
    owner = branch.manager if branch else None
    queue = services.create_problem(
        workspace.pk,
        title=f"Long queues at the {branch.name if branch else WAITING_BRANCH} store",
        reasons=[reasons["waiting"]],
        description="Evening and Monday queues of 30+ minutes; detractors cite waiting first.",
        function="Retail operations",
        owner=owner,
        deadline=fixed_on,
        authority="Change the store's rota and open a second counter at peak hours.",
        resources="Two extra consultants on evening shifts; queue-ticket system update.",
    )
    if branch is not None:
        queue.branches.set([branch])
        Case.objects.filter(workspace=workspace, branch=branch, reasons=reasons["waiting"]).update(
            problem=queue
        )
    queue = services.update_problem(queue, {"status": ProblemStatus.IN_PROGRESS})
    queue = services.update_problem(queue, {"status": ProblemStatus.FIXED, "fixed_on": fixed_on})
    services.verify_problem(queue, now=now)

    head = Employee.objects.filter(workspace=workspace, supervisor__isnull=True).first()
    trained = (now - dt.timedelta(days=TRAINING_DAYS_AGO)).date()
    info = services.create_problem(
        workspace.pk,
        title="Consultants give wrong information about the new tariffs",
        reasons=[reasons["wrong_info"]],
        description="After the tariff change, call-backs found customers told the old prices.",
        function="Training",
        owner=head,
        deadline=trained,
        authority="Schedule a mandatory training for every consultant.",
        resources="Two trainers for a week; an updated tariff cheat sheet.",
    )
    Case.objects.filter(workspace=workspace, reasons=reasons["wrong_info"]).update(problem=info)
    info = services.update_problem(info, {"status": ProblemStatus.IN_PROGRESS})
    info = services.update_problem(info, {"status": ProblemStatus.FIXED, "fixed_on": trained})
    services.verify_problem(info, now=now)

    billing = services.create_problem(
        workspace.pk,
        title="Wrong amounts on internet invoices after the tariff change",
        reasons=[reasons["billing_error"], reasons["price"]],
        description="Customers moved to the new tariff were billed the old price for a month.",
        function="Billing",
        owner=head,
        deadline=(now + dt.timedelta(days=21)).date(),
        authority="Correct and re-issue invoices; credit the difference automatically.",
        resources="Billing team, one sprint of the billing vendor.",
    )
    services.update_problem(billing, {"status": ProblemStatus.IN_PROGRESS})
    Case.objects.filter(workspace=workspace, reasons=reasons["billing_error"]).update(
        problem=billing
    )
    services.create_problem(
        workspace.pk,
        title="Technicians arrive outside the promised window",
        reasons=[reasons["technician_late"]],
        function="Field service",
        owner=head,
        deadline=(now + dt.timedelta(days=45)).date(),
        authority="Change the booking windows and the routing of field teams.",
    )
    return Problem.objects.filter(workspace=workspace).count()
