"""The comment pages (docs/comment-explorer.md): the explorer ``/comments/``, the review queue
``/comments/review``, topic discovery ``/comments/topics`` and the model versions
``/comments/models``.

Who sees what:

* admin, CX manager and analyst (``VIEW_ALL_FEEDBACK``) see every comment of the workspace,
  fix labels, train and activate model versions and make reason codes from topics;
* a supervisor sees the comments about their teams (``services.visible_comments``) and fixes
  their labels, reads the model versions but may not train or activate (403), and has no topic
  discovery (it reads the whole workspace's comments: 403);
* the employee role gets 403 everywhere.

Every change is a POST with CSRF that calls ``services`` (``set_label``, ``mark_reviewed``,
``train``, ``activate``) or ``topics.create_reason_from_topic`` and redirects back to the page
it came from, its filters kept. A comment outside what the user sees — another workspace's,
another team's — answers 404.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Exists, OuterRef, Prefetch, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from cxloop.accounts.models import Membership, Permission, Role
from cxloop.accounts.services import audit
from cxloop.analytics import exports, rollups
from cxloop.cases.models import ReasonCode
from cxloop.core import clock
from cxloop.core.permissions import workspace_required

from . import services, topics
from .forms import LANGUAGES, NO_REASON, ExplorerFilter, LabelForm, TopicReasonForm
from .models import (
    Comment,
    CommentReason,
    Emotion,
    Label,
    LabelSource,
    ModelVersion,
    Sentiment,
    Task,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 25
REVIEW_PAGE_SIZE = 20
EXPORT_LIMIT = 100_000
TOPICS_CACHE_S = 600
TOPIC_EXAMPLES_SHOWN = 5


def _membership(request: HttpRequest) -> Membership:
    return request.membership  # type: ignore[attr-defined]


def can_manage(membership: Membership) -> bool:
    """Train, activate, make reason codes from topics: the roles that see all feedback."""
    return membership.can(Permission.VIEW_ALL_FEEDBACK)


def can_label(membership: Membership) -> bool:
    return can_manage(membership) or membership.role == Role.SUPERVISOR


def _visible(membership: Membership) -> QuerySet[Comment]:
    return services.visible_comments(membership.workspace, membership)


def _visible_comment(membership: Membership, pk: int) -> Comment:
    comment = _visible(membership).filter(pk=pk).first()
    if comment is None:
        raise Http404("no such comment here")
    return comment


def _back(request: HttpRequest, default: str) -> str:
    """Where a POST returns: the page (with its filters) it was sent from, if it is ours."""
    target = str(request.POST.get("next") or "")
    if target.startswith("/comments/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


# --- what a finding's source says ------------------------------------------------------------


def who_set(source: str | None, version: Any) -> str:
    """ "model v3", "built-in rules", "analyst", "call-back" for a finding's source."""
    if source == LabelSource.MODEL:
        return _("model v%(n)s") % {"n": version} if version else _("model")
    if source == LabelSource.RULES:
        return _("built-in rules")
    if source == LabelSource.ANALYST:
        return _("analyst")
    if source == LabelSource.CALLBACK:
        return _("call-back")
    return ""


def _item(comment: Comment, reasons: list[Any]) -> dict[str, Any]:
    sources = comment.sources or {}
    versions = comment.versions or {}
    chosen = {code.reason.code for code in comment.codes.all()}
    return {
        "comment": comment,
        "language": comment.language or "unknown",
        "language_name": LANGUAGES.get(comment.language or "unknown", comment.language),
        "sentiment_by": who_set(sources.get(Task.SENTIMENT), versions.get(Task.SENTIMENT)),
        "emotion_by": who_set(sources.get(Task.EMOTION), versions.get(Task.EMOTION)),
        "codes": [
            {
                "code": code.reason.code,
                "label": code.reason.label(),
                "confidence": code.confidence,
                "by": who_set(code.source, versions.get(Task.REASONS)),
                "source": code.source,
            }
            for code in comment.codes.all()
        ],
        "addable": [r for r in reasons if r.code not in chosen],
    }


def _items(comments: list[Comment], reasons: list[Any]) -> list[dict[str, Any]]:
    return [_item(comment, reasons) for comment in comments]


def _with_codes(comments: QuerySet[Comment]) -> QuerySet[Comment]:
    return comments.select_related("branch", "survey").prefetch_related(
        Prefetch(
            "codes",
            queryset=CommentReason.objects.select_related("reason").order_by(
                "reason__position", "reason__code"
            ),
        )
    )


