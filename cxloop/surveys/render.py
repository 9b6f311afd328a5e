"""What e-mails, text messages and the respondent's page share: texts, names, links."""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings

from .definition import SurveyDefinition, fill, parse_definition, texts_for
from .models import Invitation, Survey


@functools.lru_cache(maxsize=256)
def _parsed(pk: int, updated_at: Any, raw: str) -> SurveyDefinition:
    import json

    return parse_definition(json.loads(raw))


def definition_of(survey: Survey) -> SurveyDefinition:
    """The validated definition, parsed once per survey version."""
    import json

    return _parsed(survey.pk, survey.updated_at, json.dumps(survey.definition, sort_keys=True))


def context_of(invitation: Invitation) -> dict[str, str]:
    """Values for the placeholders: names of the company, branch, product, touchpoint, employee."""
    definition = definition_of(invitation.survey)
    company = definition.branding.company_name or invitation.workspace.name
    return {
        "company": company,
        # "How was your visit to {branch}?" reads well with the company's name when the
        # interaction named no branch.
        "branch": invitation.branch.name if invitation.branch_id and invitation.branch else company,
        "product": invitation.product.name if invitation.product_id and invitation.product else "",
        "touchpoint": (
            invitation.touchpoint.name if invitation.touchpoint_id and invitation.touchpoint else ""
        ),
        "employee": (
            invitation.employee.name.split(" ")[0]
            if invitation.employee_id and invitation.employee
            else ""
        ),
    }


def text(
    texts: dict[str, str], language: str, definition: SurveyDefinition, context: dict[str, str]
) -> str:
    return fill(texts_for(texts, language, definition.default_language), context)


def survey_url(invitation: Invitation, score: int | None = None) -> str:
    url = f"{settings.SITE_URL}/s/{invitation.token}"
    return url if score is None else f"{url}?score={score}"


def unsubscribe_url(invitation: Invitation) -> str:
    return f"{settings.SITE_URL}/s/{invitation.token}/unsubscribe"


def open_pixel_url(invitation: Invitation) -> str:
    return f"{settings.SITE_URL}/s/{invitation.token}/o.gif"
