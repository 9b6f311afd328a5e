"""The closed loop's behaviour: opening, routing, timers, the call-back and the problem register.

Every change goes through a function here, from the web, the API and the heartbeat alike, so
that each one writes its ``CaseEvent`` and its webhook event in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from cxloop.accounts.models import Membership, Permission, Role
from cxloop.core import clock
from cxloop.organisation.models import Branch, Employee, Team
from cxloop.surveys.models import AtRiskAccount, Response, Survey
from cxloop.text.models import CommentReason
from cxloop.webhooks import events

from . import sla
from .models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    AlertCursor,
    AlertRule,
    AttemptResult,
    Case,
    CaseEvent,
    CaseSettings,
    CaseSource,
    CaseStatus,
    CoachingNote,
    EventKind,
    Priority,
    Problem,
    ProblemStatus,
    ReasonCode,
    Solved,
)
from .serialise import case_data, problem_data

log = logging.getLogger(__name__)

# The detractor range of each score type: the alert of a survey without rules of its own.
DEFAULT_RANGES: dict[str, tuple[int, int]] = {"nps": (0, 6), "csat": (1, 2), "ces": (1, 3)}
# Responses answered longer ago than this open no case (an import of last year's answers must
# not fill the supervisors' inboxes).
STALE_AFTER = dt.timedelta(days=7)
# The sweep looks again this far behind its position, for transactions that committed late.
SWEEP_OVERLAP = dt.timedelta(minutes=2)
SWEEP_BATCH = 2000


class CaseError(ValueError):
    """An action the case's state does not allow; the message says why."""


# --- alert rules ----------------------------------------------------------------------------


# The languages a phrase rule may be limited to (``text.language.SUPPORTED``).
KNOWN = ("en", "ro", "ru", "uk")


def normalise(text: str) -> str:
    """Lower case, without accents (ș → s, й → и), spaces collapsed: phrases match in any
    spelling a customer types."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.split())


@dataclass(frozen=True)
class Rule:
    name: str
    score_min: int | None = None
    score_max: int | None = None
    reasons: frozenset[str] = frozenset()
    phrases: tuple[str, ...] = ()
    priority: str = Priority.NORMAL
    language: str = ""

    def match(
        self, score: int | None, chosen: set[str], comment: str, language: str = ""
    ) -> list[str]:
        """Why this rule matches (empty: it does not). ``language``: the comment's."""
        why: list[str] = []
        if (self.score_min is not None or self.score_max is not None) and score is not None:
            low = self.score_min if self.score_min is not None else -(10**6)
            high = self.score_max if self.score_max is not None else 10**6
            if low <= score <= high:
                why.append(f"{self.name}: score {score}")
        hit = sorted(self.reasons & chosen)
        if hit:
            why.append(f"{self.name}: reason {', '.join(hit)}")
        # A rule for one language skips only comments surely in another language cxloop
        # knows; one too short to tell ("unknown") or read as a stranger language (short
        # Romanian passes for Italian) is looked at: better one alert too many than a missed
        # threat.
        if (
            comment
            and self.phrases
            and (not self.language or language == self.language or language not in KNOWN)
        ):
            for phrase in self.phrases:
                # Phrases match at the start of a word, so that "sue" does not match "issue"
                # and "адвокат" still matches "адвокатом".
                if re.search(r"(?<!\w)" + re.escape(phrase), comment):
                    why.append(f"{self.name}: phrase {phrase!r}")
                    break
        return why


def rules_for(survey: Survey) -> list[Rule]:
    rows = list(AlertRule.objects.filter(survey=survey))
    if not rows:
        from cxloop.surveys.render import definition_of

        kind = definition_of(survey).score_question.type
        low, high = DEFAULT_RANGES.get(kind, DEFAULT_RANGES["nps"])
        return [Rule(name="detractor", score_min=low, score_max=high)]
    return [
        Rule(
            name=row.name,
            score_min=row.score_min,
            score_max=row.score_max,
            reasons=frozenset(str(r) for r in row.reasons),
            phrases=tuple(p for p in (normalise(str(x)) for x in row.phrases) if p),
            priority=row.priority,
            language=row.language,
        )
        for row in rows
        if row.is_active
    ]


