"""The CX manager's forms: a survey (its rules as ordinary fields) and a relationship wave.

The form only turns what was typed into the shapes ``services.save_survey`` takes (numbers,
lists, the JSON of the definition); the rules themselves are judged by pydantic in
``definition.Rules``, so the web, the API and the CLI refuse the same things with the same
words. ``add_service_errors`` puts those words back next to the fields they are about.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from cxloop.accounts.models import Workspace
from cxloop.organisation.models import Touchpoint

from .definition import Rules, default_definition
from .models import Survey, SurveyKind

# The delivery choices a CX manager picks from, and the channel lists they stand for.
CHANNEL_ORDERS: dict[str, list[str]] = {
    "email_sms": ["email", "sms"],
    "sms_email": ["sms", "email"],
    "email": ["email"],
    "sms": ["sms"],
}
CHANNEL_ORDER_CHOICES = [
    ("email_sms", _("E-mail, then SMS if there is no usable address")),
    ("sms_email", _("SMS, then e-mail if there is no usable number")),
    ("email", _("E-mail only")),
    ("sms", _("SMS only")),
]
# Form field ← the rules' field it edits (where the names differ), for error messages.
RULE_FIELDS = {
    "sampling_rate": "sampling_percent",
    "channels": "channel_order",
    "send_window": "send_window_start",
    "send_window.start": "send_window_start",
    "send_window.end": "send_window_end",
}


def _percent(rate: float) -> str:
    """0.25 → "25"; 0.125 → "12.5": the percentage as a person would type it."""
    return f"{Decimal(str(round(rate * 100, 2))).normalize():f}"


class SurveyForm(forms.Form):
    code = forms.CharField(
        label=_("Code"),
        max_length=64,
        help_text=_("Lower-case letters, digits and _ . -; used in the API and in exports."),
    )
    name = forms.CharField(label=_("Name"), max_length=200)
    kind = forms.ChoiceField(label=_("Kind"), choices=SurveyKind.choices)
    is_active = forms.BooleanField(
        label=_("Active: send invitations"), required=False, initial=True
    )

    # Trigger (transactional surveys)
    touchpoints = forms.MultipleChoiceField(
        label=_("Touchpoints"),
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 6}),
        help_text=_(
            "An interaction at one of these touchpoints triggers the survey. Hold Ctrl (⌘ on "
            "a Mac) to choose several."
        ),
    )
    interaction_types = forms.CharField(
        label=_("Interaction types"),
        required=False,
        help_text=_("Comma-separated, e.g. store_visit, call. Either of the two triggers it."),
    )
    delay_minutes = forms.IntegerField(
        label=_("Delay after the interaction (minutes)"), min_value=0, initial=0
    )
    sampling_percent = forms.DecimalField(
        label=_("Sampling rate (%)"),
        min_value=Decimal(0),
        max_value=Decimal(100),
        decimal_places=2,
        initial="100",
        help_text=_("The share of matching interactions that are surveyed."),
    )
    max_interaction_age_hours = forms.IntegerField(
        label=_("Ignore interactions older than (hours)"), min_value=1, initial=72
    )

    # Fatigue
    quiet_period_days = forms.IntegerField(
        label=_("Quiet period (days)"),
        min_value=0,
        initial=30,
        help_text=_("No survey at all, of any kind, this long after a customer's last invitation."),
    )
    max_per_customer = forms.IntegerField(
        label=_("At most … invitations of this survey per customer"), min_value=1, initial=1
    )
    max_period_days = forms.IntegerField(label=_("… in (days)"), min_value=1, initial=90)
    branch_daily_cap = forms.IntegerField(
        label=_("Daily cap per branch"),
        min_value=1,
        required=False,
        help_text=_("Blank: no cap."),
    )

    # Delivery
    any_time = forms.BooleanField(
        label=_("Send at any time of day"),
        required=False,
        help_text=_("Otherwise only inside the window below, in the customer's local time."),
    )
    send_window_start = forms.TimeField(
        label=_("Send window starts"),
        required=False,
        initial=dt.time(9, 0),
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
    )
    send_window_end = forms.TimeField(
        label=_("Send window ends"),
        required=False,
        initial=dt.time(20, 0),
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
    )
    channel_order = forms.ChoiceField(
        label=_("Channels"), choices=CHANNEL_ORDER_CHOICES, initial="email_sms"
    )
    reminder_after_days = forms.IntegerField(
        label=_("Reminder after (days)"),
        min_value=1,
        required=False,
        help_text=_(
            "Blank: no reminder. A reminder goes once, only to those who have not answered."
        ),
    )
    expiry_days = forms.IntegerField(
        label=_("The link expires after (days)"), min_value=1, initial=14
    )
    unanswered_in_row = forms.IntegerField(
        label=_("Account at risk after … unanswered in a row"),
        min_value=2,
        initial=3,
        help_text=_("B2B: an account whose contacts left this many invitations unanswered."),
    )

    definition = forms.CharField(
        label=_("Definition (JSON)"),
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "false"}),
        help_text=_("Questions, texts in every language, branding, review link: see the guide."),
    )

    def __init__(
        self, *args: Any, workspace: Workspace, survey: Survey | None = None, **kwargs: Any
    ) -> None:
        if not args and "initial" not in kwargs:
            kwargs["initial"] = self.initial_for(workspace, survey)
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        # Errors of the definition as (path, message), listed above its text area.
        self.definition_errors: list[tuple[str, str]] = []
        codes = list(
            Touchpoint.objects.filter(workspace=workspace)
            .order_by("code")
            .values_list("code", "name")
        )
        known = {code for code, _name in codes}
        # A touchpoint the survey names but the organisation lost stays selectable, so that
        # saving the form does not quietly change the trigger.
        kept = [] if survey is None else parse_kept(survey.rules, known)
        field = self.fields["touchpoints"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = [(code, f"{name} ({code})") for code, name in codes] + [
            (code, f"{code} — {_('not in the organisation')}") for code in kept
        ]

    @staticmethod
    def initial_for(workspace: Workspace, survey: Survey | None) -> dict[str, Any]:
        """The form's values for a new survey (the defaults) or an existing one."""
        if survey is None:
            rules = Rules.model_validate({})
            definition: Any = default_definition(workspace.name)
            head: dict[str, Any] = {"kind": SurveyKind.TRANSACTIONAL, "is_active": True}
        else:
            try:
                rules = Rules.model_validate(survey.rules or {})
            except ValueError:
                rules = Rules.model_validate({})
            definition = survey.definition
            head = {
                "code": survey.code,
                "name": survey.name,
                "kind": survey.kind,
                "is_active": survey.is_active,
            }
        order = next(
            (k for k, v in CHANNEL_ORDERS.items() if v == list(rules.channels)), "email_sms"
        )
        return {
            **head,
            "touchpoints": list(rules.touchpoints),
            "interaction_types": ", ".join(rules.interaction_types),
            "delay_minutes": rules.delay_minutes,
            "sampling_percent": _percent(rules.sampling_rate),
            "max_interaction_age_hours": rules.max_interaction_age_hours,
            "quiet_period_days": rules.quiet_period_days,
            "max_per_customer": rules.max_per_customer,
            "max_period_days": rules.max_period_days,
            "branch_daily_cap": rules.branch_daily_cap,
            "any_time": rules.send_window is None,
            "send_window_start": rules.send_window.start if rules.send_window else dt.time(9, 0),
            "send_window_end": rules.send_window.end if rules.send_window else dt.time(20, 0),
            "channel_order": order,
            "reminder_after_days": rules.reminder_after_days,
            "expiry_days": rules.expiry_days,
            "unanswered_in_row": rules.unanswered_in_row,
            "definition": json.dumps(definition, indent=2, ensure_ascii=False),
        }

    def clean_code(self) -> str:
        return str(self.cleaned_data["code"]).strip()

    def clean_interaction_types(self) -> list[str]:
        raw = str(self.cleaned_data.get("interaction_types") or "")
        return [part.strip() for part in raw.replace(";", ",").split(",") if part.strip()]

    def clean_definition(self) -> Any:
        raw = self.cleaned_data["definition"]
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            message = _("This is not valid JSON: %(problem)s (line %(line)s, column %(column)s).")
            raise forms.ValidationError(
                message % {"problem": exc.msg, "line": exc.lineno, "column": exc.colno}
            ) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("any_time"):
            for name in ("send_window_start", "send_window_end"):
                if cleaned.get(name) is None and name not in self.errors:
                    self.add_error(name, _("Give a time, or choose “Send at any time of day”."))
        return cleaned

    def rules(self) -> dict[str, Any]:
        """The rules as ``definition.Rules`` takes them (validated there, not here)."""
        data = self.cleaned_data
        window = (
            None
            if data.get("any_time")
            else {
                "start": data["send_window_start"].strftime("%H:%M"),
                "end": data["send_window_end"].strftime("%H:%M"),
            }
        )
        return {
            "touchpoints": list(data.get("touchpoints") or []),
            "interaction_types": data.get("interaction_types") or [],
            "delay_minutes": data["delay_minutes"],
            "sampling_rate": float(data["sampling_percent"]) / 100,
            "max_interaction_age_hours": data["max_interaction_age_hours"],
            "quiet_period_days": data["quiet_period_days"],
            "max_per_customer": data["max_per_customer"],
            "max_period_days": data["max_period_days"],
            "branch_daily_cap": data.get("branch_daily_cap"),
            "send_window": window,
            "channels": CHANNEL_ORDERS[data["channel_order"]],
            "reminder_after_days": data.get("reminder_after_days"),
            "expiry_days": data["expiry_days"],
            "unanswered_in_row": data["unanswered_in_row"],
        }

    def add_service_errors(self, errors: dict[str, list[str]]) -> None:
        """Put ``SurveyInvalid.errors`` next to the fields they are about.

        Definition errors keep their path ("questions.1.text") and are listed above the text
        area; a rule's error goes to the field that edits it; anything else is the form's.
        """
        for key, messages in errors.items():
            if key == "definition" or key.startswith("definition."):
                path = key.removeprefix("definition").removeprefix(".")
                self.definition_errors.extend((path, message) for message in messages)
                self.add_error("definition", _("The definition has errors: see the list above."))
                continue
            if key == "rules":
                # The only whole-rules complaint: a transactional survey with no trigger.
                for message in messages:
                    self.add_error("touchpoints", message)
                continue
            if key.startswith("rules."):
                path = key.removeprefix("rules.")
                name = RULE_FIELDS.get(path) or RULE_FIELDS.get(path.split(".")[0]) or path
                name = name.split(".")[0]
                target = name if name in self.fields else None
                for message in messages:
                    self.add_error(target, message if target else f"{path}: {message}")
                continue
            target = key if key in self.fields else None
            for message in messages:
                self.add_error(target, message if target else f"{key}: {message}")

    def add_error(self, field: str | None, error: Any) -> None:
        # A message about something that is not a field of this form (a rule the form does not
        # edit) is the form's own error, not a crash.
        if field is not None and field not in self.fields:
            field = None
        super().add_error(field, error)


