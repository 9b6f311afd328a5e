"""The comment pages through Django's test client: each explorer filter narrows the list, bad
filters give the form's error, one click fixes a finding and leaves a label, the review queue
and the model versions, topics to reason codes, and who may see and do what."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable
from html import unescape
from typing import Any

import pytest
from django.test import Client

from cxloop.accounts.models import AuditLog, Role, Workspace
from cxloop.cases.models import ReasonCode
from cxloop.cases.tests.conftest import Org, build_org
from cxloop.core import clock
from cxloop.surveys.tests.factories import make_survey
from cxloop.text import services
from cxloop.text.models import Comment, CommentReason, Label, LabelSource, ModelVersion, Task

from .test_topics import make_comment, plant

pytestmark = pytest.mark.django_db

MakeUser = Callable[..., Any]
EXPLORER = "/comments/"


def text_of(response: Any) -> str:
    """The page's text without tags, spaces squeezed, for assertions on what a reader sees."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def listed(response: Any) -> list[int]:
    """The comment ids on the page, in order."""
    return [int(pk) for pk in re.findall(r'<li id="comment-\d+" data-comment="(\d+)"', response.content.decode())]  # fmt: skip


def item_text(response: Any, pk: int) -> str:
    """The text of one comment's item in the list."""
    html = response.content.decode()
    start = html.index(f'data-comment="{pk}"')
    end = html.find('<li id="comment-', start)
    chunk = html[start : end if end > 0 else None]
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", chunk)))


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.fixture
def org(workspace: Workspace, make_user: MakeUser) -> Org:
    return build_org(workspace, make_user)


@pytest.fixture
def reasons(workspace: Workspace) -> dict[str, ReasonCode]:
    return {
        code: ReasonCode.objects.create(workspace=workspace, code=code, labels=labels, position=n)
        for n, (code, labels) in enumerate(
            {
                "waiting": {"en": "Waiting time", "ru": "Время ожидания", "ro": "Așteptare"},
                "staff": {"en": "Staff attitude", "ru": "Персонал", "ro": "Personalul"},
                "price": {"en": "Price", "ru": "Цена", "ro": "Prețul"},
            }.items()
        )
    }


def logged_in(client: Client, make_user: MakeUser, workspace: Workspace, role: str) -> Any:
    user = make_user(workspace, role, username=f"{role}-{workspace.slug}-t")
    client.force_login(user)
    return user


@pytest.fixture
def analyst(client: Client, make_user: MakeUser, workspace: Workspace) -> Any:
    return logged_in(client, make_user, workspace, Role.ANALYST)


@pytest.fixture
def varied(workspace: Workspace, org: Org, reasons: dict[str, ReasonCode]) -> dict[str, Comment]:
    """Five comments that differ in every filtered property."""
    now = clock.now()
    survey = make_survey(workspace, "after-visit")
    other_survey = make_survey(workspace, "after-call")
    from cxloop.organisation.models import Branch

    other_branch = Branch.objects.create(
        workspace=workspace, code="B02", name="Bălți Nord", region=org.region
    )
    found = {
        "en_neg": make_comment(
            workspace, "Waited forty minutes at the counter", "en", sentiment="negative",
            emotion="frustration", branch=org.branch, employee=org.agent, survey=survey,
            written_at=now - dt.timedelta(days=1),
        ),
        "ru_neg": make_comment(
            workspace, "Консультант нагрубил и отказался помочь", "ru", sentiment="negative",
            emotion="anger", branch=org.branch, employee=org.agent, survey=survey,
            written_at=now - dt.timedelta(days=2),
        ),
        "ro_pos": make_comment(
            workspace, "Foarte mulțumit, mulțumesc frumos", "ro", sentiment="positive",
            emotion="gratitude", branch=other_branch, survey=other_survey, score=10,
            written_at=now - dt.timedelta(days=3),
        ),
        "uk_neu": make_comment(
            workspace, "Нормально, але дорого", "uk", sentiment="neutral",
            emotion="neutral", branch=other_branch, survey=survey, score=7,
            written_at=now - dt.timedelta(days=40),
        ),
        "unknown": make_comment(
            workspace, "ok ok ok", "unknown", sentiment="neutral", emotion="neutral",
            branch=None, survey=None, score=None, source="callback",
            written_at=now - dt.timedelta(days=60),
        ),
    }  # fmt: skip
    CommentReason.objects.create(
        comment=found["en_neg"], reason=reasons["waiting"], source=LabelSource.MODEL
    )
    CommentReason.objects.create(
        comment=found["ru_neg"], reason=reasons["staff"], source=LabelSource.CALLBACK
    )
    CommentReason.objects.create(
        comment=found["uk_neu"], reason=reasons["price"], source=LabelSource.ANALYST
    )
    return found