def chosen_options(answers: dict[str, Any]) -> set[str]:
    """Every option code the respondent chose, in any choice question."""
    chosen: set[str] = set()
    for value in answers.values():
        if isinstance(value, str):
            chosen.add(value)
        elif isinstance(value, list):
            chosen.update(v for v in value if isinstance(v, str))
    return chosen


def evaluate(response: Response, rules: Sequence[Rule]) -> tuple[list[str], str] | None:
    """(why, priority) when ``response`` should open a case, else None."""
    comment = normalise(response.comment or "")
    chosen = chosen_options(response.answers or {})
    language = ""
    if comment and any(rule.language and rule.phrases for rule in rules):
        from cxloop.text.language import detect

        language = detect(response.comment)[0]
    why: list[str] = []
    priority = Priority.NORMAL
    for rule in rules:
        hits = rule.match(response.score, chosen, comment, language)
        if hits:
            why.extend(hits)
            if rule.priority == Priority.URGENT:
                priority = Priority.URGENT
    return (why, priority) if why else None


# --- routing and deadlines ------------------------------------------------------------------


def settings_for(workspace_id: int) -> CaseSettings:
    found = CaseSettings.objects.filter(workspace_id=workspace_id).first()
    return found or CaseSettings(workspace_id=workspace_id)


def _active(employee: Employee | None) -> Employee | None:
    return employee if employee is not None and employee.is_active else None


def route(employee: Employee | None, branch: Branch | None) -> Employee | None:
    """The supervisor of the employee involved; else the branch manager; else the CX team's
    queue (None)."""
    boss = _active(employee.supervisor) if employee is not None else None
    if employee is not None and boss is not None and boss.pk != employee.pk:
        return boss
    branch = branch or (employee.branch if employee is not None else None)
    manager = _active(branch.manager) if branch is not None else None
    if manager is not None and (employee is None or manager.pk != employee.pk):
        return manager
    return None


def next_manager(case: Case) -> Employee | None:
    """Whom a breached case goes to: the assignee's own supervisor, else the branch manager
    above them, else the CX team's queue."""
    current = case.assignee
    if current is None:
        return None
    if (boss := _active(current.supervisor)) is not None and boss.pk != current.pk:
        return boss
    branch = case.branch or current.branch
    manager = _active(branch.manager) if branch is not None else None
    if manager is not None and manager.pk != current.pk:
        return manager
    return None


def deadline(
    workspace_id: int, branch: Branch | None, now: dt.datetime, settings: CaseSettings
) -> tuple[dt.datetime, dt.datetime]:
    """(due_at, warn_at) of a case opened or escalated at ``now``."""
    cal = sla.calendar_for(workspace_id, branch, settings)
    due = sla.due_at(
        now,
        cal,
        mode=settings.sla_mode,
        hours=settings.sla_hours,
        min_left_minutes=settings.min_minutes_left,
    )
    warn = max(now, due - dt.timedelta(minutes=settings.warn_minutes))
    return due, warn


# --- opening --------------------------------------------------------------------------------


def _open(
    *,
    workspace_id: int,
    source: str,
    now: dt.datetime,
    why: list[str],
    priority: str,
    response: Response | None = None,
    at_risk: AtRiskAccount | None = None,
    customer_id: int | None = None,
    branch: Branch | None = None,
    employee: Employee | None = None,
    lookup: dict[str, Any],
) -> Case:
    settings = settings_for(workspace_id)
    assignee = route(employee, branch)
    due, warn = deadline(
        workspace_id, branch or (employee.branch if employee else None), now, settings
    )
    try:
        with transaction.atomic():
            case = Case.objects.create(
                workspace_id=workspace_id,
                source=source,
                response=response,
                at_risk=at_risk,
                survey_id=response.survey_id if response else None,
                customer_id=customer_id,
                branch=branch,
                employee=employee,
                product_id=response.product_id if response else None,
                channel_id=response.channel_id if response else None,
                touchpoint_id=response.touchpoint_id if response else None,
                matched=why,
                priority=priority,
                assignee=assignee,
                opened_at=now,
                due_at=due,
                warn_at=warn,
            )
            CaseEvent.objects.create(
                workspace_id=workspace_id,
                case=case,
                kind=EventKind.OPENED,
                at=now,
                to_assignee=assignee,
                note="; ".join(why)[:500],
            )
            events.emit(workspace_id, events.CASE_OPENED, lambda: case_data(case))
    except IntegrityError:
        # Another worker opened it first: exactly one case per response.
        return Case.objects.get(**lookup)
    return case


