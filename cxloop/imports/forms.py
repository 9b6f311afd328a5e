from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import ImportKind

MAX_UPLOAD_BYTES = 1024 * 1024 * 1024


class UploadForm(forms.Form):
    kind = forms.ChoiceField(label=_("What the file holds"), choices=ImportKind.choices)
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_("UTF-8 or Windows-1251, separated by commas or semicolons; the first line "
                    "names the columns."),
    )  # fmt: skip
    mapping = forms.CharField(
        label=_("Column mapping (optional)"),
        required=False,
        # Translators: an example line of the column mapping; keep "=external_id" as it is.
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": _("Client code=external_id")}),
        help_text=_("One per line: a column of the file = a cxloop field, attributes.NAME, "
                    "consent.CHANNEL, or - to skip it."),
    )  # fmt: skip

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size == 0:
            raise forms.ValidationError(_("The file is empty."))
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(_("The file is larger than 1 GB; import it with the CLI."))
        return upload

    def clean_mapping(self) -> dict[str, str]:
        mapping = {}
        for number, line in enumerate(self.cleaned_data["mapping"].splitlines(), start=1):
            if not line.strip():
                continue
            header, sep, target = line.partition("=")
            if not sep or not header.strip() or not target.strip():
                raise forms.ValidationError(
                    _("Line %(n)s: write “Column in file = field”.") % {"n": number}
                )
            mapping[header.strip()] = target.strip()
        return mapping
