# ruff: noqa: RUF001 - Russian and Romanian comments are written as customers write them
"""An analyst in a real browser: filters the comment explorer, fixes a sentiment, an emotion
and a reason with a click each, confirms and fixes comments in the review queue, reads the
model versions and finds a planted topic.

Chromium (Debian's, through Playwright) against a live server, as in core's browser tests.
Screenshots go to ``tmp_path``; with ``CXLOOP_SCREENSHOTS=docs/screenshots`` they are written
there instead as comments-explorer.png, comments-review.png, comments-topics.png and
comments-models.png, the pictures of docs/comment-explorer.md.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cxloop.accounts.models import Role, Workspace
from cxloop.cases.models import ReasonCode
from cxloop.core import clock
from cxloop.core.tests import conftest as browser_fixtures
from cxloop.organisation.models import Branch, Region
from cxloop.surveys.tests.factories import make_survey
from cxloop.text.models import Comment, CommentReason, Label, LabelSource, ModelVersion, Task

from .test_topics import make_comment, plant

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

browser = browser_fixtures.browser
page = browser_fixtures.page
login = browser_fixtures.login

Login = Callable[..., None]

REASONS = {
    "waiting": {"en": "Waiting time", "ru": "Время ожидания", "ro": "Timpul de așteptare"},
    "staff": {"en": "Staff attitude", "ru": "Отношение персонала", "ro": "Atitudinea personalului"},
    "price": {"en": "Price", "ru": "Цена", "ro": "Prețul"},
    "app": {"en": "Mobile app", "ru": "Приложение", "ro": "Aplicația mobilă"},
}
MODEL = {"sentiment": "model", "emotion": "model"}
# text, language, score, sentiment, p, emotion, p, reasons (code, source), review certainty
COMMENTS: list[tuple[str, str, int, str, float, str, float, list[tuple[str, str]], float | None]] = [
    ("Waited forty minutes at the counter and nobody apologised.", "en", 2, "negative", 0.94,
     "frustration", 0.71, [("waiting", "model")], None),
    ("Консультант нагрубил и отказался помочь с переоформлением договора.", "ru", 1, "negative",
     0.91, "anger", 0.66, [("staff", "callback")], None),
    ("Aplicația se închide de fiecare dată când încerc să plătesc factura.", "ro", 4, "negative",
     0.88, "frustration", 0.58, [("app", "model")], None),
    ("The new tariff is fine, but the shop said it would be cheaper.", "en", 7, "neutral", 0.46,
     "disappointment", 0.41, [("price", "model")], 0.08),
    ("Очередь небольшая, но терминал опять не работал.", "ru", 6, "negative", 0.52,
     "neutral", 0.38, [], 0.04),
    ("Mulțumesc, Elena a rezolvat totul în cinci minute!", "ro", 10, "positive", 0.97,
     "gratitude", 0.9, [], None),
    ("Quick and friendly, as always.", "en", 9, "positive", 0.93, "satisfaction", 0.74, [], None),
    ("Цены выросли, а качество связи то же самое.", "ru", 5, "negative", 0.61, "disappointment",
     0.44, [("price", "model")], 0.22),
]  # fmt: skip


def shots(tmp_path: Path) -> Path:
    folder = os.environ.get("CXLOOP_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def seed(workspace: Workspace) -> dict[str, Comment]:
    region = Region.objects.create(workspace=workspace, code="R1", name="Centre")
    branches = [
        Branch.objects.create(workspace=workspace, code=code, name=name, region=region)
        for code, name in (("B01", "Chișinău Centru"), ("B02", "Bălți Nord"))
    ]
    survey = make_survey(workspace, "after-visit")
    reasons = {
        code: ReasonCode.objects.create(workspace=workspace, code=code, labels=labels, position=n)
        for n, (code, labels) in enumerate(REASONS.items())
    }
    now = clock.now()
    made: dict[str, Comment] = {}
    for n, (text, lang, score, sentiment, sp, emotion, ep, codes, unsure) in enumerate(COMMENTS):
        comment = make_comment(
            workspace, text, lang, score=score, sentiment=sentiment, sentiment_p=sp,
            emotion=emotion, emotion_p=ep, branch=branches[n % 2], survey=survey,
            written_at=now - dt.timedelta(hours=3 * n + 1), sources=MODEL,
            versions={"sentiment": 2, "emotion": 1, "reasons": 1},
            needs_review=unsure is not None, certainty=unsure if unsure is not None else 0.9,
        )  # fmt: skip
        for code, source in codes:
            CommentReason.objects.create(
                comment=comment, reason=reasons[code], source=source, confidence=0.74
            )
        made[text[:12]] = comment
    for task, labels, versions in (
        (Task.SENTIMENT, {"negative": 0.88, "neutral": 0.52, "positive": 0.91}, (0.71, 0.77)),
        (Task.EMOTION, {"anger": 0.61, "frustration": 0.58, "gratitude": 0.8, "neutral": 0.44},
         (0.6,)),
        (Task.REASONS, {"waiting": 0.81, "staff": 0.69, "price": 0.74, "app": 0.86}, (0.78,)),
    ):  # fmt: skip
        for v, macro in enumerate(versions, start=1):
            ModelVersion.objects.create(
                workspace=workspace, task=task, version=v, is_active=v == len(versions),
                n_texts=400 * v + 120, labels=list(labels), blob=b"",
                metrics={"macro_f1": macro, "per_label": labels, "folds": 5, "n": 400 * v},
                created_at=now - dt.timedelta(days=14 * (len(versions) - v) + 1),
            )  # fmt: skip
    return made


def test_an_analyst_fixes_labels_in_the_explorer_and_the_review_queue(
    page: Page,
    live_server: Any,
    workspace: Workspace,
    make_user: Any,
    login: Login,
    tmp_path: Path,
) -> None:
    base = live_server.url
    out = shots(tmp_path)
    analyst = make_user(workspace, Role.ANALYST, username="ana")
    made = seed(workspace)
    tariff = made["The new tari"]
    queue = made["Очередь небо"]

    login(page, analyst)
    page.click("header.top nav >> text=Comments")
    assert page.url == f"{base}/comments/"
    items = page.locator("#comments > li[data-comment]")
    assert items.count() == len(COMMENTS)
    assert "model v2" in items.nth(0).inner_text()
    page.screenshot(path=str(out / "comments-explorer.png"), full_page=True)

    # Filter: the English comments.
    page.select_option("#id_language", "en")
    page.click("#filters button")
    assert page.url.startswith(f"{base}/comments/?")
    assert items.count() == 3

    # One click: the tariff comment is negative, not neutral.
    row = page.locator(f"#comment-{tariff.pk}")
    row.locator(".sentiment button.negative").click()
    assert "Sentiment set to Negative" in page.inner_text(".messages")
    assert "language=en" in page.url  # back on the same filtered page
    row = page.locator(f"#comment-{tariff.pk}")
    assert row.locator(".sentiment button.negative").get_attribute("aria-pressed") == "true"
    assert "analyst" in row.locator(".sentiment").inner_text()

    # The emotion: chosen from the list, saved as it is chosen.
    with page.expect_navigation():
        row.locator(".emotion select").select_option("frustration")
    assert "Emotion set to Frustration" in page.inner_text(".messages")

    # A reason removed with its remove button, another added.
    row = page.locator(f"#comment-{tariff.pk}")
    row.locator(".chip[data-code=price] button").click()
    assert "Reason “Price” removed." in page.inner_text(".messages")
    row = page.locator(f"#comment-{tariff.pk}")
    with page.expect_navigation():
        row.locator(".add-reason select").select_option("staff")
    row = page.locator(f"#comment-{tariff.pk}")
    assert row.locator(".chip").all_inner_texts()[0].startswith("Staff attitude")

    tariff.refresh_from_db()
    assert (tariff.sentiment, tariff.emotion) == ("negative", "frustration")
    assert list(tariff.reasons.values_list("code", flat=True)) == ["staff"]
    assert set(Label.objects.filter(comment=tariff).values_list("task", "value", "present")) == {
        ("sentiment", "negative", True),
        ("emotion", "frustration", True),
        ("reasons", "price", False),
        ("reasons", "staff", True),
    }

    # The review queue: the tariff comment has left it (it was reviewed by the fixes).
    page.click("nav.tabs >> text=Review queue")
    assert page.url == f"{base}/comments/review"
    queued = page.locator("#comments > li[data-comment]")
    assert queued.count() == 2
    assert queued.nth(0).get_attribute("data-comment") == str(queue.pk)  # the most unsure
    assert page.locator("#waiting li[data-task=sentiment] .n").inner_text() == "1"
    page.screenshot(path=str(out / "comments-review.png"), full_page=True)

    page.locator(f"#comment-{queue.pk} button.confirm").click()
    assert "Confirmed" in page.inner_text(".messages")
    assert page.locator("#comments > li[data-comment]").count() == 1
    assert page.locator("#waiting li[data-task=sentiment] .n").inner_text() == "2"
    queue.refresh_from_db()
    assert queue.reviewed_at is not None and not queue.needs_review

    # The model versions.
    page.click("nav.tabs >> text=Models")
    assert page.url == f"{base}/comments/models"
    sentiment = page.locator("#task-sentiment")
    assert "version 2 active" in sentiment.inner_text()
    assert sentiment.locator("tr[data-version='1'] button").inner_text() == (
        "Roll back to this version"
    )
    assert "77.0%" in sentiment.locator("tr[data-version='2'] .macro").inner_text()
    page.screenshot(path=str(out / "comments-models.png"), full_page=True)

    # Topic discovery: 30 comments about parking in three languages among 150 others.
    planted = plant(workspace)
    page.click("nav.tabs >> text=Topics")
    assert page.url == f"{base}/comments/topics"
    topics = page.locator("section.topic")
    assert topics.count() >= 3
    parking = page.locator("section.topic", has_text="parking").first
    words = parking.locator(".topic-keywords").inner_text()
    assert "parking" in words and "парковк" in words and "parcar" in words
    parking.locator("summary").click()
    # The page is long (a dozen topics): the picture keeps its top, the open form included.
    page.screenshot(
        path=str(out / "comments-topics.png"),
        full_page=True,
        clip={"x": 0, "y": 0, "width": 1280, "height": 1500},
    )
    assert parking.locator("input[name$='-code']").input_value() == "parking"
    parking.locator("input[name$='-label_en']").fill("Parking")
    parking.locator(".topic-form button").click()
    assert "Reason “Parking” created" in page.inner_text(".messages")
    assert page.url == f"{base}/comments/?reason=parking"
    labelled = set(
        Label.objects.filter(task=Task.REASONS, value="parking").values_list(
            "comment_id", flat=True
        )
    )
    assert len(labelled & set(planted)) >= 27
    assert CommentReason.objects.filter(
        reason__code="parking", source=LabelSource.ANALYST
    ).count() == len(labelled)
