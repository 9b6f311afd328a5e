from __future__ import annotations

from django import forms
from django.core.validators import URLValidator
from django.utils.translation import gettext_lazy as _

from .events import EVENT_TYPES


class EndpointForm(forms.Form):
    url = forms.URLField(
        label=_("URL"),
        max_length=500,
        assume_scheme="https",
        validators=[
            URLValidator(schemes=["http", "https"], message=_("Enter an http:// or https:// URL."))
        ],
        help_text=_("Where cxloop POSTs the events, e.g. https://crm.example.com/hooks/cxloop"),
    )
    event_types = forms.MultipleChoiceField(
        label=_("Event types"),
        choices=[(t, t) for t in EVENT_TYPES],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("None ticked: every event type, including those added later."),
    )