def open_for_response(response_id: int, now: dt.datetime | None = None) -> Case | None:
    """The case ``response`` opens, if its survey's alert rules match (the existing one when
    it was processed before); None when no rule matches."""
    now = now or clock.now()
    existing = Case.objects.filter(response_id=response_id).first()
    if existing is not None:
        return existing
    response = (
        Response.objects.select_related(
            "survey",
            "employee__supervisor",
            "employee__branch__manager",
            "branch__manager",
        )
        .filter(pk=response_id)
        .first()
    )
    if response is None or response.is_test or response.answered_at < now - STALE_AFTER:
        return None
    found = evaluate(response, rules_for(response.survey))
    if found is None:
        return None
    why, priority = found
    return _open(
        workspace_id=response.workspace_id,
        source=CaseSource.RESPONSE,
        now=now,
        why=why,
        priority=priority,
        response=response,
        customer_id=response.customer_id,
        branch=response.branch,
        employee=response.employee,
        lookup={"response_id": response.pk},
    )


def open_for_at_risk(flag: AtRiskAccount, now: dt.datetime | None = None) -> Case:
    """A B2B account that stopped answering: a case for the CX team's queue."""
    now = now or clock.now()
    return _open(
        workspace_id=flag.workspace_id,
        source=CaseSource.AT_RISK,
        now=now,
        why=[f"account stopped answering: {flag.unanswered} invitations unanswered"],
        priority=Priority.NORMAL,
        at_risk=flag,
        lookup={"at_risk_id": flag.pk},
    )


def sweep(workspace_id: int, now: dt.datetime | None = None) -> int:
    """Open the cases of responses saved since the last sweep (batch imports, and any a
    stopped worker missed). Returns how many cases it opened."""
    now = now or clock.now()
    cursor, _ = AlertCursor.objects.get_or_create(workspace_id=workspace_id)
    since = (cursor.position or now - STALE_AFTER) - SWEEP_OVERLAP
    candidates = list(
        Response.objects.filter(
            workspace_id=workspace_id,
            updated_at__gte=since,
            is_test=False,
            answered_at__gte=now - STALE_AFTER,
        )
        .exclude(Exists(Case.objects.filter(response=OuterRef("pk"))))
        .order_by("updated_at", "pk")
        .values_list("pk", "updated_at")[:SWEEP_BATCH]
    )
    opened = 0
    for pk, _updated in candidates:
        if open_for_response(pk, now=now) is not None:
            opened += 1
    # A full batch: continue from its last row next time; otherwise everything up to now has
    # been seen (less the overlap, looked at again next time).
    position = candidates[-1][1] if len(candidates) == SWEEP_BATCH else now
    AlertCursor.objects.filter(pk=cursor.pk).update(position=position)
    return opened


def open_at_risk(workspace_id: int, now: dt.datetime) -> int:
    if not settings_for(workspace_id).open_for_at_risk:
        return 0
    flags = AtRiskAccount.objects.filter(
        workspace_id=workspace_id, cleared_at__isnull=True
    ).exclude(Exists(Case.objects.filter(at_risk=OuterRef("pk"))))
    return len([open_for_at_risk(flag, now) for flag in flags])


# --- timers ---------------------------------------------------------------------------------


def _event(case: Case, kind: str, *, actor: Any = None, via: str = "system", **fields: Any) -> None:
    CaseEvent.objects.create(
        workspace_id=case.workspace_id,
        case=case,
        kind=kind,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        via=via,
        **fields,
    )


def _updated(case: Case, event_type: str = events.CASE_UPDATED) -> None:
    events.emit(case.workspace_id, event_type, lambda: case_data(case))


