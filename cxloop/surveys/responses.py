"""Answers: checked against the survey's questions and kept, partial or complete.

A response's ``score`` is the answer to the first question (NPS 0-10, CSAT 1-5 or CES 1-7),
its ``comment`` the answer to the first free-text question, and ``answers`` holds the rest by
question code: a single choice as an option code, a multiple choice as a list of codes, a
free text as a string, the call-back question as ``{"may_contact": bool, "phone": "+…"}`` and
a competitors question as ``{"uses": [names], "scores": {name: 0-10}}``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.db import transaction

from cxloop.core import clock
from cxloop.core.validation import normalise_phone

from . import signals
from .definition import Question, SurveyDefinition
from .models import Invitation, Response, ResponseSource
from .render import definition_of

MAX_TEXT = 5000


class AnswerError(ValueError):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def comment_question(definition: SurveyDefinition) -> Question | None:
    return next((q for q in definition.questions if q.type == "text"), None)


def check_score(definition: SurveyDefinition, value: Any) -> int:
    low, high = definition.scale
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        else:
            raise ValueError(f"must be a whole number from {low} to {high}")
    if not low <= value <= high:
        raise ValueError(f"must be from {low} to {high}")
    return value


def _answer(question: Question, value: Any, phone_region: str | None) -> Any:
    if question.type in ("single",):
        codes = {o.code for o in question.options}
        if value not in codes:
            raise ValueError(f"must be one of {', '.join(sorted(codes))}")
        return value
    if question.type == "multiple":
        codes = {o.code for o in question.options}
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("must be a list of option codes")
        unknown = [v for v in value if v not in codes]
        if unknown:
            raise ValueError(f"unknown options: {', '.join(unknown)}")
        return list(dict.fromkeys(value))
    if question.type == "text":
        if not isinstance(value, str):
            raise ValueError("must be text")
        if len(value) > MAX_TEXT:
            raise ValueError(f"must be at most {MAX_TEXT} characters")
        return value.strip()
    if question.type == "contact":
        if isinstance(value, bool):
            value = {"may_contact": value}
        if not isinstance(value, dict) or not isinstance(value.get("may_contact"), bool):
            raise ValueError('must be true, false or {"may_contact": bool, "phone": "+…"}')
        phone = value.get("phone") or ""
        if not isinstance(phone, str):
            raise ValueError("phone must be text")
        if phone:
            phone = normalise_phone(phone, phone_region)
        return {"may_contact": value["may_contact"], "phone": phone}
    if question.type == "competitors":
        if not isinstance(value, dict):
            raise ValueError('must be {"uses": [names], "scores": {name: 0-10}}')
        names = set(question.competitors)
        uses = value.get("uses", [])
        scores = value.get("scores", {})
        if not isinstance(uses, list) or any(u not in names for u in uses):
            raise ValueError(f"uses must list some of: {', '.join(question.competitors)}")
        if not isinstance(scores, dict):
            raise ValueError("scores must map a competitor to 0-10")
        clean: dict[str, int] = {}
        for name, score in scores.items():
            if name not in names:
                raise ValueError(f"unknown competitor {name!r}")
            if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 10:
                raise ValueError(f"the score for {name} must be from 0 to 10")
            clean[name] = score
        return {"uses": list(dict.fromkeys(uses)), "scores": clean}
    raise ValueError("is not a question that takes an answer here")


def check_answers(
    definition: SurveyDefinition, answers: Any, phone_region: str | None = None
) -> dict[str, Any]:
    """Validated ``answers`` (by question code, without score and comment); AnswerError if not."""
    if not isinstance(answers, dict):
        raise AnswerError({"answers": ["must be an object of question code → answer"]})
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    score_code = definition.score_question.code
    comment = comment_question(definition)
    for code, value in answers.items():
        question = definition.question(code)
        if question is None:
            errors.setdefault(f"answers.{code}", []).append("no such question in this survey")
            continue
        if code == score_code or (comment is not None and code == comment.code):
            errors.setdefault(f"answers.{code}", []).append(
                "give this as score/comment, not in answers"
            )
            continue
        if value is None:
            continue
        try:
            clean[code] = _answer(question, value, phone_region)
        except ValueError as exc:
            errors.setdefault(f"answers.{code}", []).append(str(exc))
    if errors:
        raise AnswerError(errors)
    return clean


_UNSET: Any = object()


def record(
    invitation: Invitation,
    *,
    score: Any = _UNSET,
    comment: Any = _UNSET,
    answers: dict[str, Any] | None = None,
    language: str | None = None,
    source: str = ResponseSource.WEB,
    now: dt.datetime | None = None,
) -> Response:
    """Keep what the respondent gave so far (merging with earlier answers); AnswerError if invalid.

    The first call creates the response and marks the invitation answered; later calls change
    it (the respondent may change their mind until the invitation expires).
    """
    now = now or clock.now()
    definition = definition_of(invitation.survey)
    errors: dict[str, list[str]] = {}
    clean_score = None
    if score is not _UNSET and score is not None:
        try:
            clean_score = check_score(definition, score)
        except ValueError as exc:
            errors["score"] = [str(exc)]
    clean_comment = None
    if comment is not _UNSET and comment is not None:
        if not isinstance(comment, str) or len(comment) > MAX_TEXT:
            errors["comment"] = [f"must be text of at most {MAX_TEXT} characters"]
        else:
            clean_comment = comment.strip()
    try:
        clean = check_answers(definition, answers or {}, invitation.workspace.phone_region or None)
    except AnswerError as exc:
        errors.update(exc.errors)
        clean = {}
    if errors:
        raise AnswerError(errors)

    with transaction.atomic():
        locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
        response = Response.objects.filter(invitation=locked).first()
        if response is None:
            response = Response(
                workspace_id=locked.workspace_id,
                external_id=uuid.uuid4().hex,
                survey_id=locked.survey_id,
                invitation=locked,
                customer_id=locked.customer_id,
                interaction_id=locked.interaction_id,
                answered_at=now,
                source=source,
                is_test=locked.is_test,
                branch_id=locked.branch_id,
                employee_id=locked.employee_id,
                product_id=locked.product_id,
                channel_id=locked.channel_id,
                touchpoint_id=locked.touchpoint_id,
                language=locked.language,
            )
        if clean_score is not None:
            response.score = clean_score
        if clean_comment is not None:
            response.comment = clean_comment
        merged = {**response.answers, **clean}
        if response.score is not None:
            # A changed score can hide a question (the call-back question is for detractors
            # only): its old answer no longer applies.
            merged = {
                code: value
                for code, value in merged.items()
                if (q := definition.question(code)) is None or q.shown_for(response.score)
            }
        response.answers = merged
        contact = next((q for q in definition.questions if q.type == "contact"), None)
        if contact is not None:
            given = merged.get(contact.code)
            response.may_contact = given["may_contact"] if given else None
            response.contact_phone = given["phone"] if given and given["may_contact"] else ""
        if language:
            response.language = definition.pick_language(language)
        created = response.pk is None
        response.save()
        saved = response
        transaction.on_commit(
            lambda: signals.response_saved.send(Response, response=saved, created=created)
        )
        changed = []
        if locked.answered_at is None:
            locked.answered_at = now
            changed.append("answered_at")
        if locked.clicked_at is None:
            locked.clicked_at = now
            changed.append("clicked_at")
        if changed:
            Invitation.objects.filter(pk=locked.pk).update(**{f: now for f in changed})
    invitation.answered_at = invitation.answered_at or now
    invitation.clicked_at = invitation.clicked_at or now
    return response
