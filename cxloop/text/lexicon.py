"""The built-in rules: what a comment says before a workspace has taught its own models.

Used for a workspace's first comments (no model version yet: ``versions`` records 0) and for
emotion until analysts have labelled enough of it:

* **sentiment** from the score the customer gave with the comment (0-6 negative, 7-8 neutral,
  9-10 positive on the NPS scale), moved by clear cue words in the comment itself; without a
  score, the cue words alone;
* **emotion** from cue words (word stems, so that "disappointed", "disappointing" and
  "disappointment" all count; "разочарован", "разочарование"), falling back to the mildest
  emotion of the sentiment.

The lists are short on purpose: they only start the loop. The per-workspace models trained on
scores and analysts' labels (``services.train``) replace them.
"""

from __future__ import annotations

import re
import unicodedata

from .models import Emotion, Sentiment

# Stems matched at the start of a word, accent- and case-insensitive (see ``fold``).
EMOTION_CUES: dict[str, tuple[str, ...]] = {
    Emotion.ANGER: (
        # en
        "angry", "anger", "furious", "outrag", "disgust", "unacceptab", "ridiculous",
        "scam", "rude", "hate",
        # ru / uk
        "возмут", "беспредел", "безобраз", "хамств", "хамк", "хамят", "бесит", "злост",
        "ненавиж", "отвратит", "обурен", "обурлив", "неприпустим",
        # ro
        "furios", "revolt", "inadmisibil", "scandalos", "bataie de joc", "nesimt", "obraznic",
    ),
    Emotion.FRUSTRATION: (
        "frustrat", "again and again", "still waiting", "still not", "every time", "annoy",
        "waste of time", "wasted", "useless", "fed up",
        "опять", "снова", "до сих пор", "сколько можно", "надоел", "устал", "бесполез",
        "потерял время", "знову", "досі", "набридл",
        "din nou", "tot nu", "inca astept", "m-am saturat", "enervant", "inutil",
        "pierdut timpul",
    ),
    Emotion.DISAPPOINTMENT: (
        "disappoint", "let down", "expected better", "expected more", "not as promised",
        "poor", "bad service", "worse",
        "разочаров", "ожидал лучш", "ожидала лучш", "не оправдал", "жаль", "хуже", "плох",
        "розчаров", "гірш", "погано",
        "dezamag", "ma asteptam la mai mult", "pacat", "mai prost", "slab", "prost",
    ),
    Emotion.ANXIETY: (
        "worried", "worry", "anxious", "afraid", "scared", "nervous", "concern", "unsafe",
        "fraud", "stolen", "hacked",
        "беспоко", "волну", "боюсь", "страшно", "тревож", "переживаю", "мошен", "украл",
        "хвилю", "боюся", "тривож", "шахра",
        "ingrijor", "teama", "frica", "ma tem", "nelinist", "frauda", "furat", "neliniste",
    ),
    Emotion.SATISFACTION: (
        "good", "fine", "okay", "satisfied", "as expected", "quick", "fast", "convenient",
        "хорош", "нормальн", "доволен", "довольна", "быстро", "удобн", "добре", "задовол",
        "швидко", "зручн",
        "bine", "multumit", "multumita", "rapid", "convenabil",
    ),
    Emotion.GRATITUDE: (
        "thank", "grateful", "appreciate",
        "спасибо", "благодар", "дякую", "вдячн",
        "multumesc", "multumim", "recunoscat", "mersi",
    ),
    Emotion.DELIGHT: (
        "excellent", "amazing", "awesome", "fantastic", "wonderful", "perfect", "love",
        "brilliant", "outstanding", "best",
        "отличн", "прекрасн", "великолеп", "замечательн", "супер", "восторг", "лучший",
        "лучшая", "чудов", "відмінн", "найкращ",
        "excelent", "minunat", "extraordinar", "superb", "perfect", "fantastic", "cel mai bun",
        "cea mai buna", "super",
    ),
}  # fmt: skip

NEGATIVE_EMOTIONS = (Emotion.ANGER, Emotion.FRUSTRATION, Emotion.DISAPPOINTMENT, Emotion.ANXIETY)
POSITIVE_EMOTIONS = (Emotion.SATISFACTION, Emotion.GRATITUDE, Emotion.DELIGHT)