def warn_due(now: dt.datetime) -> list[int]:
    """Mark the open cases whose reminder time has come; returns their ids (to e-mail)."""
    due = list(
        Case.objects.filter(
            status__in=OPEN_STATUSES, warned_at__isnull=True, warn_at__lte=now, due_at__gt=now
        ).values_list("pk", flat=True)[:500]
    )
    warned: list[int] = []
    for pk in due:
        # Claimed by a conditional UPDATE: two heartbeats never warn twice.
        if Case.objects.filter(pk=pk, warned_at__isnull=True).update(warned_at=now):
            case = Case.objects.get(pk=pk)
            _event(case, EventKind.WARNED)
            warned.append(pk)
    return warned


def escalate_due(now: dt.datetime) -> list[int]:
    """Escalate every open case past its deadline to the next manager; returns their ids."""
    due = list(
        Case.objects.filter(status__in=OPEN_STATUSES, due_at__lte=now)
        .select_related("assignee__supervisor", "assignee__branch__manager", "branch__manager")
        .order_by("due_at")[:500]
    )
    escalated: list[int] = []
    for case in due:
        settings = settings_for(case.workspace_id)
        target = next_manager(case)
        new_due, new_warn = deadline(case.workspace_id, case.branch, now, settings)
        with transaction.atomic():
            # Claimed on the deadline it was read with: a second heartbeat finds it moved.
            claimed = Case.objects.filter(
                pk=case.pk, status__in=OPEN_STATUSES, due_at=case.due_at
            ).update(
                assignee=target,
                escalation_level=case.escalation_level + 1,
                escalated_at=now,
                breached=True,
                due_at=new_due,
                warn_at=new_warn,
                warned_at=None,
                notified_at=now,
                updated_at=now,
            )
            if not claimed:
                continue
            previous = case.assignee
            case.refresh_from_db()
            _event(
                case,
                EventKind.ESCALATED,
                from_assignee=previous,
                to_assignee=target,
                note=f"deadline passed; level {case.escalation_level}",
            )
            _updated(case)
        escalated.append(case.pk)
    return escalated


def tick(now: dt.datetime | None = None) -> dict[str, int]:
    """The closed loop's heartbeat: open missed cases, remind, escalate, notify.

    Safe to run from several processes at once; every step claims its rows.
    """
    from cxloop.accounts.models import Workspace

    from . import notify

    now = now or clock.now()
    stats = {"cases_opened": 0, "cases_warned": 0, "cases_escalated": 0}
    for workspace_id in Workspace.objects.values_list("pk", flat=True):
        stats["cases_opened"] += sweep(workspace_id, now) + open_at_risk(workspace_id, now)
    warned = warn_due(now)
    escalated = escalate_due(now)
    stats["cases_warned"] = len(warned)
    stats["cases_escalated"] = len(escalated)
    stats["cases_notified"] = notify.send_due(now, warned=warned, escalated=escalated)
    return stats


# --- the call-back --------------------------------------------------------------------------


def _lock(case: Case) -> Case:
    return Case.objects.select_for_update().get(pk=case.pk)


def assign(
    case: Case, assignee: Employee | None, *, actor: Any = None, via: str = "web", note: str = ""
) -> Case:
    if assignee is not None and assignee.workspace_id != case.workspace_id:
        raise CaseError("the assignee is not in this workspace")
    with transaction.atomic():
        locked = _lock(case)
        if not locked.is_open:
            raise CaseError("a closed case cannot be reassigned; reopen it first")
        if locked.assignee_id == (assignee.pk if assignee else None):
            return locked
        previous = locked.assignee
        locked.assignee = assignee
        # The new assignee is told by e-mail at the next heartbeat.
        locked.notified_at = None
        locked.save(update_fields=["assignee", "notified_at", "updated_at"])
        _event(
            locked,
            EventKind.ASSIGNED,
            actor=actor,
            via=via,
            from_assignee=previous,
            to_assignee=assignee,
            note=note[:2000],
        )
        _updated(locked)
    return locked


