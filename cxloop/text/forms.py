"""The comment pages' forms: the explorer's filter, an analyst's one-click label, the topic's
"create a reason code" form. Choices come from the workspace; a value from elsewhere is the
field's error, never a 500."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy

from cxloop.accounts.models import Workspace
from cxloop.cases.models import ReasonCode
from cxloop.organisation.models import Branch
from cxloop.surveys.models import Survey

from .models import CommentSource, Emotion, Sentiment, Task

_ = gettext_lazy

LANGUAGES = {
    "en": _("English"),
    "ru": _("Russian"),
    "ro": _("Romanian"),
    "uk": _("Ukrainian"),
    "unknown": _("Unknown"),
}
NO_REASON = "-"  # the reason filter's "no reason code yet"
MAX_DAYS = 3 * 366


def _date_field(label: Any) -> forms.DateField:
    return forms.DateField(
        label=label,
        required=False,
        input_formats=["%Y-%m-%d"],
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )


class ExplorerFilter(forms.Form):
    q = forms.CharField(label=_("Text contains"), required=False, max_length=100)
    language = forms.ChoiceField(label=_("Language"), required=False)
    sentiment = forms.ChoiceField(label=_("Sentiment"), required=False)
    emotion = forms.ChoiceField(label=_("Emotion"), required=False)
    reason = forms.ChoiceField(label=_("Reason"), required=False)
    branch = forms.ChoiceField(label=_("Branch"), required=False)
    survey = forms.ChoiceField(label=_("Survey"), required=False)
    source = forms.ChoiceField(label=_("Source"), required=False)
    since = _date_field(_("From"))
    until = _date_field(_("To"))

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.reasons = {r.code: r for r in ReasonCode.objects.filter(workspace=workspace)}
        self.branches = {b.code: b for b in Branch.objects.filter(workspace=workspace)}
        self.surveys = {s.code: s for s in Survey.objects.filter(workspace=workspace)}
        choices: dict[str, list[tuple[str, Any]]] = {
            "language": [("", _("All languages")), *LANGUAGES.items()],
            "sentiment": [("", _("Any sentiment")), *Sentiment.choices],
            "emotion": [("", _("Any emotion")), *Emotion.choices],
            "reason": [
                ("", _("Any reason")),
                (NO_REASON, _("No reason code yet")),
                *((code, r.label()) for code, r in self.reasons.items()),
            ],
            "branch": [("", _("All branches")), *((c, b.name) for c, b in self.branches.items())],
            "survey": [("", _("All surveys")), *((c, s.name) for c, s in self.surveys.items())],
            "source": [("", _("All sources")), *CommentSource.choices],
        }
        for name, options in choices.items():
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)
            field.choices = options

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since: dt.date | None = data.get("since")
        until: dt.date | None = data.get("until")
        if since and until:
            if since > until:
                raise forms.ValidationError(_("The start date is after the end date."))
            if (until - since).days > MAX_DAYS:
                raise forms.ValidationError(_("Choose a period of at most three years."))
        return data


class LabelForm(forms.Form):
    """One fix: a sentiment or an emotion (replaces the finding), or a reason added/removed."""

    task = forms.ChoiceField(choices=Task.choices)
    value = forms.CharField(max_length=64)
    present = forms.TypedChoiceField(
        choices=[("1", "1"), ("0", "0")],
        coerce=lambda v: v == "1",
        required=False,
        empty_value=True,  # type: ignore[arg-type]  # absent: the reason applies
    )
    next = forms.CharField(required=False, max_length=2000)

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = workspace

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        task, value = data.get("task"), data.get("value")
        if task is None or value is None:
            return data
        allowed: dict[str, Any] = {
            Task.SENTIMENT: Sentiment.values,
            Task.EMOTION: Emotion.values,
        }
        if task in allowed and value not in allowed[task]:
            raise forms.ValidationError(_("Choose one of the listed values."))
        if (
            task == Task.REASONS
            and not ReasonCode.objects.filter(workspace=self.workspace, code=value).exists()
        ):
            raise forms.ValidationError(_("This workspace has no such reason code."))
        return data


class TopicReasonForm(forms.Form):
    """A reason code made from a topic: its code and labels, prefilled from the keywords."""

    code = forms.SlugField(
        label=_("Code"),
        max_length=64,
        help_text=_("Letters, digits, - and _; unique in the workspace."),
    )
    label_en = forms.CharField(label=_("Label in English"), max_length=200)
    label_ru = forms.CharField(label=_("Label in Russian"), max_length=200, required=False)
    label_ro = forms.CharField(label=_("Label in Romanian"), max_length=200, required=False)
    comments = forms.CharField(widget=forms.HiddenInput, max_length=100_000)

    def clean_comments(self) -> list[int]:
        raw = str(self.cleaned_data["comments"])
        try:
            ids = sorted({int(part) for part in raw.split(",") if part.strip()})
        except ValueError:
            raise forms.ValidationError(_("The topic's comments could not be read.")) from None
        if not ids:
            raise forms.ValidationError(_("The topic has no comments."))
        return ids

    def labels(self) -> dict[str, str]:
        return {
            lang: self.cleaned_data.get(f"label_{lang}", "").strip() for lang in ("en", "ru", "ro")
        }