# "not good", "не доволен", "nu sunt multumit": a negation just before a positive cue.
NEGATIONS = ("not ", "n't ", "never ", "no ", "не ", "ні ", "нет ", "nu ", "nici ")


def fold(text: str) -> str:
    """Lower case without accents (ș → s, ă → a; й stays и-like), spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " " + " ".join(stripped.split()) + " "


def _cue_pattern(stems: tuple[str, ...]) -> re.Pattern[str]:
    folded = sorted({fold(s).strip() for s in stems if s.strip()}, key=len, reverse=True)
    return re.compile(r"(?<!\w)(" + "|".join(re.escape(s) for s in folded) + ")")


_PATTERNS = {emotion: _cue_pattern(stems) for emotion, stems in EMOTION_CUES.items()}
_NEGATED = re.compile(r"(?<!\w)(" + "|".join(re.escape(n.strip()) for n in NEGATIONS) + r")\s*$")


def emotion_hits(text: str) -> dict[str, int]:
    """How many cues of each emotion the text has; a positive cue right after a negation
    ("not happy", "не доволен") counts as disappointment instead."""
    folded = fold(text)
    hits: dict[str, int] = {}
    for emotion, pattern in _PATTERNS.items():
        for match in pattern.finditer(folded):
            name = str(emotion)
            if emotion in POSITIVE_EMOTIONS and _NEGATED.search(
                folded[max(0, match.start() - 6) : match.start()]
            ):
                name = str(Emotion.DISAPPOINTMENT)
            hits[name] = hits.get(name, 0) + 1
    return hits


def polarity(hits: dict[str, int]) -> int:
    """Positive minus negative cues."""
    positive = sum(hits.get(str(e), 0) for e in POSITIVE_EMOTIONS)
    negative = sum(hits.get(str(e), 0) for e in NEGATIVE_EMOTIONS)
    return positive - negative


def sentiment_of_score(score: int | None) -> str | None:
    if score is None:
        return None
    if score <= 6:
        return str(Sentiment.NEGATIVE)
    if score <= 8:
        return str(Sentiment.NEUTRAL)
    return str(Sentiment.POSITIVE)


def sentiment(text: str, score: int | None) -> tuple[str, float]:
    """(sentiment, confidence) by the rules: the score first, cue words when they disagree
    clearly or there is no score. NPS scores only (0-10)."""
    cues = polarity(emotion_hits(text))
    by_score = sentiment_of_score(score if score is not None and 0 <= score <= 10 else None)
    by_cues = str(Sentiment.POSITIVE) if cues > 0 else str(Sentiment.NEGATIVE) if cues < 0 else None
    if by_score is None:
        return (by_cues, 0.6) if by_cues else (str(Sentiment.NEUTRAL), 0.4)
    if by_cues is None or by_cues == by_score:
        return by_score, 0.75 if by_cues else 0.6
    if abs(cues) >= 2 or by_score == Sentiment.NEUTRAL:
        # "9 — but the app is terrible, useless, again": the words outweigh a habit of 9s.
        return by_cues, 0.5
    return by_score, 0.45


def emotion(text: str, sentiment_label: str) -> tuple[str, float]:
    """(emotion, confidence): the emotion with most cues that agrees with the sentiment;
    without one, the mildest emotion of the sentiment at low confidence."""
    hits = emotion_hits(text)
    allowed: tuple[str, ...]
    if sentiment_label == Sentiment.NEGATIVE:
        allowed = tuple(str(e) for e in NEGATIVE_EMOTIONS)
        fallback = str(Emotion.DISAPPOINTMENT)
    elif sentiment_label == Sentiment.POSITIVE:
        allowed = tuple(str(e) for e in POSITIVE_EMOTIONS)
        fallback = str(Emotion.SATISFACTION)
    else:
        allowed = tuple(str(e) for e in (*NEGATIVE_EMOTIONS, *POSITIVE_EMOTIONS))
        fallback = str(Emotion.NEUTRAL)
    ranked = sorted(
        ((count, name) for name, count in hits.items() if name in allowed),
        key=lambda pair: (-pair[0], allowed.index(pair[1])),
    )
    if ranked:
        count, name = ranked[0]
        return name, min(0.9, 0.55 + 0.1 * count)
    return fallback, 0.3