# --- the explorer ---------------------------------------------------------------------------


def test_the_explorer_lists_every_comment_newest_first_with_its_findings(
    client: Client, analyst: Any, varied: dict[str, Comment]
) -> None:
    Comment.objects.filter(pk=varied["en_neg"].pk).update(
        sources={"sentiment": "model", "emotion": "rules"},
        versions={"sentiment": 3, "emotion": 0},
        sentiment_p=0.87,
    )

    response = client.get(EXPLORER)

    assert response.status_code == 200
    order = ["en_neg", "ru_neg", "ro_pos", "uk_neu", "unknown"]
    assert listed(response) == [varied[k].pk for k in order]
    page = text_of(response)
    assert "5 comments" in page
    assert "Waited forty minutes at the counter" in page
    first_text = item_text(response, varied["en_neg"].pk)
    assert "model v3" in first_text and "87%" in first_text and "built-in rules" in first_text
    assert "Waiting time" in first_text
    # The counts of the selection.
    counts = text_of(response)
    assert re.search(r"Negative\s+2 · 40%", counts), counts
    assert re.search(r"English\s+1 · 20%", counts)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"language": "ru"}, ["ru_neg"]),
        ({"language": "unknown"}, ["unknown"]),
        ({"sentiment": "negative"}, ["en_neg", "ru_neg"]),
        ({"sentiment": "neutral"}, ["uk_neu", "unknown"]),
        ({"emotion": "gratitude"}, ["ro_pos"]),
        ({"reason": "staff"}, ["ru_neg"]),
        ({"reason": "-"}, ["ro_pos", "unknown"]),
        ({"branch": "B02"}, ["ro_pos", "uk_neu"]),
        ({"survey": "after-call"}, ["ro_pos"]),
        ({"source": "callback"}, ["unknown"]),
        ({"q": "FORTY"}, ["en_neg"]),
        ({"sentiment": "negative", "language": "en"}, ["en_neg"]),
    ],
)
def test_each_filter_narrows_the_list(
    client: Client,
    analyst: Any,
    varied: dict[str, Comment],
    params: dict[str, str],
    expected: list[str],
) -> None:
    response = client.get(EXPLORER, params)
    assert response.status_code == 200
    assert listed(response) == [varied[k].pk for k in expected]


def test_the_dates_filter_by_the_workspace_s_days(
    client: Client, analyst: Any, varied: dict[str, Comment]
) -> None:
    today = clock.now().date()
    since = (today - dt.timedelta(days=45)).isoformat()
    until = (today - dt.timedelta(days=2)).isoformat()

    response = client.get(EXPLORER, {"since": since, "until": until})

    ids = set(listed(response))
    assert varied["uk_neu"].pk in ids and varied["ro_pos"].pk in ids
    assert varied["en_neg"].pk not in ids and varied["unknown"].pk not in ids


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"language": "klingon"}, "Select a valid choice"),
        ({"sentiment": "furious"}, "Select a valid choice"),
        ({"reason": "nope"}, "Select a valid choice"),
        ({"branch": "B99"}, "Select a valid choice"),
        ({"since": "2025-13-40"}, "Enter a valid date"),
        ({"since": "2025-03-01", "until": "2025-02-01"}, "The start date is after the end date"),
        ({"page": "x", "emotion": "joy"}, "Select a valid choice"),
    ],
)
def test_a_bad_filter_value_gives_the_form_s_error_not_a_list(
    client: Client, analyst: Any, varied: dict[str, Comment], params: dict[str, str], error: str
) -> None:
    response = client.get(EXPLORER, params)
    assert response.status_code == 200
    assert error in text_of(response)
    assert listed(response) == []