def log_attempt(
    case: Case, result: str, *, note: str = "", actor: Any = None, via: str = "web"
) -> Case:
    if result not in AttemptResult.values:
        raise CaseError(f"result must be one of {', '.join(AttemptResult.values)}")
    with transaction.atomic():
        locked = _lock(case)
        if not locked.is_open:
            raise CaseError("the case is closed")
        _event(locked, EventKind.ATTEMPT, actor=actor, via=via, result=result, note=note[:2000])
        if locked.status == CaseStatus.OPEN:
            locked.status = CaseStatus.IN_PROGRESS
            locked.save(update_fields=["status", "updated_at"])
        _updated(locked)
    return locked


def attempts(case: Case) -> int:
    return CaseEvent.objects.filter(case=case, kind=EventKind.ATTEMPT).count()


def record_callback(
    case: Case,
    *,
    apologised: bool,
    solved: str,
    reasons: Iterable[ReasonCode],
    expected: str = "",
    notes: str = "",
    actor: Any = None,
    via: str = "web",
) -> Case:
    """The script's answers: apologised, solved now (yes/partly/no), root causes, what the
    customer expected, notes. Reaching the customer is an attempt of its own."""
    if solved not in Solved.values:
        raise CaseError(f"solved must be one of {', '.join(Solved.values)}")
    chosen = list(reasons)
    if any(r.workspace_id != case.workspace_id for r in chosen):
        raise CaseError("a reason code is not in this workspace")
    if not chosen:
        raise CaseError("choose at least one root-cause reason")
    with transaction.atomic():
        locked = _lock(case)
        if not locked.is_open:
            raise CaseError("the case is closed; reopen it to change the call-back")
        locked.apologised = apologised
        locked.solved = solved
        locked.expected = expected[:5000]
        locked.notes = notes[:10000]
        locked.status = CaseStatus.IN_PROGRESS
        locked.save(
            update_fields=["apologised", "solved", "expected", "notes", "status", "updated_at"]
        )
        locked.reasons.set(chosen)
        _event(
            locked,
            EventKind.CALLBACK,
            actor=actor,
            via=via,
            result=solved,
            note=", ".join(r.code for r in chosen),
        )
        _updated(locked)
    return locked


def close(
    case: Case, status: str, *, actor: Any = None, via: str = "web", note: str = "",
    now: dt.datetime | None = None,
) -> Case:  # fmt: skip
    """Resolved (the call-back is recorded), unreachable (after the workspace's number of
    attempts) or declined (the customer did not want to talk)."""
    now = now or clock.now()
    if status not in CLOSED_STATUSES:
        raise CaseError(f"a case closes as one of {', '.join(CLOSED_STATUSES)}")
    settings = settings_for(case.workspace_id)
    with transaction.atomic():
        locked = _lock(case)
        if not locked.is_open:
            raise CaseError("the case is already closed")
        if status == CaseStatus.RESOLVED and (locked.apologised is None or not locked.solved):
            raise CaseError("record the call-back before closing the case as resolved")
        tries = attempts(locked)
        if status == CaseStatus.UNREACHABLE and tries < settings.max_attempts:
            raise CaseError(
                f"unreachable needs {settings.max_attempts} logged call attempts; "
                f"this case has {tries}"
            )
        if status == CaseStatus.DECLINED and tries == 0 and locked.apologised is None:
            raise CaseError("log the call in which the customer declined")
        locked.status = status
        locked.closed_at = now
        locked.breached = locked.breached or now > locked.due_at
        locked.save(update_fields=["status", "closed_at", "breached", "updated_at"])
        _event(locked, EventKind.CLOSED, actor=actor, via=via, result=status, note=note[:2000])
        _updated(locked, events.CASE_CLOSED)
    if status == CaseStatus.RESOLVED:
        follow_up(locked, settings)
    return locked


def follow_up(case: Case, settings: CaseSettings) -> None:
    """ "Did we solve it?" — the follow-up survey, under its own rules (consent, quiet period)."""
    survey = settings.follow_up_survey
    if survey is None or case.customer is None or not survey.is_active:
        return
    from cxloop.surveys.rules import schedule_for

    decision = schedule_for(survey, case.customer, via="case")
    if decision.invitation_id is not None:
        Case.objects.filter(pk=case.pk).update(follow_up_id=decision.invitation_id)
        case.follow_up_id = decision.invitation_id


