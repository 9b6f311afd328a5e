"""What e-mails, text messages and the respondent's page share: texts, names, links."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from typing import Any

from django.conf import settings

from .definition import (
    PLACEHOLDERS,
    Rules,
    SurveyDefinition,
    fill,
    parse_definition,
    parse_rules,
    texts_for,
)
from .models import Invitation, Survey


@functools.lru_cache(maxsize=256)
def _parsed(pk: int, updated_at: Any, raw: str) -> SurveyDefinition:
    return parse_definition(json.loads(raw))


def definition_of(survey: Survey) -> SurveyDefinition:
    """The validated definition, parsed once per survey version."""
    return _parsed(survey.pk, survey.updated_at, json.dumps(survey.definition, sort_keys=True))


@functools.lru_cache(maxsize=256)
def _parsed_rules(pk: int, updated_at: Any, raw: str) -> Rules:
    return parse_rules(json.loads(raw))


def rules_of(survey: Survey) -> Rules:
    """The validated rules, parsed once per survey version (the dispatcher asks per message)."""
    return _parsed_rules(survey.pk, survey.updated_at, json.dumps(survey.rules, sort_keys=True))


class _Context(Mapping[str, str]):
    """Placeholder values, each looked up only when a text uses it (a query saved per page)."""

    def __init__(self, invitation: Invitation) -> None:
        self.invitation = invitation
        self._known: dict[str, str] = {}

    def _compute(self, name: str) -> str:
        inv = self.invitation
        given = (inv.placeholders or {}).get(name)
        if isinstance(given, str) and given.strip():
            return given.strip()
        if name == "company":
            return definition_of(inv.survey).branding.company_name or inv.workspace.name
        if name == "branch":
            # "How was your visit to {branch}?" reads well with the company's name when the
            # interaction named no branch.
            return inv.branch.name if inv.branch_id and inv.branch else self["company"]
        if name == "product":
            return inv.product.name if inv.product_id and inv.product else ""
        if name == "touchpoint":
            return inv.touchpoint.name if inv.touchpoint_id and inv.touchpoint else ""
        if name == "employee":
            return inv.employee.name.split(" ")[0] if inv.employee_id and inv.employee else ""
        raise KeyError(name)

    def __getitem__(self, name: str) -> str:
        if name not in self._known:
            self._known[name] = self._compute(name)
        return self._known[name]

    def __iter__(self) -> Iterator[str]:
        return iter(PLACEHOLDERS)

    def __len__(self) -> int:
        return len(PLACEHOLDERS)


def context_of(invitation: Invitation) -> Mapping[str, str]:
    """Values for the placeholders: names of the company, branch, product, touchpoint, employee."""
    return _Context(invitation)


def text(
    texts: dict[str, str], language: str, definition: SurveyDefinition, context: Mapping[str, str]
) -> str:
    return fill(texts_for(texts, language, definition.default_language), context)


def survey_url(invitation: Invitation, score: int | None = None) -> str:
    url = f"{settings.SITE_URL}/s/{invitation.token}"
    return url if score is None else f"{url}?score={score}"


def unsubscribe_url(invitation: Invitation) -> str:
    return f"{settings.SITE_URL}/s/{invitation.token}/unsubscribe"


def open_pixel_url(invitation: Invitation) -> str:
    return f"{settings.SITE_URL}/s/{invitation.token}/o.gif"


def answer_rows(
    definition: SurveyDefinition,
    answers: Mapping[str, Any],
    lang: str,
    context: Mapping[str, str] | None = None,
    *,
    contact: bool = True,
) -> list[tuple[str, str]]:
    """A response's answers after the score, as (question, answer) in the survey's words:
    option labels for choices, "yes"/"no" for the call-back question (left out with
    ``contact=False``), competitors with their scores. ``context`` fills the placeholders."""
    from django.utils.translation import gettext as _

    from .definition import SCORE_TYPES

    rows: list[tuple[str, str]] = []
    for question in definition.questions:
        if question.type in SCORE_TYPES or (question.type == "contact" and not contact):
            continue
        value = answers.get(question.code)
        if value is None:
            continue
        text = question.text.get(lang) or question.text[definition.default_language]
        if context is not None:
            text = fill(text, context)
        if question.type in ("single", "multiple"):
            labels = {o.code: o.text.get(lang) or o.code for o in question.options}
            chosen = [value] if isinstance(value, str) else list(value)
            shown = ", ".join(labels.get(c, c) for c in chosen)
        elif question.type == "contact":
            shown = _("yes") if value.get("may_contact") else _("no")
        elif question.type == "competitors":
            scores = value.get("scores") or {}
            shown = ", ".join(f"{name}: {scores.get(name, '—')}" for name in value.get("uses", []))
        else:
            shown = str(value)
        rows.append((text, shown))
    return rows