def _choices(membership: Membership) -> dict[str, Any]:
    return {
        "sentiments": Sentiment.choices,
        "emotions": Emotion.choices,
        "can_label": can_label(membership),
        "can_manage": can_manage(membership),
    }


# --- the explorer ---------------------------------------------------------------------------


def filtered(membership: Membership, data: dict[str, Any]) -> QuerySet[Comment]:
    """The comments the user sees that match the filter's cleaned ``data``."""
    comments = _visible(membership)
    if data.get("q"):
        comments = comments.filter(text__icontains=data["q"])
    language = data.get("language")
    if language == "unknown":
        comments = comments.filter(language__in=["unknown", ""])
    elif language:
        comments = comments.filter(language=language)
    for name in ("sentiment", "emotion", "source"):
        if data.get(name):
            comments = comments.filter(**{name: data[name]})
    reason = data.get("reason")
    if reason == NO_REASON:
        comments = comments.filter(~Exists(CommentReason.objects.filter(comment=OuterRef("pk"))))
    elif reason:
        comments = comments.filter(codes__reason__code=reason)
    if data.get("branch"):
        comments = comments.filter(branch__code=data["branch"])
    if data.get("survey"):
        comments = comments.filter(survey__code=data["survey"])
    tz = rollups.tz_of(membership.workspace)
    if data.get("since"):
        comments = comments.filter(
            written_at__gte=dt.datetime.combine(data["since"], dt.time.min, tzinfo=tz)
        )
    if data.get("until"):
        end = data["until"] + dt.timedelta(days=1)
        comments = comments.filter(written_at__lt=dt.datetime.combine(end, dt.time.min, tzinfo=tz))
    return comments


