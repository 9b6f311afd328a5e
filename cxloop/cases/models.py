"""The closed loop: alert rules, cases and their history, reason codes, coaching, problems.

The inner loop (docs/closed-loop.md): a response that matches one of its survey's
``AlertRule``s opens exactly one ``Case`` (a unique constraint on the response), routed to the
supervisor of the employee involved, else to the branch manager, else to the CX team's queue.
The case carries its SLA deadline (``due_at``, computed in business hours by ``sla``); the
heartbeat (``services.tick``) warns the assignee before it and escalates to the next manager
when it passes. Everything that happens to a case is a ``CaseEvent``: reassignments, call
attempts, the call-back, the close.

The outer loop: a ``Problem`` no team can fix alone, with an owner, a deadline, its linked
reason codes and cases, and the measured effect of its fix.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from cxloop.core import clock
from cxloop.core.models import Timestamped, WorkspaceScoped
from cxloop.organisation.models import Placed


class ReasonCode(WorkspaceScoped):
    """One root cause in the taxonomy the CX manager keeps, with its label in each language.

    A code may equal an option code of a survey's reasons question ("waiting"): a detractor who
    ticked that option counts as citing the reason in the pain map and in a problem's effect.
    """

    code = models.CharField(max_length=64)
    # {"en": "Waiting time", "ru": "Время ожидания", "ro": "Timpul de așteptare"}
    labels: models.JSONField[Any, Any] = models.JSONField(default=dict)
    category = models.CharField(max_length=100, blank=True)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        verbose_name = _("reason code")
        verbose_name_plural = _("reason codes")
        ordering = ["position", "code"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "code"], name="reason_code_unique")
        ]

    def __str__(self) -> str:
        return self.label()

    def label(self, language: str | None = None) -> str:
        from django.utils.translation import get_language

        language = (language or get_language() or "en")[:2]
        return str(self.labels.get(language) or self.labels.get("en") or self.code)


class Priority(models.TextChoices):
    NORMAL = "normal", _("Normal")
    URGENT = "urgent", _("Urgent")


class AlertRule(WorkspaceScoped, Timestamped):
    """When a response opens a case. Any one condition that is set is enough:

    * the score is within ``score_min``…``score_max`` (both blank: the score is not looked at);
    * the respondent chose one of ``reasons`` (option codes of the survey's choice questions);
    * the comment contains one of ``phrases`` (case- and accent-insensitive; in any language,
      or only in ``language`` when set: the comment's detected language, see ``text.language``).

    A survey with no rules at all uses the default: its detractor range (NPS 0-6).
    """

    survey = models.ForeignKey(
        "surveys.Survey", on_delete=models.CASCADE, related_name="alert_rules"
    )
    name = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True)
    score_min = models.SmallIntegerField(null=True, blank=True)
    score_max = models.SmallIntegerField(null=True, blank=True)
    reasons: models.JSONField[Any, Any] = models.JSONField(default=list, blank=True)
    phrases: models.JSONField[Any, Any] = models.JSONField(default=list, blank=True)
    # The phrases look only at comments in this language (detected, ISO 639-1); blank: any.
    language = models.CharField(max_length=8, blank=True)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.NORMAL)

    class Meta:
        verbose_name = _("alert rule")
        verbose_name_plural = _("alert rules")
        ordering = ["survey", "name"]
        constraints = [
            models.UniqueConstraint(fields=["survey", "name"], name="alert_rule_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class CaseSettings(WorkspaceScoped):
    """The workspace's SLA and call-back policy (one row; defaults when there is none)."""

    class SlaMode(models.TextChoices):
        SAME_DAY = "same_day", _("Same business day")
        HOURS = "hours", _("Business hours")

    sla_mode = models.CharField(max_length=10, choices=SlaMode.choices, default=SlaMode.SAME_DAY)
    sla_hours = models.PositiveSmallIntegerField(
        default=8, help_text=_("Business hours to close a case, when the SLA is in hours.")
    )
    # A case opened with less than this left of the business day is due at the end of the next.
    min_minutes_left = models.PositiveSmallIntegerField(default=60)
    day_start = models.TimeField(default=dt.time(9))
    day_end = models.TimeField(default=dt.time(18))
    # ISO weekdays the business works (1 = Monday … 7 = Sunday).
    workdays: models.JSONField[Any, Any] = models.JSONField(default=list)
    warn_minutes = models.PositiveSmallIntegerField(
        default=60, help_text=_("Remind the assignee this many minutes before the deadline.")
    )
    max_attempts = models.PositiveSmallIntegerField(
        default=3, help_text=_("Call attempts before a case may be closed as unreachable.")
    )
    open_for_at_risk = models.BooleanField(
        default=True, help_text=_("Open a case when a B2B account stops answering surveys.")
    )
    follow_up_survey = models.ForeignKey(
        "surveys.Survey",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_('Sent after a resolved case: "did we solve it?"'),
    )

    class Meta:
        verbose_name = _("closed-loop settings")
        verbose_name_plural = _("closed-loop settings")
        constraints = [
            models.UniqueConstraint(fields=["workspace"], name="case_settings_once"),
        ]

    def __str__(self) -> str:
        return f"closed-loop settings of {self.workspace_id}"

    def working_days(self) -> list[int]:
        return list(self.workdays) or [1, 2, 3, 4, 5]


class AlertCursor(models.Model):
    """How far the sweep has looked at a workspace's responses (by ``updated_at``).

    Responses saved one by one open their case at once (``receivers``); the sweep catches the
    rest: batch imports, and anything a stopped worker missed.
    """

    workspace = models.OneToOneField(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    position = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.workspace_id}@{self.position}"


class Holiday(WorkspaceScoped):
    """A day nobody's SLA clock runs: for every branch, or for one branch only."""

    date = models.DateField()
    branch = models.ForeignKey(
        "organisation.Branch", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    name = models.CharField(max_length=100, blank=True)

    class Meta:
        verbose_name = _("holiday")
        verbose_name_plural = _("holidays")
        ordering = ["date"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "date", "branch"], name="holiday_once_per_branch"
            ),
            models.UniqueConstraint(
                fields=["workspace", "date"],
                condition=Q(branch__isnull=True),
                name="holiday_once_everywhere",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.name}"


class CaseStatus(models.TextChoices):
    OPEN = "open", _("Open")
    IN_PROGRESS = "in_progress", _("In progress")
    RESOLVED = "resolved", _("Resolved")
    UNREACHABLE = "unreachable", _("Unreachable")
    DECLINED = "declined", _("Declined")


OPEN_STATUSES = (CaseStatus.OPEN, CaseStatus.IN_PROGRESS)
CLOSED_STATUSES = (CaseStatus.RESOLVED, CaseStatus.UNREACHABLE, CaseStatus.DECLINED)


class CaseSource(models.TextChoices):
    RESPONSE = "response", _("Survey response")
    AT_RISK = "at_risk", _("Account stopped answering")
    MANUAL = "manual", _("Opened by hand")


class Solved(models.TextChoices):
    YES = "yes", _("Yes")
    PARTLY = "partly", _("Partly")
    NO = "no", _("No")


class Case(Placed, WorkspaceScoped):
    """One unhappy customer to call back (or one silent account to visit)."""

    source = models.CharField(max_length=10, choices=CaseSource.choices)
    response = models.ForeignKey(
        "surveys.Response", null=True, blank=True, on_delete=models.CASCADE, related_name="cases"
    )
    at_risk = models.ForeignKey(
        "surveys.AtRiskAccount",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="cases",
    )
    survey = models.ForeignKey(
        "surveys.Survey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.CASCADE, related_name="cases"
    )
    # Why it opened, in plain words without personal data: ["score 3 (0-6)", "phrase: lawyer"].
    matched: models.JSONField[Any, Any] = models.JSONField(default=list, blank=True)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.NORMAL)
    status = models.CharField(max_length=12, choices=CaseStatus.choices, default=CaseStatus.OPEN)
    # The supervisor or manager who must call; none: the CX team's queue.
    assignee = models.ForeignKey(
        "organisation.Employee",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_cases",
    )
    escalation_level = models.PositiveSmallIntegerField(default=0)
    opened_at = models.DateTimeField(default=clock.now)
    due_at = models.DateTimeField()
    # When the assignee was told of the case (e-mail), of the coming deadline, of the escalation.
    notified_at = models.DateTimeField(null=True, blank=True)
    # When to remind the assignee (the deadline less the workspace's warning time).
    warn_at = models.DateTimeField()
    warned_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Closed after its deadline, or escalated: the SLA was missed.
    breached = models.BooleanField(default=False)
    # The call-back script.
    apologised = models.BooleanField(null=True, blank=True)
    solved = models.CharField(max_length=8, choices=Solved.choices, blank=True)
    expected = models.TextField(blank=True, help_text=_("What the customer expected."))
    notes = models.TextField(blank=True)
    reasons = models.ManyToManyField(ReasonCode, blank=True, related_name="cases")
    problem = models.ForeignKey(
        "Problem", null=True, blank=True, on_delete=models.SET_NULL, related_name="cases"
    )
    follow_up = models.ForeignKey(
        "surveys.Invitation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("case")
        verbose_name_plural = _("cases")
        constraints = [
            # However often a response is processed, it opens one case.
            models.UniqueConstraint(
                fields=["response"], condition=Q(response__isnull=False), name="case_per_response"
            ),
            models.UniqueConstraint(
                fields=["at_risk"], condition=Q(at_risk__isnull=False), name="case_per_at_risk"
            ),
        ]
        indexes = [
            # The inbox: my open cases by time left; the timers: open cases by deadline.
            models.Index(
                fields=["assignee", "due_at"],
                condition=Q(status__in=["open", "in_progress"]),
                name="case_open_by_assignee",
            ),
            models.Index(
                fields=["workspace", "due_at"],
                condition=Q(status__in=["open", "in_progress"]),
                name="case_open_by_due",
            ),
            models.Index(fields=["workspace", "updated_at"], name="case_updated"),
            models.Index(fields=["workspace", "opened_at"], name="case_opened"),
        ]

    def __str__(self) -> str:
        return f"case {self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class EventKind(models.TextChoices):
    OPENED = "opened", _("Opened")
    ASSIGNED = "assigned", _("Reassigned")
    WARNED = "warned", _("Deadline reminder sent")
    ESCALATED = "escalated", _("Escalated")
    ATTEMPT = "attempt", _("Call attempt")
    CALLBACK = "callback", _("Call-back recorded")
    COACHING = "coaching", _("Coaching note")
    PROBLEM = "problem", _("Linked to a problem")
    CLOSED = "closed", _("Closed")
    REOPENED = "reopened", _("Reopened")


class AttemptResult(models.TextChoices):
    REACHED = "reached", _("Reached")
    NO_ANSWER = "no_answer", _("No answer")
    BUSY = "busy", _("Busy")
    VOICEMAIL = "voicemail", _("Left a voicemail")
    WRONG_NUMBER = "wrong_number", _("Wrong number")


class CaseEvent(WorkspaceScoped):
    """One thing that happened to a case. Append-only: the case's history."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=10, choices=EventKind.choices)
    at = models.DateTimeField(default=clock.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # "web", "api", "system"
    via = models.CharField(max_length=10, default="system")
    from_assignee = models.ForeignKey(
        "organisation.Employee", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    to_assignee = models.ForeignKey(
        "organisation.Employee", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # For an attempt, its AttemptResult; for a close, the status.
    result = models.CharField(max_length=16, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        verbose_name = _("case event")
        verbose_name_plural = _("case events")
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["case", "at"], name="case_event_case")]

    def __str__(self) -> str:
        return f"{self.kind} {self.at:%Y-%m-%d %H:%M}"


class CoachingNote(WorkspaceScoped):
    """What a supervisor discussed with the employee involved, after a case or on its own."""

    employee = models.ForeignKey(
        "organisation.Employee", on_delete=models.CASCADE, related_name="coaching_notes"
    )
    case = models.ForeignKey(
        Case, null=True, blank=True, on_delete=models.SET_NULL, related_name="coaching_notes"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = models.TextField()
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = _("coaching note")
        verbose_name_plural = _("coaching notes")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["employee", "created_at"], name="coaching_employee")]

    def __str__(self) -> str:
        return f"coaching {self.pk}"


class ProblemStatus(models.TextChoices):
    OPEN = "open", _("Open")
    IN_PROGRESS = "in_progress", _("In progress")
    FIXED = "fixed", _("Fixed")
    VERIFIED = "verified", _("Verified")
    NOT_EFFECTIVE = "not_effective", _("Not effective")


class Problem(WorkspaceScoped, Timestamped):
    """A systemic problem no single team can fix: HQ's register (the outer loop)."""

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    function = models.CharField(
        max_length=100, blank=True, help_text=_("The responsible function, e.g. Logistics.")
    )
    owner = models.ForeignKey(
        "organisation.Employee",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_problems",
    )
    deadline = models.DateField(null=True, blank=True)
    authority = models.TextField(blank=True, help_text=_("What the owner may decide."))
    resources = models.TextField(blank=True, help_text=_("Budget, people, systems."))
    status = models.CharField(
        max_length=14, choices=ProblemStatus.choices, default=ProblemStatus.OPEN
    )
    reasons = models.ManyToManyField(ReasonCode, blank=True, related_name="problems")
    # Where the problem is and the fix applies; none: everywhere. The effect is measured there.
    branches = models.ManyToManyField("organisation.Branch", blank=True, related_name="+")
    fixed_on = models.DateField(null=True, blank=True)
    # The last measurement of the fix's effect (analytics.stats.fix_effect), for the page.
    effect: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("problem")
        verbose_name_plural = _("problems")
        ordering = ["-updated_at", "-pk"]
        indexes = [models.Index(fields=["workspace", "status"], name="problem_status")]

    def __str__(self) -> str:
        return self.title