def reopen(case: Case, *, actor: Any = None, via: str = "web", note: str = "") -> Case:
    now = clock.now()
    settings = settings_for(case.workspace_id)
    with transaction.atomic():
        locked = _lock(case)
        if locked.is_open:
            raise CaseError("the case is open")
        due, warn = deadline(locked.workspace_id, locked.branch, now, settings)
        locked.status = CaseStatus.IN_PROGRESS
        locked.closed_at = None
        locked.due_at, locked.warn_at, locked.warned_at = due, warn, None
        locked.save(
            update_fields=["status", "closed_at", "due_at", "warn_at", "warned_at", "updated_at"]
        )
        _event(locked, EventKind.REOPENED, actor=actor, via=via, note=note[:2000])
        _updated(locked)
    return locked


# --- coaching -------------------------------------------------------------------------------


def add_coaching(
    employee: Employee, text: str, *, case: Case | None = None, author: Any = None
) -> CoachingNote:
    text = text.strip()
    if not text:
        raise CaseError("a coaching note needs text")
    if case is not None and case.workspace_id != employee.workspace_id:
        raise CaseError("the case is not in this workspace")
    with transaction.atomic():
        note = CoachingNote.objects.create(
            workspace_id=employee.workspace_id,
            employee=employee,
            case=case,
            author=author if getattr(author, "is_authenticated", False) else None,
            text=text[:10000],
        )
        if case is not None:
            _event(case, EventKind.COACHING, actor=author, note=f"coaching note {note.pk}")
    return note


# --- the problem register -------------------------------------------------------------------

# Where a problem may go from each status (verified and not_effective come from measuring).
PROBLEM_FLOW: dict[str, tuple[str, ...]] = {
    ProblemStatus.OPEN: (ProblemStatus.IN_PROGRESS, ProblemStatus.FIXED),
    ProblemStatus.IN_PROGRESS: (ProblemStatus.OPEN, ProblemStatus.FIXED),
    ProblemStatus.FIXED: (ProblemStatus.IN_PROGRESS,),
    ProblemStatus.VERIFIED: (ProblemStatus.IN_PROGRESS,),
    ProblemStatus.NOT_EFFECTIVE: (ProblemStatus.IN_PROGRESS, ProblemStatus.FIXED),
}
PROBLEM_FIELDS = ("title", "description", "function", "owner", "deadline", "authority", "resources")


def _problem_changed(problem: Problem) -> None:
    events.emit(problem.workspace_id, events.PROBLEM_UPDATED, lambda: problem_data(problem))


def create_problem(
    workspace_id: int,
    *,
    title: str,
    reasons: Iterable[ReasonCode] = (),
    branches: Iterable[Branch] = (),
    actor: Any = None,
    **fields: Any,
) -> Problem:
    title = title.strip()
    if not title:
        raise CaseError("a problem needs a title")
    unknown = set(fields) - set(PROBLEM_FIELDS)
    if unknown:
        raise CaseError(f"unknown fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        problem = Problem.objects.create(
            workspace_id=workspace_id,
            title=title[:200],
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
            **fields,
        )
        problem.reasons.set(list(reasons))
        problem.branches.set(list(branches))
        _problem_changed(problem)
    return problem


def escalate_to_problem(
    case: Case,
    *,
    title: str,
    problem: Problem | None = None,
    actor: Any = None,
    via: str = "web",
    **fields: Any,
) -> Problem:
    """The outer loop in one step: a new problem (or an existing one) linked to ``case`` and
    to its reason codes."""
    with transaction.atomic():
        if problem is None:
            problem = create_problem(
                case.workspace_id, title=title, reasons=case.reasons.all(), actor=actor, **fields
            )
        elif problem.workspace_id != case.workspace_id:
            raise CaseError("the problem is not in this workspace")
        else:
            problem.reasons.add(*case.reasons.all())
            _problem_changed(problem)
        Case.objects.filter(pk=case.pk).update(problem=problem, updated_at=clock.now())
        case.problem = problem
        _event(case, EventKind.PROBLEM, actor=actor, via=via, note=f"problem {problem.pk}")
        _updated(case)
    return problem


