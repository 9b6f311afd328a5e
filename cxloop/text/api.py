"""``/api/v1/comments``: coded comments for BI tools and integrations, and analysts' labels.

* ``GET /api/v1/comments`` — by ``written_at``, keyset pages; filters ``language``,
  ``sentiment``, ``emotion``, ``reason``, ``branch``, ``survey``, ``source``, ``needs_review``.
  Each item: the text, where and when it was written, and every finding with its probability,
  who set it and the model version (docs/text-analytics.md). Needs the ``read`` scope.
* ``POST /api/v1/comments/{id}/labels`` — a correction, as the explorer's one click: it replaces
  the finding and becomes training data. Needs the ``admin`` scope.

An unknown filter value answers 422 naming the filter; another workspace's comment 404.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Prefetch
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from cxloop.accounts.models import Workspace
from cxloop.cases.models import ReasonCode
from cxloop.core.api import (
    NOT_VALID,
    Invalid,
    ListParams,
    Page,
    by_code,
    check_aware,
    list_page,
    require_scope,
)
from cxloop.organisation.models import Branch
from cxloop.surveys.models import Survey

from . import services
from .models import Comment, CommentReason, CommentSource, Emotion, Sentiment, Task

comments = Router()


class CommentParams(ListParams):
    language: str | None = Field(default=None, description="ISO 639-1 code, or `unknown`.")
    sentiment: str | None = Field(default=None, description="negative, neutral or positive.")
    emotion: str | None = Field(default=None, description=", ".join(Emotion.values))
    reason: str | None = Field(default=None, description="A reason code the comment carries.")
    branch: str | None = Field(default=None, description="Branch code.")
    survey: str | None = Field(default=None, description="Survey code.")
    source: str | None = Field(default=None, description="response or callback.")
    needs_review: bool | None = Field(default=None, description="Only the review queue.")


class LabelIn(Schema):
    task: str = Field(description="sentiment, emotion or reasons.")
    value: str = Field(description="The sentiment, the emotion, or a reason code.")
    present: bool = Field(default=True, description="Reasons: false removes the code.")


class Detail(Schema):
    detail: str


def _workspace(request: HttpRequest) -> Workspace:
    workspace: Workspace = request.workspace  # type: ignore[attr-defined]
    return workspace


def _one_of(value: str, allowed: Iterable[str], field: str) -> str:
    allowed = list(allowed)
    if value not in allowed:
        raise Invalid(
            NOT_VALID, {field: [f"unknown {field} {value!r}; one of {', '.join(allowed)}"]}
        )
    return value


def comment_data(comment: Comment) -> dict[str, Any]:
    sources = comment.sources or {}
    versions = comment.versions or {}

    def finding(task: str, value: str, p: float | None) -> dict[str, Any] | None:
        if not value:
            return None
        return {"value": value, "probability": p, "source": sources.get(task),
                "version": versions.get(task)}  # fmt: skip

    return {
        "id": comment.pk,
        "source": comment.source,
        "response": comment.response.external_id if comment.response_id else None,  # type: ignore[union-attr]
        "case": comment.case_id,
        "survey": comment.survey.code if comment.survey_id else None,  # type: ignore[union-attr]
        "branch": comment.branch.code if comment.branch_id else None,  # type: ignore[union-attr]
        "score": comment.score,
        "text": comment.text,
        "written_at": comment.written_at.isoformat(),
        "language": {"value": comment.language or None, "probability": comment.language_p},
        "sentiment": finding(Task.SENTIMENT, comment.sentiment, comment.sentiment_p),
        "emotion": finding(Task.EMOTION, comment.emotion, comment.emotion_p),
        "reasons": [
            {"code": r.reason.code, "confidence": r.confidence, "source": r.source}
            for r in comment.codes.all()
        ],
        "reasons_version": versions.get(Task.REASONS),
        "needs_review": comment.needs_review,
        "reviewed_at": comment.reviewed_at.isoformat() if comment.reviewed_at else None,
        "analysed_at": comment.analysed_at.isoformat() if comment.analysed_at else None,
    }


def _queryset(workspace: Workspace) -> Any:
    return Comment.objects.filter(workspace=workspace).select_related(
        "response", "survey", "branch"
    ).prefetch_related(
        Prefetch("codes", queryset=CommentReason.objects.select_related("reason").order_by("reason__position", "reason__code"))
    )  # fmt: skip


@comments.get(
    "",
    response=Page,
    summary="List coded comments by written_at",
    description="Filters: `language`, `sentiment`, `emotion`, `reason` (code), `branch`, "
    "`survey` (codes), `source` (response, callback), `needs_review`, and `since` (inclusive) "
    "/ `until` (exclusive) on `written_at`, which need an offset. Each finding carries its "
    "probability, its source (model, rules, analyst, callback) and the model version (0: the "
    "built-in rules). An unknown value answers 422 naming the filter. Needs the `read` scope.",
)
def list_comments(request: HttpRequest, params: Query[CommentParams]) -> dict[str, Any]:
    require_scope(request, "read")
    workspace = _workspace(request)
    check_aware(params)
    qs = _queryset(workspace)
    if params.language:
        qs = qs.filter(language=params.language)
    if params.sentiment:
        qs = qs.filter(sentiment=_one_of(params.sentiment, Sentiment.values, "sentiment"))
    if params.emotion:
        qs = qs.filter(emotion=_one_of(params.emotion, Emotion.values, "emotion"))
    if params.source:
        qs = qs.filter(source=_one_of(params.source, CommentSource.values, "source"))
    if params.reason:
        qs = qs.filter(codes__reason=by_code(ReasonCode, workspace, "reason", params.reason))
    if params.branch:
        qs = qs.filter(branch=by_code(Branch, workspace, "branch", params.branch))
    if params.survey:
        qs = qs.filter(survey=by_code(Survey, workspace, "survey", params.survey))
    if params.needs_review is not None:
        qs = qs.filter(needs_review=params.needs_review, reviewed_at__isnull=True)
    rows, cursor = list_page(qs, "written_at", params, workspace.time_zone)
    return {"items": [comment_data(c) for c in rows], "next": cursor}


@comments.post(
    "/{int:comment_id}/labels",
    response={200: dict[str, Any], 404: Detail},
    summary="Correct a comment's finding (training data)",
    description="`task` sentiment or emotion replaces the finding; `reasons` adds the code "
    "(`present: false` removes it). It is kept as training data for the next model version. "
    "Needs the `admin` scope.",
)
def label_comment(
    request: HttpRequest, comment_id: int, payload: LabelIn
) -> Status[dict[str, Any]]:
    require_scope(request, "admin")
    workspace = _workspace(request)
    comment = Comment.objects.filter(workspace=workspace, pk=comment_id).first()
    if comment is None:
        return Status(404, {"detail": f"no comment {comment_id}"})
    _one_of(payload.task, Task.values, "task")
    try:
        services.set_label(comment, payload.task, payload.value, user=None, present=payload.present)
    except services.LabelError as exc:
        raise Invalid(NOT_VALID, {"value": [str(exc)]}) from None
    return Status(200, comment_data(_queryset(workspace).get(pk=comment.pk)))
