"""The closed loop's forms: a case's actions, the problem register and the settings.

The case and problem forms only turn what was typed into the arguments of ``services``; the
services judge the state (a closed case, too few attempts) and their ``CaseError`` comes back
as the form's error. The settings forms edit their rows directly: they are configuration,
audited by the view.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _

from cxloop.accounts.models import Workspace
from cxloop.organisation.models import Branch, Employee
from cxloop.surveys.models import Survey

from .models import (
    CLOSED_STATUSES,
    AlertRule,
    AttemptResult,
    CaseSettings,
    CaseStatus,
    Holiday,
    Priority,
    Problem,
    ProblemStatus,
    ReasonCode,
    Solved,
)

LANGUAGES = ("en", "ru", "ro")
WEEKDAYS = [
    (1, _("Monday")),
    (2, _("Tuesday")),
    (3, _("Wednesday")),
    (4, _("Thursday")),
    (5, _("Friday")),
    (6, _("Saturday")),
    (7, _("Sunday")),
]


class ReasonChoiceField(forms.ModelMultipleChoiceField):
    """Reason codes as checkboxes, each labelled in the reader's language."""

    widget = forms.CheckboxSelectMultiple

    def label_from_instance(self, obj: Any) -> str:
        return str(obj.label())


class EmployeeChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} ({obj.code})" + (f" · {obj.title}" if obj.title else "")


def active_employees(workspace: Workspace) -> QuerySet[Employee]:
    return Employee.objects.filter(workspace=workspace, is_active=True).order_by("name", "code")


def assignable_employees(workspace: Workspace, keep: int | None = None) -> QuerySet[Employee]:
    """Who a case can go to: active employees with a cxloop login (they see it in their
    inbox) or who manage people (a supervisor, a branch manager: escalations go to them), and
    the current assignee (``keep``) whatever they are. Front-line staff are left out: the
    list stays short in a company of thousands."""
    managing = Q(user__isnull=False) | Q(reports__isnull=False) | Q(managed_branches__isnull=False)
    condition = Q(is_active=True) & managing
    if keep is not None:
        condition |= Q(pk=keep)
    return (
        Employee.objects.filter(Q(workspace=workspace) & condition)
        .distinct()
        .order_by("name", "code")
    )


def reason_choices(workspace: Workspace, keep: QuerySet[ReasonCode] | None = None) -> Any:
    """The workspace's active reason codes, and any inactive one already chosen (``keep``)."""
    condition = Q(is_active=True)
    if keep is not None:
        condition |= Q(pk__in=keep.values("pk"))
    return ReasonCode.objects.filter(Q(workspace=workspace) & condition).order_by(
        "position", "code"
    )


# --- a case's actions -----------------------------------------------------------------------


