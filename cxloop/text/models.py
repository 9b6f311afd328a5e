"""Text analytics: every comment with its language, sentiment, emotion and reason codes, the
model versions that coded it, and the analysts' labels that teach the next version.

* ``Comment``: one text to understand (a survey answer's comment, a call-back's notes), with
  what the pipeline found and the model version of each finding (docs/text-analytics.md).
* ``CommentReason``: the reason codes of a comment (multi-label), each with its confidence and
  whether a model, a supervisor's call-back or an analyst put it there.
* ``Label``: training data a person gave: an analyst's correction in the explorer or the review
  queue. The weak labels (scores, call-back reasons) are read from their own tables.
* ``ModelVersion``: one trained model per workspace and task, kept with its cross-validated
  macro-F1 per label; exactly one is active per task, and rolling back activates an older one.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from cxloop.core import clock
from cxloop.core.models import WorkspaceScoped
from cxloop.organisation.models import Placed


class Task(models.TextChoices):
    SENTIMENT = "sentiment", _("Sentiment")
    EMOTION = "emotion", _("Emotion")
    REASONS = "reasons", _("Reasons")


class Sentiment(models.TextChoices):
    NEGATIVE = "negative", _("Negative")
    NEUTRAL = "neutral", _("Neutral")
    POSITIVE = "positive", _("Positive")


class Emotion(models.TextChoices):
    ANGER = "anger", _("Anger")
    FRUSTRATION = "frustration", _("Frustration")
    DISAPPOINTMENT = "disappointment", _("Disappointment")
    ANXIETY = "anxiety", _("Anxiety")
    NEUTRAL = "neutral", _("No strong emotion")
    SATISFACTION = "satisfaction", _("Satisfaction")
    GRATITUDE = "gratitude", _("Gratitude")
    DELIGHT = "delight", _("Delight")


class CommentSource(models.TextChoices):
    RESPONSE = "response", _("Survey comment")
    CALLBACK = "callback", _("Call-back notes")


class LabelSource(models.TextChoices):
    MODEL = "model", _("Model")
    ANALYST = "analyst", _("Analyst")
    CALLBACK = "callback", _("Call-back")
    RULES = "rules", _("Built-in rules")


class Comment(Placed, WorkspaceScoped):
    """One text and what the pipeline understood of it. Placement, survey and time are copied
    from the response (or the case) so that the explorer filters without a join."""

    source = models.CharField(max_length=10, choices=CommentSource.choices)
    response = models.ForeignKey(
        "surveys.Response",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="text_comments",
    )
    case = models.ForeignKey(
        "cases.Case", null=True, blank=True, on_delete=models.CASCADE, related_name="text_comments"
    )
    survey = models.ForeignKey(
        "surveys.Survey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    score = models.SmallIntegerField(null=True, blank=True)
    text = models.TextField()
    # When the customer wrote it (the response's answered_at, the call-back's time).
    written_at = models.DateTimeField(default=clock.now)
    # ISO 639-1 code ("ru", "ro", "en", "uk"…) or "unknown".
    language = models.CharField(max_length=8, blank=True)
    language_p = models.FloatField(null=True, blank=True)
    sentiment = models.CharField(max_length=10, choices=Sentiment.choices, blank=True)
    sentiment_p = models.FloatField(null=True, blank=True)
    emotion = models.CharField(max_length=16, choices=Emotion.choices, blank=True)
    emotion_p = models.FloatField(null=True, blank=True)
    # Who set each finding: {"sentiment": "model", "emotion": "rules", "reasons": "analyst"}.
    sources: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)
    # The ModelVersion.version of each task that coded it; 0: the built-in rules (cold start).
    versions: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)
    analysed_at = models.DateTimeField(null=True, blank=True)
    # Active learning: the model was unsure (lowest confidence across tasks, 0..1).
    needs_review = models.BooleanField(default=False)
    certainty = models.FloatField(null=True, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reasons: models.ManyToManyField[Any, Any] = models.ManyToManyField(
        "cases.ReasonCode", through="CommentReason", blank=True, related_name="comments"
    )

    class Meta:
        verbose_name = _("comment")
        verbose_name_plural = _("comments")
        constraints = [
            models.UniqueConstraint(
                fields=["response"], condition=Q(response__isnull=False), name="comment_response"
            ),
            models.UniqueConstraint(
                fields=["case"], condition=Q(case__isnull=False), name="comment_case"
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "written_at"], name="comment_written"),
            models.Index(
                fields=["workspace", "certainty"],
                condition=Q(needs_review=True, reviewed_at__isnull=True),
                name="comment_review_queue",
            ),
            models.Index(
                fields=["workspace", "analysed_at"],
                condition=Q(analysed_at__isnull=True),
                name="comment_unanalysed",
            ),
            # The analytics heartbeat reads the comments coded since its last look
            # (analytics.reasons.reconcile).
            models.Index(fields=["analysed_at"], name="comment_analysed"),
        ]

    def __str__(self) -> str:
        return f"comment {self.pk}"


class CommentReason(models.Model):
    comment = models.ForeignKey(Comment, on_delete=models.CASCADE, related_name="codes")
    reason = models.ForeignKey("cases.ReasonCode", on_delete=models.CASCADE, related_name="+")
    confidence = models.FloatField(default=1.0)
    source = models.CharField(max_length=10, choices=LabelSource.choices)

    class Meta:
        verbose_name = _("comment reason")
        verbose_name_plural = _("comment reasons")
        constraints = [
            models.UniqueConstraint(fields=["comment", "reason"], name="comment_reason_unique")
        ]
        indexes = [models.Index(fields=["reason", "comment"], name="comment_reason_by_reason")]

    def __str__(self) -> str:
        return f"{self.comment_id}:{self.reason_id}"


class Label(WorkspaceScoped):
    """A person's label for one comment and task: training data for the next model version.
    For reasons, ``value`` is one reason code and ``present`` says whether it applies."""

    comment = models.ForeignKey(Comment, on_delete=models.CASCADE, related_name="labels")
    task = models.CharField(max_length=10, choices=Task.choices)
    value = models.CharField(max_length=64)
    present = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = _("label")
        verbose_name_plural = _("labels")
        constraints = [
            models.UniqueConstraint(
                fields=["comment", "task", "value"], name="label_unique_per_comment"
            )
        ]
        indexes = [models.Index(fields=["workspace", "task"], name="label_task")]

    def __str__(self) -> str:
        return f"{self.task}={self.value}"


class ModelVersion(WorkspaceScoped):
    task = models.CharField(max_length=10, choices=Task.choices)
    version = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=clock.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    is_active = models.BooleanField(default=False)
    n_texts = models.PositiveIntegerField(default=0)
    labels: models.JSONField[Any, Any] = models.JSONField(default=list)
    # {"macro_f1": 0.81, "per_label": {"waiting": 0.77, ...}, "folds": 5, "n": 1200}
    metrics: models.JSONField[Any, Any] = models.JSONField(default=dict)
    # What the features were: {"embeddings": false, "kind": "tfidf-svc"}.
    features: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)
    # The fitted model (cxloop.text.ml.Classifier.to_bytes()), compressed.
    blob = models.BinaryField()

    class Meta:
        verbose_name = _("model version")
        verbose_name_plural = _("model versions")
        ordering = ["task", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "task", "version"], name="model_version_unique"
            ),
            models.UniqueConstraint(
                fields=["workspace", "task"],
                condition=Q(is_active=True),
                name="model_version_one_active",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task} v{self.version}"


class TextCursor(models.Model):
    """How far the sweep has looked at a workspace's responses and cases (by ``updated_at``).

    A response saved one by one is coded at once (``receivers``); the sweep catches the rest:
    batch imports, call-back notes, and anything a stopped worker missed.
    """

    workspace = models.OneToOneField(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    # Where to go on: after the row (at, pk) of a full batch; pk 0: everything up to ``at``
    # has been seen (the next sweep looks a little earlier again, for late commits).
    responses_at = models.DateTimeField(null=True, blank=True)
    responses_pk = models.BigIntegerField(default=0)
    cases_at = models.DateTimeField(null=True, blank=True)
    cases_pk = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.workspace_id}@{self.responses_at}"