def test_a_page_past_the_end_shows_the_last_page(
    client: Client, analyst: Any, varied: dict[str, Comment]
) -> None:
    response = client.get(EXPLORER, {"page": "999"})
    assert response.status_code == 200
    assert len(listed(response)) == 5


def test_the_explorer_pages_by_25(client: Client, analyst: Any, workspace: Workspace) -> None:
    now = clock.now()
    made = [
        make_comment(workspace, f"Comment {n}", "en", written_at=now - dt.timedelta(minutes=n))
        for n in range(30)
    ]
    first = client.get(EXPLORER, {"sentiment": "negative"})
    second = client.get(EXPLORER, {"sentiment": "negative", "page": "2"})
    assert listed(first) == [c.pk for c in made[:25]]
    assert listed(second) == [c.pk for c in made[25:]]
    assert "sentiment=negative&amp;page=2" in first.content.decode()


def test_the_csv_holds_the_filtered_comments(
    client: Client, analyst: Any, workspace: Workspace, varied: dict[str, Comment]
) -> None:
    response = client.get(EXPLORER, {"sentiment": "negative", "format": "csv"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["Comment id", "Written at", "Source"]
    assert [int(r[0]) for r in rows[1:]] == [varied["en_neg"].pk, varied["ru_neg"].pk]
    by_id = {int(r[0]): r for r in rows[1:]}
    assert by_id[varied["ru_neg"].pk][6] == "Консультант нагрубил и отказался помочь"
    assert by_id[varied["ru_neg"].pk][14] == "staff"
    assert AuditLog.objects.filter(workspace=workspace, action="export.comments").count() == 1


# --- one-click fixes ------------------------------------------------------------------------


def test_one_click_sets_the_sentiment_stores_a_label_and_returns_to_the_filtered_page(
    client: Client, analyst: Any, varied: dict[str, Comment]
) -> None:
    comment = varied["ro_pos"]
    back = "/comments/?language=ro&page=1"

    response = client.post(
        f"/comments/{comment.pk}/label",
        {"task": "sentiment", "value": "negative", "next": back},
        follow=True,
    )

    assert response.redirect_chain == [(back, 302)]
    comment.refresh_from_db()
    assert comment.sentiment == "negative" and comment.sentiment_p == 1.0
    assert comment.sources["sentiment"] == LabelSource.ANALYST
    assert comment.reviewed_by == analyst
    label = Label.objects.get(comment=comment, task=Task.SENTIMENT)
    assert (label.value, label.present, label.created_by) == ("negative", True, analyst)
    assert any("Sentiment set to Negative" in m for m in messages_of(response))
    assert "analyst" in text_of(response)


def test_one_click_sets_the_emotion(
    client: Client, analyst: Any, varied: dict[str, Comment]
) -> None:
    comment = varied["en_neg"]
    client.post(f"/comments/{comment.pk}/label", {"task": "emotion", "value": "anger"})
    comment.refresh_from_db()
    assert comment.emotion == "anger"
    assert Label.objects.filter(comment=comment, task=Task.EMOTION, value="anger").exists()


def test_reasons_are_added_and_removed_with_a_click_each(
    client: Client, analyst: Any, varied: dict[str, Comment], reasons: dict[str, ReasonCode]
) -> None:
    comment = varied["en_neg"]

    client.post(
        f"/comments/{comment.pk}/label", {"task": "reasons", "value": "price", "present": "1"}
    )
    client.post(
        f"/comments/{comment.pk}/label", {"task": "reasons", "value": "waiting", "present": "0"}
    )

    assert set(comment.reasons.values_list("code", flat=True)) == {"price"}
    assert CommentReason.objects.get(comment=comment).source == LabelSource.ANALYST
    labels = set(Label.objects.filter(comment=comment).values_list("value", "present"))
    assert labels == {("price", True), ("waiting", False)}


@pytest.mark.parametrize(
    "data",
    [
        {"task": "sentiment", "value": "ecstatic"},
        {"task": "mood", "value": "negative"},
        {"task": "reasons", "value": "no-such-code"},
    ],
)
def test_a_bad_label_is_refused_with_a_message_and_nothing_changes(
    client: Client, analyst: Any, varied: dict[str, Comment], data: dict[str, str]
) -> None:
    comment = varied["en_neg"]
    response = client.post(f"/comments/{comment.pk}/label", data, follow=True)
    assert response.status_code == 200
    assert any(m.startswith("Not saved") for m in messages_of(response))
    assert not Label.objects.exists()
    comment.refresh_from_db()
    assert comment.sentiment == "negative" and comment.reviewed_at is None


def test_a_redirect_elsewhere_is_not_followed(
    client: Client, analyst: Any, varied: dict[str, Comment]
) -> None:
    response = client.post(
        f"/comments/{varied['en_neg'].pk}/label",
        {"task": "sentiment", "value": "neutral", "next": "https://evil.example/comments/"},
    )
    assert response["Location"] == "/comments/"


def test_changes_need_a_post(client: Client, analyst: Any, varied: dict[str, Comment]) -> None:
    pk = varied["en_neg"].pk
    assert client.get(f"/comments/{pk}/label?task=sentiment&value=neutral").status_code == 405
    assert client.get(f"/comments/{pk}/confirm").status_code == 405
    assert client.get("/comments/models/train").status_code == 405
    assert not Label.objects.exists()


def test_csrf_is_checked(
    workspace: Workspace, make_user: MakeUser, varied: dict[str, Comment]
) -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(make_user(workspace, Role.ANALYST, username="strict"))
    response = strict.post(
        f"/comments/{varied['en_neg'].pk}/label", {"task": "sentiment", "value": "neutral"}
    )
    assert response.status_code == 403
    assert not Label.objects.exists()


# --- the review queue -----------------------------------------------------------------------


def test_the_review_queue_lists_unsure_comments_most_unsure_first_and_confirming_empties_it(
    client: Client, analyst: Any, workspace: Workspace, reasons: dict[str, ReasonCode]
) -> None:
    sure = make_comment(workspace, "Great", "en", certainty=0.9)
    unsure = make_comment(workspace, "Hmm, the queue", "en", needs_review=True, certainty=0.3)
    very_unsure = make_comment(workspace, "Well…", "en", needs_review=True, certainty=0.1)
    CommentReason.objects.create(
        comment=unsure, reason=reasons["waiting"], source=LabelSource.MODEL, confidence=0.55
    )

    page = client.get("/comments/review")

    assert page.status_code == 200
    assert listed(page) == [very_unsure.pk, unsure.pk]
    assert sure.pk not in listed(page)
    assert "The model was right" in text_of(page)

    response = client.post(
        f"/comments/{unsure.pk}/confirm", {"next": "/comments/review"}, follow=True
    )

    assert response.redirect_chain == [("/comments/review", 302)]
    assert listed(response) == [very_unsure.pk]
    unsure.refresh_from_db()
    assert unsure.reviewed_by == analyst
    # The model's findings are labels now: training data for the next version.
    assert set(Label.objects.filter(comment=unsure).values_list("task", "value")) == {
        ("sentiment", "negative"),
        ("emotion", "frustration"),
        ("reasons", "waiting"),
    }
    waiting = re.search(r"Sentiment: (\d+)", text_of(response))
    assert waiting and waiting.group(1) == "1"


def test_a_fix_in_the_review_queue_takes_the_comment_out_of_it(
    client: Client, analyst: Any, workspace: Workspace
) -> None:
    unsure = make_comment(workspace, "Hmm", "en", needs_review=True, certainty=0.2)
    client.post(
        f"/comments/{unsure.pk}/label",
        {"task": "sentiment", "value": "neutral", "next": "/comments/review"},
    )
    assert listed(client.get("/comments/review")) == []
    assert services.review_queue(workspace).count() == 0


def test_labels_since_the_active_version_are_counted_as_waiting(
    client: Client, analyst: Any, workspace: Workspace
) -> None:
    comments = [make_comment(workspace, f"Text {n}", "en") for n in range(3)]
    ModelVersion.objects.create(
        workspace=workspace, task=Task.EMOTION, version=1, is_active=True, blob=b"",
        created_at=clock.now() - dt.timedelta(hours=1),
    )  # fmt: skip
    Label.objects.create(
        workspace=workspace, comment=comments[0], task=Task.EMOTION, value="anger",
        created_at=clock.now() - dt.timedelta(hours=2),
    )  # fmt: skip
    for c in comments[1:]:
        Label.objects.create(workspace=workspace, comment=c, task=Task.EMOTION, value="anger")

    page = text_of(client.get("/comments/review"))

    assert "Emotion: 2 since version 1" in page
    assert "Sentiment: 0 (no model yet)" in page


# --- model versions -------------------------------------------------------------------------


def make_version(workspace: Workspace, task: str, version: int, **fields: Any) -> ModelVersion:
    defaults: dict[str, Any] = {
        "n_texts": 100 * version,
        "labels": ["negative", "neutral", "positive"],
        "metrics": {
            "macro_f1": 0.6 + version / 100,
            "per_label": {"negative": 0.9, "neutral": 0.41, "positive": 0.77},
            "folds": 5,
            "n": 100 * version,
        },
        "blob": b"",
    }
    defaults.update(fields)
    return ModelVersion.objects.create(workspace=workspace, task=task, version=version, **defaults)


def test_the_models_page_shows_each_version_with_its_f1_and_the_active_one(
    client: Client, analyst: Any, workspace: Workspace
) -> None:
    make_version(workspace, Task.SENTIMENT, 1)
    make_version(workspace, Task.SENTIMENT, 2, is_active=True)

    response = client.get("/comments/models")

    assert response.status_code == 200
    html = response.content.decode()
    page = text_of(response)
    assert "version 2 active" in page
    assert "62.0%" in page and "61.0%" in page
    assert "Neutral 41%" in page and "Negative 90%" in page
    assert 'class="active-version"' in html
    assert "Roll back to this version" in page
    assert page.count("Train now") == 3


def test_rolling_back_activates_the_older_version(
    client: Client, analyst: Any, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = make_version(workspace, Task.SENTIMENT, 1)
    new = make_version(workspace, Task.SENTIMENT, 2, is_active=True)
    make_comment(workspace, "Coded by v2", "en", analysed_at=clock.now())

    response = client.post(f"/comments/models/{old.pk}/activate", follow=True)

    assert response.status_code == 200
    old.refresh_from_db()
    new.refresh_from_db()
    assert old.is_active and not new.is_active
    assert any("version 1 is active now" in m for m in messages_of(response))
    # Every comment waits to be coded again with it.
    assert not Comment.objects.filter(workspace=workspace, analysed_at__isnull=False).exists()
    assert AuditLog.objects.filter(action="text_model.activate", object_id=str(old.pk)).exists()


def test_training_with_too_little_data_says_so_without_an_error_page(
    client: Client, analyst: Any, workspace: Workspace
) -> None:
    make_comment(workspace, "Only one", "en")

    response = client.post("/comments/models/train", {"task": "emotion"}, follow=True)

    assert response.status_code == 200
    assert any("Emotion was not trained" in m for m in messages_of(response))
    assert not ModelVersion.objects.exists()


def test_training_with_enough_labels_makes_a_new_active_version(
    client: Client, analyst: Any, workspace: Workspace, settings: Any
) -> None:
    settings.TEXT_EMBEDDINGS = False
    words = {
        "negative": ["awful", "terrible", "slow", "rude", "broken", "waited"],
        "positive": ["great", "quick", "kind", "helpful", "perfect", "thanks"],
    }
    for n in range(40):
        value = "negative" if n % 2 else "positive"
        text = f"{words[value][n % 6]} service {words[value][(n + 1) % 6]} {n}"
        comment = make_comment(workspace, text, "en", sentiment=value)
        Label.objects.create(workspace=workspace, comment=comment, task=Task.SENTIMENT, value=value)

    response = client.post("/comments/models/train", {"task": "sentiment"}, follow=True)

    version = ModelVersion.objects.get(workspace=workspace, task=Task.SENTIMENT)
    assert version.is_active and version.version == 1 and version.n_texts >= 40
    assert any("version 1 trained on" in m for m in messages_of(response))
    assert "version 1 active" in text_of(response)


def test_a_version_worse_than_the_rules_is_kept_inactive_and_said_so(
    client: Client, analyst: Any, workspace: Workspace, settings: Any
) -> None:
    settings.TEXT_EMBEDDINGS = False
    # Labels that have nothing to do with the words: cross-validation finds no signal.
    for n in range(40):
        value = ("negative", "positive")[(n * 7 // 3) % 2]
        comment = make_comment(workspace, f"the same words again number {n}", "en")
        Label.objects.create(workspace=workspace, comment=comment, task=Task.SENTIMENT, value=value)

    response = client.post("/comments/models/train", {"task": "sentiment"}, follow=True)

    version = ModelVersion.objects.get(workspace=workspace, task=Task.SENTIMENT)
    assert not version.is_active
    assert any("kept inactive" in m for m in messages_of(response))


# --- topics ---------------------------------------------------------------------------------


def test_the_topics_page_shows_the_planted_topic_and_makes_a_reason_code_of_it(
    client: Client, analyst: Any, workspace: Workspace
) -> None:
    planted = plant(workspace)

    page = client.get("/comments/topics")

    assert page.status_code == 200
    html = page.content.decode()
    topic = next(t for t in page.context["topics"] if set(planted) & set(t["topic"].comment_ids))
    key = topic["topic"].key
    assert f'id="topic-{key}"' in html
    assert 'value="parking"' in html  # the code, prefilled from the English keyword
    form = topic["form"]
    data = {
        "topic": key,
        f"t{key}-code": "parking",
        f"t{key}-label_en": "Parking",
        f"t{key}-label_ru": "Парковка",
        f"t{key}-label_ro": "Parcare",
        f"t{key}-comments": form.initial["comments"],
    }

    response = client.post("/comments/topics/reason", data, follow=True)

    reason = ReasonCode.objects.get(workspace=workspace, code="parking")
    assert response.redirect_chain == [("/comments/?reason=parking", 302)]
    # The explorer, filtered by the new reason, lists the topic's comments (25 a page).
    assert response.context["total"] == topic["topic"].size
    assert set(listed(response)) <= set(topic["topic"].comment_ids)
    assert Label.objects.filter(task=Task.REASONS, value="parking").count() == len(
        topic["topic"].comment_ids
    )
    assert reason.labels["ru"] == "Парковка"

    again = client.post("/comments/topics/reason", data)

    assert again.status_code == 200
    assert "already has a reason with the code “parking”" in text_of(again)
    assert ReasonCode.objects.filter(workspace=workspace, code="parking").count() == 1


def test_a_topic_s_comments_from_another_workspace_are_not_labelled(
    client: Client, analyst: Any, workspace: Workspace, other_workspace: Workspace
) -> None:
    ours = make_comment(workspace, "No parking", "en")
    theirs = make_comment(other_workspace, "No parking", "en")

    client.post(
        "/comments/topics/reason",
        {
            "topic": "1",
            "t1-code": "parking",
            "t1-label_en": "Parking",
            "t1-comments": f"{ours.pk},{theirs.pk}",
        },
    )

    assert list(Label.objects.values_list("comment_id", flat=True)) == [ours.pk]
    assert not ReasonCode.objects.filter(workspace=other_workspace).exists()


# --- who may see and do what ----------------------------------------------------------------


@pytest.fixture
def two_teams(
    workspace: Workspace, org: Org, make_user: MakeUser
) -> tuple[Org, Org, Comment, Comment]:
    other = build_org(workspace, make_user, prefix="b")
    mine = make_comment(
        workspace, "About Andrei", "en", employee=org.agent, branch=org.branch,
        needs_review=True, certainty=0.2,
    )  # fmt: skip
    theirs = make_comment(
        workspace, "About the other team", "en", employee=other.agent, branch=org.branch,
        needs_review=True, certainty=0.1,
    )  # fmt: skip
    return org, other, mine, theirs


def test_a_supervisor_sees_and_labels_only_their_teams_comments(
    client: Client, workspace: Workspace, two_teams: tuple[Org, Org, Comment, Comment]
) -> None:
    org, _other, mine, theirs = two_teams
    client.force_login(org.supervisor_user)

    explorer = client.get(EXPLORER)
    queue = client.get("/comments/review")

    assert listed(explorer) == [mine.pk]
    assert "your teams" in text_of(explorer)
    assert listed(queue) == [mine.pk]
    assert (
        client.post(
            f"/comments/{mine.pk}/label", {"task": "sentiment", "value": "neutral"}
        ).status_code
        == 302
    )
    assert (
        client.post(
            f"/comments/{theirs.pk}/label", {"task": "sentiment", "value": "neutral"}
        ).status_code
        == 404
    )
    assert client.post(f"/comments/{theirs.pk}/confirm").status_code == 404
    assert list(Label.objects.values_list("comment_id", flat=True)) == [mine.pk]


def test_a_supervisor_reads_the_models_but_may_not_train_activate_export_or_see_topics(
    client: Client, workspace: Workspace, two_teams: tuple[Org, Org, Comment, Comment]
) -> None:
    org = two_teams[0]
    version = make_version(workspace, Task.SENTIMENT, 1)
    client.force_login(org.supervisor_user)

    models = client.get("/comments/models")

    assert models.status_code == 200
    assert "Train now" not in text_of(models) and "Activate" not in text_of(models)
    assert client.post("/comments/models/train", {"task": "sentiment"}).status_code == 403
    assert client.post(f"/comments/models/{version.pk}/activate").status_code == 403
    assert client.get(EXPLORER, {"format": "csv"}).status_code == 403
    assert client.get("/comments/topics").status_code == 403
    assert client.post("/comments/topics/reason", {"topic": "1"}).status_code == 403
    version.refresh_from_db()
    assert not version.is_active


def test_the_employee_role_gets_403_everywhere(
    client: Client, workspace: Workspace, org: Org, varied: dict[str, Comment]
) -> None:
    client.force_login(org.agent_user)
    pk = varied["en_neg"].pk
    for url in (EXPLORER, "/comments/review", "/comments/models", "/comments/topics"):
        assert client.get(url).status_code == 403, url
    assert (
        client.post(f"/comments/{pk}/label", {"task": "sentiment", "value": "neutral"}).status_code
        == 403
    )
    assert client.post(f"/comments/{pk}/confirm").status_code == 403
    assert not Label.objects.exists()


def test_another_workspace_s_comment_or_version_is_not_found(
    client: Client, analyst: Any, other_workspace: Workspace
) -> None:
    theirs = make_comment(other_workspace, "Elsewhere", "en", needs_review=True, certainty=0.1)
    version = make_version(other_workspace, Task.SENTIMENT, 1)

    assert (
        client.post(
            f"/comments/{theirs.pk}/label", {"task": "sentiment", "value": "neutral"}
        ).status_code
        == 404
    )
    assert client.post(f"/comments/{theirs.pk}/confirm").status_code == 404
    assert client.post(f"/comments/models/{version.pk}/activate").status_code == 404
    assert listed(client.get(EXPLORER)) == []
    assert listed(client.get("/comments/review")) == []
    version.refresh_from_db()
    assert not version.is_active and not Label.objects.exists()


def test_an_anonymous_visitor_is_sent_to_log_in(client: Client) -> None:
    response = client.get(EXPLORER)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_nav_links_to_the_comments_for_the_roles_that_see_them(
    client: Client, workspace: Workspace, org: Org, make_user: MakeUser
) -> None:
    client.force_login(make_user(workspace, Role.CX_MANAGER, username="cxm"))
    assert 'href="/comments/"' in client.get("/").content.decode()
    client.force_login(org.agent_user)
    assert 'href="/comments/"' not in client.get("/").content.decode()