class AttemptForm(forms.Form):
    result = forms.ChoiceField(label=_("Result"), choices=AttemptResult.choices)
    note = forms.CharField(
        label=_("Note"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )


class CallbackForm(forms.Form):
    """The call-back script, in the order the caller follows it."""

    apologised = forms.TypedChoiceField(
        label=_("Did you apologise?"),
        choices=[("yes", _("Yes")), ("no", _("No"))],
        coerce=lambda value: value == "yes",
        widget=forms.RadioSelect,
    )
    solved = forms.ChoiceField(
        label=_("Was the problem solved during the call?"),
        choices=Solved.choices,
        widget=forms.RadioSelect,
    )
    reasons = ReasonChoiceField(
        label=_("Root cause"),
        queryset=ReasonCode.objects.none(),
        error_messages={"required": _("Choose at least one root-cause reason.")},
    )
    expected = forms.CharField(
        label=_("What did the customer expect?"),
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    notes = forms.CharField(
        label=_("Notes"), required=False, max_length=10000, widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args: Any, workspace: Workspace, chosen: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["reasons"]
        assert isinstance(field, ReasonChoiceField)
        field.queryset = reason_choices(workspace, chosen)


class CloseForm(forms.Form):
    status = forms.ChoiceField(
        label=_("Outcome"),
        choices=[(s.value, s.label) for s in CLOSED_STATUSES],
        widget=forms.RadioSelect,
    )
    note = forms.CharField(
        label=_("Note"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )


class AssignForm(forms.Form):
    assignee = EmployeeChoiceField(
        label=_("Assign to"),
        queryset=Employee.objects.none(),
        required=False,
        empty_label=_("The CX team's queue"),
    )
    note = forms.CharField(label=_("Why"), required=False, max_length=2000)

    def __init__(
        self, *args: Any, workspace: Workspace, current: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["assignee"]
        assert isinstance(field, EmployeeChoiceField)
        field.queryset = assignable_employees(workspace, current)


class ReopenForm(forms.Form):
    note = forms.CharField(label=_("Why"), required=False, max_length=2000)


class CoachingForm(forms.Form):
    text = forms.CharField(
        label=_("Coaching note"),
        max_length=10000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("What you discussed and agreed. The employee sees this note."),
    )


class EscalateForm(forms.Form):
    """A new problem for the register, or an existing one, linked to the case."""

    problem = forms.ModelChoiceField(
        label=_("Link to an existing problem"),
        queryset=Problem.objects.none(),
        required=False,
        empty_label=_("— a new problem —"),
    )
    title = forms.CharField(label=_("Title"), required=False, max_length=200)
    function = forms.CharField(
        label=_("Responsible function"),
        required=False,
        max_length=100,
        help_text=_("e.g. Logistics, Billing, IT."),
    )
    owner = EmployeeChoiceField(label=_("Owner"), queryset=Employee.objects.none(), required=False)
    deadline = forms.DateField(
        label=_("Deadline"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        problem = self.fields["problem"]
        assert isinstance(problem, forms.ModelChoiceField)
        problem.queryset = Problem.objects.filter(workspace=workspace).exclude(
            status=ProblemStatus.VERIFIED
        )
        owner = self.fields["owner"]
        assert isinstance(owner, EmployeeChoiceField)
        owner.queryset = active_employees(workspace)

    def clean(self) -> dict[str, Any] | None:
        data = super().clean() or {}
        if not data.get("problem") and not (data.get("title") or "").strip():
            self.add_error("title", _("Give the new problem a title, or choose an existing one."))
        return data


# --- the problem register -------------------------------------------------------------------


class ProblemForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=200)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    function = forms.CharField(
        label=_("Responsible function"),
        required=False,
        max_length=100,
        help_text=_("e.g. Logistics, Billing, IT."),
    )
    owner = EmployeeChoiceField(label=_("Owner"), queryset=Employee.objects.none(), required=False)
    deadline = forms.DateField(
        label=_("Deadline"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    authority = forms.CharField(
        label=_("Authority"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("What the owner may decide."),
    )
    resources = forms.CharField(
        label=_("Resources"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Budget, people, systems."),
    )
    fixed_on = forms.DateField(
        label=_("Fixed on"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("The effect is measured from this day: 30 days before against the days after."),
    )
    reasons = ReasonChoiceField(
        label=_("Reason codes"), queryset=ReasonCode.objects.none(), required=False
    )
    branches = forms.ModelMultipleChoiceField(
        label=_("Branches"),
        queryset=Branch.objects.none(),
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 6}),
        help_text=_("Where the problem is; none: everywhere. The effect is measured there."),
    )

    def __init__(
        self, *args: Any, workspace: Workspace, problem: Problem | None = None, **kwargs: Any
    ) -> None:
        if problem is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "title": problem.title,
                "description": problem.description,
                "function": problem.function,
                "owner": problem.owner_id,
                "deadline": problem.deadline,
                "authority": problem.authority,
                "resources": problem.resources,
                "fixed_on": problem.fixed_on,
                "reasons": [r.pk for r in problem.reasons.all()],
                "branches": [b.pk for b in problem.branches.all()],
            }
        super().__init__(*args, **kwargs)
        branches = self.fields["branches"]
        assert isinstance(branches, forms.ModelMultipleChoiceField)
        branches.queryset = Branch.objects.filter(workspace=workspace).order_by("code")
        owner = self.fields["owner"]
        assert isinstance(owner, EmployeeChoiceField)
        owner.queryset = active_employees(workspace)
        reasons = self.fields["reasons"]
        assert isinstance(reasons, ReasonChoiceField)
        reasons.queryset = reason_choices(
            workspace, problem.reasons.all() if problem is not None else None
        )

    def changes(self) -> dict[str, Any]:
        """The fields as ``services.update_problem`` takes them."""
        data = self.cleaned_data
        names = ("title", "description", "function", "owner", "deadline", "authority")
        return {name: data[name] for name in (*names, "resources", "fixed_on") if name in data}


# --- settings -------------------------------------------------------------------------------


class ReasonCodeForm(forms.Form):
    code = forms.SlugField(
        label=_("Code"),
        max_length=64,
        help_text=_(
            "Letters, digits, - and _. Use the option code of a survey's reasons question "
            "(e.g. waiting) so that ticked options count as this reason."
        ),
    )
    label_en = forms.CharField(label=_("Label in English"), max_length=200)
    label_ru = forms.CharField(label=_("Label in Russian"), max_length=200, required=False)
    label_ro = forms.CharField(label=_("Label in Romanian"), max_length=200, required=False)
    category = forms.CharField(label=_("Category"), max_length=100, required=False)
    position = forms.IntegerField(label=_("Position"), min_value=0, max_value=32000, initial=0)
    is_active = forms.BooleanField(
        label=_("Active: offered in the call-back form"), required=False, initial=True
    )

    def __init__(
        self, *args: Any, workspace: Workspace, instance: ReasonCode | None = None, **kwargs: Any
    ) -> None:
        self.workspace = workspace
        self.instance = instance
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "code": instance.code,
                "category": instance.category,
                "position": instance.position,
                "is_active": instance.is_active,
                **{f"label_{lang}": instance.labels.get(lang, "") for lang in LANGUAGES},
            }
        super().__init__(*args, **kwargs)

    def clean_code(self) -> str:
        code = str(self.cleaned_data["code"])
        taken = ReasonCode.objects.filter(workspace=self.workspace, code=code)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(_("This workspace already has a reason with this code."))
        return code

    def save(self) -> ReasonCode:
        data = self.cleaned_data
        reason = self.instance or ReasonCode(workspace=self.workspace)
        reason.code = data["code"]
        reason.labels = {
            lang: data[f"label_{lang}"].strip()
            for lang in LANGUAGES
            if data[f"label_{lang}"].strip()
        }
        reason.category = data["category"]
        reason.position = data["position"]
        reason.is_active = data["is_active"]
        reason.save()
        return reason


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class AlertRuleForm(forms.Form):
    survey = forms.ModelChoiceField(label=_("Survey"), queryset=Survey.objects.none())
    name = forms.CharField(label=_("Name"), max_length=100)
    score_min = forms.IntegerField(label=_("Score from"), required=False)
    score_max = forms.IntegerField(label=_("Score to"), required=False)
    reasons = forms.CharField(
        label=_("Reasons chosen"),
        required=False,
        help_text=_(
            "Option codes of the survey's choice questions, separated by commas "
            "(e.g. waiting, staff)."
        ),
    )
    phrases = forms.CharField(
        label=_("Phrases in the comment"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_(
            "One per line, any language; matched at the start of a word, ignoring case and "
            "accents (e.g. lawyer, адвокат, avocat)."
        ),
    )
    language = forms.ChoiceField(
        label=_("Phrases in"),
        required=False,
        choices=[
            ("", _("Any language")),
            ("en", _("English")),
            ("ro", _("Romanian")),
            ("ru", _("Russian")),
            ("uk", _("Ukrainian")),
        ],
        help_text=_("Only comments detected in this language (too short to tell: any)."),
    )
    priority = forms.ChoiceField(label=_("Priority"), choices=Priority.choices)
    is_active = forms.BooleanField(label=_("Active"), required=False, initial=True)

    def __init__(
        self, *args: Any, workspace: Workspace, instance: AlertRule | None = None, **kwargs: Any
    ) -> None:
        self.workspace = workspace
        self.instance = instance
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "survey": instance.survey_id,
                "name": instance.name,
                "score_min": instance.score_min,
                "score_max": instance.score_max,
                "reasons": ", ".join(str(r) for r in instance.reasons),
                "phrases": "\n".join(str(p) for p in instance.phrases),
                "language": instance.language,
                "priority": instance.priority,
                "is_active": instance.is_active,
            }
        super().__init__(*args, **kwargs)
        survey = self.fields["survey"]
        assert isinstance(survey, forms.ModelChoiceField)
        survey.queryset = Survey.objects.filter(workspace=workspace).order_by("name", "code")
        survey.empty_label = _("Choose a survey")

    def clean(self) -> dict[str, Any] | None:
        data = super().clean() or {}
        low, high = data.get("score_min"), data.get("score_max")
        if low is not None and high is not None and low > high:
            self.add_error("score_max", _("The range ends below where it starts."))
        reasons = [r.strip() for r in (data.get("reasons") or "").split(",") if r.strip()]
        phrases = _lines(data.get("phrases") or "")
        data["reasons"], data["phrases"] = reasons, phrases
        if low is None and high is None and not reasons and not phrases:
            raise forms.ValidationError(
                _("Set a score range, reasons or phrases: a rule with none never matches.")
            )
        survey, name = data.get("survey"), data.get("name")
        if survey is not None and name:
            taken = AlertRule.objects.filter(survey=survey, name=name)
            if self.instance is not None:
                taken = taken.exclude(pk=self.instance.pk)
            if taken.exists():
                self.add_error("name", _("This survey already has a rule with this name."))
        return data

    def save(self) -> AlertRule:
        data = self.cleaned_data
        rule = self.instance or AlertRule(workspace=self.workspace)
        for name in ("survey", "name", "score_min", "score_max", "reasons", "phrases"):
            setattr(rule, name, data[name])
        rule.priority = data["priority"]
        rule.language = data.get("language") or ""
        rule.is_active = data["is_active"]
        rule.save()
        return rule


class CaseSettingsForm(forms.ModelForm):
    workdays = forms.TypedMultipleChoiceField(
        label=_("Working days"),
        choices=WEEKDAYS,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = CaseSettings
        fields = [
            "sla_mode",
            "sla_hours",
            "min_minutes_left",
            "day_start",
            "day_end",
            "workdays",
            "warn_minutes",
            "max_attempts",
            "follow_up_survey",
            "open_for_at_risk",
        ]
        labels = {
            "sla_mode": _("Deadline"),
            "sla_hours": _("Hours to close a case"),
            "min_minutes_left": _("Minimum minutes left in the day"),
            "day_start": _("Business day starts"),
            "day_end": _("Business day ends"),
            "warn_minutes": _("Reminder, minutes before the deadline"),
            "max_attempts": _("Call attempts before unreachable"),
            "follow_up_survey": _("Follow-up survey"),
            "open_for_at_risk": _("Open cases for accounts at risk"),
        }
        help_texts = {
            "min_minutes_left": _(
                "A case opened with less of the business day left is due at the end of the next."
            ),
        }
        widgets = {
            "day_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "day_end": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        }

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # No days stored means Monday to Friday (CaseSettings.working_days): show them ticked.
        self.initial["workdays"] = self.instance.working_days()
        survey = self.fields["follow_up_survey"]
        assert isinstance(survey, forms.ModelChoiceField)
        survey.empty_label = _("— none —")
        survey.queryset = Survey.objects.filter(workspace=workspace).order_by("name", "code")

    def clean(self) -> dict[str, Any] | None:
        data = super().clean() or {}
        start, end = data.get("day_start"), data.get("day_end")
        if start is not None and end is not None and start >= end:
            self.add_error("day_end", _("The business day must end after it starts."))
        if "workdays" in data:
            data["workdays"] = sorted(set(data["workdays"]))
        return data


class HolidayForm(forms.Form):
    date = forms.DateField(label=_("Date"), widget=forms.DateInput(attrs={"type": "date"}))
    branch = forms.ModelChoiceField(
        label=_("Branch"),
        queryset=Branch.objects.none(),
        required=False,
        empty_label=_("All branches"),
    )
    name = forms.CharField(label=_("Name"), required=False, max_length=100)

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        self.workspace = workspace
        super().__init__(*args, **kwargs)
        branch = self.fields["branch"]
        assert isinstance(branch, forms.ModelChoiceField)
        branch.queryset = Branch.objects.filter(workspace=workspace).order_by("name")

    def clean(self) -> dict[str, Any] | None:
        data = super().clean() or {}
        if (
            data.get("date")
            and Holiday.objects.filter(
                workspace=self.workspace, date=data["date"], branch=data.get("branch")
            ).exists()
        ):
            self.add_error("date", _("This day is already a holiday there."))
        return data

    def save(self) -> Holiday:
        data = self.cleaned_data
        return Holiday.objects.create(
            workspace=self.workspace, date=data["date"], branch=data["branch"], name=data["name"]
        )


# --- the inbox's filters --------------------------------------------------------------------


class InboxFilter(forms.Form):
    """The inbox's filters (GET); anything unknown is ignored rather than refused."""

    status = forms.ChoiceField(label=_("Status"), required=False)
    branch = forms.ModelChoiceField(
        label=_("Branch"), queryset=Branch.objects.none(), required=False, empty_label=_("All")
    )
    priority = forms.ChoiceField(
        label=_("Priority"), required=False, choices=[("", _("All")), *Priority.choices]
    )

    def __init__(self, *args: Any, workspace: Workspace, closed: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        statuses = CLOSED_STATUSES if closed else (CaseStatus.OPEN, CaseStatus.IN_PROGRESS)
        status = self.fields["status"]
        assert isinstance(status, forms.ChoiceField)
        status.choices = [("", _("All")), *((s.value, s.label) for s in statuses)]
        branch = self.fields["branch"]
        assert isinstance(branch, forms.ModelChoiceField)
        branch.queryset = (
            Branch.objects.filter(workspace=workspace).only("pk", "name").order_by("name")
        )
        branch.label_from_instance = lambda obj: obj.name  # type: ignore[method-assign]