def _shares(rows: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    total = sum(n for _key, _label, n in rows) or 1
    return [
        {"key": key, "label": label, "n": n, "pct": round(100 * n / total, 1)}
        for key, label, n in rows
    ]


def _counts(comments: QuerySet[Comment]) -> dict[str, list[dict[str, Any]]]:
    by_sentiment = dict(
        comments.order_by()
        .values_list("sentiment")
        .annotate(n=Count("pk"))
        .values_list("sentiment", "n")
    )
    by_language: dict[str, int] = {}
    for language, n in (
        comments.order_by()
        .values_list("language")
        .annotate(n=Count("pk"))
        .values_list("language", "n")
    ):
        key = language if language in LANGUAGES else "unknown"
        by_language[key] = by_language.get(key, 0) + n
    sentiments = [(key, str(label), by_sentiment.get(key, 0)) for key, label in Sentiment.choices]
    if by_sentiment.get(""):
        sentiments.append(("", _("Not analysed yet"), by_sentiment[""]))
    languages = [
        (key, str(LANGUAGES[key]), n)
        for key, n in sorted(by_language.items(), key=lambda i: (-i[1], i[0]))
    ]
    return {"sentiment": _shares(sentiments), "language": _shares(languages)}


def _export(request: HttpRequest, membership: Membership, comments: QuerySet[Comment]) -> Any:
    if not membership.can(Permission.EXPORT_DATA):
        raise PermissionDenied
    headers = [
        _("Comment id"), _("Written at"), _("Source"), _("Survey"), _("Branch"), _("Score"),
        _("Text"), _("Language"), _("Sentiment"), _("Sentiment probability"),
        _("Sentiment set by"), _("Emotion"), _("Emotion probability"), _("Emotion set by"),
        _("Reasons"), _("Reviewed"),
    ]  # fmt: skip
    tz = rollups.tz_of(membership.workspace)
    rows = []
    listed = _with_codes(comments.order_by("-written_at", "-pk"))[:EXPORT_LIMIT]
    for c in listed.iterator(chunk_size=2000):
        sources, versions = c.sources or {}, c.versions or {}
        rows.append(
            [
                c.pk, c.written_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"), c.source,
                c.survey.code if c.survey else "", c.branch.code if c.branch else "", c.score,
                c.text, c.language, c.sentiment,
                None if c.sentiment_p is None else round(c.sentiment_p, 3),
                who_set(sources.get(Task.SENTIMENT), versions.get(Task.SENTIMENT)),
                c.emotion, None if c.emotion_p is None else round(c.emotion_p, 3),
                who_set(sources.get(Task.EMOTION), versions.get(Task.EMOTION)),
                " ".join(code.reason.code for code in c.codes.all()),
                _("yes") if c.reviewed_at else "",
            ]
        )  # fmt: skip
    audit(
        membership.workspace,
        "export.comments",
        via="web",
        actor=request.user,
        changes={"rows": len(rows), "filters": _query(request)},
    )
    today = clock.now().astimezone(tz).date().isoformat()
    return exports.csv_response(f"comments-{today}.csv", headers, rows)


def _query(request: HttpRequest, *drop: str) -> str:
    query = request.GET.copy()
    for name in ("format", *drop):
        query.pop(name, None)
    return query.urlencode()


@workspace_required(Permission.VIEW_TEAM_FEEDBACK)
def explorer(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    workspace = membership.workspace
    form = ExplorerFilter(request.GET, workspace=workspace)
    context: dict[str, Any] = {"form": form, **_choices(membership)}
    context["scoped"] = not membership.can(Permission.VIEW_ALL_FEEDBACK)
    context["can_export"] = membership.can(Permission.EXPORT_DATA)
    if not form.is_valid():
        return render(request, "text/explorer.html", context)
    comments = filtered(membership, form.cleaned_data)
    if request.GET.get("format") == "csv":
        return _export(request, membership, comments)
    paginator = Paginator(_with_codes(comments.order_by("-written_at", "-pk")), PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    reasons = list(form.reasons.values())
    context.update(
        {
            "page": page,
            "total": paginator.count,
            "items": _items(list(page.object_list), [r for r in reasons if r.is_active]),
            "counts": _counts(comments),
            "query": _query(request, "page"),
            "here": request.get_full_path(),
            "reasons": reasons,
        }
    )
    return render(request, "text/explorer.html", context)


@require_POST
@workspace_required(Permission.VIEW_TEAM_FEEDBACK)
def label(request: HttpRequest, pk: int) -> HttpResponse:
    """One click's fix: the finding changes now and the label teaches the next version."""
    membership = _membership(request)
    if not can_label(membership):
        raise PermissionDenied
    comment = _visible_comment(membership, pk)
    back = _back(request, reverse("text:explorer"))
    form = LabelForm(request.POST, workspace=membership.workspace)
    if not form.is_valid():
        problems = [str(e) for errors in form.errors.values() for e in errors]
        messages.error(request, _("Not saved: %(why)s") % {"why": " ".join(problems)})
        return redirect(back)
    task, value, present = (form.cleaned_data[k] for k in ("task", "value", "present"))
    try:
        services.set_label(comment, task, value, user=request.user, present=present)
    except services.LabelError as exc:
        messages.error(request, _("Not saved: %(why)s") % {"why": exc})
        return redirect(back)
    messages.success(request, _saved_message(membership, task, value, present))
    return redirect(back)


def _saved_message(membership: Membership, task: str, value: str, present: bool) -> str:
    if task == Task.SENTIMENT:
        what = _("Sentiment set to %(value)s.") % {"value": Sentiment(value).label}
    elif task == Task.EMOTION:
        what = _("Emotion set to %(value)s.") % {"value": Emotion(value).label}
    else:
        reason = ReasonCode.objects.filter(workspace=membership.workspace, code=value).first()
        name = reason.label() if reason else value
        what = (
            _("Reason “%(reason)s” added.") if present else _("Reason “%(reason)s” removed.")
        ) % {"reason": name}
    return what + " " + _("The next model version learns from it.")


@require_POST
@workspace_required(Permission.VIEW_TEAM_FEEDBACK)
def confirm(request: HttpRequest, pk: int) -> HttpResponse:
    """ "The model was right": its findings become labels and the comment leaves the queue."""
    membership = _membership(request)
    if not can_label(membership):
        raise PermissionDenied
    comment = _visible_comment(membership, pk)
    services.mark_reviewed(comment, user=request.user)
    messages.success(request, _("Confirmed: the model's findings are kept as labels."))
    return redirect(_back(request, reverse("text:review")))


# --- the review queue -----------------------------------------------------------------------


def waiting_labels(membership: Membership) -> list[dict[str, Any]]:
    """Per task: the people's labels given since its active version was trained (all of them
    before a first version), against the number that starts the scheduled retraining."""
    workspace = membership.workspace
    active = services.active_versions(workspace.pk)
    rows = []
    for task, name in Task.choices:
        labels = Label.objects.filter(workspace=workspace, task=task)
        version = active.get(task)
        if version is not None:
            labels = labels.filter(created_at__gt=version.created_at)
        rows.append(
            {
                "task": task,
                "name": name,
                "waiting": labels.count(),
                "threshold": services.RETRAIN_AFTER,
                "version": version.version if version else None,
            }
        )
    return rows


@workspace_required(Permission.VIEW_TEAM_FEEDBACK)
def review(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    if not can_label(membership):
        raise PermissionDenied
    queue = services.review_queue(membership.workspace)
    if not can_manage(membership):
        queue = queue.filter(pk__in=_visible(membership).values("pk"))
    paginator = Paginator(_with_codes(queue), REVIEW_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    reasons = list(ReasonCode.objects.filter(workspace=membership.workspace, is_active=True))
    return render(
        request,
        "text/review.html",
        {
            **_choices(membership),
            "page": page,
            "total": paginator.count,
            "items": _items(list(page.object_list), reasons),
            "waiting": waiting_labels(membership),
            "here": request.get_full_path(),
            "threshold": services.REVIEW_BELOW,
        },
    )


# --- model versions -------------------------------------------------------------------------


def _label_names(membership: Membership, task: str) -> dict[str, str]:
    if task == Task.SENTIMENT:
        return {k: str(v) for k, v in Sentiment.choices}
    if task == Task.EMOTION:
        return {k: str(v) for k, v in Emotion.choices}
    return {r.code: r.label() for r in ReasonCode.objects.filter(workspace=membership.workspace)}


def _version_row(version: ModelVersion, names: dict[str, str]) -> dict[str, Any]:
    metrics = version.metrics or {}
    macro = metrics.get("macro_f1")
    per_label = metrics.get("per_label") or {}
    return {
        "version": version,
        "macro_pct": None if macro is None else round(100 * float(macro), 1),
        "folds": metrics.get("folds"),
        "per_label": [
            {
                "code": code,
                "name": names.get(code, code),
                "pct": None if f1 is None else round(100 * float(f1), 1),
            }
            for code, f1 in sorted(per_label.items(), key=lambda i: -(i[1] or 0))
        ],
        "embeddings": bool((version.features or {}).get("embeddings")),
    }


@workspace_required(Permission.VIEW_TEAM_FEEDBACK)
def models_page(request: HttpRequest) -> HttpResponse:
    membership = _membership(request)
    versions = (
        ModelVersion.objects.filter(workspace=membership.workspace)
        .defer("blob")
        .select_related("created_by")
        .order_by("task", "-version")
    )
    by_task: dict[str, list[ModelVersion]] = {}
    for version in versions:
        by_task.setdefault(version.task, []).append(version)
    waiting = {row["task"]: row for row in waiting_labels(membership)}
    tasks = []
    for task, name in Task.choices:
        names = _label_names(membership, task)
        rows = [_version_row(v, names) for v in by_task.get(task, [])]
        tasks.append(
            {
                "task": task,
                "name": name,
                "rows": rows,
                "active": next((r for r in rows if r["version"].is_active), None),
                "waiting": waiting[task],
            }
        )
    return render(
        request,
        "text/models.html",
        {**_choices(membership), "tasks": tasks, "min_texts": services.MIN_TEXTS},
    )


@require_POST
@workspace_required(Permission.VIEW_ALL_FEEDBACK)
def train(request: HttpRequest) -> HttpResponse:
    from .ml import TrainingError

    membership = _membership(request)
    task = request.POST.get("task", "")
    if task not in Task.values:
        messages.error(request, _("Choose what to train: sentiment, emotion or reasons."))
        return redirect("text:models")
    try:
        version = services.train(membership.workspace, task, user=request.user)
    except TrainingError as exc:
        messages.error(
            request,
            _("%(task)s was not trained: %(why)s") % {"task": Task(task).label, "why": exc},
        )
        return redirect("text:models")
    audit(
        membership.workspace,
        "text_model.train",
        via="web",
        actor=request.user,
        obj=version,
        changes={"task": task, "version": version.version, "n_texts": version.n_texts},
    )
    macro = (version.metrics or {}).get("macro_f1")
    values = {
        "task": Task(task).label,
        "v": version.version,
        "n": version.n_texts,
        "f1": "—" if macro is None else f"{100 * float(macro):.1f}%",
    }
    if version.is_active:
        messages.success(
            request,
            _(
                "%(task)s: version %(v)s trained on %(n)s comments and made active "
                "(macro-F1 %(f1)s)."
            )
            % values,
        )
    else:
        # services.should_activate: a poor first model, or one clearly worse than the active.
        messages.warning(
            request,
            _(
                "%(task)s: version %(v)s trained on %(n)s comments (macro-F1 %(f1)s) but kept "
                "inactive: it does not do better than what codes the comments now. Activate it "
                "below if you want it anyway."
            )
            % values,
        )
    return redirect(reverse("text:models") + f"#task-{task}")


@require_POST
@workspace_required(Permission.VIEW_ALL_FEEDBACK)
def activate(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _membership(request)
    version = ModelVersion.get_for_workspace(membership.workspace, pk=pk)
    services.activate(version, user=request.user)
    audit(
        membership.workspace,
        "text_model.activate",
        via="web",
        actor=request.user,
        obj=version,
        changes={"task": version.task, "version": version.version},
    )
    messages.success(
        request,
        _("%(task)s: version %(v)s is active now; the comments are being coded again with it.")
        % {"task": Task(version.task).label, "v": version.version},
    )
    return redirect(reverse("text:models") + f"#task-{version.task}")


# --- topics ---------------------------------------------------------------------------------


def _discover(membership: Membership, embeddings: bool) -> list[topics.Topic]:
    """The topics of the workspace, kept a few minutes while the comments stay the same."""
    workspace = membership.workspace
    key = f"text-topics:{workspace.pk}:{int(embeddings)}:{topics.fingerprint(workspace)}"
    found = cache.get(key)
    if found is None:
        found = topics.discover(workspace, embeddings=embeddings)
        cache.set(key, found, TOPICS_CACHE_S)
    return list(found)


def _topic_form(topic: topics.Topic, data: Any = None) -> TopicReasonForm:
    code, labels = topics.suggestion(topic)
    initial = {
        "code": code,
        "comments": ",".join(str(pk) for pk in topic.comment_ids),
        **{f"label_{lang}": labels.get(lang, "") for lang in ("en", "ru", "ro")},
    }
    return TopicReasonForm(data, initial=initial, prefix=f"t{topic.key}")


def _topics_page(
    request: HttpRequest, membership: Membership, bound: tuple[str, TopicReasonForm] | None
) -> HttpResponse:
    embeddings = request.GET.get("embeddings") == "1" and topics.embeddings_available()
    found = _discover(membership, embeddings)
    shown = []
    matched = False
    for topic in found:
        form = _topic_form(topic)
        if bound and bound[0] == topic.key:
            form, matched = bound[1], True
        shown.append(
            {
                "topic": topic,
                "form": form,
                "keywords": [
                    (lang, LANGUAGES.get(lang, lang), words, topic.languages.get(lang, 0))
                    for lang, words in sorted(
                        topic.keywords.items(), key=lambda i: -topic.languages.get(i[0], 0)
                    )
                ],
            }
        )
    if bound and not matched:
        # The comments changed since the page was drawn: the topic is gone or regrouped.
        problems = [str(e) for errors in bound[1].errors.values() for e in errors]
        messages.error(request, _("Not saved: %(why)s") % {"why": " ".join(problems)})
    return render(
        request,
        "text/topics.html",
        {
            **_choices(membership),
            "topics": shown,
            "embeddings": embeddings,
            "embeddings_available": topics.embeddings_available(),
            "candidates": topics.candidates(membership.workspace).count(),
            "max_comments": 3000,
        },
    )


@workspace_required(Permission.VIEW_ALL_FEEDBACK)
def topics_page(request: HttpRequest) -> HttpResponse:
    return _topics_page(request, _membership(request), None)


@require_POST
@workspace_required(Permission.VIEW_ALL_FEEDBACK)
def topic_reason(request: HttpRequest) -> HttpResponse:
    """ "Create a reason code from this cluster": the code, and the cluster's comments
    labelled with it (training data for the reasons model)."""
    membership = _membership(request)
    key = request.POST.get("topic", "")
    form = TopicReasonForm(request.POST, prefix=f"t{key}")
    if form.is_valid():
        ids = list(
            _visible(membership)
            .filter(pk__in=form.cleaned_data["comments"])
            .values_list("pk", flat=True)
        )
        try:
            reason = topics.create_reason_from_topic(
                membership.workspace,
                ids,
                code=form.cleaned_data["code"],
                labels=form.labels(),
                user=request.user,
            )
        except ValidationError as exc:
            for name, errors in exc.message_dict.items():
                field = name if name in form.fields else ("label_en" if name == "labels" else None)
                for error in errors:
                    form.add_error(field, error)
        else:
            messages.success(
                request,
                _("Reason “%(reason)s” created; %(n)s comments are labelled with it.")
                % {"reason": reason.label(), "n": len(ids)},
            )
            return redirect(reverse("text:explorer") + f"?reason={reason.code}")
    return _topics_page(request, membership, (key, form))