def parse_kept(rules: Any, known: set[str]) -> list[str]:
    """Touchpoint codes in stored rules that the organisation no longer has."""
    codes = (rules or {}).get("touchpoints") or []
    return sorted({str(code) for code in codes} - known)


CONFIDENCE_CHOICES = [("0.90", "90%"), ("0.95", "95%"), ("0.99", "99%")]
STRATA_CHOICES = [
    ("", _("None: one simple random sample")),
    ("segment", _("By customer segment")),
    ("region", _("By region (of the customer's latest branch)")),
]


class WaveForm(forms.Form):
    margin = forms.FloatField(
        label=_("Margin of error (NPS points)"),
        min_value=0.5,
        max_value=100,
        initial=5,
        help_text=_("±5 points means a measured NPS of 30 is between 25 and 35."),
    )
    confidence = forms.TypedChoiceField(
        label=_("Confidence"), choices=CONFIDENCE_CHOICES, coerce=float, initial="0.95"
    )
    response_rate = forms.FloatField(
        label=_("Expected response rate (%)"),
        min_value=0.1,
        max_value=100,
        initial=20,
        help_text=_(
            "The share of invited customers you expect to answer; it sets how many to invite."
        ),
    )
    strata = forms.ChoiceField(label=_("Strata"), choices=STRATA_CHOICES, required=False)

    def plan_arguments(self) -> dict[str, Any]:
        """The arguments of ``sampling.plan_wave`` and ``create_wave``."""
        data = self.cleaned_data
        return {
            "margin": data["margin"],
            "confidence": data["confidence"],
            "response_rate": data["response_rate"] / 100,
            "strata": data.get("strata") or "",
        }
