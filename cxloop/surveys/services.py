"""Creating and changing surveys (web UI and API share this), and test sends."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction
from pydantic import ValidationError

from cxloop.accounts.models import Workspace
from cxloop.accounts.services import audit
from cxloop.core import clock
from cxloop.core.validation import error_dict

from .definition import parse_definition, parse_rules
from .models import DeliveryChannel, Invitation, Survey, SurveyKind


class SurveyInvalid(ValueError):
    """Every problem with a survey at once, as ``{"field": ["message"]}``."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def validate_survey(
    *, code: str, name: str, kind: str, definition: Any, rules: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The definition and rules as they will be stored (defaults filled in); SurveyInvalid if not."""
    from cxloop.core.validation import SLUG_RE

    errors: dict[str, list[str]] = {}
    if not isinstance(code, str) or not SLUG_RE.match(code):
        errors["code"] = ["must be a lower-case word of letters, digits, _ . - (at most 64)"]
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        errors["name"] = ["must be 1-200 characters"]
    if kind not in SurveyKind.values:
        errors["kind"] = [f"must be one of {', '.join(SurveyKind.values)}"]
    clean_definition: dict[str, Any] = {}
    clean_rules: dict[str, Any] = {}
    try:
        clean_definition = parse_definition(definition).model_dump(mode="json", exclude_none=True)
    except ValidationError as exc:
        errors.update(
            {
                f"definition.{k}" if k != "__all__" else "definition": v
                for k, v in error_dict(exc).items()
            }
        )
    try:
        parsed_rules = parse_rules(rules)
        clean_rules = parsed_rules.model_dump(mode="json")
        if kind == SurveyKind.TRANSACTIONAL and not (
            parsed_rules.touchpoints or parsed_rules.interaction_types
        ):
            errors["rules"] = ["a transactional survey needs touchpoints or interaction_types"]
    except ValidationError as exc:
        errors.update(
            {f"rules.{k}" if k != "__all__" else "rules": v for k, v in error_dict(exc).items()}
        )
    if errors:
        raise SurveyInvalid(errors)
    return clean_definition, clean_rules


def save_survey(
    workspace: Workspace,
    *,
    code: str,
    name: str,
    kind: str,
    definition: Any,
    rules: Any,
    is_active: bool = True,
    survey: Survey | None = None,
    via: str,
    actor: Any = None,
    api_key: Any = None,
) -> Survey:
    """Create (``survey`` None) or change a survey, validated and audited."""
    clean_definition, clean_rules = validate_survey(
        code=code, name=name, kind=kind, definition=definition, rules=rules
    )
    creating = survey is None
    with transaction.atomic():
        if survey is None:
            survey = Survey(workspace=workspace)
        before = {
            "code": survey.code, "name": survey.name, "kind": survey.kind,
            "is_active": survey.is_active, "rules": survey.rules,
        }  # fmt: skip
        old_definition = survey.definition
        if survey.pk and not survey.is_active and is_active:
            survey.active_since = clock.now()  # switched back on: only new interactions count
        survey.code, survey.name, survey.kind = code, name.strip(), kind
        survey.definition, survey.rules, survey.is_active = clean_definition, clean_rules, is_active
        try:
            with transaction.atomic():
                survey.save()
        except IntegrityError:
            raise SurveyInvalid(
                {"code": ["another survey of this workspace has this code"]}
            ) from None
        after = {
            "code": survey.code, "name": survey.name, "kind": survey.kind,
            "is_active": survey.is_active, "rules": survey.rules,
        }  # fmt: skip
        changes: dict[str, Any] = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
        if creating or survey.definition != old_definition:
            # The definition is long; the audit says that it changed, not how.
            changes["definition"] = "changed"
        audit(
            workspace,
            "survey.create" if creating else "survey.update",
            via=via,
            actor=actor,
            api_key=api_key,
            obj=survey,
            changes=changes,
        )
    return survey


def test_invitation(survey: Survey, *, email: str, language: str) -> Invitation:
    """An invitation to ``email`` (the CX manager's own) that never counts as a response."""
    from .render import definition_of

    definition = definition_of(survey)
    now = clock.now()
    return Invitation.objects.create(
        workspace=survey.workspace,
        survey=survey,
        customer=None,
        delivery_channel=DeliveryChannel.EMAIL,
        language=definition.pick_language(language),
        is_test=True,
        scheduled_for=now,
        expires_at=now + dt.timedelta(days=parse_rules(survey.rules).expiry_days),
        test_address=email,
    )
