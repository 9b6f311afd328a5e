"""Standard phrase alerts: words that open an urgent case whatever the score.

Legal threats, safety and fraud, per language. They are ordinary ``cases.AlertRule`` rows
(matched at the start of a word, ignoring case and accents, see ``cases.services.Rule``),
installed per survey by ``install`` and edited like any other rule afterwards. A rule with a
``language`` looks only at comments detected in that language (``text.language``), so that a
short Romanian stem does not fire on a Russian or English word.
"""

from __future__ import annotations

from django.db import transaction

from cxloop.cases.models import AlertRule, Priority
from cxloop.surveys.models import Survey

STANDARD: dict[str, dict[str, tuple[str, ...]]] = {
    "Legal threat": {
        "en": ("lawyer", "attorney", "sue you", "lawsuit", "legal action", "court",
               "consumer protection", "ombudsman", "regulator"),
        "ru": ("адвокат", "юрист", "суд", "иск", "прокуратур", "роспотребнадзор",
               "защиту прав потребител", "жалобу в", "полици"),
        "ro": ("avocat", "instanta", "in judecata", "proces", "anpc", "protectia consumatorului",
               "plangere penala", "politi", "procuratur"),
        "uk": ("адвокат", "юрист", "суд", "позов", "прокуратур", "захист прав споживач",
               "поліці"),
    },
    "Safety": {
        "en": ("injur", "hurt", "fire", "smoke", "gas leak", "electric shock", "poison",
               "unsafe", "ambulance", "hospital"),
        "ru": ("травм", "пострадал", "пожар", "дым", "утечк газа", "удар током", "отравлен",
               "опасн", "скорую", "больниц"),
        "ro": ("ranit", "accident", "incendiu", "fum", "scurgere de gaz", "electrocut",
               "intoxica", "periculos", "ambulant", "spital"),
        "uk": ("травм", "постраждал", "пожеж", "дим", "витік газу", "удар струмом",
               "отруєн", "небезпеч", "швидку", "лікарн"),
    },
    "Fraud": {
        "en": ("fraud", "scam", "stolen", "stole", "unauthorised", "unauthorized", "hacked",
               "phishing", "charged twice", "identity theft"),
        "ru": ("мошенни", "обман", "украл", "кража", "списали без", "без моего согласия",
               "взлом", "фишинг", "развод"),
        "ro": ("frauda", "inselatori", "teap", "furat", "fara acordul", "neautorizat",
               "phishing", "spart"),
        "uk": ("шахра", "обман", "вкрал", "крадіж", "без моєї згоди", "злам", "фішинг"),
    },
}  # fmt: skip


def rule_name(category: str, language: str) -> str:
    return f"{category} ({language})"


def install(survey: Survey) -> list[AlertRule]:
    """Add the standard phrase rules to ``survey`` (urgent, one per category and language);
    rules already there by the same name are left as they are. A survey that had no rules
    also gets its detractor rule, which adding rules would otherwise switch off."""
    from cxloop.cases.services import DEFAULT_RANGES
    from cxloop.surveys.render import definition_of

    created: list[AlertRule] = []
    with transaction.atomic():
        existing = set(AlertRule.objects.filter(survey=survey).values_list("name", flat=True))
        if not existing:
            kind = definition_of(survey).score_question.type
            low, high = DEFAULT_RANGES.get(kind, DEFAULT_RANGES["nps"])
            created.append(
                AlertRule.objects.create(
                    workspace_id=survey.workspace_id,
                    survey=survey,
                    name="Detractors",
                    score_min=low,
                    score_max=high,
                )
            )
        for category, by_language in STANDARD.items():
            for language, words in by_language.items():
                name = rule_name(category, language)
                if name in existing:
                    continue
                created.append(
                    AlertRule.objects.create(
                        workspace_id=survey.workspace_id,
                        survey=survey,
                        name=name,
                        language=language,
                        phrases=list(words),
                        priority=Priority.URGENT,
                    )
                )
    return created