def update_problem(
    problem: Problem,
    changes: dict[str, Any],
    *,
    reasons: Iterable[ReasonCode] | None = None,
    branches: Iterable[Branch] | None = None,
    actor: Any = None,
) -> Problem:
    """Change fields and move along the flow open → in progress → fixed; ``fixed_on`` defaults
    to today when a problem becomes fixed."""
    allowed = set(PROBLEM_FIELDS) | {"status", "fixed_on"}
    unknown = set(changes) - allowed
    if unknown:
        raise CaseError(f"unknown fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        locked = Problem.objects.select_for_update().get(pk=problem.pk)
        status = changes.get("status", locked.status)
        if status != locked.status:
            if status not in PROBLEM_FLOW.get(locked.status, ()):
                raise CaseError(
                    f"a problem that is {locked.status} cannot become {status}"
                    + (
                        "; verified and not effective come from measuring the fix"
                        if status in (ProblemStatus.VERIFIED, ProblemStatus.NOT_EFFECTIVE)
                        else ""
                    )
                )
            if status == ProblemStatus.FIXED and not changes.get("fixed_on"):
                changes = {**changes, "fixed_on": locked.fixed_on or clock.now().date()}
        for name, value in changes.items():
            setattr(locked, name, value)
        if not str(locked.title).strip():
            raise CaseError("a problem needs a title")
        locked.save()
        if reasons is not None:
            locked.reasons.set(list(reasons))
        if branches is not None:
            locked.branches.set(list(branches))
        _problem_changed(locked)
    return locked


EFFECT_WINDOW = dt.timedelta(days=30)


def nps_surveys(workspace_id: int) -> list[int]:
    from cxloop.surveys.render import definition_of

    return [
        survey.pk
        for survey in Survey.objects.filter(workspace_id=workspace_id)
        if definition_of(survey).score_question.type == "nps"
    ]


def detractor_reason_shares(
    workspace_id: int,
    codes: set[str],
    start: dt.datetime,
    end: dt.datetime,
    branches: Sequence[int] = (),
) -> tuple[int, int]:
    """(detractors citing any of ``codes``, all detractors) answering in [start, end).

    A detractor cites a reason when their case carries it, when their comment was coded with
    it (``text.CommentReason``), or when they ticked an option of that code in the survey's
    reasons question.
    """
    low, high = DEFAULT_RANGES["nps"]
    rows = Response.objects.filter(
        workspace_id=workspace_id,
        is_test=False,
        answered_at__gte=start,
        answered_at__lt=end,
        score__gte=low,
        score__lte=high,
        survey_id__in=nps_surveys(workspace_id),
    )
    if branches:
        rows = rows.filter(branch_id__in=branches)
    pairs = rows.values_list("pk", "answers")
    coded = set(
        Case.objects.filter(
            workspace_id=workspace_id,
            response__answered_at__gte=start,
            response__answered_at__lt=end,
            reasons__code__in=codes,
        ).values_list("response_id", flat=True)
    )
    coded |= set(
        CommentReason.objects.filter(
            comment__workspace_id=workspace_id,
            comment__written_at__gte=start,
            comment__written_at__lt=end,
            comment__response__isnull=False,
            reason__code__in=codes,
        ).values_list("comment__response_id", flat=True)
    )
    total = hits = 0
    for pk, answers in pairs.iterator(chunk_size=5000):
        total += 1
        if pk in coded or chosen_options(answers or {}) & codes:
            hits += 1
    return hits, total


def measure_effect(problem: Problem, now: dt.datetime | None = None) -> dict[str, Any]:
    """The fix's effect: the share of detractors citing the problem's reasons in the 30 days
    before ``fixed_on`` against the days since (up to 30), at the problem's branches (all when
    it names none), by a two-proportion test."""
    from cxloop.analytics.stats import fix_effect

    now = now or clock.now()
    if problem.fixed_on is None:
        raise CaseError("the problem has no fix date")
    codes = set(problem.reasons.values_list("code", flat=True))
    if not codes:
        raise CaseError("link at least one reason code to measure the effect")
    from django.utils import timezone as tz

    fixed = dt.datetime.combine(problem.fixed_on, dt.time(), tzinfo=tz.get_current_timezone())
    after_end = min(now, fixed + EFFECT_WINDOW)
    branches = list(problem.branches.values_list("pk", flat=True))
    before = detractor_reason_shares(
        problem.workspace_id, codes, fixed - EFFECT_WINDOW, fixed, branches
    )
    after = detractor_reason_shares(problem.workspace_id, codes, fixed, after_end, branches)
    effect = fix_effect(before[0], before[1], after[0], after[1])
    return {
        "before": {"citing": before[0], "detractors": before[1], "share": effect.before_share},
        "after": {"citing": after[0], "detractors": after[1], "share": effect.after_share},
        "drop_points": effect.drop_points,
        "p_value": effect.p_value,
        "significant": effect.significant,
        "verdict": effect.verdict,
        "window_days": EFFECT_WINDOW.days,
        "measured_at": now.isoformat(),
    }


def verify_problem(
    problem: Problem, *, actor: Any = None, now: dt.datetime | None = None
) -> Problem:
    """Measure a fixed problem: verified when the drop is significant, else not effective
    (with too little data yet it stays fixed)."""
    if problem.status not in (
        ProblemStatus.FIXED,
        ProblemStatus.NOT_EFFECTIVE,
        ProblemStatus.VERIFIED,
    ):
        raise CaseError("only a fixed problem can be verified")
    effect = measure_effect(problem, now)
    with transaction.atomic():
        locked = Problem.objects.select_for_update().get(pk=problem.pk)
        locked.effect = effect
        if effect["verdict"] == "verified":
            locked.status = ProblemStatus.VERIFIED
        elif effect["verdict"] == "not_effective":
            locked.status = ProblemStatus.NOT_EFFECTIVE
        locked.save()
        _problem_changed(locked)
    return locked


# --- who sees what --------------------------------------------------------------------------


def my_employees(membership: Membership) -> QuerySet[Employee]:
    return Employee.objects.filter(workspace=membership.workspace, user=membership.user)


def visible_cases(membership: Membership) -> QuerySet[Case]:
    """Everything for those who see all feedback; for a supervisor, the cases of their teams:
    assigned to them, about the people who report to them or work in their teams, or at the
    branches they manage. An employee sees no cases."""
    cases = Case.objects.filter(workspace=membership.workspace)
    if membership.can(Permission.VIEW_ALL_FEEDBACK):
        return cases
    if membership.role != Role.SUPERVISOR:
        return cases.none()
    scope = team_scope(membership)
    if scope is None:
        return cases.none()
    mine, people, branches = scope
    return cases.filter(Q(assignee__in=mine) | Q(employee__in=people) | Q(branch__in=branches))


def team_scope(membership: Membership) -> tuple[list[int], list[int], list[int]] | None:
    """A supervisor's teams as ids: (their own employee records, the people who report to them
    or work in their teams, the branches they manage). None: the user is no employee."""
    mine = list(my_employees(membership).values_list("pk", flat=True))
    if not mine:
        return None
    # Ids first, then the rows' own indexed columns: an OR across joins would make the
    # database read every open case of the workspace (benchmarks/cases.py).
    teams = Team.objects.filter(Q(employees__supervisor__in=mine) | Q(employees__in=mine)).values(
        "pk"
    )
    people = list(
        Employee.objects.filter(Q(supervisor__in=mine) | Q(team__in=teams)).values_list(
            "pk", flat=True
        )
    )
    branches = list(Branch.objects.filter(manager__in=mine).values_list("pk", flat=True))
    return mine, people, branches


def can_see_contacts(membership: Membership) -> bool:
    return membership.can(Permission.VIEW_CUSTOMER_CONTACTS)


def can_act(membership: Membership) -> bool:
    """Who may record call-backs, reassign and close (analysts only read)."""
    return membership.role in (Role.ADMIN, Role.CX_MANAGER, Role.SUPERVISOR)


def can_manage_problems(membership: Membership) -> bool:
    return membership.role in (Role.ADMIN, Role.CX_MANAGER)


def open_cases(qs: QuerySet[Case]) -> QuerySet[Case]:
    return qs.filter(status__in=OPEN_STATUSES)
